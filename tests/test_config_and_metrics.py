from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis import InputError, load_config
from analysis.run import metrics


def write(tmp_path, text):
    p = tmp_path / "c.yaml"; p.write_text(text); return p


def test_default_config_loads_with_ladder_order():
    c = load_config()
    assert c.tier_ids == ["L1", "L1.5", "L2", "CS", "FIN"] and c.retention.dormancy_days == 90


def test_unknown_key_is_an_error_naming_it(tmp_path):
    p = write(tmp_path, "tiers:\n  - id: L1\n    resolution_target_mins: 5\nretension: {}\n")
    with pytest.raises(InputError) as err:
        load_config(p)
    msg = str(err.value)
    assert "unknown key 'tiers.0.resolution_target_mins'" in msg and "unknown key 'retension'" in msg


def test_business_hours_validated(tmp_path):
    p = write(tmp_path, "tiers: [{id: L1}]\nbusiness_hours: {timezone: Mars/Olympus, days: [mon], start: '18:00', end: '09:00'}\n")
    with pytest.raises(InputError) as err:
        load_config(p)
    assert "unknown timezone 'Mars/Olympus'" in str(err.value)


def test_duplicate_tiers_and_missing_tiers(tmp_path):
    with pytest.raises(InputError, match="tier ids must be unique, repeated: L1"):
        load_config(write(tmp_path, "tiers: [{id: L1}, {id: L1}]\n"))
    with pytest.raises(InputError, match="missing required key 'tiers'"):
        load_config(write(tmp_path, "retention: {}\n"))


def test_missing_config_file(tmp_path):
    with pytest.raises(InputError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_jsonable_nulls_and_numpy():
    out = metrics.jsonable({"a": np.float64("nan"), "b": np.int64(3), "c": pd.NA, "d": np.bool_(True), "e": 0.1 + 0.2})
    assert out == {"a": None, "b": 3, "c": None, "d": True, "e": 0.3}


def test_merge_nests_sections_and_refuses_collisions():
    a = {"metrics": {"sla": {"by_tier": {"L1": {"tickets": 3}}}}}
    b = {"metrics": {"sla": {"by_tier": {"L2": {"tickets": 0}}}}}
    merged = metrics.merge([a, b], "2026-01-01", {})
    assert merged["sla"]["by_tier"] == {"L1": {"tickets": 3}, "L2": {"tickets": 0}}
    with pytest.raises(ValueError, match="sla.by_tier.L1.tickets is written by two notebooks"):
        metrics.merge([a, a], "2026-01-01", {})


def test_record_writes_sorted_json(tmp_path):
    p = tmp_path / "m" / "x.json"
    metrics.record(p, {"z": 1, "a": {"y": float("nan")}}, headline="hi")
    assert json.loads(p.read_text()) == {"headline": "hi", "metrics": {"a": {"y": None}, "z": 1}}
    assert p.read_text().index('"a"') < p.read_text().index('"z"')
    assert metrics.record("", {"a": 1})["metrics"] == {"a": 1}  # opened by hand: nothing written


def test_config_parameters_keep_dates_as_iso_text(tmp_path):
    # YAML reads 2025-07-01 as a date; papermill cannot pass date objects (DESIGN §9)
    from analysis.data.config import load_config
    cfg = tmp_path / "c.yaml"
    cfg.write_text("tiers: [{id: L1}]\nparameters: {after_from: 2025-07-01, bootstrap_reps: 10}\n")
    assert load_config(cfg).parameters == {"after_from": "2025-07-01", "bootstrap_reps": 10}
