"""First response, SLA, resolution and CSAT per tier: hand-computed cases and properties."""
from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings, strategies as st

from analysis import load_dataset
from analysis.data.config import Config, Tier
from analysis.data.engine import from_frames
from analysis.support import csat, sla, overview
from conftest import write_dir

AS_OF = pd.Timestamp("2026-02-01", tz="UTC")
CONFIG = Config(tiers=[Tier(id="L1", first_response_target_min=30, resolution_target_min=120,
                            first_response_target_by_priority_min={"urgent": 10}),
                       Tier(id="L2", first_response_target_min=60, resolution_target_min=480),
                       Tier(id="FIN")])


def dataset(tmp_path, rows: list[dict], config=CONFIG):
    """Tickets (text, as in a CSV export) loaded through the real contract and as-of rules."""
    cols = ["ticket_id", "created_at", "channel", "first_tier", "first_response_at", "resolved_at",
            "final_tier", "agent_id", "priority", "csat_score", "reopened"]
    frame = pd.DataFrame(rows).reindex(columns=cols)
    d = write_dir(tmp_path / "d", {"tickets": frame})
    cfg = tmp_path / "c.yaml"
    import yaml
    cfg.write_text(yaml.safe_dump(config.model_dump(mode="json", exclude_none=True)))
    return load_dataset(d, cfg, "2026-02-01")


def t(i, created="2026-01-10T10:00:00Z", fr=None, res=None, first="L1", final=None, **kw):
    return {"ticket_id": f"t{i}", "created_at": created, "channel": kw.pop("channel", "chat"), "first_tier": first,
            "first_response_at": fr, "resolved_at": res, "final_tier": final, **kw}


def test_sla_status_rule_at_the_edges():
    # 30 <= 30 achieved; 31 > 30 breached; none yet, elapsed 31 > 30 breached; none, elapsed 30 active
    # and no target: neither achieved nor breached, whatever the time
    eng = from_frames({"x": pd.DataFrame({"row": range(5), "d": [30.0, 31.0, np.nan, np.nan, 5.0],
                                          "target": [30.0, 30.0, 30.0, 30.0, np.nan],
                                          "elapsed": [100.0, 100.0, 31.0, 30.0, 100.0]})})
    x = eng.table("x")
    out = eng.frame(x.select("row", s=sla.status_expr(x.d, x.target, x.elapsed)).order_by("row"))["s"]
    assert out.astype("Int64").tolist() == [1, 0, 0, pd.NA, pd.NA]


def test_first_response_sla_per_tier_with_priority_target(tmp_path):
    ds = dataset(tmp_path, [
        t(1, fr="2026-01-10T10:20:00Z", res="2026-01-10T11:00:00Z"),                 # 20 <= 30 achieved
        t(2, fr="2026-01-10T10:45:00Z", res="2026-01-10T13:00:00Z"),                 # 45 > 30 breached
        t(3, fr="2026-01-10T10:20:00Z", priority="urgent"),                          # 20 > 10 (urgent) breached
        t(4, created="2026-01-31T23:50:00Z"),                                        # none, 10 min to as-of: active
        t(5, created="2026-01-20T10:00:00Z"),                                        # none, 12 days: breached
        t(6, first="L2", fr="2026-01-10T11:00:00Z", res="2026-01-10T12:00:00Z"),     # 60 <= 60 achieved
        t(7, first="FIN", fr="2026-01-10T10:05:00Z"),                                # FIN has no target
    ])
    table = sla.sla_table(ds.engine(), ds.config, ds.as_of)
    assert table.loc["L1", ["tickets", "achieved", "breached", "active", "no_target"]].tolist() == [5, 1, 3, 1, 0]
    assert table.loc["L1", "sla_achieved"] == 1 / 4            # achieved / (achieved + breached)
    assert table.loc["L2", "sla_achieved"] == 1.0
    assert table.loc["FIN", "no_target"] == 1 and np.isnan(table.loc["FIN", "sla_achieved"])


def test_summary_lists_every_tier_with_zero_counts_and_null_rates(tmp_path):
    ds = dataset(tmp_path, [
        t(1, fr="2026-01-10T10:10:00Z", res="2026-01-10T11:30:00Z", final="L2", csat_score="5"),   # 10 / 90
        t(2, fr="2026-01-10T10:20:00Z", res="2026-01-10T10:50:00Z", csat_score="3"),                # 20 / 50
        t(3, fr="2026-01-10T10:40:00Z", res="2026-01-10T12:10:00Z", csat_score="good"),             # 40 / 130
        t(4, fr="2026-01-10T10:30:00Z"),                                                            # 30, open
    ])
    s = overview.tier_summary(ds.engine(), ds.config, ds.as_of)
    assert list(s.index) == ["L1", "L2", "FIN"]
    l1 = s.loc["L1"]
    # first response per entry tier: 10, 20, 40, 30 -> median (20 + 30) / 2 = 25, mean 25
    assert l1["tickets"] == 4 and l1["first_response_n"] == 4 and l1["first_response_median_min"] == 25.0
    assert l1["first_response_mean_min"] == 25.0
    # p90, linear: sorted 10, 20, 30, 40; h = 3 * 0.9 = 2.7 -> 30 + 0.7 * (40 - 30) = 37
    assert np.isclose(l1["first_response_p90_min"], 37.0)
    # resolution per resolving tier: L1 has tickets 2 (50) and 3 (130) -> median 90; L2 has ticket 1 (90)
    assert l1["resolved"] == 2 and l1["resolution_median_min"] == 90.0
    assert s.loc["L2", "resolved"] == 1 and s.loc["L2", "resolution_median_min"] == 90.0
    # CSAT per resolving tier: L1 rated "3" (not satisfied) and "good" -> 1 / 2; L2 rated 5 -> 1 / 1
    assert l1["csat_responses"] == 2 and l1["csat"] == 0.5 and l1["csat_response_rate"] == 1.0
    assert s.loc["L2", "csat"] == 1.0
    # escalation: 1 of the 4 L1 tickets ended at L2
    assert l1["escalation_rate"] == 0.25
    fin = s.loc["FIN"]
    assert fin["tickets"] == 0 and fin["resolved"] == 0 and fin["csat_responses"] == 0
    assert np.isnan(fin["first_response_median_min"]) and np.isnan(fin["csat"]) and np.isnan(fin["escalation_rate"])
    m = overview.sla_metrics(s, ds.config)["sla"]
    assert m["clock"] == "calendar" and set(m["by_tier"]) == {"L1", "L2", "FIN"}
    assert {"tickets", "first_response_median_min", "first_response_p90_min", "sla_achieved", "resolution_median_min",
            "csat", "csat_responses", "escalation_rate"} <= set(m["by_tier"]["FIN"])


def test_csat_handles_both_scales_and_wilson_interval(tmp_path):
    # resolved: 10 tickets; rated: 5, 4, "GOOD", 3, "bad", 2 -> satisfied 3 of 6; 4 not rated
    scores = ["5", "4", "GOOD", "3", "bad", "2", None, None, None, None]
    ds = dataset(tmp_path, [t(i, fr="2026-01-10T10:05:00Z", res="2026-01-10T11:00:00Z", csat_score=s)
                            for i, s in enumerate(scores)] + [t(99)])   # + an unresolved ticket
    c = csat.csat_by_tier(ds.engine(), ds.config, ds.as_of).loc["L1"]
    assert (c["resolved"], c["csat_responses"], c["satisfied"]) == (10, 6, 3)
    assert c["csat"] == 0.5 and c["response_rate"] == 0.6            # 6 rated / 10 resolved
    # Wilson 95% for 3/6: (p + z^2/2n -/+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n), z = 1.95996
    z = 1.959963984540054
    centre, half = (0.5 + z**2 / 12) / (1 + z**2 / 6), z * np.sqrt(0.25 / 6 + z**2 / 144) / (1 + z**2 / 6)
    assert np.isclose(c["csat_low"], centre - half) and np.isclose(c["csat_high"], centre + half)


def test_csat_per_agent_ranks_by_lower_bound(tmp_path):
    rows = [t(i, fr="2026-01-10T10:05:00Z", res="2026-01-10T11:00:00Z", agent_id="a", csat_score="5") for i in range(4)]
    rows += [t(10 + i, fr="2026-01-10T10:05:00Z", res="2026-01-10T11:00:00Z", agent_id="b",
               csat_score="5" if i < 2 else "1") for i in range(4)]
    ds = dataset(tmp_path, rows)
    out = csat.csat_by_agent(ds.engine(), CONFIG, ds.as_of)
    assert out.index.get_level_values("agent_id").tolist() == ["b", "a"]   # 2/4 ranks before 4/4
    assert out["csat"].tolist() == [0.5, 1.0]


def test_business_clock_in_summary_and_elapsed(tmp_path):
    from analysis.data.config import BusinessHours
    cfg = Config(tiers=CONFIG.tiers, business_hours=BusinessHours(timezone="UTC", days=["mon", "tue", "wed", "thu", "fri"],
                                                                  start="09:00", end="18:00"))
    # Fri 2026-01-09 17:50 created, answered Mon 09:30: business 10 + 30 = 40 min (> 30: breached)
    ds = dataset(tmp_path, [t(1, created="2026-01-09T17:50:00Z", fr="2026-01-12T09:30:00Z")], config=cfg)
    times = sla.ticket_times(ds.tickets, ds.config, ds.as_of)
    assert times["first_response_min"].iloc[0] == 40.0
    assert sla.ticket_times(ds.tickets, ds.config, ds.as_of, business=False)["first_response_min"].iloc[0] == 3820.0
    assert overview.sla_metrics(overview.tier_summary(ds.engine(), ds.config, ds.as_of), ds.config)["sla"]["clock"] == "business"
    durations = overview.duration_table(ds.engine(), ds.config, ds.as_of)
    assert durations.loc[("first response", "business", "L1"), "median_min"] == 40.0
    assert durations.loc[("first response", "calendar", "L1"), "median_min"] == 3820.0


minutes_or_none = st.one_of(st.none(), st.integers(min_value=0, max_value=5000))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["L1", "L2", "FIN"]), st.sampled_from(["L1", "L2", "FIN"]),
                          minutes_or_none, minutes_or_none, st.integers(min_value=0, max_value=40000),
                          st.one_of(st.none(), st.sampled_from(["1", "3", "5", "good"]))),
                min_size=0, max_size=30))
def test_properties_counts_sum_and_rates_in_unit_interval(rows):
    base = AS_OF - pd.Timedelta(minutes=40000)
    frame = pd.DataFrame({
        "ticket_id": pd.array([f"t{i}" for i in range(len(rows))], dtype="string"),
        "created_at": pd.Series([base + pd.Timedelta(minutes=r[4]) for r in rows], dtype="datetime64[ns, UTC]"),
        "first_tier": pd.array([r[0] for r in rows], dtype="string"),
        "final_tier": pd.array([r[1] for r in rows], dtype="string"),
        "first_response_at": pd.Series([base + pd.Timedelta(minutes=r[4] + r[2]) if r[2] is not None else pd.NaT
                                        for r in rows], dtype="datetime64[ns, UTC]"),
        "resolved_at": pd.Series([base + pd.Timedelta(minutes=r[4] + r[3]) if r[3] is not None else pd.NaT
                                  for r in rows], dtype="datetime64[ns, UTC]"),
        "csat_satisfied": pd.array([None if r[5] is None else r[5] in ("5", "good") for r in rows], dtype="boolean"),
    })
    frame["first_response_at"] = frame["first_response_at"].where(frame["first_response_at"] < AS_OF)
    frame["resolved_at"] = frame["resolved_at"].where(frame["resolved_at"] < AS_OF)
    eng = from_frames({"tickets": frame})
    s = overview.tier_summary(eng, CONFIG, AS_OF)
    assert s["tickets"].sum() == len(frame)
    assert (s["sla_achieved_count"] + s["sla_breached"] + s["sla_active"]
            + sla.sla_table(eng, CONFIG, AS_OF)["no_target"] == s["tickets"]).all()
    assert s["resolved"].sum() == frame["resolved_at"].notna().sum()
    for col in ("sla_achieved", "csat", "escalation_rate", "csat_response_rate", "resolution_sla_achieved"):
        v = s[col].dropna()
        assert ((v >= 0) & (v <= 1)).all(), col
    ch = sla.sla_table(from_frames({"tickets": frame.assign(channel_kind=pd.array(["text"] * len(frame), dtype="string"))}), CONFIG, AS_OF, split=("channel_kind",))
    assert ch["tickets"].sum() == len(frame)
