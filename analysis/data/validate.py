"""Validate the contract's tables in the engine (DESIGN §2, §11), at bounded memory.

Two steps per table, so that no table is ever whole in memory:

1. **Typing**, in batches (``RawTable.batches``): each batch is typed by ``contract.type_batch``
   and appended to the table's Parquet file (LZ4), with its rows' positions in the source
   (``_row``) and, per column with a type rule, whether its value failed to parse (``_bad_*``).
   These files are what the run's snapshot keeps (``analysis.data.dataset``).
2. **Rules**, in DuckDB through Ibis, over those files: one aggregate per table counts every
   value rule; uniqueness, references between tables and time order are a query each. DuckDB
   spills beyond memory.

A failed rule's message keeps its exact form: the file or table, the column, the rule, how many
rows, and up to five of them as the source holds them (``RawTable.rows``, re-read only for
those rows). Messages come per table in the contract's order: the typing problems first, then the
rules (time order, then by column and check, as the pandera schemas ordered them before).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from analysis.data import contract
from analysis.data.config import Config
from analysis.data.contract import KEYS, ORDER_RULES, REFERENCES, TABLES, TYPE_RULES, UNIQUE
from analysis.data.engine import as_count, utc_naive
from analysis.data.io import Problem, RawTable, UnreadableError

__all__ = ["Typed", "type_table", "check_rules", "examples", "ROW"]

ROW = "_row"      # a typed row's position in its source (0-based)
_BAD = "_bad_"    # prefix of the per-column "value did not parse" flags


@dataclass
class Typed:
    """A table typed into the Parquet file ``path`` (None when it could not be read): its
    rows, the pandas dtype of each of its columns (what a frame read back from the snapshot is
    given) and the problems of its typing."""

    raw: RawTable
    path: Path | None
    rows: int
    dtypes: dict[str, str]
    problems: list[Problem]

    @property
    def columns(self) -> list[str]:
        return list(self.dtypes)


def examples(raw: RawTable, index, columns: list[str]) -> list[str]:
    """Up to five rows at the positions ``index``, as the source holds them: the table's key
    and ``columns``, each ``name=value`` (``<empty>`` for a blank), after the row's label."""
    key = KEYS[raw.name]
    cols = [key] + [c for c in columns if c != key and c in raw.columns]
    index = sorted(int(i) for i in index)[:5]
    rows = raw.rows(index, cols)
    out = []
    for i, row in rows.iterrows():
        cells = ", ".join(f"{c}={row[c]!r}" if pd.notna(row[c]) else f"{c}=<empty>" for c in cols)
        out.append(f"{raw.row_label(i)}: {cells}")
    return out


def _whole_float_ids(raw: RawTable, first: pd.DataFrame) -> frozenset[str]:
    """The float ID columns of ``raw`` whose every value is whole (one more pass over the
    table, only when it has such columns: a Parquet file with IDs stored as doubles)."""
    floats = contract.float_id_columns(raw.name, {c: pd.api.types.is_float_dtype(first[c]) for c in first.columns})
    if not floats:
        return frozenset()
    whole = dict.fromkeys(floats, True)
    for batch in raw.batches():
        for c in floats:
            values = batch[c].dropna().to_numpy(dtype="float64")
            whole[c] = whole[c] and bool((values == np.floor(values)).all())
    return frozenset(c for c, ok in whole.items() if ok)


def _empty_batch(raw: RawTable) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in raw.columns})


def type_table(raw: RawTable, path: Path) -> Typed:
    """Type ``raw`` batch by batch into the Parquet file ``path`` (see the module). A required
    column the table lacks is a problem (with the columns found); so is a value that does not
    parse, counted over the whole table with its first five rows; a file that fails part of
    the way through is one problem and no typed table."""
    missing = [c for c in TABLES[raw.name] if c.required and c.name not in raw.columns]
    failures: dict[str, list] = {}
    writer, dtypes, rows = None, {}, 0
    try:
        batches = raw.batches()
        first = next(batches, None)
        whole = _whole_float_ids(raw, first) if first is not None and len(first) else frozenset()
        for part in itertools.chain([_empty_batch(raw) if first is None else first], batches):
            typed, failed = contract.type_batch(raw.name, part, whole)
            if not dtypes:
                dtypes = {c: str(typed[c].dtype) for c in typed.columns}
            typed[ROW] = np.arange(rows, rows + len(typed), dtype="int64")
            for c, mask in failed.items():
                typed[_BAD + c] = mask
                count, first_rows = failures.setdefault(c, [0, []])
                hit = np.flatnonzero(mask)
                failures[c][0] = count + len(hit)
                failures[c][1] = (first_rows + [rows + int(i) for i in hit[:5]])[:5]
            batch = utc_naive(pa.Table.from_pandas(typed, preserve_index=False).replace_schema_metadata(None))
            if writer is None:
                writer = pq.ParquetWriter(path, batch.schema, compression="lz4")
            writer.write_table(batch.cast(writer.schema))
            rows += len(typed)
    except UnreadableError as exc:
        if writer is not None:
            writer.close()
        path.unlink(missing_ok=True)
        return Typed(raw, None, 0, {}, [exc.problem])
    writer.close()
    problems = []
    kinds = {c.name: c.kind for c in TABLES[raw.name]}
    for col in TABLES[raw.name]:
        if col in missing:
            problems.append(Problem(raw.where, col.name, "required column is missing", rows,
                                    [f"columns found: {', '.join(map(str, raw.columns)) or '(none)'}"]))
        elif failures.get(col.name, [0])[0]:
            count, first_rows = failures[col.name]
            problems.append(Problem(raw.where, col.name, TYPE_RULES[kinds[col.name]], count,
                                    examples(raw, first_rows, [col.name])))
    return Typed(raw, path, rows, dtypes, problems)


def _count(con, expr: ir.Table) -> int:
    return int(con.execute(expr.count()))


def _failing(con, raw: RawTable, failing: ir.Table, column: str, text: str, example_columns: list[str]) -> Problem:
    """The problem of the rows ``failing``: their count and the first five in the source's order."""
    rows = con.execute(failing.order_by(ROW).select(ROW).limit(5))[ROW].tolist()
    return Problem(raw.where, column, text, _count(con, failing), examples(raw, rows, example_columns))


def check_rules(con, typed: dict[str, Typed], tables: dict[str, ir.Table], config: Config) -> list[Problem]:
    """Every rule of every typed table (``tables``: the typed files in ``con``), in the
    contract's order; a value that failed typing is not reported again as a missing value."""
    problems: list[Problem] = []
    for name in (n for n in TABLES if n in tables):
        raw, t = typed[name].raw, tables[name]
        columns = typed[name].columns
        for later, earlier in sorted(ORDER_RULES.get(name, []), key=lambda p: f"{p[0]} >= {p[1]}"):
            if later in columns and earlier in columns:
                failing = t.filter(t[later].notnull() & t[earlier].notnull() & (t[later] < t[earlier]))
                if _count(con, failing):
                    problems.append(_failing(con, raw, failing, later, f"{later} >= {earlier}", [earlier, later]))
        checks = []  # (column, check, kind, the rule or the referenced table and column, failing-row predicate)
        for rule in contract.column_rules(name, config, columns):
            fails = rule.fails(t)
            if rule.check == "not_nullable" and _BAD + rule.column in t.columns:
                fails = fails & ~t[_BAD + rule.column]
            checks.append((rule.column, rule.check, "value", rule, fails))
        for c in UNIQUE[name]:
            if c in columns:
                checks.append((c, "field_uniqueness", "unique", None, None))
        for (tname, c), (rt, rc) in REFERENCES.items():
            if tname == name and c in columns and rt in tables and rc in typed[rt].columns:
                checks.append((c, f"reference to {rt}.{rc}", "reference", (rt, rc), None))
        checks.sort(key=lambda k: (k[0], k[1]))
        # every value rule counted in one aggregate over the table, by its place in ``checks``
        counted = {i: k[4].sum() for i, k in enumerate(checks) if k[2] == "value"}
        counts = con.execute(t.aggregate(**{f"r{i}": v for i, v in counted.items()})).iloc[0] if counted else {}
        for i, (column, check, kind, spec, fails) in enumerate(checks):
            if kind == "value":
                if not as_count(counts[f"r{i}"]):
                    continue
                failing = t.filter(fails)
                listed = (con.execute(failing.select(column).distinct().order_by(column).limit(10))[column].tolist()
                          if spec.listed else [])
                problems.append(_failing(con, raw, failing, column, contract.rule_text(spec, listed), [column]))
            elif kind == "unique":
                seen = con.execute(t.aggregate(n=t[column].count(), d=t[column].nunique())).iloc[0]
                if int(seen["n"]) == int(seen["d"]):
                    continue
                twice = t.filter(t[column].notnull()).group_by(column).aggregate(k=ibis._.count()).filter(ibis._.k > 1)
                failing = t.filter(t[column].isin(twice[column]))
                problems.append(_failing(con, raw, failing, column,
                                         contract.UNIQUE_TEXT.format(column=column), [column]))
            else:
                rt, rc = spec
                known = tables[rt].filter(tables[rt][rc].notnull()).select(_key=tables[rt][rc]).distinct()
                present = t.filter(t[column].notnull())
                failing = present.anti_join(known, present[column] == known["_key"])
                if _count(con, failing):
                    problems.append(_failing(con, raw, failing, column,
                                             contract.REFERENCE_TEXT.format(table=rt, column=rc), [column]))
    return problems
