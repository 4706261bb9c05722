"""Calendar and business-hour durations: exact at weekends, holidays and DST changes."""
from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings, strategies as st

from analysis.data.config import BusinessHours
from analysis.support.durations import business_minutes, calendar_minutes, opening_intervals

WEEK = ["mon", "tue", "wed", "thu", "fri"]


def ts(*values):
    return pd.Series(pd.to_datetime(list(values), utc=True, format="ISO8601"))


def bm(start, end, hours):
    return business_minutes(ts(start), ts(end), hours).iloc[0]


UTC_9_18 = BusinessHours(timezone="UTC", days=WEEK, start="09:00", end="18:00")


def test_friday_evening_to_monday_morning_counts_only_open_minutes():
    # Fri 2026-01-09 17:00 -> close 18:00 = 60 min; weekend 0; Mon 09:00 -> 10:00 = 60 min
    assert bm("2026-01-09T17:00Z", "2026-01-12T10:00Z", UTC_9_18) == 120.0
    # opened Friday after closing, answered Monday 09:30: only Monday's 30 minutes
    assert bm("2026-01-09T19:00Z", "2026-01-12T09:30Z", UTC_9_18) == 30.0


def test_holiday_counts_no_minutes():
    hours = BusinessHours(timezone="UTC", days=WEEK, start="09:00", end="18:00", holidays=["2026-01-01"])
    # Wed Dec 31 17:00 -> 18:00 = 60; Thu Jan 1 holiday = 0; Fri Jan 2 09:00 -> 10:00 = 60
    assert bm("2025-12-31T17:00Z", "2026-01-02T10:00Z", hours) == 120.0
    # without the holiday Thursday adds its 9 hours = 540
    assert bm("2025-12-31T17:00Z", "2026-01-02T10:00Z", UTC_9_18) == 660.0


def test_dst_spring_forward_uses_local_opening_hours():
    berlin = BusinessHours(timezone="Europe/Berlin", days=WEEK, start="09:00", end="18:00")
    # Fri Mar 27 16:00Z = 17:00 CET (UTC+1): 60 min to close. Clocks go forward Sun Mar 29.
    # Mon Mar 30 08:00Z = 10:00 CEST (UTC+2): 60 min since the 09:00 opening (= 07:00Z)
    assert bm("2026-03-27T16:00Z", "2026-03-30T08:00Z", berlin) == 120.0
    # the same UTC instant on Monday in winter (Mar 23 08:00Z = 09:00 CET) is the opening: 0 + 60
    assert bm("2026-03-20T16:00Z", "2026-03-23T08:00Z", berlin) == 60.0
    assert calendar_minutes(ts("2026-03-27T16:00Z"), ts("2026-03-30T08:00Z")).iloc[0] == 3840.0


def test_dst_days_are_shorter_and_longer_on_a_round_the_clock_schedule():
    every_day = BusinessHours(timezone="Europe/Berlin", days=WEEK + ["sat", "sun"], start="00:00", end="23:59")
    iv = opening_intervals(every_day, pd.Timestamp("2026-03-29", tz="UTC"), pd.Timestamp("2026-10-25", tz="UTC"))
    minutes = dict(zip(iv["open"].dt.tz_convert("Europe/Berlin").dt.strftime("%Y-%m-%d"), iv["minutes"]))
    assert minutes["2026-03-28"] == 1439.0           # an ordinary day 00:00-23:59
    assert minutes["2026-03-29"] == 1379.0           # spring forward: 23 h day -> 22 h 59 min
    assert minutes["2026-10-25"] == 1499.0           # fall back: 25 h day -> 24 h 59 min


def test_outside_hours_same_night_is_zero_and_same_day_is_plain_difference():
    assert bm("2026-01-12T19:00Z", "2026-01-13T08:00Z", UTC_9_18) == 0.0
    assert bm("2026-01-12T10:00Z", "2026-01-12T10:25Z", UTC_9_18) == 25.0


def test_missing_end_is_null_not_zero():
    out = business_minutes(ts("2026-01-12T10:00Z", "2026-01-12T10:00Z"),
                           pd.Series([pd.Timestamp("2026-01-12T11:00Z"), pd.NaT]), UTC_9_18)
    assert out.iloc[0] == 60.0 and np.isnan(out.iloc[1])


instants = st.integers(min_value=0, max_value=60 * 24 * 60).map(
    lambda m: pd.Timestamp("2026-03-01", tz="UTC") + pd.Timedelta(minutes=m))


@settings(max_examples=60, deadline=None)
@given(a=instants, b=instants, c=instants)
def test_business_minutes_are_additive_and_never_exceed_calendar(a, b, c):
    a, b, c = sorted([a, b, c])
    hours = BusinessHours(timezone="Europe/Moscow", days=WEEK, start="09:00", end="18:00", holidays=["2026-03-09"])
    ab, bc, ac = business_minutes(pd.Series([a, b, a]), pd.Series([b, c, c]), hours).tolist()
    assert abs((ab + bc) - ac) < 1e-9
    assert 0 <= ac <= (c - a).total_seconds() / 60
