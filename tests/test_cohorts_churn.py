"""Cohorts, LTV, first-month churn, lifetimes, Kaplan-Meier and RMST: hand-computed cases,
edges at month ends and at the as-of boundary, and properties."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st
from lifelines import KaplanMeierFitter

from analysis.retention import churn, cohorts, first_contact, survival
from analysis.data.engine import connect, from_frames
from analysis.retention.months import add_months, months_between


_DUCKDB = connect("duckdb")  # one in-process connection for the module: each engine registers its own tables


def E(payments: pd.DataFrame, clients: pd.DataFrame | None = None):
    """An in-process DuckDB engine over these tables."""
    return from_frames({"payments": payments, "clients": clients}, _DUCKDB)


def pay(*rows) -> pd.DataFrame:
    out = pd.DataFrame(rows, columns=["client_id", "paid_at", "amount"])
    out["paid_at"] = pd.to_datetime(out["paid_at"], utc=True, format="ISO8601")
    return out


# a: Jan 31 start; refund inside month 0; charge exactly at start + 1 month (Feb 29, leap year) -> month 1
# b: leap-day start; renewal at Feb 29 + 1 month = Mar 29 -> month 1
# c: Mar 15 start, nothing else
P = pay(("a", "2024-01-31T10:00Z", 100.0), ("a", "2024-02-15T00:00Z", -30.0), ("a", "2024-02-29T10:00Z", 100.0),
        ("a", "2024-03-31T10:00Z", 100.0),
        ("b", "2024-02-29T12:00Z", 50.0), ("b", "2024-03-29T12:00Z", 50.0),
        ("c", "2024-03-15T00:00Z", 200.0))
AS_OF = pd.Timestamp("2024-04-15", tz="UTC")


def test_month_arithmetic_clamps_and_counts_ages():
    t = pd.Series(pd.to_datetime(["2024-01-31T10:00Z", "2024-02-29T12:00Z"], utc=True))
    # Jan 31 + 1 = Feb 29 (leap), + 2 = Mar 31 (from the original day, not chained), + 13 = Feb 28 2025
    assert add_months(t, 1).iloc[0] == pd.Timestamp("2024-02-29T10:00Z")
    assert add_months(t, 2).iloc[0] == pd.Timestamp("2024-03-31T10:00Z")
    assert add_months(t, 13).iloc[0] == pd.Timestamp("2025-02-28T10:00Z")
    assert add_months(t, 12).iloc[1] == pd.Timestamp("2025-02-28T12:00Z")
    # an instant exactly at start + 1 month is in month 1; a second before it, month 0
    ages = months_between(t.iloc[[0, 0]].reset_index(drop=True),
                          pd.Series(pd.to_datetime(["2024-02-29T10:00:00Z", "2024-02-29T09:59:59Z"], utc=True)))
    assert ages.tolist() == [1, 0]


def test_starts_and_cohorts():
    s = cohorts.client_starts(E(P))
    assert s["cohort"].to_dict() == {"a": "2024-01", "b": "2024-02", "c": "2024-03"}
    assert s.loc["a", "first_charge"] == 100.0


def test_ltv_at_horizons_hand_computed():
    v = cohorts.client_ltv(E(P), AS_OF, horizons=(1, 2, 3))
    # 1 month: a = 100 - 30 (the Feb 29 10:00 charge is month 1) = 70; b = 50; c = 200
    #   (c: Mar 15 + 1 month = Apr 15 00:00 <= as-of Apr 15 00:00: just old enough)
    assert v["ltv_1m"].to_dict() == {"a": 70.0, "b": 50.0, "c": 200.0}
    # 2 months: a = 70 + 100 = 170 (Mar 31 10:00 is month 2); b: Feb 29 + 2 = Apr 29 > as-of -> null
    assert v.loc["a", "ltv_2m"] == 170.0 and np.isnan(v.loc["b", "ltv_2m"]) and np.isnan(v.loc["c", "ltv_2m"])
    table = cohorts.ltv_by_group(v, reps=200).set_index("horizon")
    # LTV at 1 month = (70 + 50 + 200) / 3; at 3 months nobody is old enough: null, not 0
    assert table.loc["ltv_1m", "ltv"] == pytest.approx(320 / 3) and table.loc["ltv_1m", "eligible"] == 3
    assert table.loc["ltv_3m", "eligible"] == 0 and np.isnan(table.loc["ltv_3m", "ltv"])
    assert (table["clients"] == 3).all()


def test_cohort_matrix_masks_cells_not_fully_observed():
    s = cohorts.client_starts(E(P))
    m, size = cohorts.ltv_matrix(E(P), s, AS_OF)
    # oldest age observable: Jan 31 10:00 + 2 months = Mar 31 10:00 <= Apr 15; + 3 = Apr 30 > -> columns 1, 2
    assert list(m.columns) == [1, 2] and size.to_dict() == {"2024-01": 1, "2024-02": 1, "2024-03": 1}
    assert m.loc["2024-01"].tolist() == [70.0, 170.0]
    assert m.loc["2024-02", 1] == 50.0 and np.isnan(m.loc["2024-02", 2])     # Apr 29 not reached: masked
    assert m.loc["2024-03", 1] == 200.0 and np.isnan(m.loc["2024-03", 2])


def test_observed_zero_stays_zero_and_unobserved_is_blank():
    p = pay(("z", "2024-01-10T00:00Z", 10.0), ("z", "2024-01-20T00:00Z", -10.0))   # nets to 0 in month 0
    m, _ = cohorts.ltv_matrix(E(p), cohorts.client_starts(E(p)), pd.Timestamp("2024-02-20", tz="UTC"))
    assert m.loc["2024-01", 1] == 0.0 and list(m.columns) == [1]


def test_payments_before_the_start_or_without_one_stay_out_of_the_matrix():
    # y: a refund of -5 on Jan 5 comes before its first charge (Jan 10, 10.0): age -1, no cell;
    # w: only a refund, so no start, and its payment is not any client's (the rows found path)
    as_of = pd.Timestamp("2024-02-20", tz="UTC")
    p = pay(("y", "2024-01-05T00:00Z", -5.0), ("y", "2024-01-10T00:00Z", 10.0))
    m, size = cohorts.ltv_matrix(E(p), cohorts.client_starts(E(p)), as_of)
    assert m.loc["2024-01", 1] == 10.0 and size.to_dict() == {"2024-01": 1}
    q = pd.concat([p, pay(("w", "2024-01-07T00:00Z", -3.0))], ignore_index=True)
    m2, size2 = cohorts.ltv_matrix(E(q), cohorts.client_starts(E(q)), as_of)
    pd.testing.assert_frame_equal(m2, m)
    assert size2.to_dict() == {"2024-01": 1}
    e = E(q)
    ages = e.frame(cohorts.aged_payments(e.table("payments"), cohorts.starts_table(e.table("payments"))))
    assert sorted(ages["age"].tolist()) == [-1, 0]  # w's refund has no start, so no age


def test_first_month_churn_counts_only_clients_old_enough():
    # d: Jan 10, no renewal -> Jan 10 + 1 month + 14 days = Feb 24 <= as-of: churned
    # e: Mar 1, no renewal -> Apr 1 + 14 = Apr 15 00:00 = as-of: eligible (<=), churned
    # f: Mar 1, renewal exactly at the deadline Apr 15 00:00 is inside (start, deadline]: stays
    #    (the as-of is Apr 15 00:00, so the renewal is not seen yet: the as-of is moved to Apr 16 for f)
    p = pd.concat([P, pay(("d", "2024-01-10T00:00Z", 10.0), ("e", "2024-03-01T00:00Z", 10.0))])
    status = churn.first_month_status(E(p), AS_OF, grace_days=14)
    # a: deadline Feb 29 10:00 + 14 d <= as-of, renewed -> stays; b: Mar 29 + 14 = Apr 12 <= as-of, renewed
    # c: Apr 15 + 14 = Apr 29 > as-of -> not eligible
    assert status["eligible"].to_dict() == {"a": True, "b": True, "c": False, "d": True, "e": True}
    r = churn.first_month_churn(status).loc["all"]
    assert (r["clients"], r["churned"], r["rate"]) == (4, 2, 0.5)
    f = pay(("f", "2024-03-01T00:00Z", 10.0), ("f", "2024-04-15T00:00Z", 10.0))
    fs = churn.first_month_status(E(f), pd.Timestamp("2024-04-16", tz="UTC"), 14)
    assert fs.loc["f", "churned"] == False  # noqa: E712 (nullable boolean)


def test_lifetimes_censor_at_as_of():
    life = churn.lifetimes(E(P), AS_OF, grace_days=14)
    # b: last charge Mar 29 12:00 + 1 month + 14 d = May 13 > as-of -> censored at as-of:
    #    Feb 29 12:00 -> Mar 29 12:00 = 29 days, -> Apr 15 00:00 = 16.5 more: 45.5 days observed
    assert not life.loc["b", "churned"] and life.loc["b", "duration_days"] == pytest.approx(45.5)
    p = pay(("d", "2024-01-10T00:00Z", 10.0))
    d = churn.lifetimes(E(p), AS_OF, 14).loc["d"]
    # churn date = Jan 10 + 1 month + 14 d = Feb 24; duration 45 days
    assert d["churned"] and d["churn_at"] == pd.Timestamp("2024-02-24", tz="UTC") and d["duration_days"] == 45.0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 400 * 86_400), st.one_of(st.none(), st.integers(-40 * 86_400, 500 * 86_400))),
                min_size=1, max_size=25))
def test_durations_equal_lifelines_datetimes_to_durations(rows):
    # the same durations and flags as lifelines, with null ends, ends after the fill date and
    # ends before the start (lifelines warns there; the numbers are still compared)
    import warnings
    from lifelines.utils import datetimes_to_durations
    base = pd.Timestamp("2023-01-01", tz="UTC")
    start = pd.Series([base + pd.Timedelta(seconds=a) for a, _ in rows])
    end = pd.Series([pd.NaT if b is None else base + pd.Timedelta(seconds=a + b) for a, b in rows], dtype=start.dtype)
    fill = base + pd.Timedelta(days=300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        want_t, want_c = datetimes_to_durations(start, end, fill_date=fill, freq="h")
    got_t, got_c = churn.durations(start, end, fill, freq="h")
    assert got_t.tolist() == want_t.tolist() and got_c.tolist() == list(want_c)


def test_kaplan_meier_and_rmst_hand_computed():
    # durations 2, 3, 3+, 5, 8+: S = 4/5 = 0.8 at 2; 0.8 x 3/4 = 0.6 at 3; 0.6 x 1/2 = 0.3 at 5
    kmf = KaplanMeierFitter().fit([2, 3, 3, 5, 8], [1, 1, 0, 1, 0])
    assert kmf.predict([1, 2, 3, 5, 8]).round(10).tolist() == [1.0, 0.8, 0.6, 0.3, 0.3]
    area, var = survival.rmst(kmf, 6)
    # RMST(6) = 2 x 1 + 1 x 0.8 + 2 x 0.6 + 1 x 0.3 = 4.3
    # Var = 2.3^2 x 1/(5 x 4) + 1.5^2 x 1/(4 x 3) + 0.3^2 x 1/(2 x 1) = 0.2645 + 0.1875 + 0.045 = 0.497
    assert area == pytest.approx(4.3) and var == pytest.approx(0.497)
    life = pd.DataFrame({"duration_days": np.array([2, 3, 3, 5, 8]) * churn.DAYS_PER_MONTH,
                         "churned": [True, True, False, True, False]}, index=list("vwxyz"))
    fits = survival.kaplan_meier(life)
    assert survival.survival_summary(fits, 6).loc["all", "rmst_months"] == pytest.approx(4.3)
    assert survival.survival_summary(fits, 6).loc["all", "median_lifetime_months"] == 5.0
    # at risk at month m = durations >= m: at 0 all 5; at 3: 3, 3+, 5, 8+ = 4; at 6: 8+ = 1
    assert survival.at_risk_table(fits, months=(0, 3, 6)).loc["all"].tolist() == [5, 4, 1]


def test_contact_window_is_strict_and_has_no_lower_bound():
    s = cohorts.client_starts(E(P))
    tickets = pd.DataFrame({"client_id": ["a", "b", "c"], "created_at": pd.to_datetime(
        ["2024-01-01T00:00Z",          # a: before the first charge -> early
         "2024-03-30T12:00Z",          # b: Feb 29 12:00 + 30 days = Mar 30 12:00 exactly -> not early (strict <)
         "2024-04-01T00:00Z"], utc=True)})   # c: Mar 15 + 17 days -> early
    g = first_contact.contact_groups(s, first_contact.first_contacts(from_frames({"tickets": tickets})), window_days=30)
    assert g["early"].to_dict() == {"a": True, "b": False, "c": True} and g["ever"].all()


settings_ = settings(max_examples=40, deadline=None)
charges = st.lists(st.tuples(st.sampled_from(["p", "q", "r", "s"]), st.integers(0, 700), st.floats(1, 1000)),
                   min_size=1, max_size=40)


@settings_
@given(charges)
def test_ltv_never_decreases_with_age_without_refunds_and_groups_sum(rows):
    base = pd.Timestamp("2024-01-01", tz="UTC")
    p = pd.DataFrame({"client_id": [r[0] for r in rows], "paid_at": [base + pd.Timedelta(days=r[1]) for r in rows],
                      "amount": [r[2] for r in rows]})
    as_of = base + pd.Timedelta(days=720)
    e = E(p)
    s = cohorts.client_starts(e)
    m, _ = cohorts.ltv_matrix(e, s, as_of)
    diffs = m.diff(axis=1).iloc[:, 1:]
    assert (diffs.fillna(0) >= -1e-9).all().all()
    v = cohorts.client_ltv(e, as_of)
    assert (v.diff(axis=1).iloc[:, 1:].fillna(0) >= -1e-9).all().all()
    groups = pd.Series(np.where(np.arange(len(s)) % 2, "contacted", "not_contacted"), index=s.index)
    t = cohorts.ltv_by_group(v, groups, reps=20).pivot(index="horizon", columns="group", values="clients").fillna(0)
    assert (t["all"] == t.drop(columns="all").sum(axis=1)).all()
    status = churn.first_month_status(e, as_of, 14)
    fm = churn.first_month_table(status, groups)
    assert fm.loc["all", "clients"] == fm.drop(index="all")["clients"].sum()
    assert ((fm["rate"].dropna() >= 0) & (fm["rate"].dropna() <= 1)).all()


def test_e_value_by_hand():
    from analysis.stats import e_value, e_value_interval, hazard_to_risk_ratio
    # rare outcome: RR = HR; E = RR + sqrt(RR (RR - 1)), RR < 1 inverted
    assert e_value(2.0, rare=True) == pytest.approx(2 + 2 ** 0.5)            # 3.4142
    assert e_value(0.5, rare=True) == pytest.approx(2 + 2 ** 0.5)
    assert e_value(1.0, rare=True) == 1.0
    # common outcome (churn): HR 0.5 -> RR = (1 - 0.5^0.70711) / (1 - 0.5^1.41421)
    #   0.5^0.707107 = 0.612547, 0.5^1.414214 = 0.375214 -> RR = 0.387453 / 0.624786 = 0.620137
    #   inverted 1.612547 -> E = 1.612547 + sqrt(1.612547 x 0.612547) = 1.612547 + 0.993862 = 2.606409
    assert hazard_to_risk_ratio(0.5) == pytest.approx(0.620137, abs=2e-6)
    assert e_value(0.5) == pytest.approx(2.606409, abs=2e-6)
    # interval: the limit nearest 1 (0.69 of 0.46-0.69); 1 when the interval holds 1
    #   rare: 1 / 0.69 = 1.449275 -> 1.449275 + sqrt(1.449275 x 0.449275) = 1.449275 + 0.806922 = 2.256198
    assert e_value_interval(0.46, 0.69, rare=True) == pytest.approx(2.256198, abs=2e-6)
    assert e_value_interval(1.2, 1.9, rare=True) == pytest.approx(e_value(1.2, rare=True))
    assert e_value_interval(0.8, 1.1) == 1.0
    assert np.isnan(e_value(float("nan"))) and np.isnan(e_value_interval(float("nan"), 1.2))
