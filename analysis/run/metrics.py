"""metrics.json (DESIGN §5): what each notebook records, and the run's merged file.

A notebook calls ``record(METRICS_PATH, {...}, headline="...")`` once; the runner merges every
fragment with ``merge`` and writes ``metrics.json`` with ``as_of`` and the row accounting.
Values are made JSON-safe (numpy scalars to Python, NaN and NA to null) and written with
sorted keys, so the same data gives a byte-identical file on every rerun.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["jsonable", "dumps", "record", "read_fragment", "merge", "write_json", "data_section"]


def jsonable(value: Any) -> Any:
    """Nested dicts/lists of Python scalars; NaN/NA/None -> None; floats rounded to 10 places,
    or to 10 significant digits below 1e-6, so that a tiny p-value keeps its digits (5.7e-24,
    not 0.0: DESIGN §5)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        if math.isnan(value) or math.isinf(value):
            return None
        return round(float(value), 10) if abs(value) >= 1e-6 else float(f"{float(value):.10g}")
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def dumps(obj: Any) -> str:
    """The suite's JSON text: JSON-safe values, keys sorted, two-space indent, a final newline."""
    return json.dumps(jsonable(obj), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_json(path: str | Path, obj: Any) -> None:
    Path(path).write_text(dumps(obj), encoding="utf-8")


def record(path: str | Path | None, metrics: dict, headline: str = "") -> dict:
    """Write one notebook's metrics fragment (nested dict) and its one-line headline.

    With ``path`` empty (a notebook opened by hand in JupyterLab) nothing is written.
    Returns the JSON-safe fragment, so the notebook can show what it recorded.
    """
    fragment = {"headline": headline, "metrics": jsonable(metrics)}
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_json(path, fragment)
    return fragment


def read_fragment(path: str | Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _deep_merge(into: dict, new: dict, where: str = "") -> None:
    for key, value in new.items():
        here = f"{where}.{key}" if where else key
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value, here)
        elif key in into:
            raise ValueError(f"metrics key {here} is written by two notebooks")
        else:
            into[key] = value


def merge(fragments: list[dict], as_of: str, data: dict) -> dict:
    """One metrics object: as_of, data (rows read / set aside per table), then every section."""
    out: dict = {"as_of": as_of, "data": data}
    for fragment in fragments:
        _deep_merge(out, fragment.get("metrics", {}))
    return out


def data_section(accounting: dict[str, dict]) -> dict:
    """metrics.json `data`: rows read, used and set aside (with reasons) per table."""
    return {name: {"read": a["read"], "used": a["used"], "set_aside": a["set_aside"],
                   "set_aside_by_reason": a["set_aside_by_reason"]}
            for name, a in sorted(accounting.items())}
