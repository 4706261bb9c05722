"""Dormancy and win-back timelines, retention saves, early warning, the onboarding funnel and
the support revenue share: hand-computed cases (arithmetic in the comments) and properties."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st
from nbconvert.filters.markdown_mistune import markdown2html_mistune

from analysis.retention import cohorts, onboarding, saves, winback
from analysis.data.config import Config, Tier
from analysis.data.engine import from_frames
from conftest import BACKENDS, backend_for, shown

AS_OF = pd.Timestamp("2025-01-01", tz="UTC")


def frame(columns, *rows, times=()):
    out = pd.DataFrame(rows, columns=columns)
    for c in times:
        out[c] = pd.to_datetime(out[c], utc=True)
    return out


PAY = frame(["client_id", "paid_at", "amount"],
            ("A", "2024-01-01", 100.0), ("A", "2024-02-01", 100.0), ("A", "2024-06-01", 100.0),
            ("B", "2024-01-01", 300.0), ("B", "2024-03-31", 300.0),
            ("C", "2024-01-01", 50.0),
            ("D", "2024-09-15", 10.0), times=["paid_at"])
# B's ticket at the instant of its Mar 31 charge: one activity, as if it were not there
TICKETS = frame(["client_id", "created_at"], ("C", "2024-03-01"), ("B", "2024-03-31"), times=["created_at"])
OUTREACH = frame(["client_id", "at", "campaign", "channel"],
                 ("A", "2024-05-01", "winback", "email"),        # on the trigger day: counts
                 ("A", "2024-09-01", "winback", "email"),        # two at one instant: "call" wins by name
                 ("A", "2024-09-01", "winback", "call"),
                 ("B", "2024-06-28", "winback", "email"),        # the day before B's second trigger: no
                 ("C", "2024-06-01", "onboarding", "call"),      # not a winback campaign: no
                 times=["at"])


@pytest.fixture(scope="module", params=BACKENDS)
def outcomes(request):
    # worked out by hand below, on every backend of the engine (DESIGN §11)
    eng = from_frames({"payments": PAY, "tickets": TICKETS, "outreach": OUTREACH}, backend_for(request))
    return winback.winback_outcomes(eng, AS_OF, 90, 90).set_index(["client_id", "dormant_at"])


def key(client, day):
    return (client, pd.Timestamp(day, tz="UTC"))


def test_dormancy_timelines(outcomes):
    # A: Feb 1 + 90 d = May 1 (nothing between) and, after the Jun 1 comeback, Jun 1 + 90 = Aug 30
    # B: Jan 1 + 90 d = Mar 31, exactly the day of the next charge: dormant that instant (no activity
    #    strictly between), and won back by it; then Mar 31 + 90 = Jun 29
    # C: the ticket of Mar 1 keeps C active: Mar 1 + 90 = May 30 (not Jan 1 + 90 = Mar 31)
    # D: Sep 15 + 90 = Dec 14 <= as-of, but its window ends Mar 14 2025 > as-of: not counted
    assert sorted(outcomes.index) == sorted([key("A", "2024-05-01"), key("A", "2024-08-30"), key("B", "2024-03-31"),
                                             key("B", "2024-06-29"), key("C", "2024-05-30"), key("D", "2024-12-14")])
    o = outcomes
    assert o.loc[key("A", "2024-05-01"), "won_back"] and o.loc[key("B", "2024-03-31"), "won_back"]
    assert not o.loc[key("A", "2024-08-30"), "won_back"] and not o.loc[key("C", "2024-05-30"), "won_back"]
    assert not o.loc[key("D", "2024-12-14"), "counted"]
    assert o.loc[key("B", "2024-03-31"), "return_at"] == pd.Timestamp("2024-03-31", tz="UTC")


def test_channels_bands_and_revenue(outcomes):
    o = outcomes
    assert o.loc[key("A", "2024-05-01"), "channel"] == "email"      # outreach on the trigger day
    assert o.loc[key("A", "2024-08-30"), "channel"] == "call"       # tie at one instant -> by name
    assert o.loc[key("B", "2024-06-29"), "channel"] == "none"       # outreach the day before D
    # mean of all charges = (3 x 100 + 2 x 300 + 50 + 10) / 7 = 960 / 7 = 137.1
    # A's mean before May 1 = 100 -> below; B before Mar 31 = 300 (Mar 31 itself not before) -> above
    assert o.loc[key("A", "2024-05-01"), "band"] == "below" and o.loc[key("B", "2024-03-31"), "band"] == "above"
    assert o.loc[key("B", "2024-06-29"), "mean_check_before"] == 300.0
    # revenue in [D, D + 90 d): A: the Jun 1 charge 100; B: the Mar 31 charge 300
    assert o.loc[key("A", "2024-05-01"), "revenue_90d"] == 100.0 and o.loc[key("B", "2024-03-31"), "revenue_90d"] == 300.0
    # D's 180 days are not over by as-of: null, not 0
    assert np.isnan(o.loc[key("D", "2024-12-14"), "revenue_180d"])


def test_rates(outcomes):
    o = outcomes.reset_index()
    overall = winback.winback_rates(o).loc["all"]
    # counted: A1 (won), A2, B1 (won), B2, C1 -> 2 / 5
    assert (overall["events"], overall["won_back"], overall["rate"]) == (5, 2, 0.4)
    ch = winback.winback_rates(o, ["channel"])
    # email: A1 (won) and B1 (won: B's Jun 28 email falls in B1's window [Mar 31, Jun 29)) -> 2/2;
    # call: A2 -> 0/1; none: B2, C1 -> 0/2
    assert ch["rate"].to_dict() == {"call": 0.0, "email": 1.0, "none": 0.0}
    assert ch["events"].to_dict() == {"call": 1, "email": 2, "none": 2}
    band = winback.winback_rates(o, ["band"])
    # above: B1 (won), B2 -> 1/2; below: A1 (won), A2, C1 -> 1/3
    assert band["rate"].to_dict() == {"above": 0.5, "below": 1 / 3}
    m = winback.winback_metrics(winback.winback_rates(o), ch, 90, 90)["winback"]
    assert (m["dormancy_events"], m["won_back"], m["rate"]) == (5, 2, 0.4) and set(m["by_channel"]) == {"call", "email", "none"}


def test_return_times_censor_at_as_of(outcomes):
    t = winback.return_times(outcomes.reset_index(), AS_OF).set_index(outcomes.index)
    # A1: May 1 -> Jun 1 = 31 days; B1: 0 days; D: no return, censored at as-of: Dec 14 -> Jan 1 = 18 days
    assert t.loc[key("A", "2024-05-01"), "days"] == 31.0 and t.loc[key("B", "2024-03-31"), "days"] == 0.0
    assert t.loc[key("D", "2024-12-14"), "days"] == 18.0 and not t.loc[key("D", "2024-12-14"), "returned"]


def test_early_warning_ranks_sliding_active_clients():
    as_of = pd.Timestamp("2025-01-01", tz="UTC")
    months = pd.date_range("2024-01-01", "2024-12-01", freq="MS", tz="UTC")
    rows = [("steady", m, 100.0) for m in months]
    rows += [("sliding", m, 100.0 if m < pd.Timestamp("2024-10-01", tz="UTC") else 20.0) for m in months]
    rows += [("young", m, 100.0) for m in months[-5:]]                       # started after as-of - 9 months
    rows += [("gone", m, 100.0) for m in months[:8]]                         # last charge Aug 1: dormant by Oct 30
    p = pd.DataFrame(rows, columns=["client_id", "paid_at", "amount"])
    eng = from_frames({"payments": p})
    ew = winback.early_warning(eng, cohorts.client_starts(eng), as_of, 90, drop_threshold=0.3)
    # sliding: recent (Oct-Dec) = 3 x 20 = 60; baseline = (Apr-Sep: 6 x 100) / 2 = 300; drop = 1 - 60/300 = 0.8
    assert list(ew.index) == ["sliding"]
    assert ew.loc["sliding", "drop"] == pytest.approx(0.8) and ew.loc["sliding", "revenue_at_risk_3m"] == pytest.approx(240.0)


@pytest.fixture(params=BACKENDS)
def backend(request):
    return backend_for(request)


def test_retention_saves(backend):
    cfg = Config(tiers=[Tier(id="L1"), Tier(id="CS")])
    t = frame(["ticket_id", "client_id", "created_at", "topic", "first_tier", "final_tier"],
              ("t1", "X", "2024-03-01", "refund_request", "L1", "CS"),     # paid Mar 15, no refund: kept
              ("t2", "Y", "2024-03-01", "refund_request", "L1", "CS"),     # refunded Mar 2 then paid: not kept
              ("t3", "Z", "2024-03-01", "refund_request", "L1", None),     # nothing after: not kept (tier L1)
              ("t4", "X", "2024-12-25", "refund_request", "L1", "CS"),     # 90 days not over by as-of: unknown
              ("t5", "X", "2024-03-01", "billing", "L1", "CS"),            # another topic: ignored
              times=["created_at"])
    p = frame(["client_id", "paid_at", "amount"], ("X", "2024-03-15", 70.0), ("Y", "2024-03-02", -50.0),
              ("Y", "2024-03-20", 80.0), ("Z", "2024-01-01", 10.0), times=["paid_at"])
    eng = from_frames({"tickets": t, "payments": p}, backend)
    r = saves.refund_requests(eng, cfg, AS_OF, 90)
    assert r.set_index("ticket_id")["saved"].to_dict() == {"t1": True, "t2": False, "t3": False, "t4": None}
    s = saves.save_rates(r).loc["all"]
    assert (s["requests"], s["saved"], s["save_rate"], s["revenue_kept"]) == (3, 1, 1 / 3, 70.0)
    by_tier = saves.save_rates(r, "tier")
    assert by_tier.loc["CS", "save_rate"] == 0.5 and by_tier.loc["L1", "save_rate"] == 0.0
    # for the report: tiers with no known demand are named, not shown as rows of zeros
    ladder = Config(tiers=[Tier(id="L1"), Tier(id="L2"), Tier(id="CS")])
    shown, idle = saves.handled_by_tier(saves.refund_requests(eng, ladder, AS_OF, 90))
    assert list(shown.index) == ["L1", "CS"] and shown["requests"].tolist() == [1, 2] and idle == ["L2"]


def test_funnel_arithmetic(backend):
    clients = frame(["client_id", "signed_up_at"], *[(f"c{i}", "2024-06-01") for i in range(10)],
                    ("late", "2025-02-01"), times=["signed_up_at"])          # signed up after as-of: not counted
    out = frame(["client_id", "at", "campaign", "channel", "reached"],
                *[(f"c{i}", "2024-06-02", "onboarding", "call", True) for i in range(6)],
                ("c6", "2024-06-02", "onboarding", "call", False),           # tried, not reached
                ("c7", "2024-09-01", "winback", "email", True), times=["at"])  # another campaign
    pay = frame(["client_id", "paid_at", "amount"], ("c0", "2024-06-02", 10.0), ("c1", "2024-06-03", 30.0),
                ("c2", "2024-06-20", 20.0), ("c7", "2024-06-02", 5.0), times=["paid_at"])
    flags = onboarding.funnel_flags(from_frames({"clients": clients, "payments": pay, "outreach": out}, backend), AS_OF)
    f = onboarding.funnel(flags)
    # registrations 10; reached c0-c5 = 6 -> 0.6; paid among reached c0, c1, c2 = 3/6; among not reached c7 = 1/4
    assert f.loc["registrations", "clients"] == 10 and f.loc["reached", "rate"] == 0.6
    assert f.loc["paid_among_reached", "rate"] == 0.5 and f.loc["paid_among_not_reached", "rate"] == 0.25
    m = onboarding.onboarding_metrics(f, flags)["onboarding"]
    assert (m["registrations"], m["reached"], m["paid"], m["paid_rate_not_reached"]) == (10, 6, 4, 0.25)
    # days to first charge: c0 1, c1 2, c2 19, c7 1 -> 3 of 4 within 3 days
    assert m["share_paying_within_3_days"] == 0.75
    # without a `reached` column any onboarding row counts: c0-c6 = 7
    eng = from_frames({"clients": clients, "payments": pay, "outreach": out.drop(columns="reached")}, backend)
    assert onboarding.funnel_flags(eng, AS_OF)["reached"].sum() == 7


def test_revenue_share_reproduces_the_source(backend):
    assert onboarding.support_revenue_share(3_500, 500, 6_000) == 0.5      # (3,500 - 500) / 6,000
    # 10,000 clients write on 2025-06-01: 6,000 had paid before (Jan), 3,000 of them pay again (Jul),
    # 500 new clients pay for the first time after writing, 3,500 never pay
    ids = [f"k{i}" for i in range(10_000)]
    tickets = pd.DataFrame({"client_id": ids, "created_at": pd.Timestamp("2025-06-01", tz="UTC")})
    pay = pd.concat([pd.DataFrame({"client_id": ids[:6000], "paid_at": pd.Timestamp("2025-01-10", tz="UTC")}),
                     pd.DataFrame({"client_id": ids[:3000] + ids[6000:6500], "paid_at": pd.Timestamp("2025-07-10", tz="UTC")})])
    pay["amount"] = 10.0
    r = onboarding.revenue_share(from_frames({"tickets": tickets, "payments": pay}, backend), pd.Timestamp("2025-01-01", tz="UTC"), pd.Timestamp("2026-01-01", tz="UTC"))
    assert (r["contacted"], r["E"], r["N"], r["S"], r["share"]) == (10_000, 3_500, 500, 6_000, 0.5)
    text = onboarding.revenue_share_text(r)
    # the figure is shown, not in bold: with no comparison group it is the least trustworthy number on the page
    assert "(3,500 - 500) / 6,000 = 50.0%" in shown(text) and "<strong>" not in markdown2html_mistune(text)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["p", "q", "r"]), st.integers(0, 700)), min_size=1, max_size=30),
       st.integers(30, 200))
def test_winback_properties(rows, days):
    base = pd.Timestamp("2023-01-01", tz="UTC")
    p = pd.DataFrame({"client_id": [r[0] for r in rows], "paid_at": [base + pd.Timedelta(days=r[1]) for r in rows],
                      "amount": 10.0})
    as_of = base + pd.Timedelta(days=760)
    eng = from_frames({"payments": p})
    # the activities: each client's distinct charge instants
    act = eng.frame(winback.activity_table(eng.table("payments"), None, cohorts.starts_table(eng.table("payments"))))
    ref = p.drop_duplicates(["client_id", "paid_at"]).sort_values(["client_id", "paid_at"])
    got = act.sort_values(["client_id", "at"])
    assert got["client_id"].tolist() == ref["client_id"].tolist() and got["at"].tolist() == ref["paid_at"].tolist()
    ev = winback.dormancy_events(eng, as_of, days)
    # each dormancy follows an activity by exactly `days`, with no activity strictly between
    assert ((ev["dormant_at"] - ev["last_activity"]) == pd.Timedelta(days=days)).all()
    for client, at in ev[["client_id", "last_activity"]].itertuples(index=False):
        mine = ref.loc[ref["client_id"] == client, "paid_at"]
        assert not ((mine > at) & (mine < at + pd.Timedelta(days=days))).any()
    o = winback.winback_outcomes(eng, as_of, days, 90)
    assert len(o) == len(ev)
    rates = winback.winback_rates(o, ["channel"])
    overall = winback.winback_rates(o).loc["all"]
    assert rates["events"].sum() == overall["events"] and rates["won_back"].sum() == overall["won_back"]
    assert ((rates["rate"].dropna() >= 0) & (rates["rate"].dropna() <= 1)).all()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["p", "q"]), st.integers(0, 400 * 86400)), min_size=1, max_size=30),
       st.integers(1, 120), st.sampled_from(["1969-11-20", "2023-01-01"]))
def test_dormancy_events_equal_a_gap_by_gap_reference(rows, days, first_day):
    # a dormancy after each distinct activity whose next activity is at least `days` later (or
    # absent), when that moment is before as-of; instants in seconds, so that activities fall on
    # both sides of the engine's blocks of `days` days, and around 1970-01-01 (day 0)
    base = pd.Timestamp(first_day, tz="UTC")
    p = pd.DataFrame({"client_id": [r[0] for r in rows], "paid_at": [base + pd.Timedelta(seconds=r[1]) for r in rows],
                      "amount": 10.0})
    as_of = base + pd.Timedelta(days=420)
    expected = []
    for client, g in p.groupby("client_id"):
        at = sorted(set(g["paid_at"]))
        for a, nxt in zip(at, at[1:] + [None]):
            d = a + pd.Timedelta(days=days)
            if (nxt is None or nxt >= d) and d <= as_of:
                expected.append((client, a, d))
    ev = winback.dormancy_events(from_frames({"payments": p}), as_of, days)
    assert list(ev[["client_id", "last_activity", "dormant_at"]].itertuples(index=False, name=None)) == expected


def test_recovered_revenue_sums_the_counted_dormancies_per_channel():
    o = pd.DataFrame({"counted": [True, True, True, False], "channel": ["call", "call", "email", "call"],
                      "revenue_90d": [100.0, 50.0, 0.0, 999.0], "revenue_180d": [150.0, np.nan, 10.0, 999.0]})
    r = winback.recovered_revenue(o)
    # call: 100 + 50 over 2 spans of 90 days; 150 over the one 180-day span that is over; the
    # dormancy whose window is not over (999) is not counted
    assert r.loc["call", ("revenue_90d", "sum")] == 150.0 and r.loc["call", ("revenue_90d", "count")] == 2
    assert r.loc["call", ("revenue_180d", "sum")] == 150.0 and r.loc["call", ("revenue_180d", "count")] == 1
    assert r.loc["email", ("revenue_180d", "sum")] == 10.0


def test_no_payer_gives_no_activity_no_dormancy_and_a_null_rate():
    # only a refund: no start, so no activity; the chain still runs (it used to fail on the
    # empty activity table) and the win-back rate is null, not 0
    p = frame(["client_id", "paid_at", "amount"], ("A", "2024-01-01", -5.0), times=["paid_at"])
    eng = from_frames({"payments": p})
    starts = cohorts.client_starts(eng)
    events = winback.dormancy_events(eng, AS_OF, 90)
    assert len(starts) == len(events) == 0
    rates = winback.winback_rates(winback.winback_outcomes(eng, AS_OF, 90, 90))
    assert rates.loc["all", "events"] == 0 and np.isnan(rates.loc["all", "rate"])
    assert winback.early_warning(eng, starts, AS_OF, 90).empty
