"""Before/after comparison with bootstrap intervals, the exact quantile bootstrap, and Erlang C."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from analysis import InputError
from analysis.data.engine import from_frames
from analysis.support.before_after import change_sentence, compare_periods, periods, sentences_markdown, ticket_measures
from analysis.data.config import Config, Tier
from analysis.support.staffing import (average_speed_of_answer, erlang_c, required_agents, service_level,
                               staffing_table)
from analysis.stats import (block_length, block_ratio_replicates, percentile_interval, proportion_replicates,
                            quantile_replicates)
from conftest import shown

AS_OF = pd.Timestamp("2026-03-01", tz="UTC")
CONFIG = Config(tiers=[Tier(id="L1", first_response_target_min=15), Tier(id="L2")])


def tickets(created: list[str], first_response_min: list[float], **extra) -> pd.DataFrame:
    c = pd.to_datetime(pd.Series(created), utc=True)
    out = pd.DataFrame({"ticket_id": [f"t{i}" for i in range(len(c))], "created_at": c, "first_tier": "L1",
                        "first_response_at": c + pd.to_timedelta(first_response_min, unit="min"),
                        "resolved_at": c + pd.to_timedelta(60, unit="min")})
    return out.assign(**extra)


def test_periods_default_and_validation():
    before, after = periods("", "", "", "", AS_OF)
    # the last 91 days before as-of against the 91 before them
    assert (after.start, after.end) == (AS_OF - pd.Timedelta(days=91), AS_OF)
    assert before.end == after.start and before.start == AS_OF - pd.Timedelta(days=182)
    with pytest.raises(InputError, match="all four"):
        periods("2026-01-01", "", "", "", AS_OF)
    with pytest.raises(InputError, match="expected a date"):
        periods("2026-13-01", "2026-02-01", "2026-02-01", "2026-03-01", AS_OF)
    b, a = periods("2026-01-01", "2026-02-01", "2026-02-01", "2026-06-01", AS_OF)
    assert a.end == AS_OF and "cut at the as-of date" in a.note and str(a) == "2026-02-01 to 2026-02-28"
    with pytest.raises(InputError, match="empty"):
        periods("2026-02-01", "2026-01-01", "2026-02-01", "2026-03-01", AS_OF)


def test_medians_rates_and_sentence_hand_computed():
    # before (January): first responses 10, 20, 30 min -> median 20; target 15: achieved 1 of 3
    # after (February): 5, 10, 15 -> median 10; achieved 3 of 3 (15 <= 15)
    t = tickets(["2026-01-05", "2026-01-06", "2026-01-07", "2026-02-05", "2026-02-06", "2026-02-07"],
                [10, 20, 30, 5, 10, 15])
    b, a = periods("2026-01-01", "2026-02-01", "2026-02-01", "2026-03-01", AS_OF)
    table = compare_periods(ticket_measures(from_frames({"tickets": t}), CONFIG, AS_OF), b, a, CONFIG, reps=500, seed=3)
    row = table.set_index(["metric", "tier"])
    med = row.loc[("first_response_median_min", "all")]
    assert (med["before"], med["after"], med["difference"], med["relative_change"]) == (20.0, 10.0, -10.0, -0.5)
    assert (med["n_before"], med["n_after"]) == (3, 3)
    # bootstrap medians of 3 values: before in {10, 20, 30}, after in {5, 10, 15} -> differences in [-25, 5]
    assert -25 <= med["ci_low"] <= -10.0 <= med["ci_high"] <= 5
    sla = row.loc[("sla_achieved", "all")]
    assert (sla["before"], sla["after"]) == (1 / 3, 1.0)
    assert med["sentence"].startswith("Median first response (all tiers) fell from 20.0 min to 10.0 min "
                                      "(-10.0 min, -50.0%); 95% CI of the change")
    assert "from 33.3% to 100.0% (+66.7 pp)" in sla["sentence"]
    # L2 had no tickets: not measurable, said so, and left out of the grouped sentences
    assert "not measurable" in row.loc[("first_response_median_min", "L2"), "sentence"]
    text = sentences_markdown(table)
    assert "**All tiers**" in text and "(L2)" not in shown(text).split("Measurable in one period only")[0]
    # the SLA difference's interval is Newcombe's (3 of 3 after vs 1 of 3 before), not the bootstrap's:
    # Wilson 3/3 = (0.43850, 1), 1/3 = (0.06149, 0.79230); d = 2/3
    # lower = d - sqrt((1 - 0.43850)^2 + (0.79230 - 1/3)^2) = 0.66667 - sqrt(0.31528 + 0.21062) = -0.05852
    # upper = d + sqrt((1/3 - 0.06149)^2 + (1 - 1)^2) = 0.66667 + 0.27184 = 0.93851
    assert sla["ci_low"] == pytest.approx(-0.05852, abs=1e-4) and sla["ci_high"] == pytest.approx(0.93851, abs=1e-4)


def test_a_rate_at_zero_in_both_periods_has_a_real_interval():
    # 25 tickets a month, each answered after 60 min against a 15-min target: SLA 0 of 25 twice
    # the percentile bootstrap gives (0, 0); Newcombe: Wilson upper of 0/25 = z^2 / (25 + z^2) = 3.8415 / 28.8415 = 0.13319 -> (-0.13319, 0.13319)
    days = [f"2026-01-{d:02d}" for d in range(1, 26)] + [f"2026-02-{d:02d}" for d in range(1, 26)]
    t = tickets(days, [60] * 50)
    b, a = periods("2026-01-01", "2026-02-01", "2026-02-01", "2026-03-01", AS_OF)
    sla = compare_periods(ticket_measures(from_frames({"tickets": t}), CONFIG, AS_OF), b, a, CONFIG, reps=200, seed=1) \
        .set_index(["metric", "tier"]).loc[("sla_achieved", "all")]
    assert (sla["before"], sla["after"], sla["n_before"], sla["n_after"]) == (0.0, 0.0, 25, 25)
    assert sla["ci_low"] == pytest.approx(-0.13319, abs=1e-5) and sla["ci_high"] == pytest.approx(0.13319, abs=1e-5)


def test_bootstrap_is_seeded_and_order_free():
    t = tickets([f"2026-01-{d:02d}" for d in range(1, 29)] + [f"2026-02-{d:02d}" for d in range(1, 29)],
                list(np.arange(1, 57) % 17 + 1))
    b, a = periods("2026-01-01", "2026-02-01", "2026-02-01", "2026-03-01", AS_OF)
    m = ticket_measures(from_frames({"tickets": t}), CONFIG, AS_OF)
    one = compare_periods(m, b, a, CONFIG, reps=300, seed=5)
    two = compare_periods(m.iloc[::-1], b, a, CONFIG, reps=300, seed=5)
    other = compare_periods(m, b, a, CONFIG, reps=300, seed=6)
    cols = ["ci_low", "ci_high"]
    pd.testing.assert_frame_equal(one[cols], two[cols])
    assert not one[cols].equals(other[cols])


def test_change_sentence_says_when_the_interval_includes_no_change():
    row = {"label": "CSAT", "unit": "rate", "tier": "L1", "before": 0.8, "after": 0.82, "difference": 0.02,
           "ci_low": -0.01, "ci_high": 0.05, "relative_change": 0.025, "n_before": 100, "n_after": 100}
    assert change_sentence(row) == ("CSAT (L1) rose from 80.0% to 82.0% (+2.0 pp); 95% CI of the change "
                                    "-1.0 pp to +5.0 pp, which includes no change.")


def test_quantile_bootstrap_matches_brute_force_resampling():
    rng = np.random.default_rng(0)
    x = rng.lognormal(3, 0.8, 301)
    fast = quantile_replicates(x, 0.5, 20_000, np.random.default_rng(1))
    slow = np.median(x[np.random.default_rng(2).integers(0, len(x), size=(4_000, len(x)))], axis=1)
    # same distribution: the interval ends agree within Monte Carlo error (a few % of the spread)
    spread = np.quantile(slow, 0.975) - np.quantile(slow, 0.025)
    for q in (0.025, 0.5, 0.975):
        assert abs(np.quantile(fast, q) - np.quantile(slow, q)) < 0.08 * spread
    assert quantile_replicates([], 0.5, 3, rng).tolist() == [None] * 0 or np.isnan(quantile_replicates([], 0.5, 3, rng)).all()
    assert (quantile_replicates([7.0], 0.9, 3, rng) == 7.0).all()


@settings(max_examples=50, deadline=None)
@given(k=st.integers(0, 200), extra=st.integers(0, 200))
def test_proportion_replicates_stay_in_unit_interval(k, extra):
    n = k + extra
    r = proportion_replicates(k, n, 200, np.random.default_rng(0))
    if n == 0:
        assert np.isnan(r).all()
    else:
        lo, hi = percentile_interval(r)
        assert 0 <= lo <= k / n <= hi <= 1


def test_block_bootstrap_edge_cases():
    rng = np.random.default_rng(0)
    reps, block = block_ratio_replicates([], [], 50, rng)
    assert np.isnan(reps).all() and np.isnan(block)
    # one day, or a flat series: every replicate is the ratio of sums, (2 + 2 + 2) / (1 + 1 + 1) = 2
    reps, block = block_ratio_replicates([2.0], [1.0], 50, rng)
    assert (reps == 2.0).all() and block == 1.0
    reps, block = block_ratio_replicates([2.0] * 30, [1.0] * 30, 50, rng)
    assert (reps == 2.0).all() and block == 1.0
    # no agent on duty at all: the ratio is undefined, not zero
    reps, _ = block_ratio_replicates([0.0, 0.0], [0.0, 0.0], 10, rng)
    assert np.isnan(reps).all()
    # the ratio is of sums, not a mean of daily ratios: (1 + 9) / (1 + 3) = 2.5 in every replicate
    # that draws both days once; with days resampled every replicate lies between 1 and 3
    reps, _ = block_ratio_replicates([1.0, 9.0], [1.0, 3.0], 200, rng)
    assert ((reps >= 1.0) & (reps <= 3.0)).all() and (np.isclose(reps, 2.5)).any()
    # a random walk needs long blocks, white noise about one day
    walk = np.cumsum(np.random.default_rng(1).normal(size=180))
    noise = np.random.default_rng(2).normal(size=180)
    assert block_length(walk) > 5 and block_length(noise) < 3


def test_block_bootstrap_covers_the_mean_of_a_dependent_series():
    """Calibration with a known truth: 150 series of 182 days (a half-year) from an AR(1) with
    phi 0.8 around a mean of 50, like a slowly moving backlog. Resampling single days ignores
    the dependence: its 95% interval is about sqrt((1 + phi) / (1 - phi)) = 3 times too narrow
    and covers 50 in under half the runs. The block bootstrap covers it in about 80% (measured
    over 200 runs: 80% against 44%; at phi 0.9 and 120 days 63% against 28%): far better, still
    short of 95%, which the report says (its interval is a lower bound on the uncertainty)."""
    phi, mean, days, runs = 0.8, 50.0, 182, 150
    covered_block = covered_iid = 0
    for run in range(runs):
        rng = np.random.default_rng([7, run])
        x = np.empty(days)
        x[0] = mean + rng.normal() / np.sqrt(1 - phi**2)
        for t in range(1, days):
            x[t] = mean + phi * (x[t - 1] - mean) + rng.normal()
        reps, _ = block_ratio_replicates(x, np.ones(days), 400, rng)
        lo, hi = percentile_interval(reps)
        covered_block += lo <= mean <= hi
        iid = x[rng.integers(0, days, size=(400, days))].mean(axis=1)
        lo, hi = percentile_interval(iid)
        covered_iid += lo <= mean <= hi
    assert covered_iid / runs < 0.55
    assert covered_block / runs > 0.7 and covered_block / runs - covered_iid / runs > 0.2


def test_erlang_c_published_example():
    # 100 calls per 30 min = 200 per hour, AHT 3 min -> A = 200 * 3 / 60 = 10 Erlangs; 14 agents; 20 s
    assert round(float(erlang_c(10, 14)[0]), 3) == 0.174
    assert round(float(service_level(10, 14, 180, 20)[0]), 3) == 0.888
    # ASA = C * AHT / (N - A) = 0.1741 * 180 / 4 = 7.8 s
    assert round(float(average_speed_of_answer(10, 14, 180)[0]), 1) == 7.8
    # 13 agents fall short of 80% in 20 s, 14 meet it
    assert service_level(10, 13, 180, 20) < 0.8 <= service_level(10, 14, 180, 20)
    assert required_agents(10, 180, 20, 0.8).tolist() == [14]
    # an occupancy cap of 0.6 needs ceil(10 / 0.6) = 17 agents
    assert required_agents(10, 180, 20, 0.8, max_occupancy=0.6).tolist() == [17]


def test_erlang_edge_cases():
    assert erlang_c(10, 10)[0] == 1.0 and service_level(10, 9, 180, 20)[0] == 0.0   # N <= A: everyone waits
    assert erlang_c(0, 3)[0] == 0.0 and required_agents(0, 180, 20, 0.8).tolist() == [0]
    arrivals = pd.DataFrame({"L1.5": [0.0] * 23 + [200.0]}, index=pd.RangeIndex(24, name="hour"))
    arrivals.columns.name = "tier"
    plan = staffing_table(arrivals, 3.0, 0.8, 20)
    assert plan.loc[plan["hour"] == 23, "agents"].item() == 14 and plan.loc[plan["hour"] == 0, "agents"].item() == 0


@settings(max_examples=40, deadline=None)
@given(st.floats(0.1, 60), st.floats(0.1, 60))
def test_more_traffic_never_needs_fewer_agents(a, b):
    lo, hi = sorted([a, b])
    n = required_agents([lo, hi], 240, 20, 0.8)
    assert n[0] <= n[1] and (service_level([lo, hi], n, 240, 20) >= 0.8).all()
