"""Durations between two timestamps, in minutes, on the calendar or the business-hours clock.

In the engine (DESIGN §11) a duration is taken from calendar fields that every backend reads
alike: whole days between the UTC dates (``engine.day_number``), minutes of the day, and seconds
with milliseconds (Spark cannot read microseconds; the contract's exports carry whole seconds).
The business clock is a calendar table: each opening interval's span, from its opening to the
next one, cut into the UTC days it covers, joined to the instants by their UTC day (an equality
join plus a range filter: no as-of join, which Spark lacks).

The business clock counts only the minutes inside the configured opening hours (``config
business_hours``: timezone, weekly days, daily start and end, holidays). It is computed without
a per-ticket loop: the opening intervals of every local day in the data's range are laid out
once, in UTC (so daylight-saving changes are exact: 09:00 local is a different UTC instant in
summer and winter), with the cumulative open time before each interval. The business time of
an instant t is then ``B(t) = cumulative[i] + clip(t - open[i], 0, length[i])`` for the last
interval i opening at or before t, found by binary search, and a duration is B(end) - B(start).
"""
from __future__ import annotations

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from analysis.data import engine
from analysis.data.config import BusinessHours

__all__ = ["instant_parts", "minutes_between", "clock_table", "business_clock", "day_starts", "day_table", "local_days", "calendar_minutes", "business_minutes", "business_days", "local_timezone", "opening_intervals", "minutes",
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


def business_minutes(start: pd.Series, end: pd.Series, hours: BusinessHours) -> pd.Series:
    """Minutes of opening time between start and end (float; null when either is missing),
    computed by the engine: B(end) - B(start) on the calendar table of ``clock_table`` (see
    ``business_clock``).

    Edge cases: both instants outside opening hours with none in between -> 0; end before
    start -> negative (the contract rules out such tickets); a holiday counts no minutes.

    >>> from analysis.data.config import BusinessHours
    >>> h = BusinessHours(timezone="UTC", days=["mon", "tue", "wed", "thu", "fri"], start="09:00", end="18:00")
    >>> fri = pd.Series(pd.to_datetime(["2026-01-09 17:00"], utc=True))   # Friday 17:00
    >>> business_minutes(fri, fri + pd.Timedelta(days=3), h).tolist()    # to Monday 17:00
    [540.0]
    """
    start = pd.Series(start)
    end = pd.Series(end, index=start.index)
    frame = pd.DataFrame({"start": start.dt.tz_convert("UTC").reset_index(drop=True),
                          "end": end.dt.tz_convert("UTC").reset_index(drop=True), "row": np.arange(len(start))})
    known = pd.concat([frame["start"], frame["end"]]).dropna()
    if not len(known):
        return pd.Series(np.nan, index=start.index, dtype="float64")
    eng = engine.from_frames({"t": frame, "clock": clock_table(hours, known.min(), known.max())})
    t = business_clock(business_clock(eng.table("t"), "start", eng.table("clock")), "end", eng.table("clock"))
    out = eng.frame(t.select("row", minutes=t.end_clock - t.start_clock).order_by("row"))
    return pd.Series(out["minutes"].astype("float64").to_numpy(), index=start.index)


def minutes(start: pd.Series, end: pd.Series, hours: BusinessHours | None) -> pd.Series:
    """Duration in minutes on the business clock when ``hours`` is given, else the calendar one."""
    if hours is None:
        return calendar_minutes(start, end)
    return business_minutes(start, end, hours)


# ---- in the engine -----------------------------------------------------------------------------
def instant_parts(ts: ir.TimestampValue) -> tuple[ir.IntegerValue, ir.IntegerValue, ir.IntegerValue]:
    """(days since 1970-01-01, minute of the day, millisecond of the minute) of an instant (UTC)."""
    return (engine.day_number(ts), ts.hour().cast("int64") * 60 + ts.minute().cast("int64"),
            ts.second().cast("int64") * 1000 + ts.millisecond().cast("int64"))


def minutes_between(start, end) -> ir.FloatingValue:
    """(end - start) in minutes, to the millisecond, from ``instant_parts`` (or a fixed pandas
    Timestamp for either): whole days and minutes in integers, then the milliseconds."""
    a = instant_parts(engine.instant(start) if isinstance(start, pd.Timestamp) else start)
    b = instant_parts(engine.instant(end) if isinstance(end, pd.Timestamp) else end)
    whole = (b[0] - a[0]) * 1440 + (b[1] - a[1])
    return whole.cast("float64") + (b[2] - a[2]).cast("float64") / 60_000


def clock_table(hours: BusinessHours, first: pd.Timestamp, last: pd.Timestamp) -> pd.DataFrame:
    """The business clock as a calendar table for the engine: one row per opening interval and
    UTC day of its span [open, next open) (the last span runs a year past ``last``): day (days
    since 1970-01-01), span_from, span_to, open, length_min and before_min (open minutes of all
    earlier intervals). An instant t before the first opening has no row (B = 0)."""
    iv = opening_intervals(hours, first, last)
    columns = ["day", "span_from", "span_to", "open", "length_min", "before_min"]
    if not len(iv):
        kinds = {"day": "int64", "span_from": "datetime64[ns, UTC]", "span_to": "datetime64[ns, UTC]",
                 "open": "datetime64[ns, UTC]", "length_min": "float64", "before_min": "float64"}
        return pd.DataFrame({c: pd.Series(dtype=kinds[c]) for c in columns})
    opens = iv["open"].reset_index(drop=True)
    until = pd.concat([opens.iloc[1:], pd.Series([last + pd.Timedelta(days=366)])], ignore_index=True)
    before = iv["minutes"].cumsum().shift(1, fill_value=0.0).to_numpy()
    idx, day = _utc_days(opens, until)
    return pd.DataFrame({"day": day, "span_from": opens.to_numpy()[idx], "span_to": until.to_numpy()[idx],
                         "open": opens.to_numpy()[idx], "length_min": iv["minutes"].to_numpy()[idx],
                         "before_min": before[idx]})


def _utc_days(starts: pd.Series, ends: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Spans [start, end) (UTC instants) cut into the UTC days they cover: (the span's row, the
    day's number since 1970-01-01) per piece."""
    epoch = pd.Timestamp("1970-01-01", tz="UTC")
    first_day = ((starts - epoch).dt.days).to_numpy()
    last_day = ((ends - pd.Timedelta(microseconds=1) - epoch).dt.days).to_numpy()
    count = last_day - first_day + 1
    idx = np.repeat(np.arange(len(starts)), count)
    day = first_day[idx] + (np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count))
    return idx, day.astype("int64")


def day_starts(days: pd.DatetimeIndex, tz: str) -> pd.DatetimeIndex:
    """The first instant (UTC) of each local date in ``tz``: its midnight, or, where the clocks
    skip midnight, the first valid instant after it; where midnight occurs twice, the first time
    (an instant belongs to the date its wall clock shows)."""
    days = pd.DatetimeIndex(days)
    return days.tz_localize(tz, ambiguous=np.ones(len(days), bool), nonexistent="shift_forward").tz_convert("UTC")


def day_table(tz: str, first: pd.Timestamp, last: pd.Timestamp) -> pd.DataFrame:
    """The local calendar as a table for the engine: one row per local date in ``tz`` (from the
    day before ``first`` to the day after ``last``) and UTC day its span [start, next start)
    covers: utc_day (days since 1970-01-01), day_from, day_to (UTC instants) and local_day (the
    local date's days since 1970-01-01). ``local_days`` joins instants to it."""
    lo = first.tz_convert(tz).tz_localize(None).normalize() - pd.Timedelta(days=1)
    hi = last.tz_convert(tz).tz_localize(None).normalize() + pd.Timedelta(days=1)
    dates = pd.date_range(lo, hi + pd.Timedelta(days=1), freq="D")
    starts = pd.Series(day_starts(dates, tz))
    idx, day = _utc_days(starts.iloc[:-1].reset_index(drop=True), starts.iloc[1:].reset_index(drop=True))
    local = np.asarray(engine.date_numbers(dates[:-1]), dtype="int64")
    return pd.DataFrame({"utc_day": day, "day_from": starts.to_numpy()[idx], "day_to": starts.to_numpy()[idx + 1],
                         "local_day": local[idx]})


def local_days(t: ir.Table, at: str, days: ir.Table | None) -> ir.Table:
    """``t`` with ``{at}_day``: the days since 1970-01-01 of the local date of the instant in
    column ``at`` (null when it is null), from a ``day_table`` in the engine, or the UTC date
    when ``days`` is None (no timezone to convert to)."""
    if days is None:
        return t.mutate(**{f"{at}_day": engine.day_number(t[at])})
    x = t.mutate(_utc_day=engine.day_number(t[at]))
    j = x.left_join(days, [x._utc_day == days.utc_day, x[at] >= days.day_from, x[at] < days.day_to])
    return j.select(*t.columns, **{f"{at}_day": j.local_day})


def business_clock(instants: ir.Table, at: str, clock: ir.Table) -> ir.Table:
    """``instants`` with ``{at}_clock``: the business minutes B(t) from the first opening to the
    instant in column ``at`` (null when it is null): B(t) = before + clip(t - open, 0, length)
    for the interval whose span holds t, 0 before the first opening."""
    t = instants.mutate(_day=engine.day_number(instants[at]))
    j = t.left_join(clock, [t._day == clock.day, t[at] >= clock.span_from, t[at] < clock.span_to])
    inside = ibis.greatest(ibis.least(minutes_between(j.open, j[at]), j.length_min), 0.0)
    b = ibis.ifelse(j[at].isnull(), ibis.null("float64"), (j.before_min + inside).fill_null(0.0))
    return j.select(*instants.columns, **{f"{at}_clock": b})
