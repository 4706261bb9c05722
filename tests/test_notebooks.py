"""Notebooks are committed clean, declare the runner's parameters and keep formulas out."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis.run.runner import KERNEL_NAME, RUNNER_PARAMETERS
from conftest import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_clean_and_parameterised(path: Path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "committed outputs"
    params = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1 and code[0] is params[0], "the first code cell must be the only 'parameters' cell"
    assert all(f"{p} =" in "".join(params[0]["source"]) for p in RUNNER_PARAMETERS)
    assert nb["metadata"]["kernelspec"]["name"] == KERNEL_NAME
    assert not any("\ndef " in "\n" + "".join(c["source"]) for c in code), "formulas belong in analysis/"
