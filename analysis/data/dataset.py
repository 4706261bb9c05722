"""Load a data directory as it was at the as-of date (DESIGN §2-3), with row accounting.

``load_dataset`` reads every contract table present, validates every row (``analysis.data.contract``),
fixes the as-of instant, sets aside rows timed at or after it and hides responses and
resolutions that had not happened yet. The returned ``Dataset`` carries the accounting
(rows read = used + set aside, per table, with reasons) to every report.

Every load goes through the engine at bounded memory (``analysis.data.validate``): each table is
typed in batches into a Parquet file (LZ4, instants as UTC microseconds without a zone, every row
read), the rules run in DuckDB over those files, and the as-of cut, the row accounting and the
currency conversion are DuckDB queries too. The typed files and ``dataset.json`` (the accounting,
the as-of instant, each column's pandas dtype) are the dataset's **snapshot**: a table is the
Ibis expression ``_seen_at`` over its file (rows before as-of, values not yet happened blanked),
scanned in place by each report's DuckDB, or read into pandas on first use by the code that still
works in pandas. A load keeps its snapshot in a temporary directory that lives as long as the
``Dataset``.

A run validates the data once: the runner saves the loaded dataset's snapshot (``save_snapshot``:
its files linked) and passes its path to every notebook as the ``snapshot`` parameter.
``load_dataset(..., snapshot=path)`` then reads it instead of reading and validating again, but
only when it was made from the same data directory, the same files (size and modification time),
the same config and the same as-of request; otherwise it loads as usual.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import ibis
import ibis.expr.types as ir
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from analysis.data.config import Config, load_config
from analysis.data.contract import TABLES
from analysis.data.currency import convert_payments
from analysis.data.engine import Engine, as_count, connect, from_frames, instant, quiet_duckdb
from analysis.data.io import RawTable, arrow_frame, find_table_files, read_table
from analysis.data.sources import Source, parse_source, read_database
from analysis.data.validate import check_rules, type_table
from analysis.errors import DataError, InputError

__all__ = ["Dataset", "load_dataset", "default_as_of", "parse_as_of", "parse_day", "AFTER_AS_OF",
           "save_snapshot"]

AFTER_AS_OF = "timed at or after as-of"
_SNAPSHOT_META = "dataset.json"
_SUFFIX = ".parquet"


# the column whose time decides whether a row existed at as-of
_ROW_TIME = {"payments": "paid_at", "tickets": "created_at", "ticket_events": "at", "outreach": "at",
             "usage": "at", "leads": "created_at", "calls": "started_at"}
# timestamps that define the default as-of (DESIGN §3)
_EVENT_TIMES = {"clients": ["signed_up_at"], "payments": ["paid_at"],
                "tickets": ["created_at", "first_response_at", "resolved_at"],
                "ticket_events": ["at"], "outreach": ["at"], "leads": ["created_at"]}


def _frame(table: pa.Table, dtypes: dict[str, str]) -> pd.DataFrame:
    """A table of the snapshot as the validated frame: instants as UTC again, text as
    Arrow-backed strings, the other columns in the pandas ``dtypes`` typing gave them."""
    for i, spec in enumerate(table.schema):
        if pa.types.is_timestamp(spec.type) and spec.type.tz is None:
            table = table.set_column(i, spec.name, pc.cast(table.column(i), pa.timestamp("ns", tz="UTC")))
    frame = arrow_frame(table)
    for c, dtype in dtypes.items():
        if c in frame.columns and str(frame[c].dtype) != dtype and not dtype.startswith("datetime64"):
            frame[c] = frame[c].astype(dtype)
    return frame


class _SnapshotTables(Mapping):
    """The tables of a snapshot: each is its typed file (every row read, see
    ``analysis.data.validate``) seen at as-of (``_seen_at``), read the first time it is used as a
    frame: a notebook pays only for the tables it touches."""

    def __init__(self, directory: Path, meta: dict):
        self._dir, self._meta, self._read = directory, meta, {}

    @property
    def directory(self) -> Path:
        return self._dir

    def files(self) -> list[Path]:
        return [self._dir / f for f in self._meta["files"].values()]

    def seen(self, backend, name: str) -> ir.Table:
        """The table ``name`` in the DuckDB ``backend``, as it was at as-of: its file scanned in
        place, rows after as-of left out, values not yet happened blanked."""
        path = self._dir / self._meta["files"][name]
        if not path.is_file():
            raise FileNotFoundError(f"the run's snapshot lost its file {path}")
        typed = backend.read_parquet(path, table_name=f"typed_{name}")
        columns = list(self._meta["dtypes"][name])
        if self._whole(name):
            return typed.select(*columns)
        return _seen_at(typed, name, instant(pd.Timestamp(self._meta["as_of"])))[2].select(*columns)

    def _whole(self, name: str) -> bool:
        """Whether the table is seen at as-of as it was read: no row set aside, no value blanked
        (the usual case at the default as-of), so its file is the table as it is."""
        a = self._meta["accounting"][name]
        return not a["set_aside"] and not any(a.get("not_yet_happened_at_as_of", {}).values())

    def arrow(self, name: str) -> pa.Table:
        """The table ``name`` as seen at as-of, in its source's row order, as Arrow (its file's
        columns read directly when the table is whole, see ``_whole``)."""
        if self._whole(name):
            return pq.read_table(self._dir / self._meta["files"][name], columns=list(self._meta["dtypes"][name]))
        con = ibis.duckdb.connect()   # keeps the rows' order
        try:
            quiet_duckdb(con)
            return con.to_pyarrow(self.seen(con, name))
        finally:
            con.disconnect()

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name not in self._meta["tables"]:
            raise KeyError(name)
        if name not in self._read:
            self._read[name] = _frame(self.arrow(name), self._meta["dtypes"][name])
        return self._read[name]

    def __contains__(self, name) -> bool:
        return name in self._meta["tables"]

    def __iter__(self):
        return iter(self._meta["tables"])

    def __len__(self) -> int:
        return len(self._meta["tables"])


@dataclass
class Dataset:
    """Validated tables seen at ``as_of``, with the row accounting of how they were obtained."""

    tables: Mapping[str, pd.DataFrame]
    accounting: dict[str, dict]
    as_of: pd.Timestamp
    as_of_source: str  # "given" or "data"
    data_range: tuple[pd.Timestamp | None, pd.Timestamp | None]
    config: Config
    source: Path | str    # a data directory, or a database (a .duckdb file or a URL)
    files: dict[str, str]   # table -> its file's name, or "table NAME in <database>"
    payment_currency: str | None = None  # the one code of payments.currency (None: none or several)
    _keep: object = field(default=None, repr=False, compare=False)  # the load's temporary directory

    def __getattr__(self, name: str):
        if name in TABLES:
            return self.tables.get(name)
        raise AttributeError(name)

    def engine(self, kind: str = "duckdb", memory_gb: float = 0) -> Engine:
        """The tables in the engine ``kind`` (DESIGN §11: duckdb in-process, or spark, on the
        config's ``spark_master`` or a local session), for the formulas' Ibis expressions. A
        run's snapshot is scanned where it lies (DuckDB reads the Parquet files in place; Spark
        receives them through Arrow); tables in memory are handed over as they are. DuckDB
        spills beyond ``memory_gb`` (0: its own default; a run gives each report its share,
        ``engine.memory_share``); Spark's memory is the session's or the cluster's."""
        backend = connect(kind, spark_master=self.config.spark_master,
                          memory_gb=memory_gb if kind == "duckdb" else 0)
        if not isinstance(self.tables, _SnapshotTables):
            return from_frames(self.tables, backend)
        if kind == "duckdb":
            return Engine(backend, {n: self.tables.seen(backend, n) for n in self.tables}, files=self._keep)
        return from_frames({n: self.tables.arrow(n) for n in self.tables}, backend)

    def has(self, *names: str) -> bool:
        return all(n in self.tables for n in names)

    @property
    def as_of_date(self) -> str:
        return self.as_of.strftime("%Y-%m-%d")

    @property
    def currency(self) -> str | None:
        """The code of the currency amounts are reported in: the config's ``reporting_currency``,
        else the one code of ``payments.currency``; None when the data names none."""
        if self.config.reporting_currency:
            return self.config.reporting_currency.strip().upper()
        return self.payment_currency


def parse_as_of(value: str | pd.Timestamp) -> pd.Timestamp:
    """'YYYY-MM-DD' -> the instant 00:00 UTC at the start of that day."""
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise InputError(f"--as-of must be a date YYYY-MM-DD, got {value!r}") from None
    if ts is pd.NaT:
        raise InputError(f"--as-of must be a date YYYY-MM-DD, got {value!r}")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.floor("D")


def parse_day(value: str, name: str) -> pd.Timestamp:
    """A notebook parameter 'YYYY-MM-DD' -> 00:00 UTC that day; InputError naming the parameter."""
    try:
        return pd.Timestamp(str(value)).tz_localize("UTC").normalize()
    except (ValueError, TypeError):
        raise InputError(f"parameter {name}: expected a date YYYY-MM-DD, got {value!r}") from None


def _data_range(con, tables: dict[str, ir.Table]) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """The first and last instant of the contract's event columns (``_EVENT_TIMES``), over every
    row read (before the as-of cut)."""
    lows, highs = [], []
    for name, cols in _EVENT_TIMES.items():
        present = [c for c in cols if name in tables and c in tables[name].columns]
        if not present:
            continue
        t = tables[name]
        row = con.execute(t.aggregate(**{f"lo{i}": t[c].min() for i, c in enumerate(present)},
                                      **{f"hi{i}": t[c].max() for i, c in enumerate(present)})).iloc[0]
        for i in range(len(present)):
            if pd.notna(row[f"lo{i}"]):
                lows.append(pd.Timestamp(row[f"lo{i}"]).tz_localize("UTC"))
                highs.append(pd.Timestamp(row[f"hi{i}"]).tz_localize("UTC"))
    return (min(lows), max(highs)) if lows else (None, None)


def default_as_of(data_range: tuple[pd.Timestamp | None, pd.Timestamp | None]) -> pd.Timestamp:
    """The day after the latest event in any table (``data_range``), at 00:00 UTC (so reruns
    agree on any day)."""
    _, last = data_range
    if last is None:
        raise InputError("cannot infer the as-of date: the data holds no timestamps; pass --as-of YYYY-MM-DD")
    return last.floor("D") + pd.Timedelta(days=1)


# columns blanked when their event had not happened at as-of
_NOT_YET = {"tickets": ("first_response_at", "resolved_at"), "leads": ("qualified_at", "converted_at")}


def _seen_at(t: ir.Table, name: str, cut: ir.TimestampScalar) -> tuple[ir.Table, dict[str, ir.BooleanValue], ir.Table]:
    """A typed table as seen at as-of: (the rows timed before ``cut``, the masks of values not yet
    happened by column, those rows with the masked values blanked). A response or resolution at or
    after as-of is blanked, and so is a rating of a ticket not solved at as-of (a rating follows
    the solve); leads' qualification and conversion likewise."""
    col = _ROW_TIME.get(name)
    used = t.filter(t[col] < cut) if col else t
    later = {c: (used[c] >= cut).fill_null(False) for c in _NOT_YET.get(name, ()) if c in used.columns}
    masks = dict(later)
    blank = {c: [m] for c, m in later.items()}
    if name == "tickets" and "resolved_at" in later and "csat_score" in used.columns:
        unsolved = (used.resolved_at.isnull() | later["resolved_at"]) & used.csat_score.notnull()
        masks["csat_score"] = unsolved
        for c in ("csat_score", "csat_satisfied"):
            blank.setdefault(c, []).append(unsolved)
    seen = used.mutate(**{c: ibis.or_(*ms).ifelse(ibis.null(used[c].type()), used[c]) for c, ms in blank.items()}) \
        if blank else used
    return used, masks, seen


def _load_connection(workdir: Path):
    """The load's DuckDB: in memory, in UTC, keeping the rows' order (a snapshot holds every
    table in its source's order), spilling into ``workdir``."""
    con = ibis.duckdb.connect()
    quiet_duckdb(con)
    con.raw_sql("SET temp_directory = '{}'".format(str(workdir / "spill").replace("'", "''")))
    return con


def _snapshot_key(source: Source, files: dict[str, Path], config: Config) -> dict:
    """What a snapshot must have been made from to stand in for reading the source again: a
    directory's files (name, size, modification time), a DuckDB file's size and modification
    time, a PostgreSQL URL as given (the run reads the database once: every report of a run
    sees the same rows even while the database changes)."""
    if source.kind == "directory":
        stats = {n: [p.name, p.stat().st_size, p.stat().st_mtime_ns] for n, p in sorted(files.items())}
        return {"source": str(Path(source.location).resolve()), "files": stats, "config": config.model_dump(mode="json")}
    stats = {}
    if source.kind == "duckdb":
        st = Path(source.location).stat()
        stats = {"database": [st.st_size, st.st_mtime_ns]}
    return {"source": source.location, "files": stats, "config": config.model_dump(mode="json")}


def save_snapshot(ds: Dataset, directory: str | Path) -> Path:
    """Keep the validated dataset in ``directory`` (see the module): its files are linked, or
    copied where a link cannot be made.

    A later load is served from it when it names the same files and config and asks for the
    same as-of day (or for none, when this one was inferred from the data as well)."""
    if not isinstance(ds.tables, _SnapshotTables):
        raise TypeError("save_snapshot needs a dataset made by load_dataset")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for item in ds.tables.files() + [ds.tables.directory / _SNAPSHOT_META]:
        target = directory / item.name
        target.unlink(missing_ok=True)
        try:
            os.link(item, target)
        except OSError:
            shutil.copy2(item, target)
    return directory


def _from_snapshot(source: Source, files: dict[str, Path], config: Config,
                   as_of: str | pd.Timestamp | None, where: str | Path | None) -> Dataset | None:
    """The dataset from the snapshot ``where`` when it was made from exactly this request, else None."""
    meta_file = Path(where) / _SNAPSHOT_META if where else None
    if meta_file is None or not meta_file.is_file():
        return None
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    try:
        key = _snapshot_key(source, files, config)
    except OSError:
        return None
    cut = pd.Timestamp(meta["as_of"])
    same_day = meta["as_of_source"] == "data" if as_of is None else parse_as_of(as_of) == cut
    if meta["key"] != key or not same_day:
        return None
    return _dataset(meta_file.parent, meta, config, source, "given" if as_of is not None else "data")


def _dataset(directory: Path, meta: dict, config: Config, source: Source, as_of_source: str,
             keep: object = None) -> Dataset:
    low, high = (None if t is None else pd.Timestamp(t) for t in meta["data_range"])
    return Dataset(tables=_SnapshotTables(directory, meta), accounting=meta["accounting"],
                   as_of=pd.Timestamp(meta["as_of"]), as_of_source=as_of_source, data_range=(low, high),
                   config=config, source=_shown(source), files={n: a["file"] for n, a in meta["accounting"].items()},
                   payment_currency=meta.get("payment_currency"), _keep=keep)


def _raw_tables(source: Source, files: dict[str, Path], config: Config) -> tuple[dict[str, RawTable], list]:
    """The contract tables the source holds, opened for reading in batches, and the problems of
    opening them."""
    if source.is_database:
        return read_database(source, list(TABLES), {n: [c.name for c in cols if c.required]
                                                    for n, cols in TABLES.items()}, config.source_tables)
    raw, problems = {}, []
    for name, path in files.items():
        table, problem = read_table(name, path)
        if problem:
            problems.append(problem)
        else:
            raw[name] = table
    return raw, problems


def load_dataset(data_dir: str | Path, config: Config | str | Path | None = None,
                 as_of: str | pd.Timestamp | None = None, snapshot: str | Path | None = None) -> Dataset:
    """Read, validate and cut a data source at as-of. Raises DataError listing every problem.

    The tables are typed batch by batch and checked in DuckDB (``analysis.data.validate``), cut at
    as-of there and written as a snapshot into a temporary directory that lives as long as the
    returned dataset; its frames are read from it on first use. ``snapshot`` (a run passes its
    own): a saved dataset (``save_snapshot``) read instead when it was made from this very
    request (see the module docstring); otherwise, or when empty, the data is read and validated.
    """
    source = parse_source(data_dir)
    if not isinstance(config, Config):
        config = load_config(config)
    files, problems = find_table_files(Path(source.location), list(TABLES)) if not source.is_database else ({}, [])
    if not problems:
        cached = _from_snapshot(source, files, config, as_of, snapshot or None)
        if cached is not None:
            return cached
    raw, found = _raw_tables(source, files, config)
    problems += found
    work = tempfile.TemporaryDirectory(prefix="analysis-load-")
    out = Path(work.name)
    names = [name for name in TABLES if name in raw]
    with ThreadPoolExecutor(max_workers=2) as pool:  # reading, typing and writing release the GIL in part
        typed = dict(zip(names, pool.map(lambda n: type_table(raw[n], out / f"{n}{_SUFFIX}"), names)))
    problems += [p for t in typed.values() for p in t.problems]
    stored = {n: t.path.name for n, t in typed.items() if t.path is not None}
    con = _load_connection(out)
    try:
        tables = {n: con.read_parquet(t.path, table_name=f"typed_{n}") for n, t in typed.items() if t.path is not None}
        problems += check_rules(con, typed, tables, config)
        if not problems and "payments" in tables:
            tables["payments"], found, converted = convert_payments(con, tables["payments"], tables.get("fx_rates"),
                                                                    config.reporting_currency, raw)
            problems += found
            if converted:   # the converted payments are kept in a file of their own
                typed["payments"].dtypes["amount_original"] = "float64"
                stored["payments"] = f"payments_converted{_SUFFIX}"
                con.to_parquet(tables["payments"], out / stored["payments"], compression="lz4")
                tables["payments"] = con.read_parquet(out / stored["payments"], table_name="typed_payments_converted")
        if problems:
            raise DataError(problems, str(source))
        data_range = _data_range(con, tables)
        cut = parse_as_of(as_of) if as_of is not None else default_as_of(data_range)
        accounting, currency = {}, None
        for name, t in tables.items():
            used, masks, seen = _seen_at(t, name, instant(cut))
            counts = con.execute(used.aggregate(used=ibis._.count(), **{f"m_{c}": m.sum() for c, m in masks.items()})).iloc[0]
            read, kept = typed[name].rows, int(counts["used"])
            accounting[name] = {"file": raw[name].where, "read": read, "used": kept, "set_aside": read - kept,
                                "set_aside_by_reason": {AFTER_AS_OF: read - kept} if read > kept else {}}
            masked = {c: as_count(counts[f"m_{c}"]) for c in masks}
            if name in _NOT_YET:
                accounting[name]["not_yet_happened_at_as_of"] = masked
            if name == "payments" and "currency" in seen.columns:
                codes = seen.select(code=seen.currency.strip().upper()).filter(lambda s: s.code.notnull() & (s.code != ""))
                found_codes = con.execute(codes.distinct().limit(2))["code"].tolist()
                currency = str(found_codes[0]) if len(found_codes) == 1 else None
    finally:
        con.disconnect()
    meta = {"key": _snapshot_key(source, files, config), "accounting": accounting, "as_of": cut.isoformat(),
            "as_of_source": "given" if as_of is not None else "data",
            "data_range": [None if t is None else t.isoformat() for t in data_range],
            "tables": [n for n in TABLES if n in tables], "payment_currency": currency,
            "dtypes": {n: t.dtypes for n, t in typed.items() if n in tables}, "files": stored}
    (out / _SNAPSHOT_META).write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return _dataset(out, meta, config, source, meta["as_of_source"], keep=work)


def _shown(source: Source) -> Path | str:
    """Dataset.source: a directory as the Path it was given as, a database as its location."""
    return Path(source.location) if source.kind == "directory" else source.location
