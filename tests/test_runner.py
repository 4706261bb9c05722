"""The runner: parameters, exit codes, failures kept, index.html and metrics.json, rerun identity."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.data.engine import machine_memory, memory_share
from analysis.run import runner
from analysis.run.cli import main
from analysis.run.reports import REPORTS, Report
from conftest import ROOT

FIX = Path(__file__).parent / "fixtures"
ECHO = Report("90_echo", "Echo", "test fixture", path=FIX / "echo.ipynb")
FAILS = Report("91_fails", "Always fails", "test fixture", path=FIX / "fails.ipynb")
NEEDS = Report("92_needs_fx", "Needs fx rates", "test fixture", needs=("fx_rates",), path=FIX / "echo.ipynb")


def fixture_config(tmp_path: Path, old: str = "", new: str = "") -> Path:
    """The default config without its `parameters:` block (which names parameters of the real
    notebooks, unknown to the fixture suite), with one optional text replacement."""
    text = (ROOT / "config" / "default.yaml").read_text()
    text = text[:text.index("\nparameters:")] + "\n"
    path = tmp_path / "fixture-config.yaml"
    path.write_text(text.replace(old, new) if old else text)
    return path


@pytest.fixture
def first_run(sample_runs):
    """The default run of the small set (the second of conftest's ``sample_runs``)."""
    (earlier, code), out, archive = sample_runs
    assert earlier == 0
    return code, out, archive


def test_run_succeeds_and_writes_every_artifact(first_run):
    code, out, archive = first_run
    assert code == 0
    for name in ("00_data_quality.ipynb", "00_data_quality.html", "index.html", "metrics.json"):
        assert (out / name).is_file(), name
    index = (out / "index.html").read_text()
    assert "Data as of <b>2026-01-01</b>" in index and "00_data_quality.html" in index and ">ok<" in index
    assert (archive / "2026-01-01" / "index.html").is_file()


def test_metrics_json_has_as_of_data_and_quality(first_run, small_dir):
    _, out, _ = first_run
    m = json.loads((out / "metrics.json").read_text())
    assert m["as_of"] == "2026-01-01"
    truth = json.loads((small_dir / "truth.json").read_text())
    assert {t: v["read"] for t, v in m["data"].items()} == truth["rows"]
    assert all(v["read"] == v["used"] + v["set_aside"] for v in m["data"].values())
    assert m["quality"]["orphans"]["tickets with no client (client_id empty)"] > 0


def test_rerun_gives_identical_metrics(first_run, small_dir, tmp_path):
    _, out, _ = first_run
    assert main(["run", "--data", str(small_dir), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "metrics.json").read_bytes() == (out / "metrics.json").read_bytes()


def test_failed_notebook_is_kept_others_still_run(monkeypatch, small_dir, tmp_path):
    monkeypatch.setattr(runner, "REPORTS", (FAILS, ECHO, NEEDS))
    code = main(["run", "--data", str(small_dir), "--out", str(tmp_path / "o"), "--config", str(fixture_config(tmp_path)),
                 "-p", "contact_window_days=45"])
    tmp_path = tmp_path / "o"
    assert code == 1
    failed_nb = json.loads((tmp_path / "91_fails.ipynb").read_text())
    assert any(o.get("ename") == "RuntimeError" for c in failed_nb["cells"] for o in c.get("outputs", []))
    assert "boom: this fixture always fails" in (tmp_path / "91_fails.html").read_text()
    m = json.loads((tmp_path / "metrics.json").read_text())
    # command line beats config; two reports ran side by side, so the engine got half the share
    assert m["echo"] == {"contact_window_days": 45, "as_of": "2026-01-01",
                         "engine_memory_gb": memory_share(2, machine_memory())}
    index = (tmp_path / "index.html").read_text()
    assert "1 report(s) failed" in index and "skipped" in index and "needs the table(s) fx_rates" in index
    assert "window 45" in index


def test_config_parameters_reach_notebooks_that_declare_them(monkeypatch, small_dir, tmp_path):
    cfg = fixture_config(tmp_path, "contact_window_days: 30", "contact_window_days: 21")
    monkeypatch.setattr(runner, "REPORTS", (ECHO,))
    assert main(["run", "--data", str(small_dir), "--out", str(tmp_path / "o"), "--config", str(cfg), "--as-of", "2025-06-01"]) == 0
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert m["echo"] == {"contact_window_days": 21, "as_of": "2025-06-01",
                         "engine_memory_gb": memory_share(1, machine_memory())}   # the only report: all of it
    assert m["data"]["payments"]["set_aside_by_reason"]["timed at or after as-of"] > 0


def test_unknown_parameter_is_refused_before_running(small_dir, tmp_path, capsys):
    assert main(["run", "--data", str(small_dir), "--out", str(tmp_path), "-p", "windw=3"]) == 2
    err = capsys.readouterr().err
    assert "unknown parameter(s) from the command line: windw" in err
    assert not (tmp_path / "index.html").exists()


def test_config_parameters_are_checked_against_the_whole_suite(small_dir, tmp_path, capsys):
    # the default config sets before_from etc. for 01_support_tiers: still valid when only 00 runs
    assert main(["run", "--data", str(small_dir), "--out", str(tmp_path / "o"), "--only", "00_data_quality"]) == 0
    cfg = tmp_path / "c.yaml"
    cfg.write_text((ROOT / "config" / "default.yaml").read_text() + "  no_such_parameter: 1\n")
    assert main(["run", "--data", str(small_dir), "--out", str(tmp_path / "p"), "--config", str(cfg)]) == 2
    assert "unknown parameter(s) from the config 'parameters': no_such_parameter" in capsys.readouterr().err


def test_command_line_parameter_must_be_declared_by_a_selected_notebook(small_dir, tmp_path, capsys):
    code = main(["run", "--data", str(small_dir), "--out", str(tmp_path), "--only", "00_data_quality",
                 "-p", "bootstrap_reps=10"])
    assert code == 2 and "unknown parameter(s) from the command line: bootstrap_reps" in capsys.readouterr().err


def test_unknown_report_name(small_dir, tmp_path, capsys):
    assert main(["run", "--data", str(small_dir), "--out", str(tmp_path), "--only", "99_nothing"]) == 2
    assert "unknown report(s) for --only: 99_nothing" in capsys.readouterr().err


def test_bad_data_exits_2_with_message_and_no_traceback(tmp_path):
    d = tmp_path / "bad"; d.mkdir()
    (d / "clients.csv").write_text("client_id,signed_up_at\n1,2026-01-01\n1,not a date\n")
    proc = subprocess.run([sys.executable, "-m", "analysis", "run", "--data", str(d), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "clients.csv, column signed_up_at: not an ISO 8601 timestamp (1 row)" in proc.stderr
    assert "clients.csv, column client_id: client_id must be unique; duplicated values (2 rows)" in proc.stderr
    assert not (tmp_path / "o" / "index.html").exists()


def test_parameter_values_are_typed():
    assert runner.parse_parameter("n=3") == ("n", 3)
    assert runner.parse_parameter("start=2025-04-01") == ("start", "2025-04-01")  # dates stay ISO strings
    assert runner.parse_parameter("flag=true") == ("flag", True)


def test_registry_notebooks_exist():
    assert all(r.notebook.is_file() for r in REPORTS)
