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
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.data import ids
from analysis.data.config import Config
from analysis.support.durations import business_days, local_timezone
from analysis.support.tiers import as_tier, resolving_tier, tier_codes

__all__ = ["local_day", "report_days", "working_days", "agents_on_duty", "daily_load", "load_table", "backlog_daily"]


def local_day(times: pd.Series, config: Config) -> pd.Series:
    """The calendar day (naive midnight) of each instant in the business timezone (else UTC)."""
    return times.dt.tz_convert(local_timezone(config.business_hours)).dt.tz_localize(None).dt.normalize()


def report_days(tickets: pd.DataFrame, config: Config, as_of: pd.Timestamp) -> pd.DatetimeIndex:
    """Every local day from the first ticket's creation to the day before as-of (naive dates)."""
    if not len(tickets):
        return pd.DatetimeIndex([], name="day")
    first = local_day(tickets["created_at"], config).min()
    last = (as_of - pd.Timedelta(days=1)).tz_convert(local_timezone(config.business_hours)).tz_localize(None).normalize()
    return pd.date_range(first, last, freq="D", name="day")


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
    lo = pd.to_datetime(af, utc=True).fillna(pd.Timestamp.min.tz_localize("UTC")).astype("datetime64[ns, UTC]")
    hi = pd.to_datetime(at, utc=True).fillna(pd.Timestamp.max.tz_localize("UTC")).astype("datetime64[ns, UTC]")
    lo_ns, hi_ns = pd.DatetimeIndex(lo).asi8, pd.DatetimeIndex(hi).asi8
    for tier in config.tier_ids:  # a loop over the few tiers, vectorised over agents x days
        sel = (rows["tier"] == tier).to_numpy()
        on = (lo_ns[sel][:, None] < ends[None, :]) & (hi_ns[sel][:, None] > starts[None, :])
        out[tier] = on.sum(axis=0)
    return out


def daily_load(tickets: pd.DataFrame, config: Config, days: pd.DatetimeIndex,
               agents: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per calendar day in ``days`` and resolving tier: resolved tickets and agents on duty.

    Columns: day, tier, working (a business day), resolved, agents, source ("agents table" or
    "resolving agents"). With the agents table, agents count on working days only; without it,
    the distinct agents who resolved a ticket of the tier that day. Empty when neither an agents
    table nor tickets.agent_id exists.
    """
    days = pd.DatetimeIndex(days)
    used = [c for c in ("resolved_at", "first_tier", "final_tier", "agent_id") if c in tickets.columns]
    resolved = tickets.loc[tickets["resolved_at"].notna().to_numpy(), used]  # the columns used, not every one
    day = local_day(resolved["resolved_at"], config)
    tier = resolving_tier(resolved, config)
    # resolved per (day, tier): a count per integer cell (the crosstab of day and tier, reindexed
    # to ``days`` and the ladder, without grouping 4M timestamps and categories)
    at, width = days.get_indexer(day), len(config.tier_ids)
    code = tier.cat.codes.to_numpy()
    known = (at >= 0) & (code >= 0)
    cell = at[known] * width + code[known]
    counts = pd.DataFrame(np.bincount(cell, minlength=len(days) * width).reshape(len(days), width).astype("int64"),
                          index=days, columns=pd.Index(config.tier_ids))
    working = days.isin(working_days(days.min(), days.max(), config)) if len(days) else np.zeros(0, bool)
    if agents is not None:
        staff = agents_on_duty(agents, days, config).mul(working.astype("int64"), axis=0)
        source = "agents table"
    elif "agent_id" in resolved.columns:
        seen = pd.DataFrame({"day": day, "tier": tier.astype("object"), "agent": resolved["agent_id"]}).dropna()
        staff = (seen.drop_duplicates().groupby(["day", "tier"]).size().unstack("tier")
                 .reindex(index=days, columns=config.tier_ids).fillna(0).astype("int64"))
        source = "resolving agents"
    else:
        return pd.DataFrame(columns=["day", "tier", "working", "resolved", "agents", "source"])
    counts.index.name = staff.index.name = "day"
    counts.columns.name = staff.columns.name = "tier"
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


def backlog_daily(tickets: pd.DataFrame, config: Config, as_of: pd.Timestamp,
                  segments: pd.DataFrame | None = None) -> pd.DataFrame:
    """Unsolved tickets per tier at the end of each day (UTC days, or business-timezone days),
    from the first ticket's day to the day before as-of. Rows: day; columns: tiers in ladder order.

    Counted with +1 / -1 changes at each ownership start and end (vectorised cumulative sums),
    sampled at each day's end: a change at or after the end instant is not yet counted.
    """
    tz = local_timezone(config.business_hours)
    if not len(tickets):
        return pd.DataFrame(columns=config.tier_ids, dtype="int64")
    # every ownership span as (ladder code, start, end) in int64 nanoseconds; NaT end = open
    codes, starts, ends = [], [], []
    rest = np.ones(len(tickets), dtype=bool)
    if segments is not None and len(segments):
        codes.append(tier_codes(segments["tier"], config))
        starts.append(ids.ns(segments["start"]))
        ends.append(ids.ns(segments["end"]))
        rest = ~ids.present(tickets["ticket_id"], segments["ticket_id"])  # no events: entry tier throughout
    if rest.any():
        codes.append(tier_codes(tickets["first_tier"], config)[rest])
        starts.append(ids.ns(tickets["created_at"])[rest])
        ends.append(ids.ns(tickets["resolved_at"])[rest] if "resolved_at" in tickets.columns
                    else np.full(int(rest.sum()), ids.NAT))
    code, start, end = np.concatenate(codes), np.concatenate(starts), np.concatenate(ends)
    first_day = pd.Timestamp(start.min(), unit="ns", tz="UTC").tz_convert(tz).tz_localize(None).normalize()
    last_day = (as_of - pd.Timedelta(days=1)).tz_convert(tz).tz_localize(None).normalize()
    days = pd.date_range(first_day, last_day, freq="D")
    day_end = pd.DatetimeIndex(days + pd.Timedelta(days=1)).tz_localize(
        tz, ambiguous=np.zeros(len(days), bool), nonexistent="shift_forward")
    ends_ns = day_end.tz_convert("UTC").asi8
    out = pd.DataFrame(0, index=pd.DatetimeIndex(days, name="day"), columns=config.tier_ids, dtype="int64")
    for i, tier in enumerate(config.tier_ids):
        sel = code == i
        s = np.sort(start[sel])
        e = np.sort(end[sel & (end != ids.NAT)])
        out[tier] = np.searchsorted(s, ends_ns, side="left") - np.searchsorted(e, ends_ns, side="left")
    return out
