"""The engine's expressions on every backend (DESIGN §11): one set of small fixture tables with
the tricky cases (the 31st of a month, a leap day, a payment exactly at start + k months and a
second before it, ties at one instant, refunds before the first charge, a client with refunds
only, a null client), each result compared with values worked out by hand below.

DuckDB runs at every ``make test``; PostgreSQL on the private server of ``conftest.postgres_url``;
Spark on a local session when pyspark is installed (``make spark``; CI installs it). A backend
that cannot run an expression is marked here with its reason (docs/engines.md), never skipped
silently."""
from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from analysis.data import quality
from analysis.retention import cohorts
from analysis.data import engine
from analysis.retention.months import add_months as pandas_add_months, months_between as pandas_months_between
from conftest import BACKENDS, backend_for


def utc(*values: str) -> pd.Series:
    return pd.Series(pd.to_datetime(list(values), utc=True, format="ISO8601"))


@pytest.fixture(params=BACKENDS)
def backend(request):
    return backend_for(request)


# ---- calendar arithmetic ---------------------------------------------------------------------
TIMES = utc("2024-01-31T10:00:00.250Z", "2023-01-31T00:00Z", "2024-02-29T23:59:59Z", "2023-12-31T23:30Z",
            "2024-03-31T08:00Z", "2000-02-29T00:00Z", "1999-12-31T12:00Z")
MONTHS = [1, 1, 12, 2, -1, 12, 2]
# by hand: Jan 31 + 1 in a leap year = Feb 29; in 2023 = Feb 28; Feb 29 + 12 = Feb 28 2025;
# Dec 31 + 2 = Feb 29 2024; Mar 31 - 1 = Feb 29; Feb 29 2000 + 12 = Feb 28 2001; Dec 31 1999 + 2 = Feb 29 2000
SHIFTED = utc("2024-02-29T10:00:00.250Z", "2023-02-28T00:00Z", "2025-02-28T23:59:59Z", "2024-02-29T23:30Z",
              "2024-02-29T08:00Z", "2001-02-28T00:00Z", "2000-02-29T12:00Z")
LATER = utc("2024-02-29T10:00:00.249Z", "2023-02-28T00:00Z", "2025-02-28T23:59:58Z", "2024-02-29T23:30Z",
            "2024-01-31T08:00Z", "2000-02-28T23:59:59Z", "1999-12-31T11:59:59Z")
# whole months from TIMES to LATER: 0 (a quarter second short of Feb 29 10:00:00.250), 1 (exactly),
# 11 (a second short of Feb 28 23:59:59 2025), 2 (exactly), -2 (Mar 31 - 1 month = Feb 29 08:00 > Jan 31
# 08:00, - 2 = Jan 31 08:00 exactly), -1 (a second before the start), -1 (a second before the start)
WHOLE = [0, 1, 11, 2, -2, -1, -1]


def test_calendar_arithmetic_by_hand(backend):
    eng = engine.from_frames({"t": pd.DataFrame({"ts": TIMES, "later": LATER, "k": MONTHS})}, backend)
    t = eng.table("t")
    t = t.mutate(**engine.calendar(t.ts, "ts"), **engine.calendar(t.later, "later"))
    out = eng.frame(t.select("ts", shifted=engine.add_months(t.ts, t.k), whole=engine.whole_months(t, "ts", "later"),
                             plain=engine.months_between(t.ts, t.later), label=engine.month_label(t.ts),
                             days=t.ts_days, month_days=t.ts_month_days).order_by("ts"))
    order = np.argsort(TIMES.to_numpy())
    assert out["shifted"].tolist() == SHIFTED.iloc[order].tolist()
    assert out["whole"].tolist() == out["plain"].tolist() == [WHOLE[i] for i in order]
    assert out["label"].tolist() == [TIMES.iloc[i].strftime("%Y-%m") for i in order]
    # days since 1970-01-01: 2000-02-29 is day 11,016 (30 years of 365 days + 7 leap days + 31 + 28)
    assert out.loc[out["ts"] == TIMES.iloc[5], "days"].item() == 30 * 365 + 7 + 31 + 28
    # the lengths of their months: Jan, Jan, Feb 2024 (leap), Dec, Mar, Feb 2000 (leap: divisible by 400), Dec
    assert out["month_days"].tolist() == [[31, 31, 29, 31, 31, 29, 31][i] for i in order]


def test_whole_months_to_a_fixed_instant(backend):
    eng = engine.from_frames({"t": pd.DataFrame({"ts": TIMES})}, backend)
    t = eng.table("t")
    t = t.mutate(**engine.calendar(t.ts, "ts"))
    cut = pd.Timestamp("2024-02-29T10:00:00.250Z")
    out = eng.frame(t.select("ts", m=engine.whole_months(t, "ts", cut)).order_by("ts"))
    # Jan 31 10:00:00.250 + 1 month = Feb 29 10:00:00.250 = cut: 1; Dec 31 23:30 + 1 = Jan 31 23:30 <= cut,
    # + 2 = Feb 29 23:30 > cut: 1; Mar 31 2024 is after the cut: -1 (Mar 31 - 1 = Feb 29 08:00 <= cut);
    # Feb 29 23:59:59, later the same day: -1 (Jan 29 23:59:59 <= cut), not 0
    expected = {TIMES.iloc[0]: 1, TIMES.iloc[3]: 1, TIMES.iloc[4]: -1, TIMES.iloc[2]: -1}
    got = dict(zip(out["ts"], out["m"]))
    assert {k: got[k] for k in expected} == expected


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3 * 365), st.integers(0, 86_399), st.integers(-30, 30),
                          st.integers(-400, 400), st.integers(0, 86_399)), min_size=1, max_size=25))
def test_calendar_arithmetic_equals_the_pandas_definition(rows):
    base = pd.Timestamp("2023-01-01", tz="UTC")
    ts = pd.Series([base + pd.Timedelta(days=d, seconds=s) for d, s, *_ in rows])
    later = pd.Series([t + pd.Timedelta(days=g, seconds=s) for t, (_, _, _, g, s) in zip(ts, rows)])
    k = [r[2] for r in rows]
    eng = engine.from_frames({"t": pd.DataFrame({"i": range(len(rows)), "ts": ts, "later": later, "k": k})})
    t = eng.table("t")
    t = t.mutate(**engine.calendar(t.ts, "ts"), **engine.calendar(t.later, "later"))
    out = eng.frame(t.select("i", shifted=engine.add_months(t.ts, t.k),
                             whole=engine.whole_months(t, "ts", "later")).order_by("i"))
    assert out["shifted"].tolist() == pandas_add_months(ts, k).tolist()
    assert out["whole"].tolist() == pandas_months_between(ts, later).tolist()


# ---- starts, LTV and the cohort matrix ------------------------------------------------------------
def payments() -> pd.DataFrame:
    rows = [
        # a: starts on the 31st of a leap-year January; a refund in month 0; a charge exactly at start
        #    + 1 month (Feb 29 10:00) is month 1; Mar 31 10:00 is exactly start + 2 months: month 2
        ("a", "2024-01-31T10:00Z", 100.0), ("a", "2024-02-15T00:00Z", -30.0),
        ("a", "2024-02-29T10:00Z", 100.0), ("a", "2024-03-31T10:00Z", 100.0),
        # b: starts on the leap day with two charges at one instant (first charge 100); a second
        #    before Feb 29 12:00 + 1 month is still month 0
        ("b", "2024-02-29T12:00Z", 50.0), ("b", "2024-02-29T12:00Z", 50.0), ("b", "2024-03-29T11:59:59Z", 20.0),
        # c: a refund before the first charge (age -1: in no horizon, no cell)
        ("c", "2024-03-01T00:00Z", -5.0), ("c", "2024-03-15T00:00Z", 200.0),
        # d: refunds only: no start; a charge without a client: no start
        ("d", "2024-01-10T00:00Z", -7.0), (None, "2024-01-11T00:00Z", 9.0),
        # e: Dec 31 23:30 start; Jan 31 23:30 is month 1; Feb 29 23:29 month 1; Feb 29 23:30 month 2
        ("e", "2023-12-31T23:30Z", 10.0), ("e", "2024-01-31T23:30Z", 10.0),
        ("e", "2024-02-29T23:29Z", 10.0), ("e", "2024-02-29T23:30Z", 10.0),
    ]
    out = pd.DataFrame(rows, columns=["client_id", "paid_at", "amount"])
    out["client_id"] = out["client_id"].astype(pd.StringDtype("pyarrow"))
    out["paid_at"] = pd.to_datetime(out["paid_at"], utc=True, format="ISO8601")
    return out


CLIENTS = pd.DataFrame({"client_id": pd.Series(["a", "b", "c", "d", "e"], dtype=pd.StringDtype("pyarrow")),
                        "segment": ["smb", None, "smb", "ent", "ent"]})
AS_OF = pd.Timestamp("2024-04-15", tz="UTC")


def test_starts_by_hand(backend):
    s = cohorts.client_starts(engine.from_frames({"payments": payments(), "clients": CLIENTS}, backend))
    assert s.index.tolist() == ["a", "b", "c", "e"]          # d (refunds only) and the null client: none
    assert s["start"].tolist() == utc("2024-01-31T10:00Z", "2024-02-29T12:00Z", "2024-03-15T00:00Z",
                                      "2023-12-31T23:30Z").tolist()
    assert s["cohort"].tolist() == ["2024-01", "2024-02", "2024-03", "2023-12"]
    assert s["first_charge"].tolist() == [100.0, 100.0, 200.0, 10.0]   # b: 50 + 50 at one instant
    assert s["segment"].tolist() == ["smb", "(none)", "smb", "ent"]


def test_ltv_horizons_by_hand(backend):
    v = cohorts.client_ltv(engine.from_frames({"payments": payments()}, backend), AS_OF, (1, 2, 3))
    # old enough at Apr 15 00:00 for k months: a Jan 31 10:00 -> Mar 31 10:00 (2), Apr 30 > as-of;
    # b Feb 29 12:00 -> Mar 29 12:00 (1); c Mar 15 -> Apr 15 00:00 = as-of, just (1); e -> Mar 31 23:30 (3)
    expected = pd.DataFrame({"ltv_1m": [100 - 30, 50 + 50 + 20, 200, 10],   # c's earlier refund is in no month
                             "ltv_2m": [100 - 30 + 100, np.nan, np.nan, 10 + 10 + 10],
                             "ltv_3m": [np.nan, np.nan, np.nan, 10 + 10 + 10 + 10]},
                            index=pd.Index(["a", "b", "c", "e"], name="client_id"), dtype="float64")
    pd.testing.assert_frame_equal(v, expected, check_index_type=False)


def test_ltv_matrix_by_hand(backend):
    eng = engine.from_frames({"payments": payments()}, backend)
    starts = cohorts.client_starts(eng)
    m, size = cohorts.ltv_matrix(eng, starts, AS_OF)
    assert size.to_dict() == {"2023-12": 1, "2024-01": 1, "2024-02": 1, "2024-03": 1}
    # cumulative per client; a cell is shown when the cohort's last start + k months <= as-of
    # (columns run to the oldest observable age: Dec 31 23:30 + 3 months <= as-of < + 4 months)
    assert list(m.columns) == [1, 2, 3] and m.loc["2023-12"].tolist() == [10.0, 30.0, 40.0]
    assert m.loc["2024-01", [1, 2]].tolist() == [70.0, 170.0] and np.isnan(m.loc["2024-01", 3])
    assert m.loc["2024-02", 1] == 120.0 and np.isnan(m.loc["2024-02", 2])
    assert m.loc["2024-03", 1] == 200.0 and np.isnan(m.loc["2024-03", 2])
    # the raw cells: age -1 (c's refund) has none
    cells = eng.frame(cohorts.ltv_cells(eng.table("payments"), cohorts.starts_table(eng.table("payments"))))
    got = {(c, int(a)): n for c, a, n in cells[["cohort", "age", "net"]].itertuples(index=False)}
    assert got == {("2023-12", 0): 10.0, ("2023-12", 1): 20.0, ("2023-12", 2): 10.0, ("2024-01", 0): 70.0,
                   ("2024-01", 1): 100.0, ("2024-01", 2): 100.0, ("2024-02", 0): 120.0, ("2024-03", 0): 200.0}


def test_empty_payments_give_empty_results(backend):
    eng = engine.from_frames({"payments": payments().iloc[:0]}, backend)
    s = cohorts.client_starts(eng)
    assert s.empty and list(s.columns) == ["start", "cohort", "first_charge"]
    assert cohorts.client_ltv(eng, AS_OF).empty
    m, size = cohorts.ltv_matrix(eng, s, AS_OF)
    assert m.empty and size.empty


# ---- churn: first month, lifetimes, first spells ---------------------------------------------------
def churn_payments() -> pd.DataFrame:
    rows = [("g", "2024-01-10T00:00Z", 10.0),                                  # one charge, never renewed
            # h: Mar 14 = Jan 31 + 1 month (Feb 29) + 14 days exactly: a renewal; two charges at that instant
            ("h", "2024-01-31T00:00Z", 5.0), ("h", "2024-03-14T00:00Z", 5.0), ("h", "2024-03-14T00:00Z", 5.0),
            # i: lapses after Feb 1 (no charge by Mar 15) and comes back Apr 1
            ("i", "2024-01-01T00:00Z", 7.0), ("i", "2024-02-01T00:00Z", 7.0), ("i", "2024-04-01T00:00Z", 7.0),
            # j: a refund after the start is not a charge
            ("j", "2024-01-01T00:00Z", 9.0), ("j", "2024-01-20T00:00Z", -9.0)]
    out = pd.DataFrame(rows, columns=["client_id", "paid_at", "amount"])
    out["paid_at"] = pd.to_datetime(out["paid_at"], utc=True)
    return out


def test_first_month_churn_by_hand(backend):
    from analysis.retention import churn
    status = churn.first_month_status(engine.from_frames({"payments": churn_payments()}, backend), AS_OF, 14)
    # deadlines: g Feb 24; h Mar 14 (renewed at exactly it); i Feb 15 (renewed Feb 1); j Feb 15 (a refund only)
    assert status["deadline"].tolist() == utc("2024-02-24T00:00Z", "2024-03-14T00:00Z", "2024-02-15T00:00Z",
                                              "2024-02-15T00:00Z").tolist()
    assert status["eligible"].all()
    assert status["churned"].tolist() == [True, False, False, True]


def test_lifetimes_and_first_spells_by_hand(backend):
    from analysis.retention import churn
    eng = engine.from_frames({"payments": churn_payments()}, backend)
    life = churn.lifetimes(eng, AS_OF, 14)
    # g: Jan 10 + 1 month + 14 d = Feb 24, 45 days; h: last Mar 14 -> Apr 28 > as-of: censored, Jan 31 ->
    # Apr 15 = 29 + 31 + 15 = 75 days; i: last Apr 1 -> May 15: censored, Jan 1 -> Apr 15 = 31 + 29 + 31 + 14
    # = 105 days; j: Jan 1 -> Feb 15 = 45 days
    assert life["churned"].tolist() == [True, False, False, True]
    assert life["duration_days"].tolist() == [45.0, 75.0, 105.0, 45.0]
    assert life["last_charge"].tolist() == utc("2024-01-10T00:00Z", "2024-03-14T00:00Z", "2024-04-01T00:00Z",
                                               "2024-01-01T00:00Z").tolist()
    spell = churn.first_spells(eng, AS_OF, 14)
    # i's first spell ends at Feb 1 (next charge Apr 1 > Mar 15): churned Mar 15; the others as their lives
    assert spell["last_charge"].tolist() == utc("2024-01-10T00:00Z", "2024-03-14T00:00Z", "2024-02-01T00:00Z",
                                                "2024-01-01T00:00Z").tolist()
    assert [None if pd.isna(t) else str(t.date()) for t in spell["churn_at"]] == [
        "2024-02-24", None, "2024-03-15", "2024-02-15"]
    # a sample's clients (i and an id with no payment): only i's payments are read, its spell as above
    sampled = churn.first_spells(eng, AS_OF, 14, pd.Index(["i", "nobody"]))
    assert sampled.index.tolist() == ["i"]
    pd.testing.assert_frame_equal(sampled, spell.loc[["i"]])
    assert churn.first_spells(eng, AS_OF, 14, pd.Index([], dtype=object)).empty


def test_first_contacts_of_a_sample(backend):
    from analysis.retention.first_contact import first_contacts
    t = lambda d: pd.Timestamp(d, tz="UTC")  # noqa: E731
    tickets = pd.DataFrame({"ticket_id": ["t1", "t2", "t3", "t4"], "client_id": ["a", "a", "b", None],
                            "created_at": [t("2025-02-01"), t("2025-01-05"), t("2025-03-01"), t("2025-01-01")],
                            "topic": ["how_to", "refund", "how_to", "how_to"]})
    eng = engine.from_frames({"tickets": tickets}, backend)
    # a's earliest ticket is Jan 5 (t2), Feb 1 without the refund topic; b is not in the sample
    assert first_contacts(eng, clients=["a"]).to_dict() == {"a": t("2025-01-05")}
    assert first_contacts(eng, ("refund",), ["a", "c"]).to_dict() == {"a": t("2025-02-01")}
    assert first_contacts(eng, clients=[]).empty
    assert first_contacts(eng).to_dict() == {"a": t("2025-01-05"), "b": t("2025-03-01")}


# ---- durations: calendar minutes and the business clock's calendar table ---------------------------
def test_durations_and_the_business_clock_by_hand(backend):
    from analysis.data.config import BusinessHours
    from analysis.support.durations import business_clock, clock_table, minutes_between
    berlin = BusinessHours(timezone="Europe/Berlin", days=["mon", "tue", "wed", "thu", "fri"], start="09:00",
                           end="18:00", holidays=["2026-04-03"])
    pairs = pd.DataFrame({"row": [0, 1, 2, 3],
                          "start": utc("2026-03-27T16:00Z", "2026-03-20T16:00Z", "2026-04-02T16:30Z",
                                       "2026-03-21T10:00:00.500Z"),
                          "end": utc("2026-03-30T08:00Z", "2026-03-23T08:00Z", "2026-04-06T07:15Z",
                                     "2026-03-21T10:01:00Z")})
    clock = clock_table(berlin, pd.Timestamp("2026-03-19", tz="UTC"), pd.Timestamp("2026-04-07", tz="UTC"))
    eng = engine.from_frames({"t": pairs, "clock": clock}, backend)
    t = business_clock(business_clock(eng.table("t"), "start", eng.table("clock")), "end", eng.table("clock"))
    out = eng.frame(t.select("row", business=t.end_clock - t.start_clock,
                             calendar=minutes_between(t.start, t.end)).order_by("row"))
    # 0: Fri Mar 27 16:00Z = 17:00 CET, 60 min to close; clocks go forward on Sunday; Mon 08:00Z = 10:00 CEST,
    #    60 min after the 09:00 opening (07:00Z): 120. 1: the same UTC hours in winter: Mon 08:00Z is the opening: 60.
    # 2: Thu Apr 2 16:30Z = 18:30 CEST, closed; Fri Apr 3 a holiday; Mon Apr 6 07:15Z = 09:15: 15.
    # 3: a Saturday: 0 business minutes; 59.5 seconds on the calendar (to the millisecond)
    assert out["business"].tolist() == [120.0, 60.0, 15.0, 0.0]
    assert out["calendar"].tolist() == [3840.0, 3840.0, 5205.0, 59.5 / 60]


def test_quality_flags_by_hand(backend):
    t = lambda d: pd.Timestamp(d, tz="UTC")  # noqa: E731
    # 10 clients, 1 paid (a refund is not a charge): 90% never paid -> amber (80% <= 90% < 97%)
    clients = pd.DataFrame({"client_id": [f"c{i}" for i in range(10)]})
    payments = pd.DataFrame({"client_id": ["c0", "c1"], "amount": [100.0, -5.0]})
    # tickets created over 30 days before as-of: 4, of which 1 still open (25%) -> red (>= 10%);
    # t5 is young and open: not counted
    tickets = pd.DataFrame({"ticket_id": [f"t{i}" for i in range(1, 6)],
                            "created_at": [t("2025-01-01")] * 4 + [t("2025-03-30")],
                            "resolved_at": [t("2025-01-02"), t("2025-01-02"), t("2025-01-03"), pd.NaT, pd.NaT]})
    # events: each resolved ticket one agent reply -> 0% with a second reply -> red
    events = pd.DataFrame({"ticket_id": ["t1", "t2", "t3", "t1"], "event": ["agent_reply"] * 3 + ["solved"]})
    tables = {"clients": clients, "payments": payments, "tickets": tickets, "ticket_events": events}
    as_of = t("2025-04-01")
    found = quality.flags(engine.from_frames(tables, backend), as_of).set_index("check")
    assert found["level"].to_dict() == {"clients who never paid": "amber", "tickets that never close": "red",
                                        "second agent replies": "red"}
    assert found.loc["clients who never paid", "finding"].startswith("90.0% of 10 clients")
    assert "1 tickets (25.0% of those created over 30 days ago)" in found.loc["tickets that never close", "finding"]
    # a second reply on one of the three resolved tickets (33%): no flag; everyone paid: no flag
    events2 = pd.concat([events, pd.DataFrame({"ticket_id": ["t2"], "event": ["agent_reply"]})])
    tables2 = {**tables, "ticket_events": events2, "payments": pd.DataFrame({"client_id": clients["client_id"], "amount": 1.0})}
    eng2 = engine.from_frames(tables2, backend)
    assert list(quality.flags(eng2, as_of)["check"]) == ["tickets that never close"]
    assert list(quality.flags(eng2, as_of, checks=("second agent replies",))["check"]) == []   # only what is asked
    assert list(quality.flags(engine.from_frames(tables, backend), as_of, checks=quality.TICKET_CHECKS)["check"]) == \
        ["tickets that never close", "second agent replies"]
    assert "No data-quality flag" in quality.flags_text(quality.flags(eng2, as_of).iloc[:0])
    # no tables at all: no finding, no error
    assert quality.flags(engine.from_frames({}, backend), as_of).empty


def test_quality_views_by_hand(backend):
    t = lambda d: pd.Timestamp(d, tz="UTC")  # noqa: E731
    clients = pd.DataFrame({"client_id": ["c1", "c2", "c3"],
                            "signed_up_at": [t("2025-01-05"), t("2025-01-01"), t("2025-01-01")]})
    # c1 pays on Jan 3, before signing up on Jan 5; c2 only has a refund; c3 never paid
    payments = pd.DataFrame({"payment_id": ["p1", "p2", "p3", "p4"], "client_id": ["c1", "c1", "c1", "c2"],
                             "paid_at": [t("2025-01-03"), t("2025-02-03"), t("2025-03-03"), t("2025-01-10")],
                             "amount": [10.0, 20.0, 40.0, -5.0]})
    tickets = pd.DataFrame({"ticket_id": ["t1", "t2", "t3"], "client_id": ["c1", None, "c1"],
                            "created_at": [t("2025-01-10T10:00")] * 3,
                            "first_response_at": [t("2025-01-10T10:30"), t("2025-01-10T11:00"), pd.NaT],
                            "resolved_at": [t("2025-01-10T12:00"), pd.NaT, pd.NaT]})
    # two identical event rows (agent empty in both): 1 beyond the first; t3 has no event; the
    # fourth differs from the first two only in its agent
    events = pd.DataFrame({"ticket_id": ["t1", "t1", "t2", "t1"], "at": [t("2025-01-10T10:30")] * 4,
                           "event": ["agent_reply"] * 4, "tier": ["L1"] * 4, "agent_id": [None, None, "a1", "a1"]})
    eng = engine.from_frames({"clients": clients, "payments": payments, "tickets": tickets, "ticket_events": events},
                             backend)
    orphans = quality.orphan_table(eng)["rows"].to_dict()
    assert orphans == {"tickets with no client (client_id empty)": 1, "clients with no charge before as-of": 2,
                       "clients whose first payment precedes sign-up": 1, "clients who never wrote to support": 2,
                       "tickets with no events": 1}
    assert quality.orphan_table(eng).loc["clients whose first payment precedes sign-up", "of"] == 2   # c1, c2 paid
    assert quality.duplicate_table(eng)["identical rows (beyond the first)"].to_dict() == {
        "clients": 0, "payments": 0, "tickets": 0, "ticket_events": 1}
    nulls = quality.null_table(eng)["empty"]
    assert nulls[("tickets", "client_id")] == 1 and nulls[("tickets", "resolved_at")] == 2
    cover = quality.coverage_table(eng).loc[("payments", "paid_at")]
    assert (cover["first"], cover["last"], cover["filled"]) == (t("2025-01-03"), t("2025-03-03"), 4)
    # charges 10, 20, 40: mean 23.33, sample std sqrt(((13.33)^2 + (3.33)^2 + (16.67)^2) / 2) = 15.275,
    # 10% = 10 + 0.2 * 10 = 12 (linear), median 20, 90% = 20 + 0.8 * 20 = 36; one refund -5
    amounts = quality.amount_summary(eng)
    assert amounts.loc["charge", ["count", "lowest", "10%", "50%", "90%", "highest", "sum"]].tolist() == \
        [3, 10, 12, 20, 36, 40, 70]
    assert amounts.loc["charge", "mean"] == pytest.approx(70 / 3) and amounts.loc["charge", "std"] == pytest.approx(15.275252, rel=1e-6)
    assert amounts.loc["refund", "count"] == 1 and np.isnan(amounts.loc["refund", "std"])
    # first response 30 and 60 minutes (one none yet): median 45, p90 30 + 0.9 * 30 = 57, mean 45
    durations = quality.duration_summary(eng).set_index("duration")
    assert durations.loc["first response"].tolist() == [2, 1, 45.0, 57.0, 45.0]
    assert durations.loc["resolution", ["n", "none yet", "median_min"]].tolist() == [1, 2, 120.0]
    # histogram of 1, 2, 3, 4 in 3 linear bins [1, 2), [2, 3), [3, 4]; log bins of 1, 10, 100: edges 1, 10, 100
    values = engine.from_frames({"v": pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, None]})}, backend)
    counts = quality.histogram_counts(values, values.table("v").x, bins=3)
    assert counts["left"].tolist() == [1, 2, 3] and counts["rows"].tolist() == [1, 1, 2]
    logs = engine.from_frames({"v": pd.DataFrame({"x": [1.0, 10.0, 100.0, -1.0, 0.0]})}, backend)
    counts = quality.histogram_counts(logs, logs.table("v").x, bins=3, log=True)
    assert counts["left"].tolist() == pytest.approx([1, 10]) and counts["rows"].tolist() == [1, 2]
    assert quality.histogram_counts(logs, logs.table("v").x.nullif(logs.table("v").x), log=True).empty


def test_support_counts_by_hand(backend):
    from analysis.data.config import Config, Tier
    from analysis.support import before_after, csat, escalation, overview, sla
    t = lambda d: pd.Timestamp(d, tz="UTC")  # noqa: E731
    config = Config(tiers=[Tier(id="L1", first_response_target_min=30, resolution_target_min=120,
                                first_response_target_by_priority_min={"urgent": 10}),
                           Tier(id="L2", first_response_target_min=60), Tier(id="FIN")])
    as_of = t("2025-02-01")
    tickets = pd.DataFrame({
        "ticket_id": ["t1", "t2", "t3", "t4", "t5"],
        "created_at": [t("2025-01-06T10:00"), t("2025-01-06T10:00"), t("2025-01-07T10:00"), t("2025-01-31T23:50"),
                       t("2025-01-08T10:00")],
        "first_tier": ["L1", "L1", "L1", "L2", "X"],           # t5: a tier outside the config, left out of every tier
        "final_tier": ["L1", "L2", None, None, None],
        "first_response_at": [t("2025-01-06T10:20"), t("2025-01-06T10:45"), t("2025-01-07T10:20"), pd.NaT, pd.NaT],
        "resolved_at": [t("2025-01-06T11:00"), t("2025-01-06T13:00"), pd.NaT, pd.NaT, pd.NaT],
        "priority": [None, None, "urgent", None, None],
        "csat_satisfied": pd.array([True, False, None, None, None], dtype="boolean"),
        "channel_kind": ["text", "voice", "text", "text", "text"]})
    events = pd.DataFrame({"ticket_id": ["t1", "t2", "t2", "t2"], "at": [t("2025-01-06T10:20")] * 4,
                           "event": ["agent_reply", "agent_reply", "agent_reply", "reopened"], "tier": ["L1"] * 4})
    eng = engine.from_frames({"tickets": tickets, "ticket_events": events}, backend)
    # first response per entry tier: L1 t1 20 <= 30 achieved, t2 45 > 30 breached, t3 urgent 20 > 10 breached;
    # L2 t4 nothing yet, 10 min to as-of <= 60: active
    fr = sla.sla_table(eng, config, as_of, "first_response")
    assert fr.loc["L1", ["tickets", "achieved", "breached", "active", "no_target"]].tolist() == [3, 1, 2, 0, 0]
    assert fr.loc["L2", ["tickets", "active"]].tolist() == [1, 1] and fr.loc["FIN", "tickets"] == 0
    # resolution per resolving tier: L1 t1 60 <= 120 achieved, t3 open 25 days > 120 min breached; L2 has no target
    res = sla.sla_table(eng, config, as_of, "resolution")
    assert res.loc["L1", ["tickets", "achieved", "breached"]].tolist() == [2, 1, 1] and res.loc["L2", "no_target"] == 2
    split = sla.sla_table(eng, config, as_of, "first_response", split=("channel_kind",))
    assert split["tickets"].to_dict() == {("L1", "text"): 2, ("L1", "voice"): 1, ("L2", "text"): 1}
    s = overview.tier_summary(eng, config, as_of)
    # L1 first responses 20, 45, 20: median 20, mean 28.33, p90 h = 0.9 * 2 = 1.8 -> 20 + 0.8 * 25 = 40
    assert s.loc["L1", ["first_response_n", "first_response_median_min"]].tolist() == [3, 20.0]
    assert s.loc["L1", "first_response_mean_min"] == pytest.approx(85 / 3)
    assert s.loc["L1", "first_response_p90_min"] == pytest.approx(40.0)
    assert s.loc["L2", "resolved"] == 1 and s.loc["L2", "resolution_median_min"] == 180.0
    assert s.loc["L1", "escalation_rate"] == pytest.approx(1 / 3) and s.loc["L1", "csat"] == 1.0
    assert s.loc["L2", "csat"] == 0.0 and np.isnan(s.loc["FIN", "csat"])
    m = escalation.escalation_matrix(eng, config, as_of)
    assert m.loc["L1"].tolist() == [2, 1, 0] and m.loc["L2"].tolist() == [0, 1, 0] and m.to_numpy().sum() == 4
    assert csat.csat_by_agent(eng, config, as_of).empty          # no agent_id column
    # one reply on t1 (L1), two on t2 (L2): one-touch 1/1 and 0/1; t2 reopened (from events): 1 of 1 solved
    one = escalation.one_touch(eng, config, as_of)
    assert one.loc["L1", "one_touch_rate"] == 1.0 and one.loc["L2", ["2 replies", "one_touch_rate"]].tolist() == [1, 0.0]
    reopen = escalation.reopen_rate(eng, config, as_of)
    assert reopen.loc["L1", ["solved", "reopened"]].tolist() == [1, 0] and reopen.loc["L2", "reopen_rate"] == 1.0
    # the week of Monday 2025-01-06 for L1: t1, t2, t3, median 20, 1 of 3 achieved; t4's week ends after as-of
    week = sla.weekly_trend(eng, config, as_of, "first_response")
    assert week[["tier", "tickets", "median_min", "achieved", "decided"]].values.tolist() == [["L1", 3, 20.0, 1, 3]]
    assert week["week"].tolist() == [pd.Timestamp("2025-01-06")]
    measures = before_after.ticket_measures(eng, config, as_of)     # by creation: t1, t2, t3, t5, t4
    assert measures["first_response_sla"].tolist() == [True, False, False, pd.NA, pd.NA]
    assert measures["one_touch"].tolist() == [True, False, pd.NA, pd.NA, pd.NA]
    assert measures["escalated"].tolist() == [False, True, False, True, False]   # t5: outside the ladder


def test_one_engine_gives_each_config_and_as_of_its_own_derived_ticket_table(backend):
    from analysis.data.config import Config, Tier
    from analysis.support import sla
    t = lambda d: pd.Timestamp(d, tz="UTC")  # noqa: E731
    tickets = pd.DataFrame({"ticket_id": ["t1", "t2"], "created_at": [t("2025-01-06T10:00"), t("2025-01-06T12:00")],
                            "first_tier": ["L1", "L1"], "first_response_at": [t("2025-01-06T10:20"), pd.NaT]})
    eng = engine.from_frames({"tickets": tickets}, backend)
    strict, loose = (Config(tiers=[Tier(id="L1", first_response_target_min=m)]) for m in (10, 30))
    # t1 answered in 20 min: breached under a 10-minute target, achieved under 30; t2 unanswered: 30 minutes
    # to an as-of of 12:30 (active under 30, breached under 10), a day to the next day's (breached under both)
    cases = [(strict, t("2025-01-06T12:30"), [0, 2, 0]), (loose, t("2025-01-06T12:30"), [1, 0, 1]),
             (loose, t("2025-01-07"), [1, 1, 0]), (strict, t("2025-01-06T12:30"), [0, 2, 0])]
    for config, as_of, expected in cases:
        fr = sla.sla_table(eng, config, as_of, "first_response")
        assert fr.loc["L1", ["achieved", "breached", "active"]].tolist() == expected
    assert len([n for n in eng.kept if n.startswith("ticket_table_")]) == 3   # the repeat read the first one's
    if eng.backend.name == "duckdb":      # kept in the engine's own database file, removed with the engine
        directory = Path(eng.scratch.name)
        assert "derived.duckdb" in {f.name for f in directory.iterdir()}   # with its write-ahead log
        del eng
        gc.collect()
        assert not directory.exists()


def test_segments_paths_load_and_backlog_by_hand(backend):
    # Moscow business hours (UTC+3, 09:00-18:00 Mon-Fri): segments on the business clock, days
    # as Moscow dates, ties at one instant in ladder order: the same numbers on every backend
    from analysis.data.config import BusinessHours, Config, Tier
    from analysis.support import escalation, workload
    t = lambda d: pd.Timestamp(d, tz="UTC")  # noqa: E731
    config = Config(tiers=[Tier(id="L1"), Tier(id="L2")], business_hours=BusinessHours(
        timezone="Europe/Moscow", days=["mon", "tue", "wed", "thu", "fri"], start="09:00", end="18:00"))
    as_of = t("2025-01-09")
    tickets = pd.DataFrame({
        "ticket_id": ["A", "B", "C"],
        "created_at": [t("2025-01-06T06:00"), t("2025-01-06T20:30"), t("2025-01-07T07:00")],
        "first_tier": ["L1", "L1", "L1"], "final_tier": ["L2", None, None],
        "resolved_at": [t("2025-01-06T10:00"), pd.NaT, t("2025-01-07T22:30")],
        "agent_id": ["b1", None, "a3"], "channel_kind": ["text"] * 3})
    events = pd.DataFrame({
        "ticket_id": ["A", "A", "B", "B", "B"],
        "at": [t("2025-01-06T06:00"), t("2025-01-06T08:00"), t("2025-01-06T22:00"), t("2025-01-06T22:00"),
               t("2025-01-06T22:30")],
        "event": ["assigned"] * 5, "tier": ["L1", "L2", "L2", "L1", "L2"], "agent_id": ["a1", "b1", "b1", "a2", "b1"]})
    eng = engine.from_frames({"tickets": tickets, "ticket_events": events}, backend)
    seg = eng.frame(escalation.tier_segments(eng, config, as_of).order_by(["ticket_id", "seq"]))
    # A: L1 09:00-11:00 MSK (the L1 assignment at the entry instant merges), L2 11:00-13:00: 120 + 120
    # B: L1 23:30 Mon - 01:00 Tue MSK, outside hours: 0; at 01:00 the L1 assignment comes before the
    # L2 one (ladder order), so L2 from 22:00Z, still open; C has no events: no segment
    assert seg["ticket_id"].tolist() == ["A", "A", "B", "B"] and seg["tier"].tolist() == [0, 1, 0, 1]
    assert seg["ownership_min"].tolist()[:3] == [120.0, 120.0, 0.0] and seg["open"].tolist() == [False, False, False, True]
    assert seg["end"].iloc[2] == t("2025-01-06T22:00") and pd.isna(seg["end"].iloc[3])
    assert escalation.tier_paths(eng, config, as_of).to_dict() == {"L1 → L2": 2}
    own = escalation.ownership_time(eng, config, as_of)
    assert own.loc["L1", ["segments", "open_at_as_of", "ownership_n"]].tolist() == [2, 0, 2]
    assert own.loc["L1", "ownership_median_min"] == 60.0 and own.loc["L2", "ownership_median_min"] == 120.0
    # assignee stations: A a1 -> b1 = 2; B at 22:00 a2 (L1) then b1 (L2), b1 again at 22:30 = 2
    r = escalation.reassignments(eng, config, as_of).loc["L1"]
    assert r[["tickets", "group_stations_mean", "assignee_stations_mean", "reassigned_share"]].tolist() == [2, 2.0, 2.0, 1.0]
    # Moscow days Jan 6-8: A resolved Jan 6 (L2, b1); C resolved 01:30 MSK Jan 8 (UTC still Jan 7), L1, a3
    days = workload.report_days(eng, config, as_of)
    assert days.tolist() == list(pd.date_range("2025-01-06", "2025-01-08"))
    daily = workload.daily_load(eng, config, as_of, days).set_index(["day", "tier"])
    assert daily.loc[(pd.Timestamp("2025-01-06"), "L2"), ["resolved", "agents"]].tolist() == [1, 1]
    assert daily.loc[(pd.Timestamp("2025-01-08"), "L1"), ["resolved", "agents"]].tolist() == [1, 1]
    assert daily["resolved"].sum() == 2
    # backlog at each Moscow midnight: Jan 6 B in L1 (to L2 at 01:00 Jan 7); Jan 7 B in L2, C in L1;
    # Jan 8 C resolved, B still in L2
    backlog = workload.backlog_daily(eng, config, as_of)
    assert backlog.to_dict("list") == {"L1": [1, 1, 0], "L2": [0, 1, 1]}


@pytest.mark.spark
def test_a_spark_run_shows_no_spark_log_on_its_page(spark_backend, small_dir, tmp_path):
    # the kernel's JVM logs to the notebook's stderr, which the page shows: Spark's start-up
    # warnings, its "default log level" notice and stage progress bars must not reach a reader
    from analysis.run.cli import main
    assert main(["run", "--data", str(small_dir), "--out", str(tmp_path / "o"), "--engine", "spark",
                 "--only", "06_contact_centre_economics"]) == 0
    page = (tmp_path / "o" / "06_contact_centre_economics.html").read_text()
    assert "converts" in page   # the report itself is there
    for noise in ("WARN", "Setting default log level", "[Stage", "setLogLevel"):
        assert noise not in page, noise


def test_a_duckdb_session_draws_no_progress_bar(capfd, tmp_path):
    # outside Jupyter DuckDB draws its progress bar on the process's standard output (not
    # sys.stdout): at 1M clients the run's load child drew screens of bars into the runner's log.
    # It draws after progress_bar_time ms (2 s by default); setting that time turns the bar on,
    # so it is set first here, to draw on any query, and the session made quiet after it
    import duckdb
    from analysis.data.dataset import _load_connection
    loud = duckdb.connect()
    loud.execute("SET progress_bar_time = 0")
    loud.execute("SELECT sum(i) FROM range(20000000) t(i)").fetchall()
    assert "100%" in capfd.readouterr().out   # the bar this test must not see below
    made = engine.connect()
    made.raw_sql("SET progress_bar_time = 0")
    engine.quiet_duckdb(made)
    capfd.readouterr()   # the SET statements before the bar was off may have drawn theirs
    assert made.raw_sql("SELECT sum(i) FROM range(20000000) t(i)").fetchall() == [(199999990000000,)]
    out, err = capfd.readouterr()
    assert "%" not in out + err and "elapsed" not in out + err
    # every DuckDB session of the suite is made quiet (reading a DuckDB source turns the bar off too)
    for con in (engine.connect(), _load_connection(tmp_path)):
        assert con.raw_sql("SELECT current_setting('enable_progress_bar')").fetchall() == [(False,)]


def test_memory_share_and_a_private_spill_directory():
    # 80% of a 24 GiB machine (25,769,803,776 bytes) = 20.6 GB; two engines at once: 10.3 GB each
    assert engine.memory_share(2, 24 * 2**30) == 10.3
    assert engine.memory_share(1, 24 * 2**30) == 20.6
    assert engine.memory_share(3, 24 * 2**30) == 6.8     # 6.87 GB, down to 0.1 GB
    assert engine.memory_share(64, 2**30) == 0.5         # never below 0.5 GB
    con = engine.connect(memory_gb=1.5)
    limit, spill = con.raw_sql("SELECT current_setting('memory_limit'), current_setting('temp_directory')").fetchone()
    assert limit == "1.3 GiB"   # DuckDB shows 1.5 GB (10^9 bytes) in GiB
    assert Path(spill).name.startswith("duckdb_spill_") and Path(spill).parent != Path.cwd()
    # a query that needs more than the limit spills there (with no spill directory DuckDB fails
    # it: 'Out of Memory Error ... no temporary directory')
    assert con.raw_sql("SET memory_limit = '100MB'") is not None
    rows = con.raw_sql("SELECT count(*) FROM (SELECT i % 3000000 AS k, count(*) FROM range(6000000) t(i) GROUP BY k)").fetchone()
    assert rows == (3_000_000,)
    del con
    gc.collect()
    assert not Path(spill).exists()   # removed with the connection
