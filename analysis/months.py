"""Calendar-month arithmetic on timestamp columns, vectorised (DESIGN §4: "month" offsets are
calendar months added to a timestamp, the day clamped to the month's end, as pandas DateOffset:
Jan 31 + 1 month = Feb 29 in a leap year; each offset is taken from the original timestamp)."""
from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["add_months", "months_between", "month_label"]


def add_months(times: pd.Series, months) -> pd.Series:
    """times + months calendar months (per row; ``months`` an int or an array), time of day kept.

    >>> t = pd.Series(pd.to_datetime(["2024-01-31 10:00", "2025-01-31 00:00"], utc=True))
    >>> add_months(t, 1).dt.strftime("%Y-%m-%d %H:%M").tolist()
    ['2024-02-29 10:00', '2025-02-28 00:00']
    """
    t = pd.Series(times)
    m = np.broadcast_to(np.asarray(months, dtype="int64"), (len(t),))
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


def months_between(start: pd.Series, times: pd.Series) -> pd.Series:
    """The largest whole m with add_months(start, m) <= time (negative before start).

    A payment at ``times`` falls in month-of-age m: [start + m months, start + (m + 1) months).
    """
    s, t = pd.Series(start), pd.Series(times, index=pd.Series(start).index)
    m = (t.dt.year - s.dt.year) * 12 + (t.dt.month - s.dt.month)
    m = m.astype("int64")
    too_far = add_months(s, m) > t
    return m - too_far.astype("int64")


def month_label(times: pd.Series) -> pd.Series:
    """The UTC calendar month of each instant as 'YYYY-MM' text (a cohort label)."""
    return times.dt.tz_convert("UTC").dt.strftime("%Y-%m") if times.dt.tz is not None else times.dt.strftime("%Y-%m")
