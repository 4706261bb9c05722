"""`python -m analysis run`: validate the data once, run the notebooks with papermill, export HTML,
write index.html and metrics.json (DESIGN §3, §5, §9).

Steps: load the config and the data (any problem -> InputError, exit 2, before a notebook
starts); fix the as-of date; check every parameter name against the notebooks' declared
parameters (papermill only warns about unknown ones); run each notebook on the registered
kernel with an explicit cwd, keeping the executed notebook even when it fails; export HTML
with the code hidden; merge the metrics fragments; write index.html.

Running safely (DESIGN §3, ``analysis.run.publish``): the run takes a lock on OUT and creates its
staging directory beside OUT before the data is loaded (an OUT that cannot be written is exit 2);
everything is written into the staging directory, which replaces OUT's content in one atomic
swap only when every file is written. A file-system error while writing (a full disk) stops the
run with one message, exit 1, and OUT as it was. Kernels talk to the runner over Unix sockets in
the run's private scratch directory (no TCP, so no unencrypted-transport warning), get
``START_TIMEOUT_S`` to start, and a kernel that fails to start is started once more (said in the log).

The data is validated once, in a child process that writes the validated tables to a snapshot
in a temporary directory (removed at the end); every notebook gets its path as the ``snapshot``
parameter and reads it instead of validating again (``analysis.data.dataset``). Notebooks are started
longest first (``Report.weight``) so that the workers finish close together. Each gets its share of
the machine's memory for its DuckDB as the ``engine_memory_gb`` parameter (``engine.memory_share``):
two engines side by side, each with DuckDB's default of 80% of the machine, could together take
more than the machine holds before either spilled.
"""
from __future__ import annotations

import ast
import datetime as dt
import importlib.util
import multiprocessing
import os
import re
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import markupsafe
import papermill as pm
import yaml

from analysis.present import kpi
from analysis.run import metrics as metrics_mod
from analysis.present import page
from analysis.run import reports as registry
from analysis.data.config import DEFAULT_CONFIG, load_config
from analysis.data.dataset import Dataset, load_dataset, save_snapshot
from analysis.data.engine import ENGINES, machine_memory, memory_share
from analysis.errors import InputError, PublishError
from analysis.run.publish import WRITE_ERRNOS, OutputLock, discard, is_write_error, publish, stage
from analysis.data.sources import parse_source
from analysis.run.reports import NOTEBOOK_DIR, REPORTS, Report

__all__ = ["KERNEL_NAME", "RUNNER_PARAMETERS", "START_TIMEOUT_S", "Outcome", "parse_parameter",
           "declared_defaults", "coerce_parameter", "plan_parameters", "run", "export_html"]

KERNEL_NAME = os.environ.get("ANALYSIS_KERNEL", "support-retention")
RUNNER_PARAMETERS = ("data_dir", "config_path", "as_of", "metrics_path", "engine", "snapshot", "engine_memory_gb")
FRAGMENT_DIR = "_metrics"
# seconds a kernel has to start (papermill's default of 60 is missed on a busy 2-core machine
# with several kernels starting at once); a kernel that still fails to start is started once more
START_TIMEOUT_S = 300
TEMPLATES = Path(__file__).resolve().parent.parent / "present" / "templates"  # 'offline': lab without CDN scripts


@dataclass
class Outcome:
    name: str
    title: str
    status: str  # ok, failed, skipped
    seconds: float = 0.0
    headline: str = ""
    detail: str = ""
    notes: tuple[str, ...] = ()    # what the runner should log (a kernel started again)
    write_error: str = ""          # the file system refused a write: the run must not publish


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


def declared_defaults(report: Report) -> dict[str, Any]:
    """The notebook's parameters and their default values (None where the default is not a
    Python literal, which then leaves the value unchecked)."""
    out = {}
    for name, spec in pm.inspect_notebook(str(report.notebook)).items():
        try:
            out[name] = ast.literal_eval(spec["default"])
        except (ValueError, SyntaxError, TypeError):
            out[name] = None
    return out


_TYPE_NAMES = {bool: "true/false", int: "an integer", float: "a number", str: "text", dict: "a mapping",
               list: "a list"}


def coerce_parameter(name: str, value: Any, default: Any, notebook: str) -> Any:
    """``value`` as the type of the notebook's declared ``default`` (DESIGN §3): an int where
    the default is an int (not a bool), a float where it is a float (an int is widened), text
    where it is text (a number or date given for it is kept as its text), a mapping or list
    where it is one. Anything else is an InputError naming the parameter, the value and the type."""
    kind = type(default)
    if default is None or kind not in _TYPE_NAMES:
        return value
    if kind is str:
        if isinstance(value, (str, int, float, dt.date)):
            return value.isoformat() if isinstance(value, dt.date) else str(value)
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    raise InputError(f"parameter {name}={value!r}: {notebook} declares it as {_TYPE_NAMES[kind]} "
                     f"(default {default!r}); {value!r} is not {_TYPE_NAMES[kind]}")


def plan_parameters(reports: list[Report], base: dict[str, Any], config_params: dict[str, Any],
                    given: dict[str, Any], optional: dict[str, Any],
                    suite: list[Report] | None = None, selected: list[Report] | None = None) -> dict[str, dict[str, Any]]:
    """Parameters for each notebook to run: runner's, then config (`optional` retention defaults
    go only where declared), then the command line. A name in the config's `parameters` that no
    notebook of the ``suite`` declares, or a command-line name that no ``selected`` notebook
    declares (before any is skipped for a missing table), is an error naming it."""
    defaults = {r.name: declared_defaults(r) for r in reports}
    declared = {name: set(d) for name, d in defaults.items()}
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
    merged = {**optional, **config_params, **given}
    for r in reports:
        mine = {k: coerce_parameter(k, v, defaults[r.name][k], r.notebook.name)
                for k, v in merged.items() if k in declared[r.name]}
        plan[r.name] = {**mine, **base}
    return plan


def export_html(notebook: Path, target: Path, report: Report | None = None, tiles: str = "") -> None:
    """HTML with code hidden (exclude_input; report_mode does not hide it), figures inline, the
    suite's one script (``page.TABLE_SCRIPT``: long tables sort, filter and save as CSV) and
    the reports' Content-Security-Policy (the 'offline' template), which lets that script run by
    its hash and nothing else, so a report opens anywhere, offline, and nothing from the data
    can run script (DESIGN §10). The page's title is the
    report's; cells tagged ``metrics`` (what the report records for metrics.json) are left out;
    above the report: a link back to the index, the contents (its ``##`` sections), the
    parameters it ran with (``page_header``) and its KPI ``tiles`` (``kpi.tiles_html``)."""
    import nbformat
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor
    nb = nbformat.read(notebook, as_version=4)
    if report is not None:
        nb.metadata["title"] = report.title
    exporter = HTMLExporter(template_name="offline", extra_template_basedirs=[str(TEMPLATES)],
                            exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    exporter.register_preprocessor(TagRemovePreprocessor(remove_cell_tags={"metrics"}), enabled=True)
    header = (page_header(nb, declared_defaults(report)) if report is not None else "") + tiles
    body, _ = exporter.from_notebook_node(nb, resources={"content_security_policy": page.CONTENT_SECURITY_POLICY,
                                                         "page_header": header, "extra_style": kpi.TILE_STYLE,
                                                         "table_script": page.table_script_tag()})
    target.write_text(body, encoding="utf-8")


def _source_name(data_dir: str) -> str:
    """The data source as the report bar names it: a directory's or a file's name, a URL whole
    (it holds no password: ``sources.parse_source`` refuses one)."""
    return data_dir if "://" in data_dir else (Path(data_dir).name or data_dir)


def page_header(nb, defaults: dict[str, Any]) -> str:
    """The bar above a report: back to the index, the contents (the ``##`` headings of the
    markdown cells not tagged ``metrics``, linked to nbconvert's heading ids: the text with spaces
    as '-'), and the parameters the notebook ran with (papermill's record), each marked when it
    differs from the notebook's default. Every value HTML-escaped."""
    sections = []
    for cell in nb.cells:
        if cell.cell_type != "markdown" or "metrics" in cell.get("metadata", {}).get("tags", []):
            continue
        for line in cell.source.splitlines():
            if line.startswith("## "):
                text = line[3:].strip()
                sections.append(page.html("<li><a href='#{anchor}'>{text}</a></li>", anchor=text.replace(" ", "-"),
                                             text=text))
    given = dict(nb.metadata.get("papermill", {}).get("parameters", {}))
    changed = sum(name in given and given[name] != default for name, default in defaults.items()
                  if name not in RUNNER_PARAMETERS and name != "metrics_path")
    shown = []
    for name, default in defaults.items():
        if name in RUNNER_PARAMETERS or name == "metrics_path":
            continue
        value = given.get(name, default)
        differs = name in given and value != default
        shown.append(page.html("<tr><td>{name}</td><td>{value}</td><td>{note}</td></tr>", name=page.label(name),
                                  value="(empty)" if value == "" else value,
                                  note=f"set for this run (notebook default {default!r})" if differs else "default"))
    return str(page.html(
        "<nav class='report-nav'><a href='index.html'>&larr; All reports</a>"
        "<details><summary>Contents</summary><ol>{sections}</ol></details>"
        "<details><summary>Ran with: as-of {as_of}, data {data}{changed}</summary>"
        "<table class='run-parameters'><tbody>{rows}</tbody></table></details></nav>",
        sections=markupsafe.Markup("").join(sections), as_of=given.get("as_of", ""),
        data=_source_name(str(given.get("data_dir", ""))),
        changed=page.html("; <b>{n} set by the config or -p</b>", n=f"{changed} parameter{'s' if changed != 1 else ''}")
        if changed else "",
        rows=markupsafe.Markup("").join(shown)))


def _kernel_config(socket_dir: str, name: str, attempt: int):
    """The kernel manager's settings: IPC transport (Unix sockets in the run's private scratch
    directory) instead of TCP on localhost, which makes every kernel warn that it runs
    unencrypted; the sockets go where no other user can reach them and are removed with it."""
    from traitlets.config import Config
    return Config({"KernelManager": {"transport": "ipc", "ip": f"{socket_dir}/kernel-{name}-{attempt}"}})


def _kernel_output(path: Path) -> Path:
    """Send this worker's stdout and stderr, which its kernels inherit, to ``path``: the run's log
    holds the run's own lines; what a kernel prints (its shutdown messages) stays out of it and is
    quoted only for a report that failed. Returns ``path``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    for target in (1, 2):
        os.dup2(fd, target)
    os.close(fd)
    return path


def _cells_ran(executed: Path) -> bool:
    import nbformat
    try:
        nb = nbformat.read(executed, as_version=4)
    except Exception:
        return False
    return any(c.get("execution_count") for c in nb.cells if c.cell_type == "code")


_ERRNO = re.compile(r"\[Errno (\d+)\]")


def _cell_write_error(exc: pm.PapermillExecutionError) -> bool:
    """A cell that failed because the file system refused a write (its metrics fragment)."""
    found = _ERRNO.search(f"{exc.evalue}")
    return exc.ename in ("OSError", "IOError") and bool(found) and int(found.group(1)) in WRITE_ERRNOS


def _execute(report: Report, out_dir: Path, params: dict[str, Any], kernel: str,
             socket_dir: str | None = None,
             previous: tuple[str, dict] | None = None, currency: str | None = None) -> Outcome:
    """Run one notebook (in a worker process) and export its HTML; never raises.

    The run's validated dataset reaches the notebook as its ``snapshot`` parameter. A kernel that
    fails before any cell ran (did not start in ``START_TIMEOUT_S``, died at start) is started
    once more; the outcome's ``notes`` say so. A write refused by the file system is recorded in
    ``write_error`` so that the run does not publish."""
    os.environ.pop("MPLBACKEND", None)  # with Agg inherited, inline figures vanish (DESIGN §9)
    kernel_log = _kernel_output(Path(socket_dir or tempfile.gettempdir()) / f"kernel-{report.name}.log")
    start = time.perf_counter()
    executed = out_dir / f"{report.name}.ipynb"
    status, detail, notes, write_error = "ok", "", [], ""
    for attempt in (1, 2):
        extra = {"config": _kernel_config(socket_dir, report.name, attempt)} if socket_dir else {}
        try:
            pm.execute_notebook(str(report.notebook), str(executed), parameters=params, kernel_name=kernel,
                                cwd=str(NOTEBOOK_DIR), progress_bar=False, log_output=False,
                                start_timeout=START_TIMEOUT_S, **extra)
        except pm.PapermillExecutionError as exc:
            status, detail = "failed", f"cell {exc.exec_count}: {exc.ename}: {exc.evalue}"
            if _cell_write_error(exc):
                write_error = f"{report.name}: {exc.evalue}"
        except Exception as exc:  # kernel died, no such kernel, a write refused: a failed report, not a crash
            status, detail = "failed", f"{type(exc).__name__}: {exc}"
            if is_write_error(exc):
                write_error = f"{report.name}: {exc}"
            elif attempt == 1 and not _cells_ran(executed):
                notes.append(f"[retry] {report.name}: the kernel did not start ({detail}); starting it once more")
                status, detail = "ok", ""
                continue
        break
    fragment = Path(params["metrics_path"])
    tiles = ""
    if status == "ok" and fragment.exists():
        tiles = kpi.tiles_html(metrics_mod.read_fragment(fragment).get("metrics", {}), previous, report.name, currency)
    if executed.exists() and not write_error:
        try:
            export_html(executed, out_dir / f"{report.name}.html", report, tiles)
        except Exception as exc:
            status, detail = "failed", detail or f"HTML export failed: {exc}"
            if is_write_error(exc):
                write_error = f"{report.name}.html: {exc}"
    if status == "failed":
        said = kernel_log.read_text(errors="replace").strip().splitlines() if kernel_log.exists() else []
        notes += [f"[kernel] {report.name}: {line}" for line in said[-5:]]
    headline = ""
    if status == "ok" and fragment.exists():
        headline = metrics_mod.read_fragment(fragment).get("headline", "")
    elif status == "ok":
        status, detail = "failed", "the notebook wrote no metrics (analysis.run.metrics.record was not called)"
    return Outcome(report.name, report.title, status, time.perf_counter() - start, headline, detail,
                   tuple(notes), write_error)


def _skip_page(report: Report, reason: str) -> str:
    return _page(report.title, page.html("<p>This report was skipped: {reason}.</p>"
                                            "<p><a href='index.html'>Back to the index</a></p>", reason=reason))


_PAGE_STYLE = ("body{font-family:sans-serif;max-width:60rem;margin:2rem auto;color:#222}"
               "table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.4rem;text-align:left}"
               ".ok{color:#1a7f37}.failed{color:#c62828;font-weight:bold}.skipped{color:#8a6d00}"
               ".run{color:#666;font-size:.85em}img{max-width:100%}" + kpi.TILE_STYLE)


def _page(title: str, body: str) -> str:
    """A page of the runner's own (index.html, a skipped report) with the reports' CSP."""
    return str(page.html(
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta http-equiv='Content-Security-Policy' content='{csp}'><title>{title}</title><style>{style}</style>"
        "</head><body><h1>{title}</h1>{body}</body></html>",
        csp=page.CONTENT_SECURITY_POLICY, title=title, style=markupsafe.Markup(_PAGE_STYLE),
        body=markupsafe.Markup(body)))


def _index(outcomes: list[Outcome], ds: Dataset, started: dt.datetime, seconds: float, config_path: Path,
           tiles: str = "") -> str:
    first, last = ds.data_range
    span = f"{first:%Y-%m-%d} to {last:%Y-%m-%d}" if first is not None else "no dated rows"
    rows = markupsafe.Markup("").join(page.html(
        "<tr><td><a href='{name}.html'>{title}</a></td><td class='{status}'>{status}</td><td>{headline}</td></tr>",
        name=o.name, title=o.title, status=o.status, headline=o.headline or o.detail) for o in outcomes)
    failed = sum(o.status == "failed" for o in outcomes)
    meta = page.html(
        "<p>Data as of <b>{as_of}</b> ({how}); data from {span}, {source}; {status}. "
        "<a href='history.html'>KPIs over all archived runs</a> &middot; "
        "machine-readable results: <a href='metrics.json'>metrics.json</a>.</p>",
        status="all reports succeeded" if not failed else f"{failed} report(s) failed",
        as_of=ds.as_of_date, how="given" if ds.as_of_source == "given" else "the day after the last event",
        source=ds.source, span=span)
    table = page.html("<table><thead><tr><th>Report</th><th>Status</th><th>Headline</th></tr></thead>"
                         "<tbody>{rows}</tbody></table>", rows=rows)
    foot = page.html("<p class='run'>Run at {started:%Y-%m-%d %H:%M} UTC in {seconds:.0f} s; config: {config}.</p>",
                        started=started, seconds=seconds, config=config_path)
    return _page("Support and retention reports", meta + markupsafe.Markup(tiles) + table + foot)


def _load_and_save(data_dir, config, as_of, snapshot: Path) -> tuple[Dataset, str | None]:
    """(in a child process) load and validate, write the snapshot, return the dataset served
    from it (its tables are read only when used: the accounting, as-of and data range are all
    the runner keeps) and the reporting currency's code."""
    save_snapshot(load_dataset(data_dir, config, as_of), snapshot)
    ds = load_dataset(data_dir, config, as_of, snapshot=snapshot)  # the saved one: no table is read
    return ds, ds.currency


def _validate_once(data_dir, config, as_of, snapshot: Path) -> tuple[Dataset, str | None]:
    """Validate the data once for the whole run, in a child process: the memory the pandas and
    Arrow pools keep after a large load goes back to the system when it exits, instead of
    staying in the runner while the notebooks run. The notebooks read the snapshot."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_load_and_save, data_dir, config, as_of, snapshot).result()


def _written_by_a_run(name: str) -> bool:
    """Entries of OUT that a run of the suite writes (and so replaces, whether this run selected
    the report or not); anything else in OUT is the user's and is kept."""
    stem, _, suffix = name.partition(".")
    return (name in ("index.html", "history.html", "metrics.json", FRAGMENT_DIR)
            or (suffix in ("ipynb", "html") and any(r.name == stem for r in (*REPORTS, *registry.REPORTS))))


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        if is_write_error(exc):
            raise PublishError(f"could not write {path.name}: {exc.strerror}") from None
        raise


def check_engine(engine: str) -> None:
    """InputError unless ``engine`` is one the suite runs on and is installed here."""
    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r}: one of {', '.join(ENGINES)}")
    if engine == "spark" and importlib.util.find_spec("pyspark") is None:
        raise InputError("--engine spark needs pyspark: install the Spark extra with `make spark` "
                         "(and a Java runtime, 17 or later)")


def run(data_dir: str | Path, out_dir: str | Path, as_of: str | None = None, config_path: str | Path | None = None,
        only: list[str] | None = None, parameters: list[str] | None = None, jobs: int = 2,
        archive: str | Path | None = None, kernel: str = KERNEL_NAME, log=print, wait: bool = False,
        engine: str = "duckdb") -> int:
    """Run the reports; return the exit code (0 all ok, 1 a notebook failed). ``engine``: where
    the notebooks run their per-row work (DESIGN §11), duckdb or spark. Raises InputError
    (exit 2: bad input or arguments, OUT locked or not writable) before any notebook starts, and
    PublishError (exit 1) when the run's files could not be written: then nothing is published."""
    started = dt.datetime.now(dt.timezone.utc)
    t0 = time.perf_counter()
    config_file = Path(config_path).resolve() if config_path else None
    config = load_config(config_file)
    config_file = config_file or DEFAULT_CONFIG
    check_engine(engine)
    names = [r.name for r in REPORTS]
    unknown = [n for n in (only or []) if n not in names]
    if unknown:
        raise InputError(f"unknown report(s) for --only: {', '.join(unknown)}; known: {', '.join(names)}")
    selected = [r for r in REPORTS if not only or r.name in only]
    given = dict(parse_parameter(p) for p in (parameters or []))
    clash = sorted(set(given) & set(RUNNER_PARAMETERS))
    if clash:
        raise InputError(f"parameter(s) {', '.join(clash)} are set by the runner; use --data/--as-of/--config")
    options = dict(config_params=config.parameters, given=given, optional=config.retention.model_dump(),
                   suite=list(REPORTS), selected=selected)
    plan_parameters(selected, {}, **options)  # names and types, before the data is read or OUT touched
    out = Path(out_dir).resolve()
    with OutputLock(out).acquire(wait=wait, log=log):
        staging = stage(out)
        try:
            runs = kpi.archived_runs(Path(archive).resolve() if archive else None, [out / "metrics.json"])
            failed, ds = _run_into(staging, data_dir, config, config_file, as_of, selected, options, jobs, kernel,
                                   log, started, t0, runs, engine)
            publish(staging, out, keep=lambda name: not _written_by_a_run(name))
        except BaseException:
            discard(staging)
            raise
        if archive:
            dated = Path(archive).resolve() / ds.as_of_date
            with OutputLock(dated).acquire(wait=True, log=log):
                copy = stage(dated)
                try:
                    shutil.copytree(out, copy, dirs_exist_ok=True)
                    publish(copy, dated, keep=lambda name: False)
                except OSError as exc:
                    discard(copy)
                    raise PublishError(f"the run was published in {out}, but its archive copy {dated} could "
                                       f"not be written ({exc.strerror or exc}); the previous copy is unchanged") from None
            log(f"archived a copy in {dated}")
    log(f"wrote {out / 'index.html'}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def _run_into(target: Path, data_dir, config, config_file: Path, as_of, selected: list[Report], options: dict,
              jobs: int, kernel: str, log, started: dt.datetime, t0: float,
              runs: list[tuple[str, dict]] = (), engine: str = "duckdb") -> tuple[list[str], Dataset]:
    """Validate, run every selected notebook and write every file of the run into ``target``
    (the staging directory): the reports, metrics.json, index.html and history.html. ``runs``:
    the earlier runs (``kpi.archived_runs``), for the change since the previous one and the
    history. Returns the names of the failed reports and the dataset summary."""
    scratch = tempfile.TemporaryDirectory(prefix="analysis-run-")  # snapshot and kernel sockets; removed at the end
    try:
        ds, currency = _validate_once(data_dir, config, as_of, Path(scratch.name) / "dataset")
    except BaseException:
        scratch.cleanup()
        raise
    log(f"data valid: {ds.source} as of {ds.as_of_date}; "
        + ", ".join(f"{n} {a['used']:,}/{a['read']:,} rows" for n, a in ds.accounting.items()))
    fragments = target / FRAGMENT_DIR
    source = parse_source(data_dir)
    base = {"data_dir": str(Path(source.location).resolve()) if source.kind == "directory" else source.location,
            "config_path": str(config_file),
            "as_of": ds.as_of_date, "engine": engine}
    runnable, outcomes = [], {}
    for r in selected:
        missing = r.missing(set(ds.tables))
        if missing:
            reason = f"needs the table(s) {', '.join(missing)}, absent from {ds.source}"
            _write(target / f"{r.name}.html", _skip_page(r, reason))
            outcomes[r.name] = Outcome(r.name, r.title, "skipped", detail=reason)
            log(f"[skip] {r.name}: {reason}")
        else:
            runnable.append(r)
    previous = kpi.previous_run(list(runs), ds.as_of_date)
    plan = plan_parameters(runnable, base, **options)
    for r in runnable:
        plan[r.name]["metrics_path"] = str(fragments / f"{r.name}.json")
    snapshot = str(Path(scratch.name) / "dataset")
    workers = max(1, min(jobs, len(runnable) or 1))
    share = memory_share(workers, machine_memory()) if engine == "duckdb" else 0.0
    for r in runnable:
        plan[r.name]["snapshot"] = snapshot  # the notebook's load_dataset reads it instead of validating again
        plan[r.name]["engine_memory_gb"] = share  # reports side by side share the machine
    with scratch, ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {}
        for r in sorted(runnable, key=lambda r: -r.weight):  # longest first; the index keeps the suite order
            log(f"[start] {r.name}")
            futures[pool.submit(_execute, r, target, plan[r.name], kernel, scratch.name, previous,
                                currency)] = r
        for i, fut in enumerate(as_completed(futures), 1):
            o = fut.result()
            outcomes[o.name] = o
            for note in o.notes:
                log(note)
            log(f"[{i}/{len(runnable)}] {o.name}: {o.status} in {o.seconds:.1f} s"
                + (f" - {o.detail}" if o.detail else ""))
    refused = [o.write_error for o in outcomes.values() if o.write_error]
    if refused:
        raise PublishError(f"could not write the run's files ({refused[0]}); nothing was published")
    ordered = [outcomes[r.name] for r in selected]
    frags = [metrics_mod.read_fragment(fragments / f"{o.name}.json") for o in ordered
             if o.status == "ok"]
    merged = metrics_mod.merge(frags, ds.as_of_date, metrics_mod.data_section(ds.accounting))
    _write(target / "metrics.json", metrics_mod.dumps(merged))
    _write(target / "index.html", _index(ordered, ds, started, time.perf_counter() - t0, config_file,
                                         kpi.tiles_html(merged, previous, currency=currency)))
    history = [r for r in runs if r[0] != ds.as_of_date] + [(ds.as_of_date, merged)]
    _write(target / "history.html", _page("KPIs over the archived runs", str(page.html(
        "<p><a href='index.html'>&larr; All reports</a></p>")) + kpi.history_html(sorted(history), currency)))
    return [o.name for o in ordered if o.status == "failed"], ds
