"""Load a data directory as it was at the as-of date (DESIGN §2-3), with row accounting.

``load_dataset`` reads every contract table present, validates every row (``analysis.data.contract``),
fixes the as-of instant, sets aside rows timed at or after it and hides responses and
resolutions that had not happened yet. The returned ``Dataset`` carries the accounting
(rows read = used + set aside, per table, with reasons) to every report.

A run validates the data once: the runner saves the loaded dataset as a snapshot (one Parquet
file per table plus ``dataset.json``) and passes its path to every notebook as the ``snapshot``
parameter. ``load_dataset(..., snapshot=path)`` then reads it instead of reading and validating
again, but only when it was made from the same data directory, the same files (size and
modification time), the same config and the same as-of request; otherwise it loads as usual.

The snapshot is written once for the engine (DESIGN §11): its instants are timestamps without a
zone, in UTC microseconds (``engine.utc_naive``), so DuckDB scans the files in place, without a
cast, and every kernel of a run shares the same compressed pages. A table asked for as a pandas
frame (by the code that still works in pandas) is read from its file on first use, its instants as
UTC again and its dtypes as validated.
"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from analysis.data.config import Config, load_config
from analysis.data.contract import TABLES, validate_tables
from analysis.data.currency import convert_payments
from analysis.data.engine import Engine, connect, from_frames, utc_naive
from analysis.errors import DataError, InputError
from analysis.data.io import arrow_frame, find_table_files, read_table
from analysis.data.sources import Source, parse_source, read_database

__all__ = ["Dataset", "load_dataset", "default_as_of", "parse_as_of", "parse_day", "AFTER_AS_OF",
           "save_snapshot"]

AFTER_AS_OF = "timed at or after as-of"
_SNAPSHOT_META = "dataset.json"
_SNAPSHOT_SUFFIX = ".parquet"


def _snapshot_file(directory: Path, name: str) -> Path:
    """Where the snapshot in ``directory`` keeps the table ``name``."""
    return directory / f"{name}{_SNAPSHOT_SUFFIX}"


# the column whose time decides whether a row existed at as-of
_ROW_TIME = {"payments": "paid_at", "tickets": "created_at", "ticket_events": "at", "outreach": "at",
             "usage": "at", "leads": "created_at", "calls": "started_at"}
# timestamps that define the default as-of (DESIGN §3)
_EVENT_TIMES = {"clients": ["signed_up_at"], "payments": ["paid_at"],
                "tickets": ["created_at", "first_response_at", "resolved_at"],
                "ticket_events": ["at"], "outreach": ["at"], "leads": ["created_at"]}


def _write_snapshot_table(frame: pd.DataFrame, path: Path) -> None:
    """One validated table as a snapshot file: Parquet (LZ4), instants as UTC microseconds
    without a zone, the pandas dtypes in the file's metadata."""
    pq.write_table(utc_naive(pa.Table.from_pandas(frame, preserve_index=False)), path, compression="lz4")


def _read_snapshot_table(path: Path) -> pd.DataFrame:
    """A file of ``_write_snapshot_table`` as the validated frame: instants as UTC again, text
    as Arrow-backed strings, the other dtypes from the file's pandas metadata."""
    table = pq.read_table(path)
    for i, spec in enumerate(table.schema):
        if pa.types.is_timestamp(spec.type) and spec.type.tz is None:
            table = table.set_column(i, spec.name, pc.cast(table.column(i), pa.timestamp("ns", tz="UTC")))
    return arrow_frame(table)


class _SnapshotTables(Mapping):
    """The tables of a snapshot, each read from its file the first time it is used as a frame:
    a notebook pays only for the tables it touches."""

    def __init__(self, directory: Path, names: list[str]):
        self._dir, self._names, self._read = directory, list(names), {}

    def path(self, name: str) -> Path:
        return _snapshot_file(self._dir, name)

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name not in self._names:
            raise KeyError(name)
        if name not in self._read:
            self._read[name] = _read_snapshot_table(self.path(name))
        return self._read[name]

    def __contains__(self, name) -> bool:
        return name in self._names

    def __iter__(self):
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


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

    def __getattr__(self, name: str):
        if name in TABLES:
            return self.tables.get(name)
        raise AttributeError(name)

    def engine(self, kind: str = "duckdb") -> Engine:
        """The tables in the engine ``kind`` (DESIGN §11: duckdb in-process, or spark, on the
        config's ``spark_master`` or a local session), for the formulas' Ibis expressions. A
        run's snapshot is scanned where it lies (DuckDB reads the Parquet files in place; Spark
        receives them through Arrow); tables in memory are handed over as they are."""
        backend = connect(kind, spark_master=self.config.spark_master)
        if not isinstance(self.tables, _SnapshotTables):
            return from_frames(self.tables, backend)
        if kind == "duckdb":
            return Engine(backend, {n: backend.read_parquet(self.tables.path(n), table_name=n) for n in self.tables})
        return from_frames({n: pq.read_table(self.tables.path(n)) for n in self.tables}, backend)

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


def payment_currency(payments: pd.DataFrame | None) -> str | None:
    """The one currency code of ``payments.currency`` (trimmed, upper case; blanks ignored), or
    None when the column is absent, empty or holds several codes."""
    if payments is None or "currency" not in payments.columns:
        return None
    codes = payments["currency"].dropna().astype("string").str.strip().str.upper()
    codes = codes[codes != ""].unique()
    return str(codes[0]) if len(codes) == 1 else None


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


def _data_range(tables: dict[str, pd.DataFrame]) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    lows, highs = [], []
    for name, cols in _EVENT_TIMES.items():
        for col in cols:
            if name in tables and col in tables[name].columns and tables[name][col].notna().any():
                lows.append(tables[name][col].min())
                highs.append(tables[name][col].max())
    return (min(lows), max(highs)) if lows else (None, None)


def default_as_of(tables: dict[str, pd.DataFrame]) -> pd.Timestamp:
    """The day after the latest event in any table, at 00:00 UTC (so reruns agree on any day)."""
    _, last = _data_range(tables)
    if last is None:
        raise InputError("cannot infer the as-of date: the data holds no timestamps; pass --as-of YYYY-MM-DD")
    return last.floor("D") + pd.Timedelta(days=1)


def _see_at(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp) -> tuple[dict, dict]:
    """Set aside rows timed at/after as-of; blank responses and resolutions not yet happened."""
    used, aside = {}, {}
    for name, frame in tables.items():
        col = _ROW_TIME.get(name)
        if col is None:
            used[name], aside[name] = frame, {}
            continue
        late = frame[col] >= as_of
        if late.any():
            used[name] = frame.loc[~late].reset_index(drop=True)
            aside[name] = {AFTER_AS_OF: int(late.sum())}
        else:  # no row to set aside (the default as-of): the frame as it is, not a copy of it
            used[name], aside[name] = frame, {}
    masked = {}
    if "tickets" in used:
        t = used["tickets"]
        later = {col: t[col] >= as_of for col in ("first_response_at", "resolved_at") if col in t.columns}
        masked.update({col: int(m.sum()) for col, m in later.items()})
        solved = t["resolved_at"].where(~later["resolved_at"]) if "resolved_at" in later else None
        # a rating follows the solve: no solve at as-of, no rating yet
        unsolved = solved.isna() & t["csat_score"].notna() if solved is not None and "csat_score" in t.columns else None
        if unsolved is not None:
            masked["csat_score"] = int(unsolved.sum())
        if any(m.any() for m in later.values()) or (unsolved is not None and unsolved.any()):
            t = used["tickets"] = t.copy()
            for col, m in later.items():
                t.loc[m, col] = pd.NaT
            if unsolved is not None:
                t.loc[unsolved, ["csat_score", "csat_satisfied"]] = pd.NA
    if "leads" in used:
        leads = used["leads"]
        later = {col: leads[col] >= as_of for col in ("qualified_at", "converted_at") if col in leads.columns}
        masked.update({f"leads.{col}": int(m.sum()) for col, m in later.items()})
        if any(m.any() for m in later.values()):
            leads = used["leads"] = leads.copy()
            for col, m in later.items():
                leads.loc[m, col] = pd.NaT
    return used, {"set_aside": aside, "masked": masked}


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
    """Write the validated dataset to ``directory``: one Parquet file per table (see the module)
    and dataset.json.

    A later load is served from it when it names the same files and config and asks for the
    same as-of day (or for none, when this one was inferred from the data as well)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=2) as pool:  # writing releases the GIL
        for job in [pool.submit(_write_snapshot_table, frame, _snapshot_file(directory, name))
                    for name, frame in ds.tables.items()]:
            job.result()
    source = parse_source(ds.source)
    files = {n: Path(source.location) / f for n, f in ds.files.items()} if source.kind == "directory" else {}
    meta = {"key": _snapshot_key(source, files, ds.config), "accounting": ds.accounting,
            "as_of": ds.as_of.isoformat(), "as_of_source": ds.as_of_source,
            "data_range": [None if t is None else t.isoformat() for t in ds.data_range],
            "tables": sorted(ds.tables), "payment_currency": ds.payment_currency}
    (directory / _SNAPSHOT_META).write_text(json.dumps(meta, indent=1), encoding="utf-8")
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
    tables = _SnapshotTables(meta_file.parent, meta["tables"])
    low, high = (None if t is None else pd.Timestamp(t) for t in meta["data_range"])
    return Dataset(tables=tables, accounting=meta["accounting"], as_of=cut,
                   as_of_source="given" if as_of is not None else "data", data_range=(low, high), config=config,
                   source=_shown(source), files={n: a["file"] for n, a in meta["accounting"].items()},
                   payment_currency=meta.get("payment_currency"))


def load_dataset(data_dir: str | Path, config: Config | str | Path | None = None,
                 as_of: str | pd.Timestamp | None = None, snapshot: str | Path | None = None) -> Dataset:
    """Read, validate and cut a data directory at as-of. Raises DataError listing every problem.

    ``snapshot`` (a run passes its own): a saved dataset (``save_snapshot``) read instead when it
    was made from this very request (see the module docstring); otherwise, or when empty, the
    data is read and validated.
    """
    source = parse_source(data_dir)
    if not isinstance(config, Config):
        config = load_config(config)
    files, problems = find_table_files(Path(source.location), list(TABLES)) if not source.is_database else ({}, [])
    if not problems:
        cached = _from_snapshot(source, files, config, as_of, snapshot or None)
        if cached is not None:
            return cached
    raw = {}
    if source.is_database:
        raw, problems = read_database(source, list(TABLES), {n: [c.name for c in cols if c.required]
                                                             for n, cols in TABLES.items()}, config.source_tables)
    else:
        with ThreadPoolExecutor(max_workers=2) as pool:  # file reading and decoding release the GIL
            read = list(pool.map(lambda item: read_table(*item), files.items()))
        for name, (table, problem) in zip(files, read):
            if problem:
                problems.append(problem)
            else:
                raw[name] = table
    where = {n: r.where for n, r in raw.items()}
    typed, found = validate_tables(raw, config)
    problems += found
    if not problems and "payments" in typed:
        typed["payments"], found = convert_payments(
            typed["payments"], typed.get("fx_rates"), config.reporting_currency,
            where, {n: r.row_label for n, r in raw.items()})
        problems += found
    if problems:
        raise DataError(problems, str(source))
    cut = parse_as_of(as_of) if as_of is not None else default_as_of(typed)
    used, notes = _see_at(typed, cut)
    accounting = {}
    for name, frame in typed.items():
        aside = notes["set_aside"][name]
        accounting[name] = {"file": where[name], "read": len(frame), "used": len(used[name]),
                            "set_aside": sum(aside.values()), "set_aside_by_reason": aside}
        assert accounting[name]["read"] == accounting[name]["used"] + accounting[name]["set_aside"]
    if "tickets" in accounting:
        accounting["tickets"]["not_yet_happened_at_as_of"] = {k: v for k, v in notes["masked"].items()
                                                              if not k.startswith("leads.")}
    if "leads" in accounting:
        accounting["leads"]["not_yet_happened_at_as_of"] = {k[6:]: v for k, v in notes["masked"].items()
                                                            if k.startswith("leads.")}
    return Dataset(tables=used, accounting=accounting, as_of=cut,
                   as_of_source="given" if as_of is not None else "data",
                   data_range=_data_range(typed), config=config, source=_shown(source),
                   files=where, payment_currency=payment_currency(used.get("payments")))


def _shown(source: Source) -> Path | str:
    """Dataset.source: a directory as the Path it was given as, a database as its location."""
    return Path(source.location) if source.kind == "directory" else source.location
