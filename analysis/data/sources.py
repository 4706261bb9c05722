"""Where the tables live (DESIGN §2): a directory of files, a DuckDB database file (``*.duckdb``)
or a PostgreSQL database (``postgresql://user@host:port/db``), whose tables carry the contract's
names and columns with native types (text ids, timestamptz, numeric, boolean).

A database table is read through Ibis (its DuckDB or PostgreSQL backend) into the same Arrow-backed
frame a Parquet file gives, so the same validation rules and messages apply to every source; a
message names "table payments in <source>" where a file source names the file. What differs, and
why:

- ``numeric`` / ``decimal`` columns arrive as float64 (money in the reporting currency; the
  contract's amounts need no more than a double's 15-16 significant digits);
- rows are read ordered by the table's required columns (a database table has no row order of its
  own), and a message's example rows count in that order ("row 3 by payment_id, client_id, ...");
- a URL must not hold a password: the data source is a run parameter, written into every executed
  notebook and shown on the report pages. libpq reads the password from ``~/.pgpass`` or
  ``PGPASSWORD`` instead.

A table the database does not hold is absent, as a missing file is: the reports that need it are
skipped with the reason.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from analysis.errors import InputError
from analysis.data.io import BATCH_ROWS, Problem, RawTable, UnreadableError, arrow_batches

__all__ = ["Source", "parse_source", "read_database"]

_SCHEMES = ("postgresql", "postgres")


@dataclass(frozen=True)
class Source:
    """A parsed data source: ``kind`` "directory", "duckdb" or "postgres"; ``location`` the
    absolute path, or the URL as given."""

    kind: str
    location: str

    def __str__(self) -> str:
        return self.location

    @property
    def is_database(self) -> bool:
        return self.kind != "directory"


def parse_source(spec: str | Path) -> Source:
    """The source ``--data`` (or a notebook's ``data_dir``) names: a directory; a file ending in
    ``.duckdb``; a ``postgresql://`` (or ``postgres://``) URL without a password. Anything else is
    an InputError naming what was given."""
    text = str(spec)
    if "://" in text:
        parts = urlsplit(text)
        if parts.scheme.lower() not in _SCHEMES:
            raise InputError(f"data source {text}: unknown kind of address ({parts.scheme}://); give a data "
                             "directory, a .duckdb file or postgresql://user@host:port/database")
        if parts.password is not None:
            raise InputError("data source: the PostgreSQL URL holds a password, which would be written into "
                             "every report of the run; put it in ~/.pgpass or the PGPASSWORD variable "
                             "(libpq reads both) and give the URL without it")
        if not parts.hostname and not parts.path.strip("/"):
            raise InputError(f"data source {text}: no host and no database in the URL")
        return Source("postgres", text)
    path = Path(text)
    if path.suffix.lower() == ".duckdb":
        if not path.is_file():
            raise InputError(f"DuckDB database file not found: {path}")
        return Source("duckdb", str(path.resolve()))
    if not path.is_dir():
        raise InputError(f"data directory not found: {path}")
    return Source("directory", str(path))


def _connect(source: Source):
    import ibis
    try:
        if source.kind == "duckdb":
            con = ibis.duckdb.connect(source.location, read_only=True)
            from analysis.data.engine import no_progress_bar
            no_progress_bar(con)   # a notebook opened by hand reads the file in Jupyter, which refuses the setting
            return con
        parts = urlsplit(source.location)
        return ibis.postgres.connect(host=parts.hostname or None, port=parts.port, user=parts.username or None,
                                     database=parts.path.strip("/") or None)
    except Exception as exc:  # the driver's own error types: a refused connection, a locked file
        raise InputError(f"cannot open the data source {source}: {str(exc).strip().splitlines()[0]}") from None


def read_database(source: Source, names: list[str], order_by: dict[str, list[str]],
                  mapped: dict[str, str] | None = None) -> tuple[dict[str, RawTable], list[Problem]]:
    """Each contract table ``names`` the database holds, as a RawTable (format "database"), read
    ordered by ``order_by[name]`` (the columns of those the table has); decimals as float64.
    ``mapped`` (the config's ``source_tables``) gives a table's name in the database when it is
    not the contract's: "payments_v2", or "billing.payments" in the schema billing. A mapped name
    the contract does not know is an InputError; a mapped table the database does not hold is a
    problem naming it (it was asked for), an unmapped one is simply absent."""
    mapped = dict(mapped or {})
    unknown = sorted(set(mapped) - set(names))
    if unknown:
        raise InputError(f"config source_tables: {', '.join(unknown)} is not a table of the contract; "
                         f"the tables are: {', '.join(names)}")
    con = _connect(source)
    try:
        held: dict[str, set] = {}
        tables: dict[str, RawTable] = {}
        problems: list[Problem] = []
        for name in names:
            schema, _, table = mapped.get(name, name).rpartition(".")
            if schema not in held:
                try:
                    held[schema] = set(con.list_tables(database=schema) if schema else con.list_tables())
                except Exception:   # no such schema
                    held[schema] = set()
            label = f"table {mapped.get(name, name)} in {source}"
            if table not in held[schema]:
                if name in mapped:
                    problems.append(Problem(label, "(table)", f"not in the database (config source_tables maps "
                                            f"{name} to it)", 0))
                continue
            try:
                t = con.table(table, database=schema or None)
                columns = list(t.schema())
                keys = tuple(c for c in order_by.get(name, []) if c in columns)
            except Exception as exc:  # a permission refused
                problems.append(Problem(label, "(table)", f"not readable: {str(exc).strip().splitlines()[0]}", 0))
                continue
            tables[name] = RawTable(name, None, "database", [str(c).strip() for c in columns],
                                    _table_batches(source, table, schema or None, keys, label),
                                    label=label, order=keys)
        return tables, problems
    finally:
        con.disconnect()


def _table_batches(source: Source, table: str, schema: str | None, keys: tuple[str, ...], label: str):
    """A fresh pass over a database table's rows in batches, ordered by ``keys``, decimals as
    float64; a failure on the way (a type the driver cannot hand over) is an UnreadableError."""
    def run():
        con = _connect(source)
        try:
            t = con.table(table, database=schema)
            decimals = {c: t[c].cast("float64") for c, typ in t.schema().items() if typ.is_decimal()}
            if decimals:
                t = t.mutate(**decimals)
            if keys:
                t = t.order_by(list(keys))
            try:
                reader = t.to_pyarrow_batches(chunk_size=BATCH_ROWS)
            except Exception as exc:
                raise UnreadableError(Problem(label, "(table)", f"not readable: {str(exc).strip().splitlines()[0]}", 0)) from None
            yield from arrow_batches(reader)
        finally:
            con.disconnect()
    return run
