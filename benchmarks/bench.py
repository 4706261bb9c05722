"""`make bench`: time and memory of every stage at two sizes of the generator's scale profile,
and each metric against its DuckDB SQL reference (benchmarks/references.py).

    python benchmarks/bench.py [--sizes 100000 1000000] [--seed 1] [--stages load,metrics,notebooks,run]

For each size (clients; the "scale" profile gives about 21 payments and 5 tickets per client):
- data: generated once into benchmarks/.cache/scale-N-seedS (kept; regenerated when the
  generator's source changes);
- load: `python -m analysis validate` (read + type + validate + as-of cut), its own process;
- metrics: one process loads the data, then runs each family with the package and with DuckDB
  (2 threads, straight on the Parquet files), three times each (the median is shown; the
  package keeps nothing between calls), checks that both give the same numbers
  and prints both times and their ratio; then what one row costs the machine (a random read
  from a per-client table, a streaming pass: ``memory_floor``);
- notebooks: a whole run with one worker, so each notebook's seconds are its own;
- run: the whole `python -m analysis run` with the default 2 workers, HTML included.
Under the table, the whole runs at 1M and 10M clients against issue 20's targets (``TARGETS``).
Seconds are wall time; "RSS GB" is the peak of the summed resident memory of the process tree
and "PSS GB" the peak of its summed proportional memory, which counts pages that kernels share
(the memory-mapped snapshot) once: what the machine holds (measure.py; the families stage is one
process, so only its RSS is shown);
rows/s counts the input rows a stage reads. Results are printed as a table and written to
benchmarks/.cache/results.json. No size is asserted anywhere: this script measures.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE = HERE / ".cache"
sys.path.insert(0, str(HERE))

from measure import measure  # noqa: E402

from analysis.run.reports import REPORTS  # noqa: E402

PY = sys.executable
STAGES = ("load", "metrics", "notebooks", "run")


def _generator_hash() -> str:
    return hashlib.sha256((ROOT / "analysis" / "generate.py").read_bytes()).hexdigest()[:12]


def ensure_data(clients: int, seed: int) -> tuple[Path, dict]:
    """The scale-profile data for this size, generated once (and again if the generator changed)."""
    out = CACHE / f"scale-{clients}-seed{seed}"
    stamp = out / ".generator"
    if not (out / "truth.json").exists() or not stamp.exists() or stamp.read_text() != _generator_hash():
        print(f"generating {clients:,} clients (scale profile, seed {seed}) into {out} ...", flush=True)
        m = measure([PY, "-m", "analysis", "generate", "--out", str(out), "--clients", str(clients),
                     "--seed", str(seed), "--profile", "scale"], cwd=ROOT)
        if m["returncode"]:
            raise SystemExit(f"generation failed: {m}")
        print(f"  generated in {m['seconds']:.0f} s, peak {m['peak_gb']:.1f} GB", flush=True)
        stamp.write_text(_generator_hash())
    truth = json.loads((out / "truth.json").read_text())
    return out, truth["rows"]


# ----------------------------------------------------------------------------- metric families
REPEAT = 3  # each family (package and DuckDB) runs this many times; the median is reported
def _families(data_dir: str) -> None:
    """(child process) load once, then every family: package vs DuckDB; JSON lines on stdout."""
    import numpy as np

    from analysis.data.dataset import load_dataset
    from references import FAMILIES, connect

    proc = psutil.Process()
    peak = [0]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            stop.wait(0.05)

    threading.Thread(target=sample, daemon=True).start()
    ds = load_dataset(data_dir)
    rows = {n: a["used"] for n, a in ds.accounting.items()}
    for fam in FAMILIES:
        if not all(n in ds.tables for n in fam.needs):
            continue
        pkg, sql = [], []
        peak[0] = proc.memory_info().rss
        for _ in range(REPEAT):
            t = time.perf_counter()
            ours = fam.package(ds)
            pkg.append(time.perf_counter() - t)
        pkg_peak = peak[0]
        for _ in range(REPEAT):
            con = connect(data_dir, ds.as_of)
            t = time.perf_counter()
            ref = fam.sql(con, ds.as_of, ds.config)
            sql.append(time.perf_counter() - t)
            con.close()
        keys = [c for c in ours.columns if c != "value"]
        both = ours.merge(ref, on=keys, how="outer", suffixes=("_pkg", "_sql"), indicator=True)
        same = bool((both["_merge"] == "both").all() and np.isclose(both["value_pkg"], both["value_sql"], rtol=1e-9,
                                                                    atol=1e-9, equal_nan=True).all())
        n_rows = sum(rows.get(n, 0) for n in fam.needs)
        print(json.dumps({"family": fam.name, "report": fam.report, "rows": n_rows,
                          "package_s": round(float(np.median(pkg)), 3), "duckdb_s": round(float(np.median(sql)), 3),
                          "package_runs": [round(x, 3) for x in pkg], "duckdb_runs": [round(x, 3) for x in sql],
                          "peak_gb": round(pkg_peak / 2**30, 2), "same": same}), flush=True)
    stop.set()


def run_families(data_dir: Path) -> list[dict]:
    # the process starts with the malloc settings of a run's kernels, where these functions run
    env = dict(os.environ)
    out = subprocess.run([PY, str(Path(__file__).resolve()), "_families", str(data_dir)], cwd=ROOT,
                         capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(f"metric families failed:\n{out.stderr[-3000:]}")
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


# ----------------------------------------------------------------------------- runs
_DONE = re.compile(r"\[\d+/\d+\] (\S+): (\w+) in ([\d.]+) s")


def memory_floor(table_rows: int, rows: int, seed: int = 0) -> dict:
    """What one row costs this machine, in nanoseconds (best of five): reading each of ``rows``
    rows' entry in a per-client table of ``table_rows`` int64 at a random position (what every
    payment's lookup of its client does; uniform positions, seeded), and one streaming pass
    (adding 1 to ``rows`` int64). Tables of 100k clients (0.8 MB) stay in the CPU's caches,
    tables of 1M (8 MB) mostly do not: the families that look each payment's client up pay that
    difference per row, whatever the code."""
    import numpy as np
    rng = np.random.default_rng(seed)
    table = rng.integers(0, 2**62, table_rows)
    at = rng.integers(0, table_rows, rows).astype(np.int32)
    out = np.zeros(rows, dtype=np.int64)

    def best(f) -> float:
        times = []
        for _ in range(5):
            t = time.perf_counter()
            f()
            times.append(time.perf_counter() - t)
        return min(times) * 1e9 / rows

    return {"table_rows": table_rows, "rows": rows, "random_read_ns": best(lambda: table[at]),
            "stream_ns": best(lambda: np.add(out, 1, out=out))}


def run_suite(data_dir: Path, out_dir: Path, jobs: int) -> tuple[dict, dict[str, float]]:
    log = out_dir.with_suffix(".log")
    with open(log, "w") as fh:
        m = measure([PY, "-m", "analysis", "run", "--data", str(data_dir), "--out", str(out_dir), "--jobs", str(jobs)],
                    cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT)
    text = log.read_text()
    per_notebook = {name: float(sec) for name, status, sec in _DONE.findall(text) if status == "ok"}
    failed = [name for name, status, _ in _DONE.findall(text) if status != "ok"]
    if m["returncode"] or failed:
        print(f"  the run failed ({', '.join(failed) or 'exit ' + str(m['returncode'])}); see {log}", flush=True)
    m["failed"] = failed
    return m, per_notebook


# ----------------------------------------------------------------------------- report
def _rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds:,.0f}" if seconds > 0 else "-"


def _gb(m: dict) -> str:
    """RSS and PSS peaks of a measured command (PSS blank in results recorded before it was)."""
    pss = m.get("peak_pss_gb")
    return f"{m['peak_gb']:7.2f} {pss:7.2f}" if pss is not None else f"{m['peak_gb']:7.2f} {'':>7}"


def print_table(results: dict) -> None:
    sizes = sorted(results["sizes"], key=int)
    print()
    print(f"machine: {results['machine']}")
    for size in sizes:
        r = results["sizes"][size]
        print(f"\n== {int(size):,} clients: " + ", ".join(f"{k} {v:,}" for k, v in r["rows"].items()))
        print(f"{'stage':34} {'seconds':>9} {'rows/s':>12} {'RSS GB':>7} {'PSS GB':>7} {'DuckDB s':>9} {'ratio':>6} same")
        if "load" in r:
            x = r["load"]
            print(f"{'load + validate':34} {x['seconds']:9.1f} {_rate(x['rows'], x['seconds']):>12} {_gb(x)}")
        for f in r.get("metrics", []):
            ratio = f["package_s"] / f["duckdb_s"] if f["duckdb_s"] > 0 else float("nan")
            print(f"{'metric ' + f['family']:34} {f['package_s']:9.2f} {_rate(f['rows'], f['package_s']):>12} "
                  f"{f['peak_gb']:7.2f} {'':>7} {f['duckdb_s']:9.2f} {ratio:6.1f} {'yes' if f['same'] else 'NO'}")
        if "floor" in r:
            x = r["floor"]
            print(f"(this machine, per row: a random read from a {x['table_rows']:,}-row per-client table "
                  f"{x['random_read_ns']:.1f} ns, a streaming pass {x['stream_ns']:.2f} ns)")
        needs = {rep.name: rep.needs for rep in REPORTS}
        total = sum(r["rows"].values())
        for name, sec in r.get("notebooks", {}).get("per_notebook", {}).items():
            n_rows = sum(r["rows"].get(t, 0) for t in needs.get(name, ())) or total
            print(f"{'notebook ' + name:34} {sec:9.1f} {_rate(n_rows, sec):>12}")
        if "notebooks" in r:
            x = r["notebooks"]
            print(f"{'whole run, 1 worker':34} {x['seconds']:9.1f} {_rate(total, x['seconds']):>12} {_gb(x)}")
        if "run" in r:
            x = r["run"]
            print(f"{'whole run, 2 workers (default)':34} {x['seconds']:9.1f} {_rate(total, x['seconds']):>12} {_gb(x)}"
                  + (f"  FAILED: {', '.join(x['failed'])}" if x.get("failed") else ""))
    if len(sizes) == 2:
        small, big = (results["sizes"][s] for s in sizes)
        print(f"\n== time at {int(sizes[1]):,} / time at {int(sizes[0]):,} (data x{int(sizes[1]) // int(sizes[0])})")
        pairs = []
        if "load" in small and "load" in big:
            pairs.append(("load + validate", small["load"]["seconds"], big["load"]["seconds"]))
        for a, b in zip(small.get("metrics", []), big.get("metrics", [])):
            pairs.append(("metric " + a["family"], a["package_s"], b["package_s"]))
        for name in small.get("notebooks", {}).get("per_notebook", {}):
            if name in big.get("notebooks", {}).get("per_notebook", {}):
                pairs.append(("notebook " + name, small["notebooks"]["per_notebook"][name],
                              big["notebooks"]["per_notebook"][name]))
        if "run" in small and "run" in big:
            pairs.append(("whole run, 2 workers", small["run"]["seconds"], big["run"]["seconds"]))
        if "floor" in small and "floor" in big:  # what x10 rows cost the hardware alone
            a, b = small["floor"], big["floor"]
            pairs.append(("(random reads per client, x10 rows)", a["random_read_ns"] * a["rows"], b["random_read_ns"] * b["rows"]))
            pairs.append(("(streaming pass, x10 rows)", a["stream_ns"] * a["rows"], b["stream_ns"] * b["rows"]))
        for name, a, b in pairs:
            print(f"{name:34} {b / a if a > 0 else float('nan'):6.1f}x")
    lines = target_lines(results)
    if lines:
        print()
        print("\n".join(lines))


# issue 20's targets for the whole run (2 workers): clients -> (seconds, GB of the largest
# process's RSS and of the tree's summed PSS)
TARGETS = {1_000_000: (60.0, 3.0), 10_000_000: (900.0, 12.0)}


def target_lines(results: dict) -> list[str]:
    """One line per size with a target and a measured whole run: the figures against the target
    and whether each is met."""
    lines = []
    for size, (seconds, gb) in TARGETS.items():
        run = results["sizes"].get(str(size), {}).get("run")
        if not run:
            continue
        largest, pss = run.get("peak_process_gb"), run.get("peak_pss_gb")
        checks = [("wall", run["seconds"], seconds, "s"), ("largest process", largest, gb, "GB"),
                  ("summed PSS", pss, gb, "GB")]
        parts = [f"{name} {value:,.1f} {unit} (<= {limit:,.0f}: {'met' if value <= limit else 'NOT met'})"
                 if value is not None else f"{name} not measured" for name, value, limit, unit in checks]
        lines.append(f"target at {size:,} clients: " + ", ".join(parts))
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {', '.join(STAGES)}")
    p.add_argument("--show", action="store_true", help="print the table of the last results.json and stop")
    args = p.parse_args(argv)
    if args.show:
        print_table(json.loads((CACHE / "results.json").read_text()))
        return 0
    stages = [s for s in args.stages.split(",") if s]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        p.error(f"unknown stage(s): {', '.join(unknown)}")
    CACHE.mkdir(exist_ok=True)
    machine = (f"{platform.node() or 'host'}: {psutil.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
               f"{platform.platform()}, Python {platform.python_version()}")
    results = {"machine": machine, "command": " ".join([Path(sys.argv[0]).name] + (argv or sys.argv[1:])), "sizes": {}}
    for size in args.sizes:
        data, rows = ensure_data(size, args.seed)
        r = results["sizes"][str(size)] = {"rows": rows}
        total_rows = sum(rows.values())
        if "load" in stages:
            print(f"[{size:,}] load + validate ...", flush=True)
            # with the malloc settings of the run's load child, whose work this is
            m = measure([PY, "-m", "analysis", "validate", "--data", str(data)], cwd=ROOT, stdout=subprocess.DEVNULL,
                        env=dict(os.environ))
            r["load"] = {**m, "rows": total_rows}
        if "metrics" in stages:
            print(f"[{size:,}] metric families vs DuckDB ...", flush=True)
            r["metrics"] = run_families(data)
            r["floor"] = memory_floor(rows.get("clients", size), rows.get("payments", 0) or 1)
        if "notebooks" in stages:
            print(f"[{size:,}] whole run with 1 worker (per-notebook seconds) ...", flush=True)
            m, per = run_suite(data, CACHE / f"run-{size}-jobs1", jobs=1)
            r["notebooks"] = {**m, "per_notebook": per}
        if "run" in stages:
            print(f"[{size:,}] whole run with 2 workers ...", flush=True)
            m, per = run_suite(data, CACHE / f"run-{size}-jobs2", jobs=2)
            r["run"] = {**m, "per_notebook": per}
    (CACHE / "results.json").write_text(json.dumps(results, indent=1))
    print_table(results)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["_families"]:
        os.chdir(ROOT)
        _families(sys.argv[2])
        sys.exit(0)
    sys.exit(main())
