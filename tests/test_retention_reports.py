"""02_cohort_ltv and 03_churn_survival end to end: on the calibrated sample their metrics.json
agrees with the independent plain-pandas figures, and the support-effect section leads with the
adjusted renewal model, the naive split beside it (how far each method is trusted is the
calibration study's job, tests/test_effect.py and docs/calibration.md, not one sample run);
without tickets both reports still run with the `all` group only."""
from __future__ import annotations

import json
import shutil

import pytest

import sample_figures as fig
from analysis import load_dataset
from analysis.run.cli import main


@pytest.fixture(scope="module")
def run(sample_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("retention")
    assert main(["run", "--data", str(sample_dir), "--out", str(out), "--only", "02_cohort_ltv",
                 "03_churn_survival"]) == 0
    return json.loads((out / "metrics.json").read_text())


@pytest.fixture(scope="module")
def reference(sample_dir):
    return fig.early_contact_split(load_dataset(sample_dir), window_days=30, grace_days=14)


def test_ltv_keys_and_plain_pandas_agreement(run, reference):
    ltv = run["ltv"]
    assert ltv["contact_window_days"] == 30
    groups = ltv["by_group"]
    assert {"all", "contacted", "not_contacted"} <= set(groups)
    for g in ("all", "contacted", "not_contacted"):
        assert {"clients", "ltv_1m", "ltv_3m", "ltv_6m", "ltv_12m"} <= set(groups[g])
    assert groups["contacted"]["clients"] + groups["not_contacted"]["clients"] == groups["all"]["clients"]
    for k in ("ltv_1m", "ltv_12m"):
        assert groups["contacted"][k] == pytest.approx(reference[k]["early"])
        assert groups["not_contacted"][k] == pytest.approx(reference[k]["not"])
        assert ltv["ratio_contacted_to_not"][k]["ratio"] == pytest.approx(reference[k]["ratio"])
    # the naive split credits support with the value of staying longer: larger than the early split
    assert ltv["ratio_ever_to_never_biased"]["ltv_12m"]["ratio"] > ltv["ratio_contacted_to_not"]["ltv_12m"]["ratio"]
    # the adjusted ratio: first charge, segment and early usage explain part of the raw ratio
    adj = ltv["ratio_adjusted"]
    assert adj["horizon"] == "ltv_12m" and "product usage in the first 14 days" in adj["adjusted_for"]
    assert adj["ci_low"] < adj["ratio"] < adj["ci_high"] and adj["e_value"] >= adj["e_value_ci"] >= 1
    assert adj["ratio"] < ltv["ratio_contacted_to_not"]["ltv_12m"]["ratio"]
    assert adj["clients"] == groups["all"]["ltv_12m_eligible"]


def test_ltv_headline_leads_with_the_adjusted_ratio():
    import pandas as pd
    from analysis.present import retention_text
    table = pd.DataFrame([{"group": "all", "horizon": "ltv_12m", "clients": 2444, "ltv": 77764.2, "eligible": 1222}])
    ratios = pd.DataFrame([{"horizon": "ltv_12m", "ratio": 2.45, "ci_low": 2.2, "ci_high": 2.71}])
    adjusted = {"ratio": 1.08, "ci_low": 0.97, "ci_high": 1.21, "e_value": 1.12, "e_value_ci": 1.0,
                "adjusted_for": ["first charge", "segment"]}
    assert retention_text.ltv_headline(table, ratios, "ltv_12m", adjusted) == (
        "2,444 paying clients; LTV at 12 months 77,764 (n = 1,222 old enough); clients who wrote to support in "
        "their first days, adjusted for first charge, segment: x1.08 (0.97-1.21), E-value 1.12; unadjusted x2.45 "
        "(95% CI 2.20-2.71), confounded.")
    # not estimable: the raw ratio, labelled confounded
    text = retention_text.ltv_headline(table, ratios, "ltv_12m", {**adjusted, "ratio": float("nan")})
    assert "x2.45 (95% CI 2.20-2.71) as much, a confounded comparison" in text


def test_first_month_churn_matches_plain_pandas(run, reference):
    fm = run["churn"]["first_month"]
    r = reference["churn_1m"]
    assert fm["contacted"]["clients"] == r["early_n"] and fm["not_contacted"]["clients"] == r["not_n"]
    assert fm["contacted"]["rate"] == pytest.approx(r["early"]) and fm["not_contacted"]["rate"] == pytest.approx(r["not"])
    assert fm["all"]["clients"] == r["early_n"] + r["not_n"]
    assert all(0 <= v["rate"] <= 1 for v in fm.values())


def test_support_effect_keys_naive_beside_the_adjusted_headline(run, truth):
    effect = run["churn"]["support_effect"]
    assert effect["headline"] == "renewal"
    methods = effect["methods"]
    assert set(methods) == {"naive", "unadjusted", "adjusted", "renewal"}
    for m in methods.values():
        assert {"hazard_ratio", "ci_low", "ci_high", "p_value", "clients", "events", "e_value", "e_value_ci",
                "adjusted_for"} <= set(m)
        assert m["ci_low"] < m["hazard_ratio"] < m["ci_high"] and m["e_value"] >= m["e_value_ci"] >= 1
    # the sample holds usage: the adjusted methods adjust for it; the splits adjust for nothing
    assert "product usage in the first 14 days" in methods["renewal"]["adjusted_for"]
    assert methods["naive"]["adjusted_for"] == [] and methods["unadjusted"]["adjusted_for"] == []
    # the naive split overstates the effect far beyond the adjusted estimate (immortal time, engagement)
    assert methods["naive"]["ci_high"] < methods["renewal"]["ci_low"]
    assert methods["naive"]["p_value"] > 0        # a tiny p-value keeps its digits (DESIGN §5)
    surv = run["churn"]["survival"]
    assert surv["contacted"]["rmst_months"] > surv["not_contacted"]["rmst_months"]
    assert run["churn"]["logrank"]["p_value"] < 0.05


def test_reports_run_on_clients_and_payments_alone(small_dir, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for name in ("clients", "payments"):
        shutil.copy(small_dir / f"{name}.csv", data / f"{name}.csv")
    out = tmp_path / "out"
    assert main(["run", "--data", str(data), "--out", str(out), "--only", "01_support_tiers", "02_cohort_ltv",
                 "03_churn_survival", "04_winback_retention", "05_onboarding_revenue", "-p", "bootstrap_reps=100"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["ltv"]["by_group"]) == {"all"} and set(m["churn"]["first_month"]) == {"all"}
    # without outreach every dormancy's channel is "none" and the onboarding section is omitted
    assert set(m["winback"]["by_channel"]) == {"none"} and "retention_saves" not in m["winback"]
    assert "onboarding" not in m and "revenue_share" not in m
    assert "the onboarding section is omitted" in (out / "05_onboarding_revenue.html").read_text()
    assert "support_effect" not in m["churn"] and "sla" not in m
    assert "needs the table(s) tickets" in (out / "index.html").read_text()
    assert "No tickets table" in (out / "02_cohort_ltv.html").read_text()
