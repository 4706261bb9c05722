"""The pieces that make a run scale: the run's validated snapshot, the generator's scale
profile, the calendar arithmetic on int64 and the models' stratified sample. Same results as
before is the point of each; no timing is asserted here (the benchmark prints timings)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.retention import months, survival
from analysis.data.dataset import load_dataset, save_snapshot
from analysis.tools.generate import PARAMS, PROFILES, build_tables, profile_params
from conftest import ROOT, base_tables, write_dir


# ------------------------------------------------------------------ the run's snapshot
def _same(a, b):
    assert sorted(a.tables) == sorted(b.tables)
    for name in a.tables:
        pd.testing.assert_frame_equal(a.tables[name], b.tables[name], check_exact=True)
    assert a.accounting == b.accounting
    assert (a.as_of, a.data_range) == (b.as_of, b.data_range)


def test_snapshot_gives_the_same_dataset(sample_dir, tmp_path):
    fresh = load_dataset(sample_dir)
    snap = save_snapshot(fresh, tmp_path / "snap")
    (snap / "clients.parquet").rename(snap / "moved.parquet")  # prove that a hit reads the snapshot ...
    lazy = load_dataset(sample_dir, snapshot=snap)             # tables are read on first use
    assert "clients" in lazy.tables and lazy.has("clients", "payments")
    with pytest.raises(FileNotFoundError):
        lazy.clients
    (snap / "moved.parquet").rename(snap / "clients.parquet")
    served = load_dataset(sample_dir, snapshot=snap)           # ... and that it holds the same data
    _same(fresh, served)
    assert served.as_of_source == "data"
    # the runner passes the as-of it found as a date: still served, now "given"
    given_day = load_dataset(sample_dir, None, fresh.as_of_date, snapshot=snap)
    _same(fresh, given_day)
    assert given_day.as_of_source == "given"
    # without the snapshot named, the data is read again (the snapshot's clients file is not used)
    (snap / "clients.parquet").unlink()
    assert len(load_dataset(sample_dir).clients) == len(fresh.clients)


def test_snapshot_is_ignored_when_the_request_differs(tmp_path):
    data = write_dir(tmp_path / "d", base_tables())
    snap = save_snapshot(load_dataset(data), tmp_path / "snap")
    (snap / "clients.parquet").unlink()  # any load served from the snapshot fails on .clients now
    # another as-of: loaded afresh, one payment (2026-01-05) is after it
    other = load_dataset(data, None, "2026-01-04", snapshot=snap)
    assert other.accounting["payments"]["set_aside"] == 1 and len(other.clients) == 2
    # another config (one target changed): loaded afresh
    text = (ROOT / "config" / "default.yaml").read_text().replace("first_response_target_min: 30", "first_response_target_min: 31", 1)
    (tmp_path / "c.yaml").write_text(text)
    assert len(load_dataset(data, tmp_path / "c.yaml", snapshot=snap).clients) == 2
    # a changed file: loaded afresh, the new row is seen
    tables = base_tables()
    tables["clients"] = pd.concat([tables["clients"], pd.DataFrame({"client_id": ["009"], "signed_up_at": ["2026-01-03"]})])
    write_dir(data, tables)
    assert len(load_dataset(data, snapshot=snap).clients) == 3


# ------------------------------------------------------------------ generator profiles
def test_sample_profile_is_the_calibrated_world():
    assert PROFILES["sample"] == {}
    assert profile_params("sample") == PARAMS
    a, _ = build_tables(300, 5)
    b, _ = build_tables(300, 5, "sample")
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name])
    with pytest.raises(ValueError, match="unknown generator profile"):
        profile_params("huge")


def test_scale_profile_has_the_design_volumes():
    """DESIGN §8: about 20 payments and 5 tickets per client (at 1M: 21.0M and 5.2M)."""
    tables, truth = build_tables(4_000, 3, "scale")
    per_client = {k: len(v) / 4_000 for k, v in tables.items()}
    assert 17 <= per_client["payments"] <= 23
    assert 4.2 <= per_client["tickets"] <= 5.8
    assert truth["profile"] == "scale" and truth["parameters"]["topups_per_month"] == 1.4


# ------------------------------------------------------------------ calendar months on int64
def _slow_add(t: pd.Series, k: np.ndarray) -> pd.Series:
    return pd.Series([x + pd.DateOffset(months=int(j)) if x is not pd.NaT else pd.NaT for x, j in zip(t, k)],
                     index=t.index, dtype=t.dtype)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40 * 365 * 86_400), st.integers(-40, 40)), min_size=1, max_size=30),
       st.booleans())
def test_add_months_equals_dateoffset(rows, aware):
    secs, k = zip(*rows)
    ns = np.array(secs, dtype="int64") * 10**9 + pd.Timestamp("1990-01-01").value
    t = pd.Series(pd.to_datetime(ns, utc=aware))
    k = np.array(k)
    pd.testing.assert_series_equal(months.add_months(t, k), _slow_add(t, k))
    back = months.months_between(t, months.add_months(t, k))
    # the largest m with start + m months <= time: k itself, or more when the day was clamped
    assert (back >= k).all() and (months.add_months(t, back) <= months.add_months(t, k)).all()


def test_add_months_keeps_nat_and_clamps_hand_cases():
    t = pd.Series(pd.to_datetime(["2024-01-31 23:59:59", None, "2023-03-31 06:00:00"], utc=True))
    out = months.add_months(t, [1, 1, -1])
    assert out.iloc[0] == pd.Timestamp("2024-02-29 23:59:59", tz="UTC")   # leap year, time kept
    assert out.isna().iloc[1]
    assert out.iloc[2] == pd.Timestamp("2023-02-28 06:00", tz="UTC")
    # Jan 31 + 1 month = Feb 29; Feb 29 is month 0 of age, Mar 1 is still month 1 from Jan 31
    s = pd.Series(pd.to_datetime(["2024-01-31", "2024-01-31", "2024-01-31"], utc=True))
    u = pd.Series(pd.to_datetime(["2024-02-28", "2024-02-29", "2024-03-31"], utc=True))
    assert months.months_between(s, u).tolist() == [0, 1, 2]


# ------------------------------------------------------------------ models on a sample
def _life(n: int, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    idx = pd.Index([f"c{i}" for i in range(n)], name="client_id")
    life = pd.DataFrame({"duration_days": rng.exponential(200, n), "churned": rng.random(n) < 0.3}, index=idx)
    early = pd.Series(np.where(rng.random(n) < 0.2, "contacted", "not_contacted"), index=idx)
    return life, early


def test_model_sample_keeps_everyone_below_the_cap():
    life, early = _life(500)
    assert survival.model_sample(life, early, 500, 1) is life
    assert survival.model_sample(life, early, 0, 1) is life
    assert "all 500" in survival.model_sample_note(500, 500, 1)


def test_model_sample_is_stratified_proportional_and_seeded():
    life, early = _life(10_000)
    a = survival.model_sample(life, early, 2_000, 1)
    b = survival.model_sample(life, early, 2_000, 1)
    assert a.index.equals(b.index)
    assert not a.index.equals(survival.model_sample(life, early, 2_000, 2).index)
    # 4 strata, each rounded: at most 2 off the cap; the mix of every stratum kept to rounding
    assert abs(len(a) - 2_000) <= 2
    key_all = life["churned"].astype(str) + early
    key_a = a["churned"].astype(str) + early.reindex(a.index)
    expected = (key_all.value_counts() * 0.2).round()
    pd.testing.assert_series_equal(key_a.value_counts().sort_index(), expected.astype("int64").sort_index(),
                                   check_names=False)
    assert "sample of 2,000 of the 10,000" in survival.model_sample_note(10_000, 2_000, 1)


def test_duplicate_table_hashes_only_tables_without_a_unique_id(tmp_path):
    from analysis.data import quality
    tables = base_tables()
    ev = pd.DataFrame({"ticket_id": ["t1", "t1", "t1"], "at": ["2026-01-04T09:05:00Z"] * 3,
                       "event": ["assigned", "assigned", "agent_reply"], "tier": ["L1"] * 3})
    tables["ticket_events"] = ev
    dup = quality.duplicate_table(load_dataset(write_dir(tmp_path, tables)).engine())
    got = dup["identical rows (beyond the first)"].to_dict()
    # events: rows 1 and 2 are identical -> 1 beyond the first; tables with unique ids: 0
    assert got == {"clients": 0, "payments": 0, "tickets": 0, "ticket_events": 1}


@pytest.mark.parametrize("sigma", [1.0, 2.0, 3.0])
def test_mean_replicates_limit_matches_the_bootstrap_above_the_threshold(sigma):
    # lognormal money and durations: sigma 1 is a moderate tail, 2 a heavy one (mean skewness
    # g = 0.49: the plain normal limit was 4.9% of the width off, the skew-corrected one is within
    # the noise), 3 heavier (g = 0.90, past SKEW_LIMIT: resampled for real)
    from analysis import stats
    rng = np.random.default_rng(0)
    x = rng.lognormal(0, sigma, stats.NORMAL_LIMIT_N + 10_000)
    n = len(x)
    boot = np.concatenate([x[rng.integers(0, n, size=(100, n))].mean(axis=1) for _ in range(30)])  # 3,000
    limit = stats.mean_replicates(x, 4_000, np.random.default_rng(1))
    (lb, hb), (ln, hn) = np.percentile(boot, [2.5, 97.5]), np.percentile(limit, [2.5, 97.5])
    assert abs(lb - ln) < 0.04 * (hb - lb) and abs(hb - hn) < 0.04 * (hb - lb)
    assert abs(np.median(limit) - np.median(boot)) < 0.04 * (hb - lb)


def test_mean_replicates_resample_for_real_where_the_skew_is_beyond_the_expansion():
    from analysis import stats
    x = np.ones(stats.NORMAL_LIMIT_N + 1)
    x[0] = 1e9                       # one huge value: sample skewness ~ sqrt(n), so g ~ 1
    g = np.mean(((x - x.mean()) / x.std()) ** 3) / np.sqrt(len(x))
    assert g > stats.SKEW_LIMIT
    r1 = stats.mean_replicates(x, 20, np.random.default_rng(5))
    r2 = x[np.random.default_rng(5).integers(0, len(x), size=(20, len(x)))].mean(axis=1)
    assert np.allclose(r1, r2)
    # below the threshold it is the plain bootstrap: the same draws as resampling by hand
    small = x[:1000]
    r1 = stats.mean_replicates(small, 50, np.random.default_rng(5))
    g = np.random.default_rng(5)
    r2 = small[g.integers(0, 1000, size=(50, 1000))].mean(axis=1)
    assert np.allclose(r1, r2)


# ------------------------------------------------------------------ engine counts against pandas
TEXT = pd.StringDtype("pyarrow")


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["L3", "L1", "L10", "L2"]), st.integers(0, 5), st.integers(0, 10**6)),
                min_size=1, max_size=25))
def test_stage_times_equal_the_first_call_per_lead_and_stage(rows):
    # the engine's first call per (lead, stage), widened, against pandas' groupby minimum
    from analysis.sales import conveyor
    from analysis.data.engine import from_frames
    calls = pd.DataFrame({"lead_id": pd.Series([r[0] for r in rows], dtype=TEXT),
                          "stage": pd.Series([conveyor.STAGES[r[1]] for r in rows], dtype=TEXT),
                          "started_at": pd.to_datetime([r[2] * 10**9 for r in rows], utc=True)})
    times = conveyor.stage_times(from_frames({"calls": calls}))
    ref = calls.groupby(["lead_id", "stage"])["started_at"].min()
    for (lead, stage), at in ref.items():
        assert times.loc[lead, stage] == at
    assert times.notna().drop(columns="depth").to_numpy().sum() == len(ref)
    assert times.index.tolist() == sorted(set(calls["lead_id"]))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["x", "y", None]), st.sampled_from([1.0, -0.0, 0.0, np.nan]),
                          st.sampled_from([0, 10**15, None]), st.integers(0, 2)), max_size=25))
def test_identical_rows_equals_pandas_duplicated(rows):
    # the engine's count (rows - distinct rows) is pandas' duplicated().sum(): empty values equal
    from analysis.data.engine import connect, from_frames
    from analysis.data.quality import identical_rows
    f = pd.DataFrame(rows, columns=["a", "b", "t", "i"]) if rows else pd.DataFrame(
        {"a": [], "b": [], "t": [], "i": []})
    f = f.astype({"a": TEXT, "b": "float64", "i": "int64"})
    f["t"] = pd.to_datetime(f["t"], utc=True)
    f["b"] = f["b"] + 0.0   # -0.0 as 0.0: a validated amount is never -0.0 apart from 0.0
    eng = from_frames({"x": f}, connect("duckdb"))
    assert identical_rows(eng, eng.table("x")) == int(f.duplicated().sum())


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["t1", "t2"]), st.sampled_from([0, 60]), st.sampled_from(["created", "assigned"]),
                          st.sampled_from(["L1", "L2"]), st.sampled_from(["a1", "a2", None, "\x1e"])), max_size=25))
def test_identical_events_equal_pandas_duplicated(rows):
    # rows whose fingerprint repeats are grouped in full; an agent named U+001E (the text an empty
    # value is fingerprinted as) shares the empty agent's fingerprint and is still told apart
    from analysis.data.engine import connect, from_frames
    from analysis.data.quality import identical_rows
    f = pd.DataFrame(rows, columns=["ticket_id", "at", "event", "tier", "agent_id"]).astype(
        {"ticket_id": TEXT, "event": TEXT, "tier": TEXT, "agent_id": TEXT, "at": "int64"})
    f["at"] = pd.Timestamp("2025-01-01", tz="UTC") + pd.to_timedelta(f["at"], unit="s")
    eng = from_frames({"ticket_events": f}, connect("duckdb"))
    assert identical_rows(eng, eng.table("ticket_events")) == int(f.duplicated().sum())


def test_rows_whose_fingerprints_collide_are_not_counted_identical():
    # two different events of the 1M-client set that DuckDB's hash gives one fingerprint: the
    # second query compares them column by column -> 0 identical; a true copy of one -> 1
    from analysis.data.engine import connect, from_frames
    from analysis.data.quality import identical_rows, row_fingerprint
    f = pd.DataFrame({"ticket_id": ["T1759322", "T1759329"], "at": pd.to_datetime(["2025-03-04 10:38:56", "2025-03-04 10:48:56"], utc=True),
                      "event": ["agent_reply"] * 2, "tier": ["L1"] * 2, "agent_id": ["A005", "A003"]}).astype(
        {c: TEXT for c in ("ticket_id", "event", "tier", "agent_id")})
    eng = from_frames({"ticket_events": f, "copied": pd.concat([f, f.iloc[[0]]])}, connect("duckdb"))
    t = eng.table("ticket_events")
    assert eng.frame(t.select(h=row_fingerprint(t)))["h"].nunique() == 1
    assert identical_rows(eng, t) == 0
    assert identical_rows(eng, eng.table("copied")) == 1


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(["p1", "p2", "p3", "p10", None]), min_size=1, max_size=12))
def test_contract_unique_rule_marks_every_row_of_a_repeated_id(tmp_path_factory, values):
    # the engine's uniqueness rule counts every row of a repeated id (pandas: duplicated(keep=False)),
    # nulls apart (they are the required-value rule's), and shows the first five of them
    from analysis import DataError
    t = base_tables()
    t["payments"] = pd.DataFrame({"payment_id": values, "client_id": "007", "paid_at": "2026-01-02", "amount": "10"})
    s = pd.Series(values, dtype=TEXT)
    repeated = s.notna() & s.duplicated(keep=False)
    try:
        load_dataset(write_dir(tmp_path_factory.mktemp("d"), t))
        found = []
    except DataError as err:
        found = [p for p in err.problems if p.rule == "payment_id must be unique; duplicated values"]
    assert sum(p.count for p in found) == int(repeated.sum())
    if found:
        lines = [int(e.split(":")[0].removeprefix("line ")) for e in found[0].examples]
        assert lines == [i + 2 for i in np.flatnonzero(repeated.to_numpy())[:5]]
