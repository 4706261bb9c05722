"""The benchmark's DuckDB references give the package's numbers on the sample (so the yardstick
measures the same work), and the benchmark's pieces work on a tiny size. No timing is asserted."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import bench  # noqa: E402
import measure  # noqa: E402
from references import FAMILIES, connect  # noqa: E402

from analysis.data.dataset import load_dataset  # noqa: E402


@pytest.fixture(scope="module")
def loaded(sample_dir):
    ds = load_dataset(sample_dir)
    return ds, connect(sample_dir, ds.as_of)


@pytest.mark.parametrize("family", FAMILIES, ids=[f.name for f in FAMILIES])
def test_duckdb_reference_matches_the_package_on_the_sample(loaded, family):
    ds, con = loaded
    ours, ref = family.package(ds), family.sql(con, ds.as_of, ds.config)
    keys = [c for c in ours.columns if c != "value"]
    assert list(ref.columns) == list(ours.columns)
    assert len(ours) > 3, family.name
    assert ours[keys].astype(str).values.tolist() == ref[keys].astype(str).values.tolist(), f"{family.name}: different rows"
    assert np.allclose(ours["value"], ref["value"], rtol=1e-9, atol=1e-9, equal_nan=True), family.name
    assert ours["value"].notna().any() and (ours["value"] != 0).any()  # real numbers, not an empty agreement


def test_measure_reports_time_and_the_whole_process_tree():
    code = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'b = bytearray(300 * 2**20); import time; time.sleep(1.6)'])"
    got = measure.measure([sys.executable, "-c", code])
    assert got["returncode"] == 0 and got["seconds"] >= 1.6
    assert got["peak_gb"] >= 0.29  # the grandchild's 300 MB are counted
    assert got["peak_pss_gb"] >= 0.29  # private pages count fully in PSS too
    assert 0.29 <= got["peak_process_gb"] <= got["peak_gb"]  # the grandchild is the largest process


def test_measure_counts_a_shared_mapped_file_once_in_pss(tmp_path):
    """Two processes that map and read the same 256 MB file: summed RSS counts its pages twice,
    summed PSS once (each process is charged half), as the machine holds them once."""
    big = tmp_path / "shared.bin"
    big.write_bytes(b"\1" * (256 * 2**20))
    reader = ("import mmap, sys, time; f = open(sys.argv[1], 'rb'); m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ); "
              "s = sum(m[i] for i in range(0, len(m), 4096)); time.sleep(2.5)")
    code = (f"import subprocess, sys; ps = [subprocess.Popen([sys.executable, '-c', {reader!r}, {str(big)!r}]) "
            "for _ in range(2)]; [p.wait() for p in ps]")
    got = measure.measure([sys.executable, "-c", code])
    assert got["returncode"] == 0
    assert got["peak_gb"] >= 0.49  # 2 x 256 MB resident
    assert got["peak_pss_gb"] < got["peak_gb"] - 0.2  # the file's pages once, not twice


def test_bench_metrics_stage_runs_end_to_end(tmp_path):
    """The families stage on a small generated directory: every family reports and agrees."""
    from analysis.tools.generate import generate
    generate(tmp_path, clients=800, seed=3, profile="scale")
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench.py"), "_families", str(tmp_path)],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert [r["family"] for r in rows] == [f.name for f in FAMILIES]
    assert all(r["same"] and r["rows"] > 0 and r["package_s"] >= 0 and r["duckdb_s"] >= 0 for r in rows)


def test_memory_floor_measures_both_passes_and_the_table_shows_them(capsys):
    """The per-row cost of the machine is measured at the sizes asked for and printed beside
    the families, with its x10 ratio (figures only: no time is asserted)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench
    small, big = bench.memory_floor(100, 1_000), bench.memory_floor(1_000, 10_000)
    assert (small["table_rows"], small["rows"], big["rows"]) == (100, 1_000, 10_000)
    assert {"random_read_ns", "stream_ns"} <= set(small)
    sizes = {"100": {"rows": {"payments": 1_000}, "floor": small}, "1000": {"rows": {"payments": 10_000}, "floor": big}}
    bench.print_table({"machine": "m", "sizes": sizes})
    out = capsys.readouterr().out
    assert "a random read from a 1,000-row per-client table" in out
    assert "(random reads per client, x10 rows)" in out and "(streaming pass, x10 rows)" in out


def test_targets_are_printed_against_the_measured_run():
    # 1M: 57 s is within 60, the largest process 3.4 GB is over 3; 10M has no run: no line
    results = {"sizes": {"1000000": {"run": {"seconds": 57.0, "peak_process_gb": 3.4, "peak_pss_gb": 2.9}}}}
    (line,) = bench.target_lines(results)
    assert line == ("target at 1,000,000 clients: wall 57.0 s (<= 60: met), largest process 3.4 GB (<= 3: NOT met), "
                    "summed PSS 2.9 GB (<= 3: met)")
