"""Escalation matrix, tier paths, ownership time, reassignments, one-touch, reopens, load and
backlog on a hand-made set of six tickets whose every number is worked out in the comments."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from analysis import load_dataset
from analysis.data.engine import from_frames
from analysis.support import escalation, workload
from conftest import write_dir

CONFIG = {"tiers": [{"id": "L1", "first_response_target_min": 30}, {"id": "L1.5"}, {"id": "L2"}]}
D = "2026-01-10T"


def ev(ticket, at, event, tier, agent=None):
    return {"ticket_id": ticket, "at": at, "event": event, "tier": tier, "agent_id": agent}


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("esc")
    tickets = pd.DataFrame([
        # id, created, first, final, resolved, agent, reopened
        ("A", D + "10:00Z", "L1", "L2", D + "12:00Z", "b1", 0),
        ("B", D + "10:00Z", "L1", "L2", D + "13:00Z", "b1", 0),
        ("C", D + "10:00Z", "L1", "L1", D + "10:40Z", "a2", 0),
        ("D", "2026-01-31T10:00Z", "L1", "L2", None, "b1", 0),
        ("E", D + "10:00Z", "L1", "L1", D + "11:00Z", "a1", 1),
        ("F", D + "10:00Z", "L1", "L1", D + "10:50Z", "a1", 0),
    ], columns=["ticket_id", "created_at", "first_tier", "final_tier", "resolved_at", "agent_id", "reopened"])
    tickets["channel"] = "chat"
    events = pd.DataFrame([
        # A: L1 (10:00-11:00, 60 min) -> L2 (11:00-12:00, 60 min); two agent replies
        ev("A", D + "10:00:30Z", "assigned", "L1", "a1"), ev("A", D + "10:10Z", "agent_reply", "L1", "a1"),
        ev("A", D + "11:00Z", "assigned", "L2", "b1"), ev("A", D + "11:30Z", "agent_reply", "L2", "b1"),
        ev("A", D + "12:00Z", "solved", "L2", "b1"),
        # B: L1 (30) -> L1.5 (90) -> L2 (60); one reply
        ev("B", D + "10:01Z", "assigned", "L1", "a1"), ev("B", D + "10:05Z", "agent_reply", "L1", "a1"),
        ev("B", D + "10:30Z", "assigned", "L1.5", "c1"), ev("B", D + "12:00Z", "assigned", "L2", "b1"),
        ev("B", D + "13:00Z", "solved", "L2", "b1"),
        # C: stays in L1 (40 min) but moves from agent a1 to a2: one group station, two assignee stations
        ev("C", D + "10:00:30Z", "assigned", "L1", "a1"), ev("C", D + "10:20Z", "assigned", "L1", "a2"),
        ev("C", D + "10:25Z", "agent_reply", "L1", "a2"), ev("C", D + "10:40Z", "solved", "L1", "a2"),
        # D: L1 (60) -> L2, still open at as-of 2026-02-01
        ev("D", "2026-01-31T10:00:30Z", "assigned", "L1", "a1"), ev("D", "2026-01-31T11:00Z", "assigned", "L2", "b1"),
        # E: solved, reopened, solved again at 11:00 (L1 owns it 60 min); one reply
        ev("E", D + "10:00:30Z", "assigned", "L1", "a1"), ev("E", D + "10:10Z", "agent_reply", "L1", "a1"),
        ev("E", D + "10:30Z", "solved", "L1", "a1"), ev("E", D + "10:40Z", "reopened", "L1"),
        ev("E", D + "11:00Z", "solved", "L1", "a1"),
        # F has no events at all
    ])
    agents = pd.DataFrame({"agent_id": ["a1", "a2", "b1", "c1", "z9"], "tier": ["L1", "L1", "L2", "L1.5", "L1"],
                           "active_from": [None, "2026-01-10T12:00Z", None, None, None],
                           "active_to": [None, None, None, None, "2026-01-10T00:00Z"]})   # z9 left before the day
    d = write_dir(tmp / "d", {"tickets": tickets, "ticket_events": events, "agents": agents})
    (tmp / "c.yaml").write_text(yaml.safe_dump(CONFIG))
    return load_dataset(d, tmp / "c.yaml", "2026-02-01")


@pytest.fixture(scope="module")
def eng(ds):
    return ds.engine()


def segments_of(eng, config, as_of) -> pd.DataFrame:
    seg = escalation.tier_segments(eng, config, as_of)
    return eng.frame(seg.order_by(["ticket_id", "seq"]))


@pytest.fixture(scope="module")
def segments(ds, eng):
    return segments_of(eng, ds.config, ds.as_of)


def test_segments_by_hand(segments):
    by = {k: g for k, g in segments.groupby("ticket_id")}
    # F has no events: not segmented; B: L1 10:00-10:30, L1.5 10:30-12:00, L2 12:00-13:00 (codes 0, 1, 2)
    assert sorted(by) == ["A", "B", "C", "D", "E"]
    assert by["B"]["tier"].tolist() == [0, 1, 2] and by["B"]["seq"].tolist() == [0, 1, 2]
    assert by["B"]["ownership_min"].tolist() == [30.0, 90.0, 60.0]
    # C: the assignment to L1 (same tier, another agent) opens no segment; E: the resolution at
    # 11:00 ends its one segment (the earlier solve was reopened)
    assert by["C"]["tier"].tolist() == [0] and by["E"]["ownership_min"].tolist() == [60.0]
    # D: L2 from 11:00 still open at as-of
    assert by["D"]["open"].tolist() == [False, True] and pd.isna(by["D"]["ownership_min"].iloc[1])


def test_matrix_and_rate(ds):
    m = escalation.escalation_matrix(ds.engine(), ds.config, ds.as_of)
    # entry L1: stayed in L1 = C, E, F (3); ended in L2 = A, B, D (3); rows/columns in ladder order
    assert list(m.index) == ["L1", "L1.5", "L2"] and list(m.columns) == ["L1", "L1.5", "L2"]
    assert m.loc["L1"].tolist() == [3, 0, 3] and m.values.sum() == 6
    r = escalation.escalation_rates(ds.engine(), ds.config, ds.as_of)
    assert r.loc["L1", "escalation_rate"] == 3 / 6 and np.isnan(r.loc["L2", "escalation_rate"])


def test_paths(ds, eng):
    paths = escalation.tier_paths(eng, ds.config, ds.as_of)
    # A L1 → L2, B L1 → L1.5 → L2, C L1, D L1 → L2, E L1; most frequent first, ties by path
    assert list(paths.items()) == [("L1", 2), ("L1 → L2", 2), ("L1 → L1.5 → L2", 1)]
    freq = escalation.path_frequencies(paths)
    assert freq["tickets"].to_dict() == {"L1 → L2": 2, "L1": 2, "L1 → L1.5 → L2": 1}
    assert freq.loc["L1 → L1.5 → L2", "steps"] == 2 and freq["share"].sum() == 1.0


def test_ownership_time(ds, eng):
    own = escalation.ownership_time(eng, ds.config, ds.as_of)
    # L1 spans: A 60, B 30, C 40, D 60, E 60 -> n 5, median 60, mean 250 / 5 = 50
    assert own.loc["L1", ["segments", "open_at_as_of", "ownership_n"]].tolist() == [5, 0, 5]
    assert own.loc["L1", "ownership_median_min"] == 60.0 and own.loc["L1", "ownership_mean_min"] == 50.0
    assert own.loc["L1.5", "ownership_median_min"] == 90.0                  # B 10:30 -> 12:00
    # L2 spans: A 60, B 60, D still open at as-of (counted, not timed)
    assert own.loc["L2", ["segments", "open_at_as_of", "ownership_n"]].tolist() == [3, 1, 2]


def test_reassignments(ds, eng):
    r = escalation.reassignments(eng, ds.config, ds.as_of).loc["L1"]
    # group stations A 2, B 3, C 1, D 2, E 1 -> mean 9 / 5; passed between tiers: A, B, D -> 3 / 5
    assert r["tickets"] == 5 and r["group_stations_mean"] == 1.8 and r["passed_between_tiers"] == 0.6
    # assignee stations A 2 (a1, b1), B 3 (a1, c1, b1), C 2 (a1, a2), D 2, E 1 -> mean 10 / 5; reassigned 4 / 5
    assert r["assignee_stations_mean"] == 2.0 and r["reassigned_share"] == 0.8


def test_one_touch_and_reopen(ds):
    one = escalation.one_touch(ds.engine(), ds.config, ds.as_of)
    # resolved with events, by resolving tier: L1 = C (1 reply), E (1) -> 2 / 2; L2 = A (2), B (1) -> 1 / 2
    assert one.loc["L1", ["1 reply", "resolved"]].tolist() == [2, 2] and one.loc["L1", "one_touch_rate"] == 1.0
    assert one.loc["L2", "2 replies"] == 1 and one.loc["L2", "one_touch_rate"] == 0.5
    re = escalation.reopen_rate(ds.engine(), ds.config, ds.as_of)
    # solved at least once: L1 = C, E, F (E reopened) -> 1 / 3; L2 = A, B -> 0 / 2 (D never solved)
    assert re.loc["L1", ["solved", "reopened"]].tolist() == [3, 1] and re.loc["L1", "reopen_rate"] == 1 / 3
    assert re.loc["L2", "reopen_rate"] == 0.0
    from_events = escalation.reopen_rate(
        from_frames({"tickets": ds.tickets.drop(columns="reopened"), "ticket_events": ds.ticket_events}), ds.config, ds.as_of)
    assert from_events.loc["L1", "reopened"] == 1


def test_load_from_agents_table_and_from_resolving_agents(ds, eng):
    days = pd.date_range("2026-01-10", "2026-01-10")
    assert workload.report_days(eng, ds.config, ds.as_of)[[0, -1]].tolist() == [pd.Timestamp("2026-01-10"),
                                                                              pd.Timestamp("2026-01-31")]
    daily = workload.daily_load(eng, ds.config, ds.as_of, days)
    table = workload.load_table(daily, ds.config)
    # 2026-01-10: resolved L1 = C, E, F (3) by agents on duty a1, a2 (z9 left the day before) -> 1.5
    # L2 = A, B (2) by b1 -> 2.0; L1.5 resolved nothing with c1 on duty -> 0.0
    assert table["resolved_per_agent_day"].tolist() == [1.5, 0.0, 2.0]
    no_agents = from_frames({"tickets": ds.tickets, "ticket_events": ds.ticket_events})
    seen = workload.load_table(workload.daily_load(no_agents, ds.config, ds.as_of, days), ds.config)
    # without the agents table: L1 resolvers {a2, a1} = 2 -> 1.5; L2 {b1} -> 2.0; L1.5 nobody -> null
    assert seen.loc["L1", "resolved_per_agent_day"] == 1.5 and np.isnan(seen.loc["L1.5", "resolved_per_agent_day"])


def test_working_days_follow_business_calendar():
    from analysis.data.config import Config, BusinessHours, Tier
    cfg = Config(tiers=[Tier(id="L1")], business_hours=BusinessHours(
        timezone="Europe/Moscow", days=["mon", "tue", "wed", "thu", "fri"], start="09:00", end="18:00",
        holidays=["2026-01-07"]))
    days = workload.working_days(pd.Timestamp("2026-01-05"), pd.Timestamp("2026-01-11"), cfg)
    # Mon 5 .. Sun 11: Mon, Tue, Thu, Fri (Wed 7 is a holiday, the weekend is off)
    assert [d.day for d in days] == [5, 6, 8, 9]


def test_backlog_at_day_end(ds, eng):
    with_events = workload.backlog_daily(eng, ds.config, ds.as_of)
    without = workload.backlog_daily(from_frames({"tickets": ds.tickets}), ds.config, ds.as_of)
    # days 2026-01-10 .. 2026-01-31; every ticket of Jan 10 resolved the same day -> 0 at its end
    assert with_events.index[0] == pd.Timestamp("2026-01-10") and with_events.index[-1] == pd.Timestamp("2026-01-31")
    assert with_events.loc["2026-01-10"].sum() == 0
    # D, created Jan 31 10:00 and handed to L2 at 11:00, is open at the end of Jan 31: in L2 with events,
    # in its entry tier L1 without them
    assert with_events.loc["2026-01-31"].to_dict() == {"L1": 0, "L1.5": 0, "L2": 1}
    assert without.loc["2026-01-31"].to_dict() == {"L1": 1, "L1.5": 0, "L2": 0}


def test_segments_do_not_depend_on_the_rows_order(ds, segments):
    # the engine has no row order: the same segments from shuffled tickets and events
    shuffled = from_frames({"tickets": ds.tickets.iloc[[3, 0, 5, 1, 4, 2]],
                            "ticket_events": ds.ticket_events.iloc[::-1]})
    pd.testing.assert_frame_equal(segments_of(shuffled, ds.config, ds.as_of), segments, check_exact=True)


@pytest.mark.parametrize("order", [[0, 1, 2], [2, 1, 0]])
def test_ties_at_one_instant_follow_the_ladder(ds, order):
    # A's entry (L1) and three assignments at 10:00: L2, L1.5 and L1, in either table order:
    # the entry first, then the assignments in ladder order (L1 merged with the entry, L1.5 for
    # 0 minutes, then L2 until the 12:00 resolution)
    moves = [ev("A", D + "10:00Z", "assigned", tier, agent) for tier, agent in (("L2", "b1"), ("L1.5", "c1"), ("L1", "a1"))]
    tied = pd.concat([ds.ticket_events[ds.ticket_events["ticket_id"] != "A"],
                      pd.DataFrame([moves[i] for i in order]).assign(at=lambda f: pd.to_datetime(f["at"], utc=True))],
                     ignore_index=True)
    eng = from_frames({"tickets": ds.tickets, "ticket_events": tied})
    seg = segments_of(eng, ds.config, ds.as_of)
    a = seg[seg["ticket_id"] == "A"]
    assert a["tier"].tolist() == [0, 1, 2] and a["ownership_min"].tolist() == [0.0, 0.0, 120.0]
    # agents at the same instant in ladder order of their tiers: a1, c1, b1 -> 3 stations
    r = escalation.reassignments(eng, ds.config, ds.as_of).loc["L1"]
    assert r["assignee_stations_mean"] == (3 + 3 + 2 + 2 + 1) / 5


def test_a_step_outside_the_ladder_leaves_the_path_as_it_is(ds):
    tickets = ds.tickets.copy()
    tickets.loc[tickets["ticket_id"] == "B", "first_tier"] = "X"          # B: X -> L1 -> L1.5 -> L2
    events = ds.ticket_events.copy()
    events.loc[(events["ticket_id"] == "A") & (events["tier"] == "L2"), "tier"] = None   # A: L1 -> (none)
    paths = escalation.tier_paths(from_frames({"tickets": tickets, "ticket_events": events}), ds.config, ds.as_of)
    # A and C, E: L1; B: L1 → L1.5 → L2 (X left out); D: L1 → L2
    assert paths.to_dict() == {"L1": 3, "L1 → L1.5 → L2": 1, "L1 → L2": 1}
