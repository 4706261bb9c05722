"""Contact-centre pricing models, CPA/ROI/break-even, the source's scenario, the pilot read-out,
and the sales conveyor: hand-computed cases (arithmetic in the comments) and the two notebooks
on the sample checked against truth.json."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis.sales import contact_centre as cc
from analysis.sales import conveyor
from analysis.run.cli import main
from analysis.data.engine import from_frames
from conftest import BACKENDS, backend_for

T0 = pd.Timestamp("2026-01-05T09:00Z")


def at(minutes: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(minutes=minutes)


LEADS = pd.DataFrame({"lead_id": ["a", "b", "c"], "created_at": [T0] * 3,
                      "qualified_at": [at(10), pd.NaT, at(30)], "converted_at": [at(100), pd.NaT, pd.NaT],
                      "revenue": [5000.0, np.nan, np.nan]})
CALLS = pd.DataFrame({
    "call_id": ["1", "2", "3", "4", "5"], "lead_id": ["a", "b", "b", "c", "a"], "operator_id": ["o1", "o1", "o2", "o2", "s1"],
    "started_at": [at(1), at(2), at(3), at(4), at(50)],
    "duration_s": [90, 20, 45, 200, 600],
    "status": ["decision_maker", "no_answer", "secretary", "consent", "decision_maker"],
    "result": ["lead", None, None, "presented", "sale"],
    "stage": ["cold_call", "cold_call", "cold_call", "cold_call", "proposal"],
    "vendor": ["v1", "v1", "v1", "v1", "in-house"]})
PRICES = {"per_minute": 10.0, "per_hour": 600.0,
          "per_status_minute": {"no_answer": 1.0, "secretary": 2.0, "decision_maker": 5.0, "consent": 8.0},
          "per_result_call": 50.0, "per_lead": 300.0, "per_client": 1000.0, "revenue_share": 0.1}


@pytest.fixture(params=BACKENDS)
def backend(request):
    return backend_for(request)


def test_pricing_models_hand_computed(backend):
    eng = from_frames({"leads": LEADS, "calls": CALLS}, backend)
    o = cc.lead_outcomes(eng)
    # vendor v1 calls: 90 s -> 2 billed minutes, 20 s -> 1, 45 s -> 1, 200 s -> 4; total 8 (the in-house call is not priced)
    costs = cc.model_costs(eng, o, PRICES).loc["v1"]
    assert costs.loc["per_minute"].tolist() == [8.0, 80.0]                       # 8 min x 10
    # hours = (90 + 20 + 45 + 200) / 3600 = 355 / 3600; x 600 = 59.1667
    assert costs.loc["per_hour", "cost"] == pytest.approx(355 / 3600 * 600)
    # status minutes: 2 x 5 (dm) + 1 x 1 (no answer) + 1 x 2 (secretary) + 4 x 8 (consent) = 45
    assert costs.loc["per_status_minute", "cost"] == 45.0
    # result calls: calls 1 and 4 have a result -> 2 x 50; leads qualified: a (result lead / qualified_at), c -> 2 x 300
    assert costs.loc["per_result_call"].tolist() == [2.0, 100.0] and costs.loc["per_lead"].tolist() == [2.0, 600.0]
    # converted: a -> 1 x 1000; revenue share 10% of 5,000 = 500
    assert costs.loc["per_client", "cost"] == 1000.0 and costs.loc["revenue_share", "cost"] == 500.0
    ue = cc.unit_economics(cc.model_costs(eng, o, PRICES), o, PRICES).loc["v1"]
    # CPA = cost / 1 client; ROI per minute = (5,000 - 80) / 80 = 61.5; break-even = 80 / (3 leads x 5,000)
    assert ue.loc["per_minute", "cpa"] == 80.0 and ue.loc["per_minute", "roi"] == pytest.approx(61.5)
    assert ue.loc["per_minute", "break_even_conversion"] == pytest.approx(80 / 15000)
    assert ue.loc["per_minute", "conversion"] == pytest.approx(1 / 3)
    assert ue.loc["per_client", "break_even_conversion"] == 0.0 and np.isnan(ue.loc["revenue_share", "break_even_conversion"])
    # the pilot: v1's first two leads by creation (all at T0: lead_id order) a, b; their v1 calls
    # bill 2 + 1 + 1 = 4 minutes x 10 = 40, 20 per lead; a converted (1 of 2), revenue per client 5,000
    pilot = cc.pilot_from_data(eng, o, "v1", 2, PRICES)
    assert pilot["centre_cost_per_lead"] == 20.0 and pilot["revenue_per_client"] == 5000.0
    assert (pilot["leads"], pilot["conversions"]) == (2, 1)
    # one row per vendor: its leads and conversion, the same in every model's row
    per_vendor = cc.vendor_summary(pd.concat({"v1": ue, "v2": ue}, names=["vendor"]))
    assert list(per_vendor.index) == ["v1", "v2"] and list(per_vendor.columns) == cc.VENDOR_COLUMNS
    assert per_vendor.loc["v1", "conversion"] == pytest.approx(1 / 3)


def test_billable_minutes_by_hand(backend):
    # rounded up to the increment: 0 s bills nothing, 1-60 s one minute, 61 s two; at 30 s, 61 s is 1.5 minutes
    eng = from_frames({"c": pd.DataFrame({"i": range(6), "d": [0.0, 1.0, 60.0, 61.0, 150.0, None]})}, backend)
    c = eng.table("c")
    got = eng.frame(c.select("i", m=cc.billable_minutes(c.d, 60), half=cc.billable_minutes(c.d, 30)).order_by("i"))
    assert got["m"].tolist()[:5] == [0.0, 1.0, 1.0, 2.0, 3.0] and pd.isna(got["m"].iloc[5])
    assert got["half"].tolist()[:5] == [0.0, 0.5, 1.0, 1.5, 2.5]


def test_source_scenario_recomputed():
    # CPA = cost per processed lead / conversion. The source: conversion 2% -> 3.7%, CPA -50.88%.
    # Implied cost ratio = (1 - 0.5088) x 3.7 / 2 = 0.4912 x 1.85 = 0.90872
    ratio = cc.implied_cost_ratio(0.02, 0.037, -0.5088)
    assert ratio == pytest.approx(0.90872)
    # inputs that give it: 100,000 leads, cost per lead 30 -> 30 x 0.90872 = 27.2616, revenue per client 4,823.53:
    # CPA 30 / 0.02 = 1,500 -> 27.2616 / 0.037 = 736.8 (-50.88%); extra clients 100,000 x 0.017 = 1,700,
    # extra revenue 1,700 x 4,823.53 = 8,200,001 (the source's "8.2 million")
    s = cc.scenario(100_000, 0.02, 0.037, 30.0, 30.0 * ratio, 4823.53)
    assert s["cpa_before"] == pytest.approx(1500) and s["cpa_after"] == pytest.approx(736.8)
    assert s["cpa_change"] == pytest.approx(-0.5088) and s["extra_clients"] == pytest.approx(1700)
    assert s["extra_revenue"] == pytest.approx(8_200_001)
    # the same worked backwards in one call, as 06 shows it
    assert cc.implied_scenario(100_000, 0.02, 0.037, 30.0, -0.5088, 4823.53) == (ratio, s)
    # with the minute price 10% higher the minutes per lead must fall to 0.90872 / 1.1 = 0.826 of before
    assert cc.cpa_change(0.02, 0.037, 1.1 * 0.826109) == pytest.approx(-0.5088, abs=1e-5)


def test_price_table_shows_money_with_the_currency_and_the_share_as_a_percentage():
    t = cc.price_table({"per_minute": 12.0, "per_hour": 600.0, "per_status_minute": {"consent": 20.0},
                        "revenue_share": 0.1}, "RUB")
    assert t["price"].tolist() == ["12.00 RUB", "600 RUB", "20.00 RUB", "10.0%"]
    assert t.loc[("per_status_minute", "consent"), "unit"] == "a minute of a call ending with consent"


def test_pilot_readout():
    # 15 of 500 converted = 3%; the centre spends 30 per lead -> 30 / 0.03 = 1,000 per client; the client
    # earns 5,000 per client x margin 0.5 = 2,500: a deal is possible between 1,000 and 2,500
    p = cc.pilot_readout(500, 15, 30.0, 5000.0, client_margin=0.5)
    assert p["conversion"] == 0.03 and p["centre_break_even_price"] == pytest.approx(1000)
    assert p["client_break_even_price"] == 2500 and p["deal_possible"]
    lo, hi = p["centre_break_even_price_range"]
    assert lo == pytest.approx(30 / p["conversion_high"]) and hi == pytest.approx(30 / p["conversion_low"])
    assert not cc.pilot_readout(500, 2, 30.0, 5000.0, client_margin=0.5)["deal_possible"]   # 30 / 0.004 = 7,500


def test_conveyor_stages_calls_and_losses(backend):
    calls = pd.DataFrame({
        "lead_id": ["a", "a", "a", "b", "b", "c"],
        "stage": ["cold_call", "need_found", "proposal", "cold_call", "need_found", "cold_call"],
        "started_at": [T0, T0 + pd.Timedelta(days=2), T0 + pd.Timedelta(days=5), T0, T0 + pd.Timedelta(days=4), T0],
        "operator_id": ["t1", "t1", "s1", "t1", "t1", "t2"], "duration_s": [40, 10, 300, 30, 29, 31]})
    eng = from_frames({"calls": calls}, backend)
    times = conveyor.stage_times(eng)
    assert times["depth"].to_dict() == {"a": 2, "b": 1, "c": 0}
    f = conveyor.stage_funnel(times)
    # reached: cold call 3, need found 2 (a, b) -> 2/3, proposal 1 (a) -> 1/2; meeting 0 -> 0/1
    assert f["leads"].tolist() == [3, 2, 1, 0, 0, 0]
    assert f.loc["need_found", "conversion"] == pytest.approx(2 / 3) and f.loc["proposal", "conversion"] == 0.5
    # days cold call -> need found: a 2, b 4 -> median 3; need found -> proposal: a 3
    assert f.loc["need_found", "median_days_from_previous"] == 3.0 and f.loc["proposal", "median_days_from_previous"] == 3.0
    daily = conveyor.successful_calls(eng, min_seconds=30)
    # t1 on Jan 5: calls 40 s and 30 s succeed (>= 30), on Jan 7 (10 s) and Jan 9 (29 s) none
    t1 = daily[daily["operator_id"] == "t1"].set_index("day")["successful"]
    assert t1.tolist() == [2, 0, 0]
    summary = conveyor.operator_summary(daily, target=2)
    assert summary.loc["t1", "days_on_target"] == 1 and summary.loc["t1", "share_days_on_target"] == pytest.approx(1 / 3)
    # roles: t1 made 3 cold calls of 4 (telemarketer), t2 1 of 1, s1 none of 1 (a manager)
    roles = conveyor.operator_roles(eng)
    assert roles.to_dict() == {"s1": "manager", "t1": "telemarketer", "t2": "telemarketer"}
    # calls without a stage are not counted; an operator with no known stage is judged
    unknown = calls.assign(stage=pd.array(["need_found", None, None, None, "need_found", None], dtype="string[pyarrow]"))
    assert conveyor.operator_roles(from_frames({"calls": unknown}, backend)).to_dict() == {"s1": "telemarketer", "t1": "manager", "t2": "telemarketer"}
    judged = conveyor.operator_summary(daily, target=2, roles=roles)
    # the manager is not judged against the telemarketers' target: empty, not 0; listed after
    # them; telemarketers by successful calls per day: t2 1 / 1 day, t1 2 / 3 days
    assert list(judged.index) == ["t2", "t1", "s1"]
    assert pd.isna(judged.loc["s1", "days_on_target"]) and np.isnan(judged.loc["s1", "share_days_on_target"])
    assert judged.loc["t2", "days_on_target"] == 0 and judged.loc["t2", "share_days_on_target"] == 0.0
    m = conveyor.conveyor_metrics(f, judged, 2, conveyor.stage_losses(times, T0 + pd.Timedelta(days=10)))["conveyor"]
    assert (m["operators"], m["managers_not_judged"], m["operators_meeting_target_on_average"]) == (2, 1, 0)
    losses = conveyor.stage_losses(times, T0 + pd.Timedelta(days=10), days=91)
    # in the last 91 days: cold call entered 3, stopped there 1 (c); need found entered 2, stopped 1 (b)
    assert losses.loc["cold_call", ["entered_last", "lost_last"]].tolist() == [3, 1]
    assert losses.loc["need_found", ["entered_last", "lost_last"]].tolist() == [2, 1]
    # the conveyor's order, not sorted by loss; no lead in the previous span: no change to name
    assert list(losses.index) == list(conveyor.STAGES[:-1])
    assert losses["loss_rate_change"].isna().all() and conveyor.most_changed_loss(losses) is None
    # the largest change either way: need_found -5.0 pp beats cold_call +1.0 pp
    changes = pd.DataFrame({"loss_rate_change": [0.01, -0.05, np.nan]}, index=["cold_call", "need_found", "proposal"])
    assert conveyor.most_changed_loss(changes) == "need_found"


@pytest.fixture(scope="module")
def run(sample_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("sales")
    assert main(["run", "--data", str(sample_dir), "--out", str(out), "--only", "06_contact_centre_economics",
                 "07_sales_conveyor"]) == 0
    return json.loads((out / "metrics.json").read_text())


def test_vendor_conversion_recovers_truth(run, truth):
    vendors = run["contact_centre"]["vendors"]
    s = truth["sales"]
    for v, rate in s["conversion"].items():                                  # 2% and 3.7%
        assert vendors[v]["conversion_low"] <= rate <= vendors[v]["conversion_high"], v
        assert vendors[v]["leads"] == s["leads_by_vendor"][v] and vendors[v]["converted"] == s["converted_by_vendor"][v]
    models = run["contact_centre"]["models"]
    assert set(models["generic"]) == set(cc.MODELS)
    assert run["contact_centre"]["scenario"]["cpa_change"] == pytest.approx(-0.5088)


def test_conveyor_metrics_on_the_sample(run, truth):
    c = run["conveyor"]
    assert c["stages"]["cold_call"]["leads"] == truth["sales"]["leads"]
    assert c["stages"]["account"]["leads"] <= c["stages"]["contract"]["leads"] <= c["stages"]["meeting"]["leads"]
    assert 0 <= c["meeting_conversion"] <= 1 and c["successful_calls_target"] == 45
    assert c["clients_value"]["conveyor"]["clients"] == truth["sales"]["converted"]


def test_clients_brought_by_hand(backend):
    # l1 converted -> c1 "conveyor"; l2 links c2 but never converted; l3 converted without a client
    leads = pd.DataFrame({"lead_id": ["l1", "l2", "l3"], "created_at": [T0] * 3, "client_id": ["c1", "c2", None],
                          "converted_at": [at(10), pd.NaT, at(20)]})
    starts = pd.DataFrame(index=pd.Index(["c1", "c2", "c3"], name="client_id"))
    got = conveyor.clients_brought(from_frames({"leads": leads}, backend), starts)
    assert got.to_dict() == {"c1": "conveyor", "c2": "other", "c3": "other"}
    # without converted_at a link alone counts
    linked = conveyor.clients_brought(from_frames({"leads": leads.drop(columns="converted_at")}, backend), starts)
    assert linked.to_dict() == {"c1": "conveyor", "c2": "conveyor", "c3": "other"}
