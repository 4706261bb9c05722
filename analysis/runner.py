"""`python -m analysis run`: validate the data once, run the notebooks with papermill, export HTML,
write index.html and metrics.json (DESIGN §3, §5, §9).

Steps: load the config and the data (any problem -> InputError, exit 2, before a notebook
starts); fix the as-of date; check every parameter name against the notebooks' declared
parameters (papermill only warns about unknown ones); run each notebook on the registered
kernel with an explicit cwd, keeping the executed notebook even when it fails; export HTML
with the code hidden; merge the metrics fragments; write index.html.

The data is validated once, in a child process that writes the validated tables to a snapshot
in a temporary directory (removed at the end); every kernel reads it through
``ANALYSIS_SNAPSHOT`` instead of validating again (``analysis.dataset``). Notebooks are started
longest first (``Report.weight``) so that the workers finish close together.
"""
from __future__ import annotations

import datetime as dt
import html
import multiprocessing
import os
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import papermill as pm
import yaml

from analysis import metrics as metrics_mod
from analysis.config import DEFAULT_CONFIG, load_config
from analysis.dataset import SNAPSHOT_ENV, Dataset, load_dataset, save_snapshot
from analysis.errors import InputError
from analysis.reports import NOTEBOOK_DIR, REPORTS, Report

__all__ = ["KERNEL_NAME", "KERNEL_MALLOC", "RUNNER_PARAMETERS", "Outcome", "parse_parameter", "plan_parameters",
           "run", "export_html", "kernel_environment"]

KERNEL_NAME = os.environ.get("ANALYSIS_KERNEL", "support-retention")
RUNNER_PARAMETERS = ("data_dir", "config_path", "as_of", "metrics_path")
FRAGMENT_DIR = "_metrics"
TEMPLATES = Path(__file__).resolve().parent / "templates"  # 'offline': lab without CDN scripts
# glibc malloc settings for the notebooks' kernels (kept when already set in the environment):
# arrays up to 1 GiB come from the heap, and up to 64 MiB freed at its top is kept. Without
# them every array above 32 MiB (a column of 4M+ rows) is a fresh mapping that goes back to the
# system when freed; on a VM with free page reporting (this project's machines) each of its
# pages is then faulted in from the host again, 1.5-2 s per GB (docs/benchmarks.md).
KERNEL_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(2**30), "MALLOC_TRIM_THRESHOLD_": str(2**26)}


@dataclass
class Outcome:
    name: str
    title: str
    status: str  # ok, failed, skipped
    seconds: float = 0.0
    headline: str = ""
    detail: str = ""


def parse_parameter(text: str) -> tuple[str, Any]:
    """'name=value' from the command line; the value is read as YAML (numbers, true/false),
    dates are kept as ISO strings (papermill cannot pass date objects)."""
    if "=" not in text:
        raise InputError(f"parameter {text!r} must be NAME=VALUE")
    name, value = text.split("=", 1)
    parsed = yaml.safe_load(value) if value.strip() else ""
    if isinstance(parsed, (dt.date, dt.datetime)):
        parsed = value.strip()
    return name.strip(), parsed


def _declared(report: Report) -> set[str]:
    return set(pm.inspect_notebook(str(report.notebook)))


def plan_parameters(reports: list[Report], base: dict[str, Any], config_params: dict[str, Any],
                    given: dict[str, Any], optional: dict[str, Any],
                    suite: list[Report] | None = None, selected: list[Report] | None = None) -> dict[str, dict[str, Any]]:
    """Parameters for each notebook to run: runner's, then config (`optional` retention defaults
    go only where declared), then the command line. A name in the config's `parameters` that no
    notebook of the ``suite`` declares, or a command-line name that no ``selected`` notebook
    declares (before any is skipped for a missing table), is an error naming it."""
    declared = {r.name: _declared(r) for r in reports}
    for r in reports:
        missing = [p for p in RUNNER_PARAMETERS if p not in declared[r.name]]
        if missing:
            raise InputError(f"notebook {r.notebook.name} does not declare the runner's parameters: {', '.join(missing)}")
    def known_in(group: list[Report] | None) -> set[str]:
        group = reports if group is None else group
        return set().union(*(declared.get(r.name) or _declared(r) for r in group)) if group else set()
    for source, params, group in (("config 'parameters'", config_params, suite),
                                  ("command line", given, selected)):
        known = known_in(group)
        unknown = sorted(set(params) - known)
        if unknown:
            raise InputError(f"unknown parameter(s) from the {source}: {', '.join(unknown)}; "
                             f"the notebooks declare: {', '.join(sorted(known - set(RUNNER_PARAMETERS)) or '(none)')}")
    plan = {}
    for r in reports:
        merged = {**optional, **config_params, **given}
        plan[r.name] = {**{k: v for k, v in merged.items() if k in declared[r.name]}, **base}
    return plan


def export_html(notebook: Path, target: Path) -> None:
    """HTML with code hidden (exclude_input; report_mode does not hide it), figures inline and
    no scripts fetched from the network (the 'offline' template), so a report opens anywhere."""
    import nbformat
    from nbconvert import HTMLExporter
    exporter = HTMLExporter(template_name="offline", extra_template_basedirs=[str(TEMPLATES)],
                            exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nbformat.read(notebook, as_version=4))
    target.write_text(body, encoding="utf-8")


def kernel_environment(env: dict) -> dict:
    """Add ``KERNEL_MALLOC`` to ``env`` (the environment a kernel or the load child starts with)
    where not set already; glibc reads them when the process starts. Returns ``env``."""
    for name, value in KERNEL_MALLOC.items():
        env.setdefault(name, value)
    return env


def _execute(report: Report, out_dir: Path, params: dict[str, Any], kernel: str,
             snapshot: str | None = None) -> Outcome:
    """Run one notebook (in a worker process) and export its HTML; never raises.

    ``snapshot``: the run's validated dataset, handed to the kernel in its environment so that
    the notebook's ``load_dataset`` reads it instead of validating the data again."""
    os.environ.pop("MPLBACKEND", None)  # with Agg inherited, inline figures vanish (DESIGN §9)
    kernel_environment(os.environ)
    if snapshot:
        os.environ[SNAPSHOT_ENV] = snapshot
    start = time.perf_counter()
    executed = out_dir / f"{report.name}.ipynb"
    status, detail = "ok", ""
    try:
        pm.execute_notebook(str(report.notebook), str(executed), parameters=params, kernel_name=kernel,
                            cwd=str(NOTEBOOK_DIR), progress_bar=False, log_output=False)
    except pm.PapermillExecutionError as exc:
        status, detail = "failed", f"cell {exc.exec_count}: {exc.ename}: {exc.evalue}"
    except Exception as exc:  # kernel died, no such kernel, ...: still a failed report, not a crash
        status, detail = "failed", f"{type(exc).__name__}: {exc}"
    if executed.exists():
        try:
            export_html(executed, out_dir / f"{report.name}.html")
        except Exception as exc:
            status, detail = "failed", detail or f"HTML export failed: {exc}"
    headline = ""
    fragment = Path(params["metrics_path"])
    if status == "ok" and fragment.exists():
        headline = metrics_mod.read_fragment(fragment).get("headline", "")
    elif status == "ok":
        status, detail = "failed", "the notebook wrote no metrics (analysis.metrics.record was not called)"
    return Outcome(report.name, report.title, status, time.perf_counter() - start, headline, detail)


def _skip_page(report: Report, reason: str, target: Path) -> None:
    target.write_text(_page(report.title, f"<p>This report was skipped: {html.escape(reason)}.</p>"
                                          f"<p><a href='index.html'>Back to the index</a></p>"), encoding="utf-8")


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;max-width:60rem;margin:2rem auto;color:#222}"
            "table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.4rem;text-align:left}"
            ".ok{color:#1a7f37}.failed{color:#c62828;font-weight:bold}.skipped{color:#8a6d00}</style></head>"
            f"<body><h1>{html.escape(title)}</h1>{body}</body></html>")


def _index(outcomes: list[Outcome], ds: Dataset, started: dt.datetime, seconds: float, config_path: Path) -> str:
    first, last = ds.data_range
    span = f"{first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC" if first is not None else "no dated rows"
    rows = "".join(
        f"<tr><td><a href='{o.name}.html'>{html.escape(o.title)}</a></td>"
        f"<td class='{o.status}'>{o.status}</td><td>{html.escape(o.headline or o.detail)}</td>"
        f"<td>{o.seconds:.1f} s</td></tr>" for o in outcomes)
    failed = sum(o.status == "failed" for o in outcomes)
    status = "all reports succeeded" if not failed else f"{failed} report(s) failed"
    meta = (f"<p>Run at {started:%Y-%m-%d %H:%M:%S} UTC in {seconds:.1f} s; {html.escape(status)}.<br>"
            f"As-of: <b>{ds.as_of_date}</b> ({'given' if ds.as_of_source == 'given' else 'the day after the last event'}); "
            f"data: {html.escape(str(ds.source))}, {span}; config: {html.escape(str(config_path))}.<br>"
            f"Machine-readable results: <a href='metrics.json'>metrics.json</a>.</p>")
    table = ("<table><thead><tr><th>Report</th><th>Status</th><th>Headline</th><th>Time</th></tr></thead>"
             f"<tbody>{rows}</tbody></table>")
    return _page("Support and retention reports", meta + table)


def _load_and_save(data_dir, config, as_of, snapshot: Path) -> Dataset:
    """(in a child process) load and validate, write the snapshot, return the dataset without
    its tables and key positions: the accounting, as-of and data range are all the runner keeps."""
    ds = load_dataset(data_dir, config, as_of)
    save_snapshot(ds, snapshot)
    ds.tables = {name: frame.iloc[:0] for name, frame in ds.tables.items()}
    ds.positions = {}
    return ds


def _validate_once(data_dir, config, as_of, snapshot: Path) -> Dataset:
    """Validate the data once for the whole run, in a child process: the memory the pandas and
    Arrow pools keep after a large load goes back to the system when it exits, instead of
    staying in the runner while the notebooks run. The notebooks read the snapshot."""
    saved = {name: os.environ.get(name) for name in KERNEL_MALLOC}
    kernel_environment(os.environ)  # the child starts with the kernels' malloc settings (as fast)
    try:
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
            return pool.submit(_load_and_save, data_dir, config, as_of, snapshot).result()
    finally:
        for name, value in saved.items():  # the runner's own environment as it was
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _clear(out_dir: Path) -> None:
    """Remove the artifacts of an earlier run in OUT (only what the runner writes)."""
    for r in REPORTS:
        for suffix in (".ipynb", ".html"):
            (out_dir / f"{r.name}{suffix}").unlink(missing_ok=True)
    for name in ("index.html", "metrics.json"):
        (out_dir / name).unlink(missing_ok=True)
    shutil.rmtree(out_dir / FRAGMENT_DIR, ignore_errors=True)


def run(data_dir: str | Path, out_dir: str | Path, as_of: str | None = None, config_path: str | Path | None = None,
        only: list[str] | None = None, parameters: list[str] | None = None, jobs: int = 2,
        archive: str | Path | None = None, kernel: str = KERNEL_NAME, log=print) -> int:
    """Run the reports; return the exit code (0 all ok, 1 a notebook failed). Raises InputError."""
    started = dt.datetime.now(dt.timezone.utc)
    t0 = time.perf_counter()
    config_file = Path(config_path).resolve() if config_path else None
    config = load_config(config_file)
    config_file = config_file or DEFAULT_CONFIG
    names = [r.name for r in REPORTS]
    unknown = [n for n in (only or []) if n not in names]
    if unknown:
        raise InputError(f"unknown report(s) for --only: {', '.join(unknown)}; known: {', '.join(names)}")
    selected = [r for r in REPORTS if not only or r.name in only]
    given = dict(parse_parameter(p) for p in (parameters or []))
    clash = sorted(set(given) & set(RUNNER_PARAMETERS))
    if clash:
        raise InputError(f"parameter(s) {', '.join(clash)} are set by the runner; use --data/--as-of/--config")
    scratch = tempfile.TemporaryDirectory(prefix="analysis-run-")  # the snapshot; removed at the end
    try:
        ds = _validate_once(data_dir, config, as_of, Path(scratch.name) / "dataset")
    except BaseException:
        scratch.cleanup()
        raise
    log(f"data valid: {ds.source} as of {ds.as_of_date}; "
        + ", ".join(f"{n} {a['used']:,}/{a['read']:,} rows" for n, a in ds.accounting.items()))
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    _clear(out)
    fragments = out / FRAGMENT_DIR
    base = {"data_dir": str(Path(data_dir).resolve()), "config_path": str(config_file),
            "as_of": ds.as_of_date}
    runnable, outcomes = [], {}
    for r in selected:
        missing = r.missing(set(ds.tables))
        if missing:
            reason = f"needs the table(s) {', '.join(missing)}, absent from {ds.source}"
            _skip_page(r, reason, out / f"{r.name}.html")
            outcomes[r.name] = Outcome(r.name, r.title, "skipped", detail=reason)
            log(f"[skip] {r.name}: {reason}")
        else:
            runnable.append(r)
    plan = plan_parameters(runnable, base, config.parameters, given,
                           optional=config.retention.model_dump(), suite=list(REPORTS), selected=selected)
    for r in runnable:
        plan[r.name]["metrics_path"] = str(fragments / f"{r.name}.json")
    snapshot = str(Path(scratch.name) / "dataset")
    with scratch, ProcessPoolExecutor(max_workers=max(1, min(jobs, len(runnable) or 1)),
                                      mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {}
        for r in sorted(runnable, key=lambda r: -r.weight):  # longest first; the index keeps the suite order
            log(f"[start] {r.name}")
            futures[pool.submit(_execute, r, out, plan[r.name], kernel, snapshot)] = r
        for i, fut in enumerate(as_completed(futures), 1):
            o = fut.result()
            outcomes[o.name] = o
            log(f"[{i}/{len(runnable)}] {o.name}: {o.status} in {o.seconds:.1f} s"
                + (f" - {o.detail}" if o.detail else ""))
    ordered = [outcomes[r.name] for r in selected]
    frags = [metrics_mod.read_fragment(fragments / f"{o.name}.json") for o in ordered
             if o.status == "ok"]
    merged = metrics_mod.merge(frags, ds.as_of_date, metrics_mod.data_section(ds.accounting))
    metrics_mod.write_json(out / "metrics.json", merged)
    (out / "index.html").write_text(_index(ordered, ds, started, time.perf_counter() - t0, config_file),
                                    encoding="utf-8")
    if archive:
        dated = Path(archive).resolve() / ds.as_of_date
        shutil.rmtree(dated, ignore_errors=True)
        shutil.copytree(out, dated)
        log(f"archived a copy in {dated}")
    failed = [o.name for o in ordered if o.status == "failed"]
    log(f"wrote {out / 'index.html'}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0

