"""Durations between two timestamps, in minutes (calendar clock).

Business-hour durations (config ``business_hours``) belong here too, beside this function.
"""
from __future__ import annotations

import pandas as pd

__all__ = ["calendar_minutes"]


def calendar_minutes(start: pd.Series, end: pd.Series) -> pd.Series:
    """(end - start) in minutes as float; null when either end is missing.

    >>> s = pd.Series(pd.to_datetime(["2026-01-01 10:00"], utc=True))
    >>> calendar_minutes(s, s + pd.Timedelta(minutes=90)).tolist()
    [90.0]
    """
    return (end - start).dt.total_seconds() / 60.0
