"""Runs that are scheduled unattended (DESIGN §3 "Running safely"): an OUT that cannot be written,
a disk that fills, two runs into one OUT, a kernel that fails to start, parameters of the wrong
type, a table path that is a directory, and a log with only the run's own lines."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from analysis.run import runner
from analysis.run.cli import main
from analysis.run.publish import OutputLock
from analysis.run.reports import Report
from conftest import ROOT, base_tables, write_dir

FIX = Path(__file__).parent / "fixtures"
ECHO = Report("90_echo", "Echo", "test fixture", path=FIX / "echo.ipynb")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "analysis", "run", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)


def tree_digest(path: Path) -> dict[str, str]:
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def fixture_config(tmp_path: Path) -> Path:
    text = (ROOT / "config" / "default.yaml").read_text()
    path = tmp_path / "fixture-config.yaml"
    path.write_text(text[:text.index("\nparameters:")] + "\n")
    return path


@pytest.fixture()
def tmpfs(tmp_path):
    """Mount a small tmpfs (needs root, as CI and the development machines have); returns a
    function (size, read_only) -> mount point, unmounted at the end."""
    mounts = []

    def mount(size: str = "4m", read_only: bool = False) -> Path:
        point = tmp_path / f"mnt{len(mounts)}"
        point.mkdir()
        opts = f"size={size}" + (",ro" if read_only else "")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(point)], capture_output=True)
        if done.returncode != 0:
            if os.environ.get("CI"):
                pytest.fail(f"cannot mount a tmpfs in CI: {done.stderr!r}")
            pytest.skip("mounting a tmpfs needs root")
        mounts.append(point)
        return point

    yield mount
    for point in mounts:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def test_out_on_a_read_only_file_system_is_exit_2_in_one_line_before_the_data_is_read(tmpfs, tmp_path):
    ro = tmpfs(read_only=True)
    # the data directory does not even exist: the OUT check must come first
    proc = run_cli("--data", str(tmp_path / "no-such-data"), "--out", str(ro / "reports"))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: --out {ro / 'reports'} cannot be written: Read-only file system"]
    assert proc.stdout == ""


def test_a_disk_that_fills_during_a_run_leaves_the_previous_run_byte_identical(tmpfs, small_dir):
    disk = tmpfs(size="3m")
    out = disk / "latest"
    assert main(["run", "--data", str(small_dir), "--out", str(out), "--only", "00_data_quality"]) == 0
    before = tree_digest(out)
    assert {"index.html", "metrics.json", "00_data_quality.html", "00_data_quality.ipynb"} <= set(before)
    # fill the disk but ~40 KB: the next run's executed notebook or HTML cannot be written whole
    free = shutil.disk_usage(disk).free
    (disk / "filler").write_bytes(b"\0" * (free - 40_000))
    proc = run_cli("--data", str(small_dir), "--out", str(out), "--only", "00_data_quality")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0] and "nothing was published" in errors[0]
    assert tree_digest(out) == before                                   # the previous run, byte for byte
    assert sorted(p.name for p in disk.iterdir()) == [".latest.lock", "filler", "latest"]   # no staging left


def test_out_keeps_files_that_a_run_does_not_write(monkeypatch, small_dir, tmp_path):
    monkeypatch.setattr(runner, "REPORTS", (ECHO,))
    out = tmp_path / "o"
    out.mkdir()
    (out / "notes.txt").write_text("the analyst's own file")
    (out / "00_data_quality.html").write_text("an old report of a run")   # a run's file: replaced
    assert main(["run", "--data", str(small_dir), "--out", str(out), "--config", str(fixture_config(tmp_path))]) == 0
    assert (out / "notes.txt").read_text() == "the analyst's own file"
    assert not (out / "00_data_quality.html").exists() and (out / "90_echo.html").is_file()


def test_a_second_run_into_a_locked_out_exits_2_naming_the_lock(monkeypatch, small_dir, tmp_path, capsys):
    monkeypatch.setattr(runner, "REPORTS", (ECHO,))
    out, cfg = tmp_path / "o", fixture_config(tmp_path)
    with OutputLock(out).acquire():
        assert main(["run", "--data", str(small_dir), "--out", str(out), "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert f"--out {out} is locked by the run of pid {os.getpid()}" in err and str(tmp_path / ".o.lock") in err
    assert "--wait" in err and not out.exists()


def test_with_wait_a_second_run_waits_for_the_lock(monkeypatch, small_dir, tmp_path):
    monkeypatch.setattr(runner, "REPORTS", (ECHO,))
    out, cfg = tmp_path / "o", fixture_config(tmp_path)
    lock = OutputLock(out).acquire()
    released = []
    timer = threading.Timer(2.0, lambda: (released.append(time.monotonic()), lock.release()))
    timer.start()
    lines = []
    assert runner.run(small_dir, out, config_path=cfg, wait=True, log=lines.append) == 0
    assert released and lines[0].startswith(f"waiting for the lock on {out}")
    assert json.loads((out / "metrics.json").read_text())["echo"]["contact_window_days"] == 30


def test_two_overlapping_runs_never_interleave_and_the_log_has_only_the_runs_lines(small_dir, tmp_path):
    out = tmp_path / "o"
    args = [sys.executable, "-m", "analysis", "run", "--data", str(small_dir), "--out", str(out),
            "--only", "00_data_quality"]
    first = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # the second starts once the first holds the lock (its pid written in the lock file beside
    # OUT), however long the first takes to start on a busy machine
    lock, holder = out.parent / f".{out.name}.lock", f"the run of pid {first.pid} "
    deadline = time.monotonic() + 300
    while not (lock.exists() and lock.read_text().startswith(holder)) and first.poll() is None:
        assert time.monotonic() < deadline, "the first run never took the lock"
        time.sleep(0.05)
    second = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    stdout, stderr = first.communicate(timeout=600)
    assert first.returncode == 0 and second.returncode == 2
    assert "is locked by the run of pid" in second.stderr
    # one whole run in OUT: its index, its metrics and its report
    assert json.loads((out / "metrics.json").read_text())["as_of"] == "2026-01-01"
    assert sorted(p.name for p in out.iterdir()) == ["00_data_quality.html", "00_data_quality.ipynb", "_metrics",
                                                       "history.html", "index.html", "metrics.json"]
    # the run's own lines only: no kernel warning about an unencrypted TCP transport
    assert "TCP" not in stdout + stderr and stderr == ""
    assert all(line.startswith(("data valid:", "[start]", "[1/1]", "wrote ")) for line in stdout.splitlines())


def test_a_kernel_that_fails_to_start_is_started_once_more(monkeypatch, small_dir, tmp_path):
    # a kernelspec whose first start dies at once; the second start is an ordinary kernel
    spec = tmp_path / "jupyter" / "kernels" / "flaky"
    spec.mkdir(parents=True)
    marker = tmp_path / "started-once"
    (spec / "launch.py").write_text(
        "import os, sys, pathlib\n"
        f"marker = pathlib.Path({str(marker)!r})\n"
        "if not marker.exists():\n"
        "    marker.write_text('x'); sys.exit(3)\n"
        "os.execv(sys.executable, [sys.executable, '-m', 'ipykernel_launcher', *sys.argv[1:]])\n")
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, str(spec / "launch.py"), "-f", "{connection_file}"],
        "display_name": "flaky", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setattr(runner, "REPORTS", (ECHO,))
    lines = []
    code = runner.run(small_dir, tmp_path / "o", config_path=fixture_config(tmp_path), kernel="flaky", log=lines.append)
    assert code == 0 and marker.exists()
    retry = [line for line in lines if line.startswith("[retry] 90_echo: the kernel did not start")]
    assert len(retry) == 1 and retry[0].endswith("starting it once more")
    assert runner.START_TIMEOUT_S >= 300


@pytest.mark.parametrize("given, message", [
    ("contact_window_days=two", "parameter contact_window_days='two': 02_cohort_ltv.ipynb declares it as an integer "
                                "(default 30); 'two' is not an integer"),
    ("bootstrap_reps=1.5", "parameter bootstrap_reps=1.5: 01_support_tiers.ipynb declares it as an integer"),
    ("voice_handle_time_min=fast", "parameter voice_handle_time_min='fast': 01_support_tiers.ipynb declares it as a number"),
    ("price_per_status_minute=12", "parameter price_per_status_minute=12: 06_contact_centre_economics.ipynb declares it as a mapping"),
])
def test_a_parameter_of_the_wrong_type_is_exit_2_before_any_notebook_starts(given, message, tmp_path):
    proc = run_cli("--data", str(tmp_path / "no-such-data"), "--out", str(tmp_path / "o"), "-p", given)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith(f"error: {message}") and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_parameters_take_the_type_of_the_declared_default():
    assert runner.coerce_parameter("w", 14, 30, "n.ipynb") == 14
    assert runner.coerce_parameter("t", 6, 6.0, "n.ipynb") == 6.0 and isinstance(runner.coerce_parameter("t", 6, 6.0, "n"), float)
    assert runner.coerce_parameter("vendor", 123, "specialist", "n.ipynb") == "123"   # a name that looks like a number
    with pytest.raises(Exception, match="declares it as an integer"):
        runner.coerce_parameter("w", True, 30, "n.ipynb")                           # a bool is not a count


def test_a_table_path_that_is_a_directory_is_exit_2_naming_it(small_dir, tmp_path):
    data = write_dir(tmp_path / "d", base_tables())
    (data / "payments.csv").unlink()
    (data / "payments.csv").mkdir()
    (data / "outreach.parquet").symlink_to(tmp_path / "nowhere.parquet")
    proc = run_cli("--data", str(data), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{data / 'payments.csv'}, column (file): the path of table payments is a directory" in proc.stderr
    assert f"{data / 'outreach.parquet'}, column (file): the path of table outreach is a broken link" in proc.stderr
    assert not (tmp_path / "o").exists()
