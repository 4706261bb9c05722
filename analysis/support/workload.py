"""Agent load and backlog per tier.

- load = tickets resolved per agent per working day, per resolving tier: resolved tickets /
  agent-days, where agent-days sums, over the working days of the period, the agents of the tier
  on duty that day. Working days are the configured business days (minus holidays) in the
  business timezone, or every day when the config has no business hours. Agents on duty come
  from the ``agents`` table (active_from <= day < active_to, open ends unbounded); without it,
  from the distinct agents who resolved a ticket of the tier that day (a lower bound on staff:
  an agent who resolved nothing is not seen).
- backlog = unsolved tickets at each day's end (the instant the next day starts), per tier:
  created before it and not resolved by it. With ticket_events the tier is the one owning the
  ticket at that instant (its ownership segments); without them, the entry tier.

Days are local dates in the business timezone (UTC without business hours): an instant belongs
to the date its wall clock shows there. In the engine an instant's local date comes from the
calendar table ``durations.day_table`` (``day_calendar``); only per-day and per-tier counts
leave it.
"""
from __future__ import annotations

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from analysis.data.config import Config
from analysis.data.engine import Engine, as_count, date_numbers, day_dates, derived_key, memtable
from analysis.support.durations import business_days, day_table, local_days, local_timezone
from analysis.support.escalation import tier_segments
from analysis.support.sla import instant_range
from analysis.support.tiers import as_tier, entry_code, resolving_code

__all__ = ["day_calendar", "report_days", "working_days", "agents_on_duty", "daily_load",
           "load_table", "backlog_daily"]


def day_calendar(eng: Engine, config: Config, as_of: pd.Timestamp) -> ir.Table | None:
    """The local calendar table (``durations.day_table``) of the business timezone over the
    support data's instants (``sla.instant_range``), computed once per engine and as-of; None
    when days are UTC dates (read from the instant itself)."""
    tz = local_timezone(config.business_hours)
    if tz == "UTC":
        return None
    return eng.derived(f"local_days_{derived_key(pd.Timestamp(as_of), tz)}",
                       lambda e: memtable(day_table(tz, *instant_range(e, as_of))))


def _last_day(as_of: pd.Timestamp, config: Config) -> pd.Timestamp:
    """The local date of the day before as-of (naive)."""
    return (as_of - pd.Timedelta(days=1)).tz_convert(local_timezone(config.business_hours)).tz_localize(None).normalize()


def report_days(eng: Engine, config: Config, as_of: pd.Timestamp) -> pd.DatetimeIndex:
    """Every local day from the first ticket's creation to the day before as-of (naive dates)."""
    t = eng.table("tickets")
    first = eng.frame(t.aggregate(first=t.created_at.min()))["first"].iloc[0]
    if pd.isna(first):
        return pd.DatetimeIndex([], name="day")
    first = first.tz_convert(local_timezone(config.business_hours)).tz_localize(None).normalize()
    return pd.date_range(first, _last_day(as_of, config), freq="D", name="day")


def working_days(first: pd.Timestamp, last: pd.Timestamp, config: Config) -> pd.DatetimeIndex:
    """Working days (naive dates) from ``first`` to ``last`` inclusive."""
    days = pd.date_range(pd.Timestamp(first).normalize(), pd.Timestamp(last).normalize(), freq="D")
    return business_days(days, config.business_hours)


def agents_on_duty(agents: pd.DataFrame, days: pd.DatetimeIndex, config: Config) -> pd.DataFrame:
    """Agents per tier (columns, ladder order) per working day (rows) from the agents table.

    An agent row counts on day d when active_from (if given) is before the day's end and
    active_to (if given) is after the day's start, both in the business timezone.
    """
    tz = local_timezone(config.business_hours)
    day_start = pd.DatetimeIndex(days).tz_localize(tz)
    rows = agents[agents["tier"].isin(config.tier_ids)]
    starts = day_start.asi8
    ends = (day_start + pd.Timedelta(days=1)).asi8
    out = pd.DataFrame(0, index=pd.DatetimeIndex(days, name="day"), columns=config.tier_ids, dtype="int64")
    af = rows["active_from"] if "active_from" in rows.columns else pd.Series(pd.NaT, index=rows.index)
    at = rows["active_to"] if "active_to" in rows.columns else pd.Series(pd.NaT, index=rows.index)
    lo = pd.to_datetime(af, utc=True).astype("datetime64[ns, UTC]").fillna(pd.Timestamp.min.tz_localize("UTC"))
    hi = pd.to_datetime(at, utc=True).astype("datetime64[ns, UTC]").fillna(pd.Timestamp.max.tz_localize("UTC"))
    lo_ns, hi_ns = pd.DatetimeIndex(lo).asi8, pd.DatetimeIndex(hi).asi8
    for tier in config.tier_ids:  # a loop over the few tiers, vectorised over agents x days
        sel = (rows["tier"] == tier).to_numpy()
        on = (lo_ns[sel][:, None] < ends[None, :]) & (hi_ns[sel][:, None] > starts[None, :])
        out[tier] = on.sum(axis=0)
    return out


def _per_day_tier(frame: pd.DataFrame, value: str, days: pd.DatetimeIndex, config: Config) -> pd.DataFrame:
    """An engine aggregate keyed by local day number ("day") and ladder code ("tier") as a
    days x tiers table of ``value`` (0 where no row; days outside ``days`` and tiers outside the
    ladder dropped)."""
    out = pd.DataFrame(0, index=pd.DatetimeIndex(days, name="day"), columns=pd.Index(config.tier_ids, name="tier"),
                       dtype="int64")
    known = frame[(frame["tier"] >= 0) & frame["day"].notna()]
    at = pd.DatetimeIndex(days).get_indexer(day_dates(known["day"]))
    for i, code, n in zip(at, known["tier"].astype("int64"), known[value]):  # at most days x tiers cells
        if i >= 0:
            out.iloc[i, int(code)] = as_count(n)
    return out


def daily_load(eng: Engine, config: Config, as_of: pd.Timestamp, days: pd.DatetimeIndex) -> pd.DataFrame:
    """Per calendar day in ``days`` and resolving tier: resolved tickets and agents on duty.

    Columns: day, tier, working (a business day), resolved, agents, source ("agents table" or
    "resolving agents"). With the agents table, agents count on working days only; without it,
    the distinct agents who resolved a ticket of the tier that day. Empty when neither an agents
    table nor tickets.agent_id exists.
    """
    days = pd.DatetimeIndex(days)
    tickets = eng.table("tickets")
    with_agents = eng.has("agents")
    if not with_agents and "agent_id" not in tickets.columns:
        return pd.DataFrame(columns=["day", "tier", "working", "resolved", "agents", "source"])
    if "resolved_at" in tickets.columns:
        t = tickets.filter(tickets.resolved_at.notnull())
        t = t.select("resolved_at", tier=resolving_code(t, config),
                     agent=t.agent_id if "agent_id" in t.columns else ibis.null("string"))
    else:
        t = tickets.select(resolved_at=ibis.null("timestamp"), tier=resolving_code(tickets, config),
                           agent=ibis.null("string")).filter(ibis.literal(False))
    t = local_days(t, "resolved_at", day_calendar(eng, config, as_of))
    per = eng.frame(t.group_by(day=t.resolved_at_day, tier=t.tier).aggregate(resolved=t.count(), agents=t.agent.nunique()))
    counts = _per_day_tier(per, "resolved", days, config)
    working = days.isin(working_days(days.min(), days.max(), config)) if len(days) else np.zeros(0, bool)
    if with_agents:
        staff = agents_on_duty(eng.frame(eng.table("agents")), days, config).mul(working.astype("int64"), axis=0)
        source = "agents table"
    else:
        staff = _per_day_tier(per, "agents", days, config)
        source = "resolving agents"
    counts.columns.name = staff.columns.name = "tier"
    counts.index.name = staff.index.name = "day"
    out = pd.DataFrame({"resolved": counts.stack(), "agents": staff.stack()}).reset_index()
    out["working"] = out["day"].isin(days[working])
    out["tier"] = as_tier(out["tier"], config)
    out["source"] = source
    return out[["day", "tier", "working", "resolved", "agents", "source"]]


def load_table(daily: pd.DataFrame, config: Config) -> pd.DataFrame:
    """Per tier: working days, resolved tickets (of which on non-working days), agent-days and
    resolved per agent per working day = resolved / agent-days (null without agent-days)."""
    g = daily.groupby("tier", observed=False)
    off = daily[~daily["working"].astype(bool)].groupby("tier", observed=False)["resolved"].sum()
    out = pd.DataFrame({"working_days": daily[daily["working"].astype(bool)].groupby("tier", observed=False)["day"].nunique(),
                        "resolved": g["resolved"].sum(), "resolved_on_days_off": off,
                        "agent_days": g["agents"].sum()})
    out = out.reindex(config.tier_ids).fillna(0).astype("int64")
    out["resolved_per_agent_day"] = out["resolved"] / out["agent_days"].where(out["agent_days"] > 0)
    return out.rename_axis("tier")


def backlog_daily(eng: Engine, config: Config, as_of: pd.Timestamp) -> pd.DataFrame:
    """Unsolved tickets per tier at the end of each local day, from the first ticket's day to
    the day before as-of. Rows: day; columns: tiers in ladder order.

    Every ownership span (``escalation.tier_segments`` for tickets with events; created_at to
    resolved_at in the entry tier for the others) counts from the day its start falls on to the
    day before its end's (an open span to the last day): backlog at the end of day d = spans
    started on or before d - spans ended on or before d, per tier. The engine counts spans per
    (tier, start day, end day) in one pass (at most tiers x days x days rows, in practice a few
    per start day); pandas sums them per start day and per end day and takes cumulative sums
    over at most days x tiers cells.
    """
    tickets = eng.table("tickets")
    resolved = tickets.resolved_at if "resolved_at" in tickets.columns else ibis.null("timestamp")
    plain = tickets
    if eng.has("ticket_events"):
        plain = tickets.anti_join(eng.table("ticket_events"), "ticket_id")
    spans = plain.select(tier=entry_code(plain, config), start=plain.created_at,
                         end=plain.resolved_at if "resolved_at" in plain.columns else resolved)
    if eng.has("ticket_events"):
        seg = tier_segments(eng, config, as_of)
        spans = spans.union(seg.select(*[seg[c].cast(spans[c].type()).name(c) for c in spans.columns]))
    cal = day_calendar(eng, config, as_of)
    local = local_days(local_days(spans, "start", cal), "end", cal)
    pairs = eng.frame(local.group_by(tier=local.tier, start=local.start_day, end=local.end_day).aggregate(n=local.count()))
    if not len(pairs):
        return pd.DataFrame(columns=config.tier_ids, dtype="int64")
    pairs["n"] = pairs["n"].map(as_count).astype("int64")
    starts = pairs.groupby(["tier", "start"], as_index=False)["n"].sum().rename(columns={"start": "day"})
    ends = pairs.dropna(subset=["end"]).groupby(["tier", "end"], as_index=False)["n"].sum().rename(columns={"end": "day"})
    days = pd.date_range(day_dates([int(starts["day"].min())])[0], _last_day(as_of, config), freq="D")
    at = np.asarray(date_numbers(days), dtype="int64")
    out = pd.DataFrame(0, index=pd.DatetimeIndex(days, name="day"), columns=config.tier_ids, dtype="int64")
    for i, tier in enumerate(config.tier_ids):
        out[tier] = _on_or_before(starts[starts["tier"] == i], at) - _on_or_before(ends[ends["tier"] == i], at)
    return out


def _on_or_before(counts: pd.DataFrame, days: np.ndarray) -> np.ndarray:
    """Per day number in ``days``: the sum of ``counts.n`` (int64) over rows whose day is <= it."""
    counts = counts.sort_values("day")
    total = np.r_[0, np.cumsum(counts["n"].to_numpy(dtype="int64"))]
    return total[np.searchsorted(counts["day"].to_numpy(dtype="int64"), days, side="right")]
