"""Where the per-row work runs (DESIGN §11): Ibis expressions on DuckDB in-process by default,
on Spark or on the user's database, and what comes back is a small pandas table.

An ``Engine`` is one Ibis backend (a connection) and the contract's tables in it. Formula modules
build expressions on ``engine.table(name)`` and call ``engine.frame(expr)`` for the per-client or
per-group result; pandas, lifelines and matplotlib take it from there.

Every session runs in UTC: DuckDB, PostgreSQL and Spark read the calendar fields of a timestamp
with time zone (year, month, day) in the session's time zone, which is the machine's unless set,
so a laptop in Moscow would put a payment at 01:00 MSK on the 1st in the previous month. Tables
given in memory (``from_frames``) hold their instants as timestamps without a zone, in UTC:
DuckDB reads the calendar fields of a TIMESTAMPTZ through ICU, 20 times slower (4.3 s against
0.2 s for 21M payments); fixed instants (``instant``) are written the same way, and a database's
own ``timestamptz`` columns compare with them in the UTC session.

Calendar arithmetic is written in integers that every backend computes alike (the portability
rules of §11): a month offset as year * 12 + month with the day clamped (§4), a day as its number
since 1970-01-01 by H. Hinnant's days_from_civil. Ibis' ``delta(unit="month")`` is not used:
DuckDB and Spark disagree on it (6 vs 5 months for 2024-01-05 -> 2024-07-01).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import uuid
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import ibis
import ibis.expr.types as ir
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from analysis.data.io import arrow_frame

__all__ = ["ENGINES", "Engine", "memory_share", "machine_memory", "quiet_duckdb", "no_progress_bar", "derived_key", "as_count", "utc_frame", "connect", "from_frames", "memtable", "of_clients", "instant", "utc_naive", "days_from_civil", "days_in_month",
           "calendar", "add_months", "whole_months", "months_between", "month_label", "day_number", "day_dates", "date_numbers"]

ENGINES = ("duckdb", "spark")
_SPARK_LOG_CONFIG = Path(__file__).with_name("spark-log4j2.properties")


def connect(kind: str = "duckdb", url: str | None = None, spark_master: str | None = None,
            memory_gb: float = 0):
    """An Ibis backend whose session runs in UTC.

    ``duckdb``: in-process, in memory, or the DuckDB file ``url``; beyond ``memory_gb`` (0:
    DuckDB's own limit, 80% of the machine's memory) it spills into a temporary directory of its
    own, removed with the connection (DuckDB's default for an in-memory database is ``.tmp`` in
    the working directory, which for a report is the package's notebooks folder);
    ``postgres``: the server at ``url``; ``spark``: a local PySpark session, or the cluster at
    ``spark_master`` (a master URL, or ``sc://`` for Spark Connect)."""
    if kind == "duckdb":
        con = ibis.duckdb.connect(url or ":memory:", read_only=bool(url))
        quiet_duckdb(con)
        if memory_gb:
            con.raw_sql(f"SET memory_limit = '{float(memory_gb):.1f}GB'")
        spill = tempfile.mkdtemp(prefix="duckdb_spill_")
        con.raw_sql("SET temp_directory = '{}'".format(spill.replace("'", "''")))
        weakref.finalize(con, shutil.rmtree, spill, ignore_errors=True)
        # results are put in order by the callers (order_by, or sorted in pandas): DuckDB need not
        # keep the input order through windows and aggregates, which saves time and memory
        con.raw_sql("SET preserve_insertion_order = false")
        return con
    if kind == "postgres":
        con = ibis.connect(url)
        con.raw_sql("SET TIME ZONE 'UTC'")
        return con
    if kind == "spark":
        from pyspark.sql import SparkSession  # the Spark extra (make spark)
        # local Python workers start the interpreter named here (pyspark reads only the
        # environment; its default, python3 on the PATH, lacks this project's packages)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        if spark_master and spark_master.startswith("sc://"):
            builder = SparkSession.builder.remote(spark_master)
        else:
            builder = SparkSession.builder.master(spark_master or "local[2]")
        session = (builder.appName("support-retention")
                   .config("spark.sql.session.timeZone", "UTC")
                   .config("spark.sql.shuffle.partitions", "4")
                   .config("spark.sql.execution.arrow.pyspark.enabled", "true")  # tables in and out by Arrow
                   .config("spark.ui.enabled", "false")
                   .config("spark.ui.showConsoleProgress", "false")  # no progress bars on a report's stderr
                   # errors only, from the driver's start (its WARN lines would show on the page)
                   .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile=file:{_SPARK_LOG_CONFIG}")
                   .getOrCreate())
        session.sparkContext.setLogLevel("ERROR")  # Spark's warnings go to the notebook's stderr, shown on its page
        return ibis.pyspark.connect(session)
    raise ValueError(f"unknown engine {kind!r}: one of {', '.join(ENGINES)}")


def memory_share(workers: int, machine_bytes: int) -> float:
    """The memory, in GB (10^9 bytes, as DuckDB counts), that each of ``workers`` engines running
    at once may use before it spills: DuckDB's own default share of a machine (80%) divided
    among them, to 0.1 GB, at least 0.5 GB. Two reports side by side on this project's machine
    (23.5 GiB): 10.1 GB each, where each by default would take 20.2 GB and the two together
    more than the machine holds."""
    return max(0.5, int(machine_bytes * 0.8 / max(1, workers) / 1e8) / 10)


def machine_memory() -> int:
    """This machine's physical memory in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def quiet_duckdb(con) -> None:
    """A DuckDB session in UTC that draws no progress bar. Outside Jupyter DuckDB draws one on
    the process's own standard output for any query longer than two seconds (at 1M clients,
    most of the load's): the run's load child, whose output is the runner's log, `analysis
    validate` and the benchmarks showed screens of bars. In a Jupyter kernel DuckDB draws none
    without ipywidgets (not installed) and refuses the setting ('required package ipywidgets
    is missing'): there it stays as it is."""
    no_progress_bar(con)
    con.raw_sql("SET TimeZone = 'UTC'")


def no_progress_bar(con) -> None:
    """Turn DuckDB's progress bar off (see ``quiet_duckdb``), except in a Jupyter kernel without
    ipywidgets, where DuckDB draws none and refuses the setting."""
    import duckdb
    try:
        con.raw_sql("SET enable_progress_bar = false")
    except duckdb.InvalidInputException as exc:
        if "ipywidgets" not in str(exc):
            raise


def derived_key(*parts) -> str:
    """A short name for what a derived table is built from (an as-of instant, a config, a
    flag): the first 12 hex digits of the SHA-1 of their text (a config as its JSON), so that
    one engine asked for the same table under another config or as-of builds it anew."""
    text = "|".join(p.model_dump_json() if hasattr(p, "model_dump_json") else repr(p) for p in parts)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


@dataclass
class Engine:
    """A backend and the contract's tables in it (absent tables are not in ``tables``)."""

    backend: object
    tables: Mapping[str, ir.Table] = field(default_factory=dict)
    kept: dict[str, ir.Table] = field(default_factory=dict)  # derived tables computed once (``derived``)
    files: object = field(default=None, repr=False)  # what keeps the scanned files (a load's directory)
    scratch: object = field(default=None, repr=False)  # DuckDB: the directory of the derived tables' file

    def table(self, name: str) -> ir.Table | None:
        """The table ``name``, or None when the data has none."""
        return self.tables.get(name)

    def has(self, *names: str) -> bool:
        return all(n in self.tables for n in names)

    def derived(self, name: str, build: Callable[[Engine], ir.Table]) -> ir.Table:
        """The table ``name`` derived from the contract's tables by ``build(self)`` (the client
        starts, which most retention expressions join): computed the first time this engine is
        asked for it and kept in the backend, so that later expressions read it instead of
        computing it again. ``name`` must say what the table depends on besides the engine's
        tables (``derived_key`` of the as-of and the config).

        On DuckDB the rows go to a database file of the engine's own (``_scratch``), stored
        compressed like any DuckDB table and read through DuckDB's buffer pool: 5M tickets'
        per-ticket table is a 0.25 GB file and 0.68 GB of process RSS, against 1.25 GB as an
        in-memory temporary table; on a read-only DuckDB connection, and on PostgreSQL, a
        temporary table; on Spark (no temporary tables in Ibis' PySpark backend) a temporary view
        that Spark plans within each query."""
        if name not in self.kept:
            expr, unique = build(self), f"{name}_{uuid.uuid4().hex[:12]}"
            scratch = self._scratch() if self.backend.name == "duckdb" else None
            if self.backend.name == "pyspark":
                self.kept[name] = self.backend.create_view(unique, expr)
            elif scratch:
                self.kept[name] = self.backend.create_table(unique, expr, database=(scratch, "main"))
            else:
                self.kept[name] = self.backend.create_table(unique, expr, temp=True)
        return self.kept[name]

    def _scratch(self) -> str | None:
        """DuckDB: the catalog of the derived tables, a database file in a temporary directory
        attached on first use (the directory goes when the engine does); None on a connection
        opened read-only (a DuckDB file given as it is), which attaches nothing writable and
        keeps them as temporary tables."""
        if self.scratch is None:
            if self.backend.raw_sql("SELECT current_setting('access_mode')").fetchone()[0] == "read_only":
                return None
            # engines may share a connection (tests do): each attaches its own file under its own name
            self.scratch = tempfile.TemporaryDirectory(prefix="derived_")
            path = str(Path(self.scratch.name) / "derived.duckdb").replace("'", "''")
            self.backend.raw_sql(f"ATTACH '{path}' AS {Path(self.scratch.name).name}")
            weakref.finalize(self, _drop_scratch, self.backend, self.scratch)
        return Path(self.scratch.name).name

    def frame(self, expr: ir.Table) -> pd.DataFrame:
        """Run ``expr`` and return its rows as a DataFrame (text as Arrow-backed strings,
        timestamps in UTC), in the order the expression sets (none: the backend's)."""
        return utc_frame(arrow_frame(self.backend.to_pyarrow(expr)))


def _drop_scratch(backend, scratch: tempfile.TemporaryDirectory) -> None:
    """Detach an engine's derived-tables file from its connection (which may outlive the engine)
    and remove its directory."""
    try:
        backend.raw_sql(f"DETACH {Path(scratch.name).name}")
    except Exception:  # at exit the connection may be closed already (nothing attached), whatever its driver raises
        pass
    scratch.cleanup()


def as_count(value) -> int:
    """A count read back from the engine as an int: a sum over no rows is null in SQL, 0 here."""
    return 0 if value is None or pd.isna(value) else int(value)


def utc_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Timestamps as UTC instants: those without a zone (the engine's own, see the module) are
    localized to UTC, those with one (PostgreSQL and Spark return the session's) converted."""
    for col in frame.columns:
        dtype = frame[col].dtype
        if pd.api.types.is_datetime64_any_dtype(dtype):
            tz = getattr(dtype, "tz", None)
            if tz is None:
                frame[col] = frame[col].dt.tz_localize("UTC")
            elif str(tz) != "UTC":
                frame[col] = frame[col].dt.tz_convert("UTC")
    return frame


def instant(at: pd.Timestamp) -> ir.TimestampScalar:
    """A fixed instant (the as-of date, a period's bounds) as the engine writes instants: a
    timestamp without a zone, in UTC."""
    return ibis.literal(pd.Timestamp(at).tz_convert("UTC").tz_localize(None).to_pydatetime(), type="timestamp")


def utc_naive(table: pa.Table) -> pa.Table:
    """``table`` with every timestamp column that has a time zone as microseconds without one,
    in UTC (the same instants; see the module for why)."""
    for i, spec in enumerate(table.schema):
        if pa.types.is_timestamp(spec.type) and spec.type.tz is not None:
            table = table.set_column(i, spec.name, pc.cast(table.column(i), pa.timestamp("us"), safe=False))
    return table


def memtable(frame: pd.DataFrame | pa.Table) -> ir.Table:
    """A small in-memory table (a calendar, a lookup) as an Ibis table that any backend receives
    when a query uses it, its instants written as the engine's (``utc_naive``)."""
    arrow = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
    return ibis.memtable(utc_naive(arrow))


def of_clients(t: ir.Table, clients) -> ir.Table:
    """The rows of ``t`` whose client_id is one of ``clients`` (the ids of a stated sample): a
    semi-join with the ids as a small in-memory table, so that per-client work on a sample of a
    large client base reads and groups only the sample's rows. Per-client results are those of
    the whole table's, for the clients kept."""
    ids = pa.table({"client_id": pa.array(pd.Index(clients).astype(str), pa.string())})
    return t.semi_join(memtable(ids), "client_id")


class _InMemory(Mapping):
    """Tables given as DataFrames (or Arrow tables), each made an Ibis table the first time it
    is used: a report pays only for the tables it touches (a run's snapshot reads a table from
    its file on first use too)."""

    def __init__(self, frames: Mapping[str, pd.DataFrame | pa.Table | None]):
        self._frames, self._made = frames, {}

    def __getitem__(self, name: str) -> ir.Table:
        if name not in self._made:
            frame = self._frames[name]
            if frame is None:
                raise KeyError(name)
            self._made[name] = memtable(frame)
        return self._made[name]

    def __iter__(self):
        return (n for n in self._frames if self._frames[n] is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __contains__(self, name) -> bool:
        return name in self._frames and self._frames[name] is not None


def from_frames(frames: Mapping[str, pd.DataFrame | pa.Table | None], backend=None) -> Engine:
    """An engine over in-memory tables (None: the table is absent): on DuckDB (the default, a
    new in-process connection) they are scanned in place through Arrow; another backend
    receives a copy when a query first uses them."""
    return Engine(backend if backend is not None else connect("duckdb"), _InMemory(frames))


# ---- calendar arithmetic, in integers ----------------------------------------------------------
def _one_if(condition: ir.BooleanValue) -> ir.IntegerValue:
    """1 where true, else 0 (PostgreSQL cannot cast a boolean to bigint)."""
    return ibis.ifelse(condition, 1, 0).cast("int64")


def days_from_civil(year: ir.IntegerValue, month: ir.IntegerValue, day: ir.IntegerValue) -> ir.IntegerValue:
    """Days since 1970-01-01 of the proleptic Gregorian date (year, month 1-12, day 1-31), for
    years 1 and later (H. Hinnant's days_from_civil; floor divisions of non-negative numbers)."""
    march = month <= 2
    y = year - _one_if(march)
    era = y // 400
    yoe = y - era * 400
    mp = ibis.ifelse(march, month + 9, month - 3)
    doy = (153 * mp + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return (era * 146_097 + doe - 719_468).cast("int64")


def days_in_month(total: ir.IntegerValue) -> ir.IntegerValue:
    """Length in days of the month ``total`` = year * 12 + month - 1: 28 or 29 (Gregorian leap
    years) for February, else 30 + (m + m // 8) % 2 (31 for Jan, Mar, May, Jul, Aug, Oct, Dec)."""
    year, month = total // 12, total % 12 + 1
    leap = _one_if((year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0)))
    return ibis.ifelse(month == 2, 28 + leap, 30 + (month + month // 8) % 2).cast("int64")


def _month_total(ts: ir.TimestampValue) -> ir.IntegerValue:
    """year * 12 + month - 1 of an instant (UTC session)."""
    return ts.year().cast("int64") * 12 + ts.month().cast("int64") - 1


def day_number(ts: ir.TimestampValue) -> ir.IntegerValue:
    """Days since 1970-01-01 of an instant's UTC date."""
    return days_from_civil(ts.year().cast("int64"), ts.month().cast("int64"), ts.day().cast("int64"))


def day_dates(numbers) -> pd.DatetimeIndex:
    """Days since 1970-01-01 (``day_number``, read back from the engine) as naive dates."""
    return pd.DatetimeIndex(pd.Timestamp("1970-01-01") + pd.to_timedelta(pd.Series(numbers, dtype="int64").to_numpy(),
                                                                          unit="D"))


def date_numbers(dates) -> pd.Index:
    """Naive dates as days since 1970-01-01 (the inverse of ``day_dates``)."""
    return (pd.DatetimeIndex(dates) - pd.Timestamp("1970-01-01")).days


def calendar(ts: ir.TimestampValue, name: str) -> dict[str, ir.IntegerValue]:
    """The calendar fields of an instant, as columns to add with ``mutate`` before a join so that
    the per-row expressions after it stay small: ``{name}_month`` (year * 12 + month - 1),
    ``{name}_day`` (day of month), ``{name}_days`` (days since 1970-01-01), ``{name}_month_days``
    (the length of its month)."""
    total = _month_total(ts)
    return {f"{name}_month": total, f"{name}_day": ts.day().cast("int64"), f"{name}_days": day_number(ts),
            f"{name}_month_days": days_in_month(total)}


def add_months(ts: ir.TimestampValue, months) -> ir.TimestampValue:
    """ts + ``months`` calendar months (an int or an integer column), the day clamped to the
    target month's length, the time of day kept (DESIGN §4: Jan 31 + 1 month = Feb 29 in a leap
    year). Done as whole days added: the target date's day number less the date's own."""
    target = _month_total(ts) + months
    day = ibis.least(ts.day().cast("int64"), days_in_month(target))
    shift = days_from_civil(target // 12, target % 12 + 1, day) - day_number(ts)
    return ts + shift.as_interval("D")


def _fields(t: ir.Table, at) -> tuple:
    """(instant, month, day, days, month_days) of a column name with ``calendar`` fields on
    ``t``, or of a fixed instant (a pandas Timestamp: the same fields of its literal)."""
    if isinstance(at, str):
        return tuple(t[c] for c in (at, f"{at}_month", f"{at}_day", f"{at}_days", f"{at}_month_days"))
    fixed = instant(at)
    return (fixed, *calendar(fixed, "at").values())


def whole_months(t: ir.Table, start: str, at) -> ir.IntegerValue:
    """The largest whole m with add_months(start, m) <= at (negative before start), on a table
    holding the instant ``start`` and its ``calendar`` fields; ``at`` likewise, or a fixed
    pandas Timestamp (then m >= k says start + k months <= at). An instant lies in month of
    age m: [start + m months, start + (m + 1) months).

    m0 = the months between their calendar months; start + m0 months falls in at's month, on
    day d = min(start's day, that month's length), at start's time of day; it is after ``at``
    when d is later than at's day, or on the same day at a later time (start moved by whole
    days to at's date, compared as instants). Then m = m0 - 1, else m0."""
    s_at, s_month, s_day, s_days, _ = _fields(t, start)
    a_at, a_month, a_day, a_days, a_month_days = _fields(t, at)
    day = ibis.least(s_day, a_month_days)
    same_day_later = s_at + (a_days - s_days).as_interval("D") > a_at
    too_far = (day > a_day) | ((day == a_day) & same_day_later)
    return (a_month - s_month - _one_if(too_far)).cast("int64")


def months_between(start: ir.TimestampValue, ts: ir.TimestampValue) -> ir.IntegerValue:
    """``whole_months`` of two instants given as expressions (for a few rows; on a large join
    add the ``calendar`` fields first)."""
    m = _month_total(ts) - _month_total(start)
    return m - _one_if(add_months(start, m) > ts)


def month_label(ts: ir.TimestampValue) -> ir.StringValue:
    """The UTC calendar month of an instant as 'YYYY-MM' (a cohort's name)."""
    return ts.year().cast("string").lpad(4, "0") + "-" + ts.month().cast("string").lpad(2, "0")
