"""The pieces that make a run scale: the run's validated snapshot, the generator's scale
profile, the calendar arithmetic on int64 and the models' stratified sample. Same results as
before is the point of each; no timing is asserted here (the benchmark prints timings)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis import months, survival
from analysis.dataset import SNAPSHOT_ENV, load_dataset, save_snapshot
from analysis.generate import PARAMS, PROFILES, build_tables, profile_params
from conftest import ROOT, base_tables, write_dir


# ------------------------------------------------------------------ the run's snapshot
def _same(a, b):
    assert sorted(a.tables) == sorted(b.tables)
    for name in a.tables:
        pd.testing.assert_frame_equal(a.tables[name], b.tables[name], check_exact=True)
    assert a.accounting == b.accounting
    assert (a.as_of, a.data_range) == (b.as_of, b.data_range)


def test_snapshot_gives_the_same_dataset(sample_dir, tmp_path, monkeypatch):
    fresh = load_dataset(sample_dir)
    snap = save_snapshot(fresh, tmp_path / "snap")
    monkeypatch.setenv(SNAPSHOT_ENV, str(snap))
    (snap / "clients.arrow").rename(snap / "moved.arrow")  # prove that a hit reads the snapshot ...
    lazy = load_dataset(sample_dir)                            # tables are read on first use
    assert "clients" in lazy.tables and lazy.has("clients", "payments")
    with pytest.raises(FileNotFoundError):
        lazy.clients
    (snap / "moved.arrow").rename(snap / "clients.arrow")
    served = load_dataset(sample_dir)                          # ... and that it holds the same data
    _same(fresh, served)
    assert served.as_of_source == "data"
    # the runner passes the as-of it found as a date: still served, now "given"
    given_day = load_dataset(sample_dir, None, fresh.as_of_date)
    _same(fresh, given_day)
    assert given_day.as_of_source == "given"


def test_snapshot_hands_over_the_reference_positions(sample_dir, tmp_path, monkeypatch):
    """Each kept reference column's positions equal a fresh lookup, and a served dataset answers
    ``keys.codes`` on those columns (and on a subset of the target) from them, not by hashing."""
    from analysis import keys
    from analysis.dataset import KEYED
    assert set(KEYED) == {("payments", "client_id"), ("tickets", "client_id"), ("outreach", "client_id"),
                          ("usage", "client_id"), ("ticket_events", "ticket_id"),
                          ("calls", "lead_id")}  # targets are unique ids
    fresh = load_dataset(sample_dir)
    expected = {ref: keys.codes(fresh.tables[ref[0]][ref[1]].to_numpy(dtype=object),
                                pd.Index(fresh.tables[t[0]][t[1]].to_numpy(dtype=object)))
                for ref, t in KEYED.items()}  # object columns: the pandas path, nothing kept
    snap = save_snapshot(fresh, tmp_path / "snap")
    assert sorted(p.name for p in snap.glob("*.keys.arrow")) == sorted(f"{t}.{c}.keys.arrow" for t, c in KEYED)
    monkeypatch.setenv(SNAPSHOT_ENV, str(snap))
    served = load_dataset(sample_dir)
    def boom(*args, **kwargs):
        raise AssertionError("hashed again")
    monkeypatch.setattr(keys.pc, "index_in", boom)
    for (table, col), (target, target_col) in KEYED.items():
        got = keys.codes(served.tables[table][col], served.tables[target][target_col])
        assert got.dtype == np.int64 and got.tolist() == expected[(table, col)].tolist(), (table, col)
        got[:1] = -7  # the caller's own copy: the kept positions are not changed
        assert keys.codes(served.tables[table][col], served.tables[target][target_col]).tolist() == \
            expected[(table, col)].tolist()
    monkeypatch.undo()
    # a subset of clients (every third): translated from the kept positions, same as a fresh lookup
    some = served.clients["client_id"].iloc[::3].reset_index(drop=True)
    want = pd.Index(some.to_numpy(dtype=object)).get_indexer(served.payments["client_id"].to_numpy(dtype=object))
    assert keys.codes(served.payments["client_id"], some).tolist() == want.tolist()


@pytest.mark.parametrize("as_of", [None, "2025-03-01"])  # the data's own as-of; one that sets rows aside
def test_loaded_dataset_keeps_the_positions_the_reference_rule_found(sample_dir, as_of, monkeypatch):
    """Positions from validation, after the as-of cut renumbers both sides, equal a fresh
    lookup on the rows used (empty client ids: -1), and keys.codes answers from them."""
    from analysis import keys
    from analysis.dataset import KEYED
    ds = load_dataset(sample_dir, None, as_of)
    if as_of:
        assert ds.accounting["tickets"]["set_aside"] > 0 and ds.accounting["ticket_events"]["set_aside"] > 0
    assert set(ds.positions) == set(KEYED)
    def boom(*args, **kwargs):
        raise AssertionError("hashed again")
    for (table, col), (target, target_col) in KEYED.items():
        values, universe = ds.tables[table][col], ds.tables[target][target_col]
        want = pd.Index(universe.to_numpy(dtype=object)).get_indexer(values.to_numpy(dtype=object))
        assert ds.positions[(table, col)].dtype == np.int32 and ds.positions[(table, col)].tolist() == want.tolist()
        with monkeypatch.context() as m:
            m.setattr(keys.pc, "index_in", boom)
            assert keys.codes(values, universe).tolist() == want.tolist(), (table, col)
    assert (ds.positions[("tickets", "client_id")] == -1).sum() == ds.tickets["client_id"].isna().sum() > 0


def test_remember_checks_its_input():
    from analysis import keys
    text = pd.StringDtype("pyarrow")
    values, universe = pd.Series(["b", "a", "z"], dtype=text), pd.Series(["a", "b"], dtype=text)
    with pytest.raises(ValueError, match="2 positions for 3 values"):
        keys.remember(values, universe, np.array([1, 0], dtype=np.int32))
    keys.remember(values, universe, np.array([1, 0, -1], dtype=np.int32))
    assert keys.codes(values, universe).tolist() == [1, 0, -1]
    keys.remember(values.astype(object), universe.astype(object), np.array([9, 9, 9]))  # not Arrow: ignored
    assert keys.codes(values.astype(object), universe.astype(object)).tolist() == [1, 0, -1]


def test_snapshot_is_ignored_when_the_request_differs(tmp_path, monkeypatch):
    data = write_dir(tmp_path / "d", base_tables())
    snap = save_snapshot(load_dataset(data), tmp_path / "snap")
    monkeypatch.setenv(SNAPSHOT_ENV, str(snap))
    (snap / "clients.arrow").unlink()  # any load served from the snapshot fails on .clients now
    # another as-of: loaded afresh, one payment (2026-01-05) is after it
    other = load_dataset(data, None, "2026-01-04")
    assert other.accounting["payments"]["set_aside"] == 1 and len(other.clients) == 2
    # another config (one target changed): loaded afresh
    text = (ROOT / "config" / "default.yaml").read_text().replace("first_response_target_min: 30", "first_response_target_min: 31", 1)
    (tmp_path / "c.yaml").write_text(text)
    assert len(load_dataset(data, tmp_path / "c.yaml").clients) == 2
    # a changed file: loaded afresh, the new row is seen
    tables = base_tables()
    tables["clients"] = pd.concat([tables["clients"], pd.DataFrame({"client_id": ["009"], "signed_up_at": ["2026-01-03"]})])
    write_dir(data, tables)
    assert len(load_dataset(data).clients) == 3


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
    from analysis import quality
    tables = base_tables()
    ev = pd.DataFrame({"ticket_id": ["t1", "t1", "t1"], "at": ["2026-01-04T09:05:00Z"] * 3,
                       "event": ["assigned", "assigned", "agent_reply"], "tier": ["L1"] * 3})
    tables["ticket_events"] = ev
    dup = quality.duplicate_table(load_dataset(write_dir(tmp_path, tables)))
    got = dup["identical rows (beyond the first)"].to_dict()
    # events: rows 1 and 2 are identical -> 1 beyond the first; tables with unique ids: 0
    assert got == {"clients": 0, "payments": 0, "tickets": 0, "ticket_events": 1}


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-20 * 365 * 86_400, 60 * 365 * 86_400), min_size=1, max_size=40), st.booleans())
def test_month_label_equals_strftime(secs, aware):
    t = pd.Series(pd.to_datetime(np.array(secs, dtype="int64") * 10**9, utc=aware))
    t.iloc[0] = pd.NaT
    pd.testing.assert_series_equal(months.month_label(t), t.dt.strftime("%Y-%m"))


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


# ------------------------------------------------------------------ integer keys and their helpers
TEXT = pd.StringDtype("pyarrow")


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "c", "d", None]), max_size=40),
       st.lists(st.sampled_from(["a", "b", "c", "e"]), unique=True, max_size=4))
def test_codes_equals_get_indexer_also_through_a_kept_wider_universe(values, universe):
    from analysis import keys
    v = pd.Series(values, dtype=TEXT)
    wide = pd.Index(["a", "b", "c", "d", "e"], dtype=TEXT)
    keys.codes(v, wide)                                       # kept: the next call may translate through it
    u = pd.Index(universe, dtype=TEXT)
    expected = pd.Index(universe, dtype=object).get_indexer(v.astype(object).where(v.notna(), None))
    got = keys.codes(v, u)
    assert got.tolist() == expected.tolist()
    assert keys.codes(v, u).tolist() == got.tolist()          # a kept result, the same answer


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "c", "d", None]), max_size=40),
       st.lists(st.sampled_from(["a", "b", "c", "e"]), unique=True, max_size=4), st.booleans())
def test_found_equals_the_found_rows_of_codes(values, universe, through):
    from analysis import keys
    v = pd.Series(values, dtype=TEXT)
    if through:
        keys.remember(v, pd.Index(["a", "b", "c", "d", "e"], dtype=TEXT),
                      pd.Index(list("abcde")).get_indexer(v.astype(object).where(v.notna(), None)).astype("int32"))
        keys.codes(v, pd.Index(["a", "b", "c", "d", "e"], dtype=TEXT))
    u = pd.Index(universe, dtype=TEXT)
    expected = pd.Index(universe, dtype=object).get_indexer(v.astype(object).where(v.notna(), None))
    rows, pos = keys.found(v, u)
    assert rows.tolist() == np.flatnonzero(expected >= 0).tolist()
    assert pos.tolist() == expected[expected >= 0].tolist()
    assert rows.dtype == pos.dtype == np.dtype("int64")


def test_found_hand_case_through_handed_over_positions():
    from analysis import keys
    clients = pd.Index(["c1", "c2", "c3", "c4"], dtype=TEXT)
    pay = pd.Series(["c3", "c1", "c3", "c4", "c2"], dtype=TEXT)
    keys.remember(pay, clients, np.array([2, 0, 2, 3, 1], dtype="int32"))  # as validation finds them
    starts = pd.Index(["c3", "c2"], dtype=TEXT)                             # a subset, in its own order
    rows, pos = keys.found(pay, starts)
    assert rows.tolist() == [0, 2, 4] and pos.tolist() == [0, 0, 1]        # c3 -> 0, c2 -> 1; c1, c4 not started
    assert keys.codes(pay, starts).tolist() == [0, -1, 0, -1, 1]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(-1, 5), st.integers(0, 4)), max_size=60))
def test_group_order_and_order_by_equal_the_stable_sorts(rows):
    from analysis import keys
    code = np.array([r[0] for r in rows], dtype="int64")
    at = np.array([r[1] for r in rows], dtype="int64")
    assert keys.group_order(code, 6).tolist() == np.argsort(code, kind="stable").tolist()
    ok = code >= 0
    assert keys.order_by(code[ok], 6, at[ok]).tolist() == np.lexsort((at[ok], code[ok])).tolist()


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(-1, 4), st.one_of(st.none(), st.integers(0, 10**6))), max_size=40),
       st.sampled_from(["UTC", "Europe/Berlin", None]), st.booleans())
def test_time_extreme_equals_the_grouped_min_and_max(rows, tz, largest):
    from analysis import keys
    code = np.array([r[0] for r in rows], dtype="int64")
    t = pd.Series(pd.to_datetime([None if r[1] is None else r[1] * 10**9 for r in rows], utc=tz is not None),
                  dtype="datetime64[ns]" if tz is None else None)
    if tz not in (None, "UTC"):
        t = t.dt.tz_convert(tz)
    grouped = t.groupby(keys.code_groups(code, 5), observed=False)
    expected = grouped.max() if largest else grouped.min()
    got = keys.time_extreme(t, code, 5, largest=largest)
    assert got.dtype == t.dtype and got.index.tolist() == [0, 1, 2, 3, 4]
    pd.testing.assert_series_equal(got, pd.Series(expected.array), check_exact=True)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["c1", "c2", "c10", None]), max_size=15), st.lists(st.sampled_from(["c1", "c2", "c3"]),
       min_size=1, max_size=3, unique=True))
def test_codes_and_neighbours_of_a_categorical_equal_those_of_its_text(values, universe):
    # activities' client_id is categorical over the starts' ids: looking it up or comparing
    # neighbours gives what the same ids as text give
    from analysis import keys
    text = pd.Series(values, dtype=TEXT)
    cat = text.astype(pd.CategoricalDtype(pd.Index(["c10", "c2", "c1"], dtype=TEXT)))
    where = pd.Index(universe, dtype=TEXT)
    assert keys.codes(cat, where).tolist() == keys.codes(text, where).tolist()
    assert keys.same_as_previous(cat).tolist() == keys.same_as_previous(text).tolist()


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["L3", "L1", "L10", "L2"]), st.integers(0, 5), st.integers(0, 10**6)),
                min_size=1, max_size=25))
def test_stage_times_equal_the_first_call_per_lead_and_stage(rows):
    # the engine's first call per (lead, stage), widened, against pandas' groupby minimum
    from analysis import conveyor
    from analysis.engine import from_frames
    calls = pd.DataFrame({"lead_id": pd.Series([r[0] for r in rows], dtype=TEXT),
                          "stage": pd.Series([conveyor.STAGES[r[1]] for r in rows], dtype=TEXT),
                          "started_at": pd.to_datetime([r[2] * 10**9 for r in rows], utc=True)})
    times = conveyor.stage_times(from_frames({"calls": calls}))
    ref = calls.groupby(["lead_id", "stage"])["started_at"].min()
    for (lead, stage), at in ref.items():
        assert times.loc[lead, stage] == at
    assert times.notna().drop(columns="depth").to_numpy().sum() == len(ref)
    assert times.index.tolist() == sorted(set(calls["lead_id"]))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(-1, 4), st.one_of(st.none(), st.integers(0, 50)), st.booleans()), max_size=30),
       st.booleans(), st.sampled_from([2, 7, 1 << 18]))
def test_ns_extreme_in_blocks_with_a_row_mask_equals_the_masked_grouped_extreme(rows, largest, block):
    from analysis import keys
    code = np.array([r[0] for r in rows], dtype="int64")
    at = np.array([keys.NAT if r[1] is None else r[1] for r in rows], dtype="int64")
    where = np.array([r[2] for r in rows], dtype=bool)
    old = keys.BLOCK
    try:
        keys.BLOCK = block
        got = keys.ns_extreme(at, code, 5, largest=largest, where=where)
    finally:
        keys.BLOCK = old
    ok = where & (code >= 0) & (at != keys.NAT)
    want = pd.Series(at[ok]).groupby(code[ok]).agg("max" if largest else "min").reindex(range(5))
    assert got.tolist() == [keys.NAT if pd.isna(v) else int(v) for v in want]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["t1", "t2", "t3", "t9", None]), max_size=15), st.booleans())
def test_present_equals_isin_for_unique_keys(values, handed_over):
    # with positions handed over (as validation does for references) or hashed: as isin
    from analysis import keys
    universe = pd.Series(["t3", "t1", "t2", "t4"], dtype=TEXT)
    v = pd.Series(values, dtype=TEXT)
    if handed_over:
        keys.remember(v, universe, keys.codes(v, universe).astype("int32"))
    assert keys.present(universe, v).tolist() == universe.isin(v.dropna()).tolist()


def test_time_extreme_tells_an_empty_code_from_the_latest_instant():
    # the earliest starts from the largest int64, which is also pd.Timestamp.max: a code whose
    # only value is that instant keeps it, a code without values gets NaT
    from analysis import keys
    t = pd.Series([pd.Timestamp.max, pd.Timestamp("2024-01-01")])
    got = keys.time_extreme(t, np.array([0, 2]), 3)
    assert got.iloc[0] == pd.Timestamp.max and got.isna().iloc[1] and got.iloc[2] == pd.Timestamp("2024-01-01")
    assert keys.time_extreme(t, np.array([0, 2]), 3, largest=True).isna().tolist() == [False, True, False]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["L1", "L2", "VIP"]),
                          st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False))), max_size=40),
       st.sampled_from([0.9, 0.5, 0.1]))
def test_few_group_quantile_equals_pandas_grouped_quantile(rows, q):
    from analysis.stats import _few_group_quantile, duration_stats
    v = pd.Series([r[1] for r in rows], dtype="float64")
    by = pd.Series(pd.Categorical([r[0] for r in rows], categories=["L1", "L1.5", "L2", "VIP"]))  # L1.5: empty
    expected = v.groupby(by, observed=False).quantile(q)
    got = _few_group_quantile(v, by, expected.index, q)
    assert np.array_equal(got.to_numpy(), expected.to_numpy(), equal_nan=True)   # bit for bit
    stats = duration_stats(v, by)
    assert np.array_equal(stats["p90_min"].to_numpy(), v.groupby(by, observed=False).quantile(0.9).to_numpy(), equal_nan=True)


def test_few_group_quantile_hand_case():
    from analysis.stats import _few_group_quantile
    # L1: 10, 20, 30, 40 -> h = 0.9 * 3 = 2.7: 30 + (40 - 30) * 0.7 = 37; L2: one value 5 -> 5; VIP: only a null -> null
    v = pd.Series([10.0, 40.0, 5.0, 30.0, 20.0, np.nan])
    by = pd.Series(pd.Categorical(["L1", "L1", "L2", "L1", "L1", "VIP"], categories=["L1", "L2", "VIP"]))
    got = _few_group_quantile(v, by, pd.CategoricalIndex(["L1", "L2", "VIP"]), 0.9)
    assert got.iloc[0] == pytest.approx(37.0) and got.iloc[1] == 5.0 and np.isnan(got.iloc[2])


def test_order_by_hand_case_and_ns_is_a_read_only_view():
    from analysis import keys
    # code 1 at times 5, 3; code 0 at 7, 7 (a tie: table order) -> rows 1, 3 (code 0), 2, 0 (code 1 by time)
    assert keys.order_by(np.array([1, 0, 1, 0]), 2, np.array([5, 7, 3, 7])).tolist() == [1, 3, 2, 0]
    assert keys.group_order(np.array([], dtype="int64"), 3).tolist() == []
    t = pd.Series(pd.to_datetime(["2024-01-01 00:00:01", None], utc=True))
    got = keys.ns(t)
    assert got.tolist() == [1_704_067_201 * 10**9, keys.NAT] and not got.flags.writeable
    naive = pd.Series(pd.to_datetime(["2024-01-01 00:00:01"]))
    assert keys.ns(naive).tolist() == [1_704_067_201 * 10**9]           # naive read as UTC
    berlin = t.dt.tz_convert("Europe/Berlin")
    assert keys.ns(berlin).tolist() == got.tolist()                     # the same instants
    assert keys.ns(t.astype("datetime64[ms, UTC]")).tolist() == got.tolist()  # other units: converted


def test_codes_hand_case_with_a_repeated_key_and_a_key_outside_the_wider_universe():
    from analysis import keys
    v = pd.Series(["b", "a", "x", None, "b"], dtype=TEXT)
    keys.codes(v, pd.Index(["a", "b"], dtype=TEXT))
    # "b" twice in the universe: its first position (1); "x" is outside the kept universe
    assert keys.codes(v, pd.Index(["z", "b", "b", "a"], dtype=TEXT)).tolist() == [1, 3, -1, -1, 1]
    assert keys.codes(v, pd.Index(["x", "b"], dtype=TEXT)).tolist() == [1, -1, 0, -1, 1]


def test_sorted_rank_same_as_previous_and_code_groups_hand_cases():
    from analysis import keys
    s = pd.Series(["b", "c", "a"], dtype=TEXT)
    assert keys.sorted_rank(s).tolist() == [1, 2, 0]            # a < b < c
    assert keys.sorted_rank(pd.Series(["a", "b"], dtype=TEXT)).tolist() == [0, 1]
    assert keys.sorted_rank(pd.Series([], dtype=TEXT)).tolist() == []
    same = pd.Series(["a", "a", None, None, "b", "b"], dtype=TEXT)
    assert keys.same_as_previous(same).tolist() == [False, True, False, False, False, True]  # nulls never equal
    assert keys.same_as_previous(same.astype(object)).tolist() == [False, True, False, False, False, True]
    g = keys.code_groups(np.array([2, 0, 2, -1]), 4)
    sums = pd.Series([1.0, 2.0, 4.0, 8.0]).groupby(g, observed=False).sum()
    assert sums.tolist() == [2.0, 0.0, 5.0, 0.0]                # 1 + 4 in group 2; -1 in no group; 1 and 3 empty


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["x", "y", None]), st.sampled_from([1.0, -0.0, 0.0, np.nan]),
                          st.sampled_from([0, 10**15, None]), st.integers(0, 2)), max_size=25))
def test_identical_rows_equals_pandas_duplicated(rows):
    from analysis.quality import identical_rows
    f = pd.DataFrame(rows, columns=["a", "b", "t", "i"]) if rows else pd.DataFrame(
        {"a": [], "b": [], "t": [], "i": []})
    f = f.astype({"a": TEXT, "b": "float64", "i": "int64"})
    f["t"] = pd.to_datetime(f["t"], utc=True)
    assert identical_rows(f) == int(f.duplicated().sum())


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["p1", "p2", "p3", "p10", None]), max_size=12))
def test_contract_unique_rule_marks_every_row_of_a_repeated_id(values):
    from analysis.contract import _unique
    s = pd.Series(values, dtype=TEXT)
    assert _unique(s).tolist() == (~s.duplicated(keep=False)).tolist()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30 * 365 * 86_400), st.integers(-400 * 86_400, 900 * 86_400)),
                min_size=1, max_size=30))
def test_months_since_equals_months_between_of_the_taken_starts(rows):
    base = pd.Timestamp("1995-01-31").value
    starts = pd.Series(pd.to_datetime(np.array([r[0] for r in rows]) * 10**9 + base, utc=True))
    pos = np.arange(len(rows))[::-1]
    times = pd.Series(starts.array.take(pos)) + pd.to_timedelta([r[1] for r in rows], unit="s")
    got = months.months_since(starts, pos, times)
    want = months.months_between(pd.Series(starts.array.take(pos)), times)
    assert got.tolist() == want.tolist()
    # the definition: the largest m with start + m months <= time
    taken = pd.Series(starts.array.take(pos))
    assert (months.add_months(taken, got) <= times).all() and (months.add_months(taken, got + 1) > times).all()


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 400), st.integers(27, 30), st.integers(0, 86_399),
                          st.integers(-30, 60), st.integers(0, 86_399)), min_size=1, max_size=40),
       st.booleans())
def test_months_since_by_key_at_clamped_month_ends(rows, aware):
    # starts on days 28-31, times on the last day of a later (often shorter) month: the rows
    # the key corrects by their fields (Jan 31 10:00 -> Feb 29 09:00 is month 0, 11:00 month 1)
    month0 = pd.Timestamp("1999-01-01")
    start = [month0 + pd.DateOffset(months=m) for m, *_ in rows]
    start = [x + pd.Timedelta(days=min(d, x.days_in_month - 1), seconds=s) for x, (_, d, s, _, _) in zip(start, rows)]
    end = [x.normalize().replace(day=1) + pd.DateOffset(months=k) for x, (*_, k, _) in zip(start, rows)]
    end = [x + pd.Timedelta(days=x.days_in_month - 1, seconds=s) for x, (*_, s) in zip(end, rows)]
    starts = pd.Series(pd.to_datetime(start, utc=aware))
    pos = np.arange(len(rows))[::-1]
    times = pd.Series(pd.to_datetime(end, utc=aware)).take(pos).reset_index(drop=True)
    got = months.months_since(starts, pos, times)
    taken = pd.Series(starts.array.take(pos))
    assert got.tolist() == months.months_between(taken, times).tolist()
    assert (months.add_months(taken, got) <= times).all() and (months.add_months(taken, got + 1) > times).all()


def test_months_since_hand_cases_and_spans_beyond_the_key(monkeypatch):
    starts = pd.Series(pd.to_datetime(["2024-01-31 10:00", "2024-03-31 00:00"], utc=True))
    times = pd.Series(pd.to_datetime(["2024-02-29 09:00", "2024-02-29 11:00", "2024-04-30 00:00",
                                      "2024-03-30 23:59", "2024-01-31 09:59"], utc=True))
    pos = np.array([0, 0, 1, 1, 0])
    # Feb 29 09:00 is before Jan 31 10:00 + 1 month (= Feb 29 10:00): month 0; 11:00 is month 1;
    # Mar 31 + 1 month = Apr 30 00:00: month 1; a minute before Mar 31: month -1; Jan 31 09:59: -1
    assert months.months_since(starts, pos, times).tolist() == [0, 1, 1, -1, -1]
    from analysis import keys
    monkeypatch.setattr(keys, "BLOCK", 2)  # in blocks of two rows: the same, fixes in every block
    assert months.months_since(starts, pos, times).tolist() == [0, 1, 1, -1, -1]
    # 1700 -> 2200 spans 6,000 months, past what one key holds: the fields give the same answer
    far = pd.Series(pd.to_datetime(["1700-03-31 12:00", "2200-02-28 13:00", "2200-02-28 11:00"]))
    assert months._months_by_key(far.to_numpy().view("int64")[:1], np.zeros(2, dtype="int64"),
                                 far.to_numpy().view("int64")[1:]) is None
    got = months.months_since(far.iloc[:1], np.array([0, 0]), far.iloc[1:].reset_index(drop=True))
    assert got.tolist() == [(2200 - 1700) * 12 - 1, (2200 - 1700) * 12 - 2]


def test_tier_paths_leave_a_step_without_a_tier_out():
    from analysis.escalation import tier_paths
    seg = pd.DataFrame({"ticket_id": pd.Series(["t2", "t2", "t1", "t3", "t3"], dtype=TEXT),
                        "seq": [0, 1, 0, 0, 1],
                        "tier": pd.Categorical(["L1", "L2", "L1", "L1", None], categories=["L1", "L1.5", "L2"])})
    got = tier_paths(seg)
    assert got.index.tolist() == ["t1", "t2", "t3"]              # ticket_id order
    assert got.tolist() == ["L1", "L1 → L2", "L1"]


def test_civil_fields_of_a_long_column_equal_the_direct_arithmetic():
    # above 4,096 values spanning few days, each day is converted once and looked up; below,
    # each value goes through the arithmetic: both give the same fields (month length included)
    rng = np.random.default_rng(3)
    ns = rng.integers(-30 * 86_400 * 10**9, 2_000 * 86_400 * 10**9, 20_000)
    looked_up = months._fields(ns, days_in_month=True)
    direct = [np.concatenate(parts) for parts in zip(*(months._fields(c, True) for c in np.array_split(ns, 10)))]
    assert all((a == b).all() for a, b in zip(looked_up, direct))
    total = rng.integers(23_990, 24_400, 20_000)  # months since year 0, leap Februaries included
    year, month = total // 12, total % 12 + 1
    expected = pd.to_datetime(pd.DataFrame({"year": year, "month": month, "day": 1})).dt.days_in_month.to_numpy()
    assert (months._days_in_month(total) == expected).all()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=6),
       st.lists(st.tuples(st.sampled_from(["a", "b", "c", "e"]), st.integers(0, 50), st.sampled_from([5.0, -2.5, 0.1])),
                max_size=15),
       st.booleans())
def test_refund_request_pairs_equal_the_inner_merge_on_client_id(asked, paid, arrow):
    """Pairs built on integer codes = pandas' inner merge on the text key, rows and order."""
    from analysis.saves import _request_payments
    text = pd.StringDtype("pyarrow") if arrow else object
    day = pd.Timestamp("2025-01-01", tz="UTC")
    requests = pd.DataFrame({"client_id": pd.Series(asked, dtype=text),
                             "created_at": [day + pd.Timedelta(days=i) for i in range(len(asked))]},
                            index=pd.Index(np.arange(len(asked)) * 7 + 3))  # labels are not positions
    payments = pd.DataFrame({"client_id": pd.Series([c for c, _, _ in paid], dtype=text),
                             "paid_at": pd.to_datetime([day + pd.Timedelta(days=d) for _, d, _ in paid], utc=True),
                             "amount": [a for _, _, a in paid]})
    want = requests.reset_index(names="row").merge(payments, on="client_id")[["row", "created_at", "paid_at", "amount"]]
    got = _request_payments(requests, payments)
    pd.testing.assert_frame_equal(got, want, check_exact=True, check_dtype=False, check_index_type=False)


def test_remembered_positions_do_not_keep_a_dataset_alive():
    """A dataset loaded again in the same kernel: the old columns are freed, and the old
    positions are dropped when new ones are handed over."""
    import gc
    import weakref
    from analysis import keys
    text = pd.StringDtype("pyarrow")
    values, universe = pd.Series(["b", "a"], dtype=text), pd.Series(["a", "b"], dtype=text)
    keys.remember(values, universe, np.array([1, 0], dtype=np.int32))
    gone = weakref.ref(keys.arrow_text(values))
    del values
    gc.collect()
    assert gone() is None  # not held by the kept entry
    again = pd.Series(["a"], dtype=text)
    keys.remember(again, universe, np.array([0], dtype=np.int32))
    assert all(a() is not None and b() is not None for a, b, _ in keys._GIVEN.values())  # dead ones dropped


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["L1", "L2", "VIP", "L9", None]), max_size=12))
def test_tier_codes_are_the_ladder_codes_of_as_tier(values):
    # Arrow text answers from the kept lookup, object text through the categorical: the same codes
    from analysis.config import Config, Tier
    from analysis.tiers import as_tier, tier_codes
    cfg = Config(tiers=[Tier(id="L1"), Tier(id="L2"), Tier(id="VIP")])
    for s in (pd.Series(values, dtype=TEXT), pd.Series(values, dtype=object)):
        assert tier_codes(s, cfg).tolist() == as_tier(s, cfg).cat.codes.tolist()
