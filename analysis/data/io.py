"""Reading contract tables from a data directory: one ``NAME.csv`` or ``NAME.parquet`` per table.

CSV is read as UTF-8 (a byte-order mark is allowed) with every cell as text, so that IDs keep
their leading zeros and the validator sees exactly what the file holds; typing happens in
``analysis.data.contract``. Parquet is read as stored. Problems that stop a file from being read at
all (encoding, a 0-byte file, a blank first line, two files for one table) are returned as
``Problem`` records so that they are reported together with every other finding.
"""
from __future__ import annotations

import codecs
import gzip
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["Problem", "RawTable", "UnreadableError", "BATCH_ROWS", "find_table_files", "read_table", "arrow_frame",
           "arrow_batches", "read_parquet_frame", "write_table", "TABLE_SUFFIXES"]

TABLE_SUFFIXES = (".csv", ".csv.gz", ".parquet")
_ARROW_TEXT = {pa.string(): pd.StringDtype("pyarrow"), pa.large_string(): pd.StringDtype("pyarrow")}


@dataclass
class Problem:
    """One finding of validation: which file and column broke which rule, how often, examples."""

    file: str
    column: str
    rule: str
    count: int
    examples: list[str] = field(default_factory=list)

    def render(self) -> str:
        head = f"  - {self.file}, column {self.column}: {self.rule} ({self.count} row{'s' if self.count != 1 else ''})"
        if not self.examples:
            return head
        return head + "\n" + "\n".join(f"      e.g. {e}" for e in self.examples[:5])


BATCH_ROWS = 1 << 20  # rows typed at a time: the load holds one batch of a table, not the table


@dataclass
class RawTable:
    """A table as its source holds it, read in batches of ``BATCH_ROWS`` rows (``batches``), so
    that no table is ever whole in memory; ``columns`` are its column names. Each batch is a
    DataFrame indexed by the row's position in the table (0-based), which ``row_label`` names."""

    name: str
    path: Path | None          # the file; None for a database table
    fmt: str                   # "csv", "parquet" or "database"
    columns: list[str]
    batches: Callable[[], Iterator[pd.DataFrame]]  # a fresh pass over the rows, in order
    label: str = ""            # a database table: "table payments in <source>"
    order: tuple[str, ...] = ()  # a database table: the columns its rows were read in order of

    @property
    def where(self) -> str:
        """What a message names: the file's name, or the database table."""
        return self.label or (self.path.name if self.path is not None else self.name)

    def row_label(self, index) -> str:
        """Human row reference: CSV line number (header = line 1), Parquet row number, or a
        database table's row number in the order it was read."""
        if self.fmt == "csv":
            return f"line {int(index) + 2}"
        if self.fmt == "database" and self.order:
            return f"row {int(index) + 1} by {', '.join(self.order)}"
        return f"row {int(index) + 1}"

    def rows(self, index, columns: list[str]) -> pd.DataFrame:
        """The rows at the positions ``index`` (few: a message's examples), ``columns`` of them,
        as read: one more pass over the batches, kept only up to the last row asked for."""
        wanted = sorted({int(i) for i in index})
        keep = [c for c in columns if c in self.columns]
        parts = []
        for batch in self.batches() if wanted else ():
            if not len(batch):
                continue
            hit = [i for i in wanted if batch.index.start <= i < batch.index.stop]
            if hit:
                parts.append(batch.loc[hit, keep])
            if batch.index.stop > wanted[-1]:
                break
        return pd.concat(parts) if parts else pd.DataFrame(columns=keep)


def arrow_batches(batches: Iterable[pa.RecordBatch]) -> Iterator[pd.DataFrame]:
    """Arrow record batches as DataFrames (``arrow_frame``) indexed by their rows' positions."""
    start = 0
    for batch in batches:
        frame = arrow_frame(pa.Table.from_batches([batch]))
        frame.index = pd.RangeIndex(start, start + len(frame))
        frame.columns = [str(c).strip() for c in frame.columns]
        start += len(frame)
        yield frame


def find_table_files(data_dir: Path, names: list[str]) -> tuple[dict[str, Path], list[Problem]]:
    """Locate each table's file; two files for one table is a problem (which one is meant?), and
    so is a table's name that is not a readable file (a directory, a broken link, no permission):
    DESIGN §3, a path that should be a table file is never silently taken as an absent table."""
    found: dict[str, Path] = {}
    problems: list[Problem] = []
    for name in names:
        for path in (data_dir / f"{name}{suf}" for suf in TABLE_SUFFIXES):
            if (path.exists() or path.is_symlink()) and not (path.is_file() and os.access(path, os.R_OK)):
                what = ("a directory" if path.is_dir() else "a broken link" if not path.exists()
                        else "not readable" if path.is_file() else "not a regular file")
                problems.append(Problem(str(path), "(file)", f"the path of table {name} is {what}, not a readable "
                                        "table file", 0))
        hits = [data_dir / f"{name}{suf}" for suf in TABLE_SUFFIXES if (data_dir / f"{name}{suf}").is_file()]
        if len(hits) > 1:
            problems.append(Problem(", ".join(p.name for p in hits), "(file)",
                                    "one table given by several files; keep exactly one", len(hits)))
        elif hits:
            found[name] = hits[0]
    return found, problems


_FOREIGN_BOMS = {codecs.BOM_UTF16_LE: "UTF-16", codecs.BOM_UTF16_BE: "UTF-16",
                 codecs.BOM_UTF32_LE: "UTF-32", codecs.BOM_UTF32_BE: "UTF-32"}


def _csv_problem(path: Path) -> Problem | None:
    """Check the start of a CSV file: empty, blank first line, or a non-UTF-8 byte-order mark."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as fh:
        head = fh.read(4096)
    if not head:
        return Problem(path.name, "(file)", "the file is empty (0 bytes); a table with no rows still needs its header line", 0)
    for bom, enc in _FOREIGN_BOMS.items():
        if head.startswith(bom):
            return Problem(path.name, "(file)", f"encoding {enc} is not accepted; save the file as UTF-8", 0)
    first = head.removeprefix(codecs.BOM_UTF8).split(b"\n", 1)[0].strip(b"\r")
    if not first.strip():
        return Problem(path.name, "(file)", "the first line is blank; it must be the header with the column names", 0)
    return None


def arrow_frame(table: pa.Table) -> pd.DataFrame:
    """An Arrow table as a DataFrame with text straight into Arrow-backed strings (no Python
    object per cell); other columns as pandas reads them."""
    return table.to_pandas(types_mapper=_ARROW_TEXT.get)


def read_parquet_frame(path: Path) -> pd.DataFrame:
    """A Parquet file as a DataFrame (``arrow_frame``)."""
    return arrow_frame(pq.read_table(path))


def _parquet_batches(path: Path) -> Iterator[pd.DataFrame]:
    return arrow_batches(pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS))


def _csv_batches(path: Path) -> Iterator[pd.DataFrame]:
    reader = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8-sig",
                         encoding_errors="strict", chunksize=BATCH_ROWS)
    with reader:
        for frame in reader:
            frame.columns = [str(c).strip() for c in frame.columns]
            yield frame


class UnreadableError(Exception):
    """A table's file failed part of the way through (an encoding error, a broken CSV line): the
    ``Problem`` that says so."""

    def __init__(self, problem: Problem):
        super().__init__(problem.rule)
        self.problem = problem


def csv_failure(path: Path, exc: Exception) -> Problem:
    """The problem a CSV reading error is reported as."""
    if isinstance(exc, UnicodeDecodeError):
        return Problem(path.name, "(file)",
                       f"not UTF-8 (byte {exc.object[exc.start:exc.start + 1]!r} at offset {exc.start} of a block); "
                       "save the file as UTF-8", 0)
    return Problem(path.name, "(file)", f"not a readable CSV: {exc}", 0)


def _checked(path: Path, batches: Callable[[], Iterator[pd.DataFrame]]) -> Callable[[], Iterator[pd.DataFrame]]:
    """``batches`` whose reading errors (found only when a later block is decoded) are raised as
    ``UnreadableError``."""
    def run() -> Iterator[pd.DataFrame]:
        try:
            yield from batches()
        except (UnicodeDecodeError, pd.errors.ParserError) as exc:
            raise UnreadableError(csv_failure(path, exc)) from None
    return run


def read_table(name: str, path: Path) -> tuple[RawTable | None, Problem | None]:
    """Open one table file for reading in batches (every CSV cell is text, an empty cell is
    null); a file that cannot be opened, or whose header cannot be read, is a Problem."""
    if path.name.endswith(".parquet"):
        try:
            columns = [str(c).strip() for c in pq.ParquetFile(path).schema_arrow.names]
        except Exception as exc:  # pyarrow raises several types for a damaged file
            return None, Problem(path.name, "(file)", f"not a readable Parquet file: {exc}", 0)
        return RawTable(name, path, "parquet", columns, lambda: _parquet_batches(path)), None
    problem = _csv_problem(path)
    if problem:
        return None, problem
    try:
        head = pd.read_csv(path, dtype=str, nrows=0, encoding="utf-8-sig", encoding_errors="strict")
    except (UnicodeDecodeError, pd.errors.ParserError) as exc:
        return None, csv_failure(path, exc)
    columns = [str(c).strip() for c in head.columns]
    return RawTable(name, path, "csv", columns, _checked(path, lambda: _csv_batches(path))), None


def write_table(frame: pd.DataFrame, directory: Path, name: str, fmt: str) -> Path:
    """Write a table in the contract's layout (used by the generator and the importers)."""
    directory.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        path = directory / f"{name}.parquet"
        frame.to_parquet(path, index=False)
    elif fmt == "csv":
        path = directory / f"{name}.csv"
        out = frame.copy()
        for col in out.columns:
            if isinstance(out[col].dtype, pd.DatetimeTZDtype):
                out[col] = out[col].dt.strftime("%Y-%m-%dT%H:%M:%SZ").astype("string")
        out.to_csv(path, index=False)
    else:
        raise ValueError(f"unknown format {fmt!r}: use csv or parquet")
    return path
