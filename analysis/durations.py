"""Durations between two timestamps, in minutes, on the calendar or the business-hours clock.

The business clock counts only the minutes inside the configured opening hours (``config
business_hours``: timezone, weekly days, daily start and end, holidays). It is computed without
a per-ticket loop: the opening intervals of every local day in the data's range are laid out
once, in UTC (so daylight-saving changes are exact: 09:00 local is a different UTC instant in
summer and winter), with the cumulative open time before each interval. The business time of
an instant t is then ``B(t) = cumulative[i] + clip(t - open[i], 0, length[i])`` for the last
interval i opening at or before t, found by binary search, and a duration is B(end) - B(start).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.config import BusinessHours

__all__ = ["calendar_minutes", "business_minutes", "business_days", "local_timezone", "opening_intervals", "minutes",
           "WEEKDAYS"]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_NS_PER_MIN = 60 * 10**9


def calendar_minutes(start: pd.Series, end: pd.Series) -> pd.Series:
    """(end - start) in minutes as float; null when either end is missing.

    >>> s = pd.Series(pd.to_datetime(["2026-01-01 10:00"], utc=True))
    >>> calendar_minutes(s, s + pd.Timedelta(minutes=90)).tolist()
    [90.0]
    """
    return (end - start).dt.total_seconds() / 60.0


def local_timezone(hours: BusinessHours | None) -> str:
    """The timezone days are counted in: the business hours' timezone, else UTC."""
    return hours.timezone if hours is not None else "UTC"


def business_days(days: pd.DatetimeIndex, hours: BusinessHours | None) -> pd.DatetimeIndex:
    """The days (naive local dates) that are open: a configured weekday and not a holiday;
    every day when there are no business hours."""
    days = pd.DatetimeIndex(days)
    if hours is None:
        return days
    keep = np.isin(np.asarray(days.dayofweek), [WEEKDAYS.index(d) for d in hours.days])
    keep &= ~days.isin(pd.DatetimeIndex([pd.Timestamp(h) for h in hours.holidays]))
    return days[keep]


def opening_intervals(hours: BusinessHours, first: pd.Timestamp, last: pd.Timestamp) -> pd.DataFrame:
    """The opening intervals [open, close) in UTC of every business day between two instants.

    Local days from the day before ``first`` to the day after ``last`` (in the business
    timezone) whose weekday is in ``hours.days`` and which are not holidays. A local opening
    time that falls in a daylight-saving gap moves forward to the first valid instant; one
    that occurs twice (clocks going back) takes the first occurrence for the opening and the
    second for the closing, so the interval is never shortened.
    Columns: open, close (UTC timestamps), minutes (length).
    """
    tz = hours.timezone
    lo = first.tz_convert(tz).tz_localize(None).normalize() - pd.Timedelta(days=1)
    hi = last.tz_convert(tz).tz_localize(None).normalize() + pd.Timedelta(days=1)
    days = business_days(pd.date_range(lo, hi, freq="D"), hours)
    at = {name: pd.Timedelta(hours=int(v[:2]), minutes=int(v[3:])) for name, v in
          (("start", hours.start), ("end", hours.end))}
    opens = (days + at["start"]).tz_localize(tz, ambiguous=np.ones(len(days), bool),
                                             nonexistent="shift_forward").tz_convert("UTC")
    closes = (days + at["end"]).tz_localize(tz, ambiguous=np.zeros(len(days), bool),
                                            nonexistent="shift_forward").tz_convert("UTC")
    out = pd.DataFrame({"open": opens, "close": closes})
    out["minutes"] = (out["close"] - out["open"]).dt.total_seconds() / 60.0
    return out


def _ns(s: pd.Series) -> np.ndarray:
    """UTC nanoseconds since the epoch of a timestamp series without nulls."""
    return pd.DatetimeIndex(s).as_unit("ns").asi8


def _business_clock(t: np.ndarray, opens: np.ndarray, lengths: np.ndarray, before: np.ndarray) -> np.ndarray:
    """Business nanoseconds from the first opening to each instant t (int64 ns, no NaT)."""
    i = np.searchsorted(opens, t, side="right") - 1
    j = np.maximum(i, 0)
    inside = np.clip(t - opens[j], 0, lengths[j])
    return np.where(i >= 0, before[j] + inside, 0)


def business_minutes(start: pd.Series, end: pd.Series, hours: BusinessHours) -> pd.Series:
    """Minutes of opening time between start and end (float; null when either is missing).

    Formula: B(end) - B(start), B = open time elapsed since the first interval (see module).
    Edge cases: both instants outside opening hours with none in between -> 0; end before
    start -> negative (the contract rules out such tickets); a holiday counts no minutes.

    >>> from analysis.config import BusinessHours
    >>> h = BusinessHours(timezone="UTC", days=["mon", "tue", "wed", "thu", "fri"], start="09:00", end="18:00")
    >>> fri = pd.Series(pd.to_datetime(["2026-01-09 17:00"], utc=True))   # Friday 17:00
    >>> business_minutes(fri, fri + pd.Timedelta(days=3), h).tolist()    # to Monday 17:00
    [540.0]
    """
    start = pd.Series(start)
    end = pd.Series(end, index=start.index)
    ok = start.notna() & end.notna()
    out = pd.Series(np.nan, index=start.index, dtype="float64")
    if not ok.any():
        return out
    s = start[ok].astype("datetime64[ns, UTC]")
    e = end[ok].astype("datetime64[ns, UTC]")
    first, last = min(s.min(), e.min()), max(s.max(), e.max())
    iv = opening_intervals(hours, first, last)
    if not len(iv):
        out[ok] = 0.0
        return out
    opens = _ns(iv["open"])
    lengths = _ns(iv["close"]) - opens
    before = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    b_start = _business_clock(_ns(s), opens, lengths, before)
    b_end = _business_clock(_ns(e), opens, lengths, before)
    out[ok] = (b_end - b_start) / _NS_PER_MIN
    return out


def minutes(start: pd.Series, end: pd.Series, hours: BusinessHours | None) -> pd.Series:
    """Duration in minutes on the business clock when ``hours`` is given, else the calendar one."""
    if hours is None:
        return calendar_minutes(start, end)
    return business_minutes(start, end, hours)
