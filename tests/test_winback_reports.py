"""04_winback_retention and 05_onboarding_revenue end to end on the calibrated sample: their
metrics.json recovers the generator's win-back, save and onboarding parameters (truth.json) and
agrees with the independent plain-pandas onboarding figures."""
from __future__ import annotations

import json

import pytest

import sample_figures as fig
from analysis import load_dataset
from analysis.run.cli import main


@pytest.fixture(scope="module")
def run(sample_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("winback")
    assert main(["run", "--data", str(sample_dir), "--out", str(out), "--only", "04_winback_retention",
                 "05_onboarding_revenue"]) == 0
    return json.loads((out / "metrics.json").read_text())


def test_winback_recovers_truth(run, truth):
    wb = run["winback"]
    t = truth["winback"]
    assert {"dormancy_events", "won_back", "rate", "by_channel"} <= set(wb)
    assert wb["won_back"] <= wb["dormancy_events"] and wb["rate"] == pytest.approx(wb["won_back"] / wb["dormancy_events"])
    # overall: the interval contains the generator's expected rate (about 0.17)
    assert wb["rate_low"] <= t["expected_rate"] <= wb["rate_high"]
    ch = wb["by_channel"]
    assert set(ch) == {"none", "email", "call"}
    assert ch["none"]["rate"] < ch["email"]["rate"] < ch["call"]["rate"]            # 0.08 < 0.17 < 0.32
    for channel, p in t["comeback_prob"].items():
        # the DESIGN definition also counts repeated and ticket-ended dormancies the generator does not
        # model one by one, so the per-channel rates are compared with a tolerance of 4 points
        assert ch[channel]["rate"] == pytest.approx(p, abs=0.04), channel
    assert sum(v["events"] for v in ch.values()) == wb["dormancy_events"]


def test_saves_and_early_warning(run, truth):
    s = run["winback"]["retention_saves"]
    assert s["save_rate"] == pytest.approx(truth["refunds"]["save_rate"], abs=0.06)       # a third kept
    assert run["winback"]["early_warning"]["clients"] > 0


def test_onboarding_matches_truth_and_plain_pandas(run, sample_dir, truth):
    ob = run["onboarding"]
    ref = fig.onboarding(load_dataset(sample_dir))
    assert ob["registrations"] == ref["registrations"]
    for key in ("reach_rate", "paid_rate_reached", "paid_rate_not_reached"):
        assert ob[key] == pytest.approx(ref[key])
        assert ob[key] == pytest.approx(truth["onboarding"][key], abs=0.015)
    assert ob["share_paying_within_3_days"] == pytest.approx(ref["share_within_3_days"])
    assert ob["first_check_ratio_reached"] == pytest.approx(truth["onboarding"]["check_multiplier_reached"], abs=0.3)
    share = run["revenue_share"]
    assert share["share"] == pytest.approx((share["E"] - share["N"]) / share["S"])
    assert share["from"] == "2025-01-01" and share["to_exclusive"] == "2026-01-01"
