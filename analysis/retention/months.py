"""Calendar-month arithmetic on pandas timestamp columns, for per-client and per-group tables
(DESIGN §4: "month" offsets are calendar months added to a timestamp, the day clamped to the
month's end, as pandas DateOffset: Jan 31 + 1 month = Feb 29 in a leap year; each offset is
taken from the original timestamp). The same rule on the engine's tables is
``analysis.data.engine.add_months`` / ``whole_months``; tests hold the two equal."""
from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["add_months", "months_between"]


def add_months(times: pd.Series, months) -> pd.Series:
    """times + months calendar months (per row; ``months`` an int or an array), time of day kept,
    the day clamped to the target month's length; nulls stay null.

    >>> t = pd.Series(pd.to_datetime(["2024-01-31 10:00", "2025-01-31 00:00"], utc=True))
    >>> add_months(t, 1).dt.strftime("%Y-%m-%d %H:%M").tolist()
    ['2024-02-29 10:00', '2025-02-28 00:00']
    """
    t = pd.Series(times)
    m = np.broadcast_to(np.asarray(months, dtype="int64"), (len(t),))
    total = t.dt.year.to_numpy(dtype="float64") * 12 + (t.dt.month.to_numpy(dtype="float64") - 1) + m
    known = ~np.isnan(total)
    total = np.where(known, total, 1970 * 12).astype("int64")  # a null row: any valid month, then null
    first = pd.to_datetime(pd.DataFrame({"year": total // 12, "month": total % 12 + 1, "day": 1}))
    day = np.minimum(np.where(known, t.dt.day.to_numpy(dtype="float64"), 1).astype("int64"),
                     first.dt.days_in_month.to_numpy())
    midnight = first + pd.to_timedelta(day - 1, unit="D")
    if t.dt.tz is not None:
        midnight = midnight.dt.tz_localize(t.dt.tz)
    out = midnight.set_axis(t.index) + (t - t.dt.floor("D")).to_numpy()
    return out.astype(t.dtype).where(known)


def months_between(start: pd.Series, times: pd.Series) -> pd.Series:
    """The largest whole m with add_months(start, m) <= time (negative before start): an
    instant at ``times`` lies in month of age m, [start + m months, start + (m + 1) months).

    >>> s = pd.Series(pd.to_datetime(["2024-01-31 10:00"] * 2, utc=True))
    >>> months_between(s, pd.Series(pd.to_datetime(["2024-02-29 10:00", "2024-02-29 09:59"], utc=True))).tolist()
    [1, 0]
    """
    s, t = pd.Series(start), pd.Series(times, index=pd.Series(start).index)
    m = ((t.dt.year - s.dt.year) * 12 + (t.dt.month - s.dt.month)).astype("int64")
    return m - (add_months(s, m) > t).astype("int64")
