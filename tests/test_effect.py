"""The support-effect estimators (analysis.retention.effect): hand-computed panels and covariates, and
small generated worlds with known truth (no effect with measured confounding: the adjusted
intervals contain 1; a strong effect: they lie below 1)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.retention import churn, cohorts, effect
from analysis.data.engine import from_frames
from analysis.tools.generate import build_tables
from conftest import BACKENDS, backend_for

AS_OF = pd.Timestamp("2026-01-01", tz="UTC")


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def test_renewal_panel_by_hand():
    # a: start Jan 1, charges Jan 1, Feb 1, Mar 1 (3 months paid), churned -> decisions 1, 2 renewed, 3 failed
    #    first ticket Jan 20: exposed from the decision whose month began after it: k = 3 (Feb 1 > Jan 20)
    # b: start Jan 10, charges Jan 10 .. Apr 10 (4 months paid), still paying -> decisions 1-3 renewed,
    #    4 pending; ticket Jan 5 (before the start): exposed from k = 1 (month began Jan 10 > Jan 5)
    life = pd.DataFrame({"start": [ts("2025-01-01"), ts("2025-01-10")],
                         "last_charge": [ts("2025-03-01"), ts("2025-04-10")],
                         "churned": [True, False]}, index=pd.Index(["a", "b"], name="client_id"))
    first = pd.Series([ts("2025-01-20"), ts("2025-01-05")], index=["a", "b"])
    panel = effect.renewal_panel(life, first, first_decision=1)
    assert panel.to_dict("list") == {"client": [0, 0, 0, 1, 1, 1], "month": [1, 2, 3, 1, 2, 3],
                                     "churned": [0, 0, 1, 0, 0, 0], "exposed": [0, 1, 1, 1, 1, 1]}
    # the model's panel starts at the second renewal: decision 1 of each client is left out
    assert effect.FIRST_DECISION == 2
    assert effect.renewal_panel(life, first).to_dict("list") == {
        "client": [0, 0, 1, 1], "month": [2, 3, 2, 3], "churned": [0, 1, 0, 0], "exposed": [1, 1, 1, 1]}


def test_first_spells_end_at_the_first_lapse():
    # grace 14 days; as-of 2025-08-01
    # a: Jan 1, Feb 1, then Jun 1 (a return after Feb 1 + 1 month + 14 d = Mar 15): first spell ends Feb 1,
    #    churned Mar 15
    # b: Jan 31, then Mar 14 = exactly Jan 31 + 1 month (Feb 28) + 14 days: a renewal, not a lapse; two
    #    charges at one instant Mar 14; last Mar 14 + 1 month + 14 d = Apr 28 <= as-of: churned Apr 28
    # c: Jul 10, Jul 20 (a top-up): Jul 20 + 1 month + 14 d = Sep 3 > as-of: still in the first spell
    # d: a refund (negative) after the start is not a charge: Jan 1 only, churned Feb 15
    pay = pd.DataFrame({
        "client_id": ["a", "a", "a", "b", "b", "b", "c", "c", "d", "d"],
        "amount": [10.0, 10.0, 10.0, 5.0, 5.0, 5.0, 7.0, 3.0, 9.0, -9.0],
        "paid_at": [ts("2025-01-01"), ts("2025-02-01"), ts("2025-06-01"), ts("2025-01-31"), ts("2025-03-14"),
                    ts("2025-03-14"), ts("2025-07-10"), ts("2025-07-20"), ts("2025-01-01"), ts("2025-03-01")]})
    eng = from_frames({"payments": pay})
    out = churn.first_spells(eng, ts("2025-08-01"), 14)
    assert out.index.tolist() == ["a", "b", "c", "d"]
    assert [str(t.date()) for t in out["last_charge"]] == ["2025-02-01", "2025-03-14", "2025-07-20", "2025-01-01"]
    assert out["churned"].tolist() == [True, True, False, True]
    assert [None if pd.isna(t) else str(t.date()) for t in out["churn_at"]] == [
        "2025-03-15", "2025-04-28", None, "2025-02-15"]
    # without a lapse the first spell is the whole life
    life = churn.lifetimes(eng, ts("2025-08-01"), 14)
    assert (out["last_charge"] == life["last_charge"]).tolist() == [False, True, True, True]


@pytest.fixture(params=BACKENDS)
def backend(request):
    return backend_for(request)


def test_engagement_is_usage_per_day_before_the_first_ticket_in_the_first_days(backend):
    pay = pd.DataFrame({"client_id": ["a", "b", "c"], "paid_at": [ts("2025-01-03")] * 3, "amount": 10.0})
    clients = pd.DataFrame({"client_id": ["a", "b", "c"], "signed_up_at": [ts("2025-01-01")] * 3})
    usage = pd.DataFrame({"client_id": ["a", "a", "b", "b", "c"],
                          "at": [ts("2025-01-02"), ts("2025-01-20"), ts("2025-01-02"), ts("2025-01-06"), ts("2025-01-01")],
                          "events": [28, 100, 10, 50, 4]})
    tickets = pd.DataFrame({"client_id": ["b", "c", "b"], "created_at": [ts("2025-01-05"), ts("2025-01-01 06:00"),
                                                                         ts("2025-01-09")]})
    eng = from_frames({"payments": pay, "clients": clients, "usage": usage, "tickets": tickets}, backend)
    e = effect.engagement(eng, cohorts.client_starts(eng))
    # a: 28 events in 14 days (the Jan 20 row is past them) -> log(1 + 2)
    # b: window cut at the first ticket Jan 5 (4 days): 10 events, the Jan 6 row after it -> log(1 + 2.5)
    # c: ticket 6 hours after sign-up: measured over the first day -> 4 events / 1 day -> log(5)
    assert e.tolist() == pytest.approx([np.log(3.0), np.log(3.5), np.log(5.0)])


def test_adjustment_covariates_name_what_they_adjust_for():
    starts = pd.DataFrame({"first_charge": np.linspace(100, 1000, 60), "segment": ["smb"] * 40 + ["mid"] * 20},
                          index=pd.Index([f"c{i}" for i in range(60)], name="client_id"))
    clients = pd.DataFrame({"client_id": starts.index, "country": ["RU"] * 59 + ["AM"],
                            "acquisition_channel": ["ads"] * 60})
    covs = effect.adjustment_covariates(starts, clients, pd.Series(0.5, index=starts.index))
    # segment: smb is the most frequent (reference), mid an indicator; country: AM (1 client) pooled
    # into "other", the only other level; one acquisition channel: nothing to adjust for
    assert list(covs.columns) == ["log_check", "segment=mid", "country=other", "engagement"]
    assert covs.attrs["adjusted_for"] == ["first charge", "segment", "country", "product usage in the first 14 days"]
    assert covs["log_check"].mean() == pytest.approx(0.0) and covs["segment=mid"].sum() == 20


def estimates(world: dict, clients: int = 10_000, seed: int = 1) -> dict[str, dict]:
    tables, _ = build_tables(clients, seed, world=world)
    return effect.support_effects_of(tables, AS_OF, 14, 30).to_dict("index")


def test_no_effect_with_measured_confounding_adjusted_intervals_contain_1():
    e = estimates({"true_hazard_ratio_contact": 1.0, "confounding": 1.0})
    for method in ("adjusted", "renewal"):
        assert e[method]["ci_low"] <= 1.0 <= e[method]["ci_high"], (method, e[method])
        assert e[method]["e_value_ci"] == 1.0
    # the splits that ignore engagement and immortal time find an "effect" that is not there
    assert e["naive"]["ci_high"] < 0.5 and e["unadjusted"]["ci_high"] < 1.0
    assert "product usage in the first 14 days" in e["renewal"]["adjusted_for"]


def test_a_strong_effect_is_found_below_1():
    e = estimates({"true_hazard_ratio_contact": 0.5, "confounding": 0.0})
    for method in ("adjusted", "renewal"):
        assert e[method]["ci_high"] < 1.0, (method, e[method])
        assert e[method]["e_value"] > e[method]["e_value_ci"] > 1.0
    # whether intervals cover the truth is a share of runs, measured by benchmarks/calibrate.py
    # (docs/calibration.md), not something one seed can show


def test_without_churn_or_contrast_the_estimate_is_not_estimable():
    life = pd.DataFrame({"start": [ts("2025-01-01")] * 3, "last_charge": [ts("2025-06-01")] * 3,
                         "churned": [False] * 3, "duration_days": [300.0] * 3}, index=["a", "b", "c"])
    row = effect.landmark_effect(life, pd.Series(dtype="datetime64[ns, UTC]"), 30, AS_OF, None)
    assert np.isnan(row["hazard_ratio"]) and row["note"].startswith("not estimable")
    covs = pd.DataFrame({"log_check": [0.0, 1.0, -1.0]}, index=["a", "b", "c"])
    assert np.isnan(effect.renewal_effect(life, pd.Series(dtype="datetime64[ns, UTC]"), covs)["hazard_ratio"])
    # one client, churned at its second renewal: a panel of one event and no contrast
    one = pd.DataFrame({"start": [ts("2025-01-01")], "last_charge": [ts("2025-02-01")], "churned": [True]}, index=["a"])
    row = effect.renewal_effect(one, pd.Series([ts("2025-01-05")], index=["a"]), covs.iloc[:1])
    assert np.isnan(row["hazard_ratio"]) and row["events"] == 1


def test_ltv_effect_without_covariates_is_the_ratio_of_means_with_its_e_value():
    # contacted: 100, 200, 300 (mean 200); not: 50, 100, 150 (mean 100); f is not old enough (NaN).
    # A log-link model with only the group reproduces the group means: ratio = 200 / 100 = 2.
    # E-value: sd of the six LTVs = 86.60 (ddof 1); d = (200 - 200 / 2) / 86.60 = 1.1547;
    # RR = exp(0.91 x 1.1547) = 2.8600; E = RR + sqrt(RR x (RR - 1)) = 2.8600 + 2.3063 = 5.1663
    ids = pd.Index(list("abcdefg"), name="client_id")
    values = pd.DataFrame({"ltv_12m": [100.0, 200.0, 300.0, 50.0, 100.0, np.nan, 150.0]}, index=ids)
    early = pd.Series(["contacted"] * 3 + ["not_contacted"] * 4, index=ids)
    covs = pd.DataFrame(index=ids)
    covs.attrs["adjusted_for"] = []
    row = effect.ltv_effect(values, early, covs, "ltv_12m")
    assert row["ratio"] == pytest.approx(2.0)
    assert row["ci_low"] < 2.0 < row["ci_high"]
    sd = np.std([100, 200, 300, 50, 100, 150], ddof=1)
    rr = np.exp(0.91 * 100 / sd)
    assert row["e_value"] == pytest.approx(rr + np.sqrt(rr * (rr - 1)))
    assert (row["clients"], row["contacted"]) == (6, 3)
    view = effect.ltv_effect_view(row)
    assert view.loc["adjusted", "adjusted for"] == "nothing" and view.loc["adjusted", "p_value"] == row["p_value"]


def test_ltv_effect_counts_negative_ltv_as_0_and_needs_both_groups():
    ids = pd.Index(list("abcd"), name="client_id")
    values = pd.DataFrame({"ltv_12m": [100.0, -20.0, 50.0, 50.0]}, index=ids)
    covs = pd.DataFrame(index=ids)
    # contacted: 100 and -20 -> 0: mean 50; not: 50, 50 -> ratio 1, and the interval contains it
    row = effect.ltv_effect(values, pd.Series(["contacted", "contacted", "not_contacted", "not_contacted"], index=ids),
                            covs, "ltv_12m")
    assert row["ratio"] == pytest.approx(1.0) and row["e_value_ci"] == 1.0 and "1 net LTV below 0" in row["note"]
    one = effect.ltv_effect(values, pd.Series(["contacted"] * 4, index=ids), covs, "ltv_12m")
    assert np.isnan(one["ratio"]) and one["note"].startswith("not estimable")


def test_smd_to_risk_ratio():
    # VanderWeele & Ding 2017: RR = exp(0.91 d); d = 0.5 -> exp(0.455)
    from analysis.stats import smd_to_risk_ratio
    assert smd_to_risk_ratio(0.5) == pytest.approx(np.exp(0.455)) and smd_to_risk_ratio(0.0) == 1.0
    assert np.isnan(smd_to_risk_ratio(np.nan))


def test_landmark_ph_check_tests_each_covariate_and_is_empty_when_no_model_fits():
    rng = np.random.default_rng(3)
    n = 400
    exposed = rng.integers(0, 2, n)
    x = rng.standard_normal(n)
    # constant hazards (exponential lifetimes): proportional by construction
    duration = rng.exponential(200.0 / np.exp(-0.4 * exposed + 0.3 * x))
    frame = pd.DataFrame({"duration": np.minimum(duration, 365.0), "churned": (duration < 365.0).astype(int),
                          "exposed": exposed, "x": x})
    check = effect.landmark_ph_check(frame)
    assert list(check.index) == ["exposed", "x"] and list(check.columns) == ["test_statistic", "p"]
    assert ((check["p"] >= 0) & (check["p"] <= 1)).all()
    # nobody churned: no model, an empty check (not an error)
    assert effect.landmark_ph_check(frame.assign(churned=0)).empty
