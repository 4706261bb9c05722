"""Calendar-month arithmetic on timestamp columns, vectorised (DESIGN §4: "month" offsets are
calendar months added to a timestamp, the day clamped to the month's end, as pandas DateOffset:
Jan 31 + 1 month = Feb 29 in a leap year; each offset is taken from the original timestamp)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import keys

__all__ = ["add_months", "months_between", "months_since", "month_label"]


_DAY_NS = 86_400 * 10**9


def _utc_like(t: pd.Series) -> bool:
    """Naive or UTC datetimes: calendar fields can be read off the int64 nanoseconds directly."""
    tz = getattr(t.dtype, "tz", None)
    return pd.api.types.is_datetime64_ns_dtype(t.dtype) and (tz is None or str(tz) == "UTC")


def _civil_of(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Days since 1970-01-01 -> proleptic Gregorian (year, month 1-12, day 1-31), in integer
    arithmetic (H. Hinnant's civil_from_days; numpy's datetime64 unit casts do the same far
    slower)."""
    z = days + 719_468
    era = np.floor_divide(z, 146_097)
    doe = z - era * 146_097
    yoe = (doe - doe // 1_460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = np.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month <= 2)
    return year, month, day


def _days_from_civil(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """The inverse of ``_civil_of``: days since 1970-01-01 of a proleptic Gregorian date."""
    y = year - (month <= 2)
    era = np.floor_divide(y, 400)
    yoe = y - era * 400
    doy = (153 * np.where(month > 2, month - 3, month + 9) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


def _fields(ns: np.ndarray, days_in_month: bool = False) -> tuple[np.ndarray, ...]:
    """int64 nanoseconds -> (months since year 0 as year * 12 + month - 1, day of month, time of
    day ns), and the length of that month when ``days_in_month``. A long column spans few
    distinct days: the fields of each day of its range are computed once and looked up (one
    gather per field instead of the integer arithmetic per row)."""
    days, tod = np.divmod(ns, _DAY_NS)
    if len(days) > 4096:
        lo, hi = int(days.min()), int(days.max())
        if hi - lo < len(days) // 4:
            year, month, day = _civil_of(np.arange(lo, hi + 1, dtype="int64"))
            total = year * 12 + month - 1
            days -= lo  # in place: a fresh array from divmod
            out = (total[days], day[days], tod)
            return out + (_days_in_month(total)[days],) if days_in_month else out
    year, month, day = _civil_of(days)
    total = year * 12 + month - 1
    return (total, day, tod, _days_in_month(total)) if days_in_month else (total, day, tod)


def _month_first_day(total: np.ndarray) -> np.ndarray:
    """Months since year 0 (year * 12 + month - 1) -> days since 1970-01-01 of that month's 1st."""
    return _days_from_civil(total // 12, total % 12 + 1, np.ones_like(total))


def add_months(times: pd.Series, months) -> pd.Series:
    """times + months calendar months (per row; ``months`` an int or an array), time of day kept.

    >>> t = pd.Series(pd.to_datetime(["2024-01-31 10:00", "2025-01-31 00:00"], utc=True))
    >>> add_months(t, 1).dt.strftime("%Y-%m-%d %H:%M").tolist()
    ['2024-02-29 10:00', '2025-02-28 00:00']
    """
    t = pd.Series(times)
    m = np.broadcast_to(np.asarray(months, dtype="int64"), (len(t),))
    if _utc_like(t):
        # the same calendar arithmetic on int64 nanoseconds (no Timestamp objects)
        ns = t.to_numpy().view("int64") if t.dt.tz is None else t.array.asi8
        nat = t.isna().to_numpy()
        total, day, tod = _fields(np.where(nat, 0, ns))
        target = total + m
        first = _month_first_day(target)
        last_day = _month_first_day(target + 1) - first
        out_ns = (first + np.minimum(day, last_day) - 1) * _DAY_NS + tod
        out_ns = np.where(nat, np.iinfo("int64").min, out_ns)
        values = pd.arrays.DatetimeArray._from_sequence(out_ns.view("datetime64[ns]"), dtype="datetime64[ns]")
        if t.dt.tz is not None:
            values = values.tz_localize("UTC")
        return pd.Series(values, index=t.index, dtype=t.dtype)
    total = t.dt.year.to_numpy() * 12 + (t.dt.month.to_numpy() - 1) + m
    year, month = total // 12, total % 12 + 1
    first = pd.to_datetime(pd.DataFrame({"year": year, "month": month, "day": 1}), errors="coerce")
    last_day = first.dt.days_in_month.to_numpy()
    day = np.minimum(t.dt.day.to_numpy(), last_day)
    midnight = first + pd.to_timedelta(day - 1, unit="D")
    time_of_day = t - t.dt.floor("D")
    out = midnight.dt.tz_localize(t.dt.tz) + time_of_day.to_numpy() if t.dt.tz is not None \
        else midnight + time_of_day.to_numpy()
    return pd.Series(out.to_numpy(), index=t.index, dtype=t.dtype)


def _days_in_month(total: np.ndarray) -> np.ndarray:
    """Length in days of the month ``total`` (months since year 0, as ``_fields`` gives)."""
    if len(total) > 4096:
        lo, hi = int(total.min()), int(total.max())
        if hi - lo < len(total) // 4:  # few distinct months: each computed once, then looked up
            return _days_in_month(np.arange(lo, hi + 1, dtype="int64"))[total - lo]
    year, month = total // 12, total % 12 + 1
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    return _MONTH_DAYS[month - 1] + ((month == 2) & leap)


_MONTH_DAYS = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype="int64")


def _whole_months(fs: tuple, ft: tuple) -> np.ndarray:
    """``months_between`` on ``_fields`` of start and time: m = the months between their
    calendar months, less one when start + m months (in the time's month, the day clamped to
    its length, the start's time of day) is after the time."""
    total_s, day_s, tod_s = fs[:3]
    total_t, day_t, tod_t = ft[:3]
    day = np.minimum(day_s, ft[3] if len(ft) > 3 else _days_in_month(total_t))
    too_far = (day > day_t) | ((day == day_t) & (tod_s > tod_t))
    return total_t - total_s - too_far


def _ns_fields(t: pd.Series, days_in_month: bool = False) -> tuple | None:
    """``_fields`` of a naive or UTC timestamp column without nulls, else None."""
    if not _utc_like(t) or t.isna().any():
        return None
    return _fields(t.array.asi8 if t.dt.tz is not None else t.to_numpy().view("int64"), days_in_month)


def months_between(start: pd.Series, times: pd.Series) -> pd.Series:
    """The largest whole m with add_months(start, m) <= time (negative before start).

    A payment at ``times`` falls in month-of-age m: [start + m months, start + (m + 1) months).
    """
    s, t = pd.Series(start), pd.Series(times, index=pd.Series(start).index)
    fs, ft = _ns_fields(s), _ns_fields(t, days_in_month=True)
    if fs is not None and ft is not None:
        return pd.Series(_whole_months(fs, ft), index=s.index)
    m = (t.dt.year - s.dt.year) * 12 + (t.dt.month - s.dt.month)
    m = m.astype("int64")
    too_far = add_months(s, m) > t
    return m - too_far.astype("int64")


_KEY_MONTHS = 3_000  # months a key may span: 3,000 * 31 days of ns stays below 2**63


def _months_by_key(s: np.ndarray, pos: np.ndarray, t: np.ndarray) -> np.ndarray | None:
    """``_whole_months`` of the starts ``s[pos]`` and the times ``t`` (int64 ns, no nulls) with
    one subtraction and one floor division per row, or None when they span too many months.

    Each instant x gets the key K(x) = (its month - the first month) * W + (day - 1) * DAY +
    time of day, with W = 31 days, so the part within the month lies in [0, W). Then
    floor((K(t) - K(s)) / W) = (months between their calendar months) - 1 exactly when the
    start's (day, time of day) is after the time's, which is ``_whole_months`` as long as the
    start's day needs no clamping. It does only when the time is on the last day of a month of
    fewer than 31 days and the start's day is past it: the clamped start is then on the time's
    day, after it only when its time of day is, and those few rows (at most 1 in 30) are
    corrected by their fields. Keys come from a table over the days of the columns' range (with
    x = day * DAY + time of day, K(x) = table[day] + x - first day * DAY); they stay below
    3,001 * W < 2**63 for spans of up to 3,000 months, beyond which the fields are used."""
    if not len(t):
        return np.zeros(0, dtype="int64")
    s_day, s_tod = np.divmod(s, _DAY_NS)
    lo = min(int(s_day.min()), int(t.min()) // _DAY_NS)
    hi = max(int(s_day.max()), int(t.max()) // _DAY_NS)
    if (hi - lo) // 28 > _KEY_MONTHS:
        return None
    every = np.arange(hi - lo + 1, dtype="int64")  # days since ``lo``
    year, month, day = _civil_of(every + lo)
    total = year * 12 + month - 1
    if int(total[-1] - total[0]) > _KEY_MONTHS:
        return None
    width = 31 * _DAY_NS
    # per day: K(x) - (x - lo * DAY)
    shift = (total - total[0]) * width + (day - 1 - every) * _DAY_NS
    length = _days_in_month(total)
    short_end = (day == length) & (length < 31)  # the last day of a month of fewer than 31 days
    s_day -= lo  # in place: a fresh array
    start_key = s - lo * _DAY_NS
    start_key += shift[s_day]
    out = np.empty(len(t), dtype="int64")
    for rows in keys.blocks(len(t)):  # temporaries of one block stay in the CPU cache and the heap
        tb, pb = t[rows], pos[rows]
        t_day = tb // _DAY_NS
        t_day -= lo
        key = shift[t_day]
        key += tb
        key -= lo * _DAY_NS
        key -= start_key[pb]
        o = out[rows]
        np.floor_divide(key, width, out=o)
        fix = np.flatnonzero(short_end[t_day])
        if len(fix):
            p, d = pb[fix], t_day[fix]
            o[fix] += (day[s_day[p]] > day[d]) & (s_tod[p] <= tb[fix] - (d + lo) * _DAY_NS)
    return out


def months_since(starts: pd.Series, pos: np.ndarray, times: pd.Series) -> np.ndarray:
    """``months_between(starts.iloc[pos], times)`` as an int64 array. For naive or UTC columns
    without nulls, by one key per instant (``_months_by_key``: each start's key computed once,
    as many payments per client share one start); else through the calendar fields."""
    starts, times = pd.Series(starts), pd.Series(times)
    if _utc_like(starts) and _utc_like(times) and not starts.isna().any() and not times.isna().any():
        out = _months_by_key(keys.ns(starts), np.asarray(pos), keys.ns(times))
        if out is not None:
            return out
    fs, ft = _ns_fields(starts), _ns_fields(times, days_in_month=True)
    if fs is None or ft is None:
        start = pd.Series(starts.array.take(pos), index=times.index)
        return months_between(start, times).to_numpy()
    return _whole_months(tuple(f[pos] for f in fs), ft)


def month_label(times: pd.Series) -> pd.Series:
    """The UTC calendar month of each instant as 'YYYY-MM' text (a cohort label)."""
    if _utc_like(times):
        # a handful of distinct months: format each once, not every row (strftime is per row)
        nat = times.isna().to_numpy()
        ns = times.array.asi8 if times.dt.tz is not None else times.to_numpy().view("int64")
        total = _fields(np.where(nat, 0, ns))[0]
        codes, uniques = pd.factorize(total)
        names = np.array([f"{m // 12:04d}-{m % 12 + 1:02d}" for m in uniques] + [np.nan], dtype=object)
        return pd.Series(names[np.where(nat, len(uniques), codes)], index=times.index, dtype=object)
    return times.dt.tz_convert("UTC").dt.strftime("%Y-%m") if times.dt.tz is not None else times.dt.strftime("%Y-%m")
