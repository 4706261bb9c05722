"""The support-effect estimators (analysis.effect): hand-computed panels and covariates, and
small generated worlds with known truth (no effect with measured confounding: the adjusted
intervals contain 1; a strong effect: they lie below 1)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import churn, cohorts, effect
from analysis.generate import build_tables

AS_OF = pd.Timestamp("2026-01-01", tz="UTC")


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def test_renewal_panel_by_hand():
    # a: start Jan 1, charges Jan 1, Feb 1, Mar 1 (3 months paid), churned -> decisions 1, 2 renewed, 3 failed
    #    first ticket Jan 20: exposed from the decision whose previous month began after it: k = 3 (Feb 1 > Jan 20)
    # b: start Jan 10, charges Jan 10, Feb 10, still paying -> decision 1 renewed, 2 pending; ticket Jan 5
    #    (before the start): exposed at k = 1 (month began Jan 10 > Jan 5)
    life = pd.DataFrame({"start": [ts("2025-01-01"), ts("2025-01-10")],
                         "last_charge": [ts("2025-03-01"), ts("2025-02-10")],
                         "churned": [True, False]}, index=pd.Index(["a", "b"], name="client_id"))
    first = pd.Series([ts("2025-01-20"), ts("2025-01-05")], index=["a", "b"])
    panel = effect.renewal_panel(life, first)
    assert panel.to_dict("list") == {"client": [0, 0, 0, 1], "month": [1, 2, 3, 1], "churned": [0, 0, 1, 0],
                                     "exposed": [0, 1, 1, 1]}


def test_engagement_is_usage_per_day_before_the_first_ticket_in_the_first_days():
    starts = pd.DataFrame({"start": [ts("2025-01-03")] * 3}, index=pd.Index(["a", "b", "c"], name="client_id"))
    signed = pd.Series([ts("2025-01-01")] * 3, index=["a", "b", "c"])
    usage = pd.DataFrame({"client_id": ["a", "a", "b", "b", "c"],
                          "at": [ts("2025-01-02"), ts("2025-01-20"), ts("2025-01-02"), ts("2025-01-06"), ts("2025-01-01")],
                          "events": [28, 100, 10, 50, 4]})
    first = pd.Series([ts("2025-01-05"), ts("2025-01-01 06:00")], index=["b", "c"])
    e = effect.engagement(starts, signed, usage, first)
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
    pay, cl, tk = tables["payments"], tables["clients"], tables["tickets"]
    starts = cohorts.client_starts(pay, cl)
    life = churn.lifetimes(pay, starts, AS_OF, 14)
    covs = effect.covariates_for(starts, cl, tk, tables.get("usage"))
    return effect.support_effects(life, tk, covs, 30, AS_OF).to_dict("index")


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
    assert e["renewal"]["ci_low"] <= 0.5 <= e["renewal"]["ci_high"]


def test_without_churn_or_contrast_the_estimate_is_not_estimable():
    life = pd.DataFrame({"start": [ts("2025-01-01")] * 3, "last_charge": [ts("2025-06-01")] * 3,
                         "churned": [False] * 3, "duration_days": [300.0] * 3}, index=["a", "b", "c"])
    row = effect.landmark_effect(life, pd.Series(dtype="datetime64[ns, UTC]"), 30, AS_OF, None)
    assert np.isnan(row["hazard_ratio"]) and row["note"].startswith("not estimable")
    covs = pd.DataFrame({"log_check": [0.0, 1.0, -1.0]}, index=["a", "b", "c"])
    assert np.isnan(effect.renewal_effect(life, pd.Series(dtype="datetime64[ns, UTC]"), covs)["hazard_ratio"])
