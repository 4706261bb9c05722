"""First response, resolution and SLA achievement per ticket and per tier (anchor: Zendesk).

- first response time = first_response_at - created_at, per entry tier (``first_tier``);
- resolution time = resolved_at - created_at (the latest resolution), per resolving tier; tickets
  closed without any reply count;
- both on the business clock when the config has business hours, else on the calendar clock;
- SLA (Zendesk): achieved when the time <= target; breached when it is > target, or when nothing
  came yet and the time elapsed from created_at to as-of (same clock) is > target; otherwise
  still active and left out of the rate achieved / (achieved + breached).
"""
from __future__ import annotations

import ibis.expr.types as ir
import numpy as np
import pandas as pd

from analysis.data.config import Config
from analysis.support.durations import business_clock, clock_table, minutes_between
from analysis.data.engine import from_frames, instant
from analysis.stats import rate_table
from analysis.support.tiers import entry_tier, resolving_tier

__all__ = ["clock", "ticket_time_table", "ticket_times", "target_minutes", "sla_status", "sla_counts", "sla_table",
           "weekly_trend"]


def clock(config: Config) -> str:
    """"business" when the config has business hours, else "calendar"."""
    return "business" if config.business_hours is not None else "calendar"


_INSTANTS = ("created_at", "first_response_at", "resolved_at")


def ticket_time_table(tickets: ir.Table, as_of: pd.Timestamp, clock: ir.Table | None = None) -> ir.Table:
    """Per ticket (all columns of ``tickets`` kept): first_response_min, resolution_min (null
    when none yet) and elapsed_min (created_at to as-of), on the business clock when ``clock``
    (``durations.clock_table``) is given, else on the calendar clock."""
    if clock is None:
        return tickets.mutate(
            first_response_min=minutes_between(tickets.created_at, tickets.first_response_at),
            resolution_min=minutes_between(tickets.created_at, tickets.resolved_at),
            elapsed_min=minutes_between(tickets.created_at, as_of))
    t = tickets.mutate(as_of_at=instant(as_of))
    for at in (*_INSTANTS, "as_of_at"):
        t = business_clock(t, at, clock)
    return t.select(*tickets.columns, first_response_min=t.first_response_at_clock - t.created_at_clock,
                    resolution_min=t.resolved_at_clock - t.created_at_clock,
                    elapsed_min=t.as_of_at_clock - t.created_at_clock)


def ticket_times(tickets: pd.DataFrame, config: Config, as_of: pd.Timestamp,
                 business: bool | None = None) -> pd.DataFrame:
    """Per ticket (the index of ``tickets``): first_response_min, resolution_min (null when none
    yet) and elapsed_min (created_at to as-of), on the business clock when the config has hours
    (or ``business``), computed by the engine (``ticket_time_table``) on DuckDB in-process.
    """
    hours = config.business_hours if business is not False else None
    if business and hours is None:
        raise ValueError("business-hour durations need business_hours in the config")
    none = pd.Series(pd.NaT, index=tickets.index, dtype="datetime64[ns, UTC]")
    frame = pd.DataFrame({c: pd.Series(tickets.get(c, none)).dt.tz_convert("UTC").reset_index(drop=True)
                          for c in _INSTANTS}).assign(row=np.arange(len(tickets)))
    tables = {"tickets": frame}
    if hours is not None:
        known = pd.concat([frame[c] for c in _INSTANTS]).dropna()
        first = min(known.min(), as_of) if len(known) else as_of
        last = max(known.max(), as_of) if len(known) else as_of
        tables["clock"] = clock_table(hours, first, last)
    eng = from_frames(tables)
    out = eng.frame(ticket_time_table(eng.table("tickets"), as_of, eng.table("clock")).order_by("row"))
    columns = ["first_response_min", "resolution_min", "elapsed_min"]
    return out[columns].astype("float64").set_axis(tickets.index)


def target_minutes(tickets: pd.DataFrame, config: Config, kind: str) -> pd.Series:
    """Each ticket's SLA target in minutes; kind "first_response" (by entry tier) or
    "resolution" (by resolving tier). A tier's per-priority target overrides its default when
    the ticket's priority is listed; null where the tier has no target."""
    tier = entry_tier(tickets, config) if kind == "first_response" else resolving_tier(tickets, config)
    default = {t.id: getattr(t, f"{kind}_target_min") for t in config.tiers}
    target = tier.astype("object").map(default).astype("float64")
    if "priority" in tickets.columns:
        for t in config.tiers:
            by_priority = getattr(t, f"{kind}_target_by_priority_min") or {}
            for priority, value in by_priority.items():
                target[(tier == t.id) & (tickets["priority"] == priority)] = value
    return target


def sla_status(duration_min: pd.Series, target_min: pd.Series, elapsed_min: pd.Series) -> pd.Series:
    """Per ticket: True achieved, False breached, <NA> still active (or no target).

    achieved = time came and time <= target
    breached = time came and time > target, or none came and elapsed > target
    active   = none came and elapsed <= target (left out of the rate)

    >>> nan = float("nan")
    >>> sla_status(pd.Series([10.0, 90.0, nan, nan]), pd.Series([60.0] * 4),
    ...            pd.Series([500.0, 500.0, 500.0, 30.0])).tolist()
    [True, False, False, <NA>]
    """
    came = duration_min.notna()
    has_target = target_min.notna()
    achieved = came & (duration_min <= target_min)
    breached = (came & (duration_min > target_min)) | (~came & (elapsed_min > target_min))
    out = pd.Series(pd.NA, index=duration_min.index, dtype="boolean")
    out[has_target & achieved] = True
    out[has_target & breached] = False
    return out


def sla_counts(status: pd.Series, target_min: pd.Series, by: pd.Series | list[pd.Series] | None = None,
               prefix: str = "sla") -> pd.DataFrame:
    """tickets, achieved, breached, active, no_target and the rate with its Wilson 95% interval.

    achieved + breached + active + no_target = tickets in every row; rate =
    achieved / (achieved + breached), null when both are 0.
    """
    frame = pd.DataFrame({"tickets": 1, "achieved": status.eq(True).fillna(False).astype("int64"),
                          "breached": status.eq(False).fillna(False).astype("int64"),
                          "no_target": target_min.isna().astype("int64")}, index=status.index)
    frame["active"] = frame["tickets"] - frame["achieved"] - frame["breached"] - frame["no_target"]
    if by is None:
        counts = frame.sum().to_frame("all").T
    else:
        counts = frame.groupby(by, observed=False).sum()
    counts = counts[["tickets", "achieved", "breached", "active", "no_target"]].astype("int64")
    rates = rate_table(counts["achieved"], counts["achieved"] + counts["breached"], name=f"{prefix}_achieved")
    return counts.join(rates)


def sla_table(tickets: pd.DataFrame, config: Config, as_of: pd.Timestamp, kind: str = "first_response",
              split: tuple[str, ...] = (), times: pd.DataFrame | None = None) -> pd.DataFrame:
    """SLA achievement per tier (entry tier for first response, resolving tier for resolution),
    optionally split further by ticket columns such as ``channel_kind`` or ``priority``."""
    times = ticket_times(tickets, config, as_of) if times is None else times
    target = target_minutes(tickets, config, kind)
    status = sla_status(times[f"{kind}_min"], target, times["elapsed_min"])
    tier = entry_tier(tickets, config) if kind == "first_response" else resolving_tier(tickets, config)
    keys = [tier.rename("tier")] + [tickets[c].astype("string").fillna("(none)").rename(c) for c in split]
    out = sla_counts(status, target, keys if split else keys[0])
    if split:
        out = out[out["tickets"] > 0]
    return out


def weekly_trend(tickets: pd.DataFrame, config: Config, as_of: pd.Timestamp, kind: str = "first_response",
                 times: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per ISO week of creation (Monday start, UTC) and tier (entry tier for first response,
    resolving tier for resolution): tickets, the median time, SLA achieved and the tier's default
    target. Weeks not fully before as-of are dropped (a partial week is not a trend point)."""
    times = ticket_times(tickets, config, as_of) if times is None else times
    target = target_minutes(tickets, config, kind)
    status = sla_status(times[f"{kind}_min"], target, times["elapsed_min"])
    week = tickets["created_at"].dt.tz_convert(None).dt.to_period("W-SUN").dt.start_time.rename("week")
    tier = (entry_tier(tickets, config) if kind == "first_response" else resolving_tier(tickets, config)).rename("tier")
    frame = pd.DataFrame({"week": week, "tier": tier, "minutes": times[f"{kind}_min"],
                          "achieved": status.eq(True).fillna(False), "decided": status.notna()})
    g = frame.groupby(["tier", "week"], observed=True)
    out = pd.DataFrame({"tickets": g.size(), "median_min": g["minutes"].median(),
                        "achieved": g["achieved"].sum(), "decided": g["decided"].sum()})
    out["sla_achieved"] = out["achieved"] / out["decided"].where(out["decided"] > 0)
    out = out.reset_index()
    complete = out["week"] + pd.Timedelta(days=7) <= as_of.tz_convert(None)
    out["target_min"] = out["tier"].astype("object").map({t.id: getattr(t, f"{kind}_target_min") for t in config.tiers})
    out["tier"] = out["tier"].astype("object")
    return out[complete].reset_index(drop=True)
