"""Importers: real exports into the contract tables (DESIGN §6), driven by a YAML mapping.

``python -m analysis import FORMAT SOURCE... --out DIR [--mapping FILE]``. FORMAT is a preset
(``zendesk``, ``stripe``, ``eventlog``: mapping files in ``analysis/tools/mappings/``) or ``table``
(a mapping of your own, required). The mapping is validated like the config: an unknown key is
an error naming it. Two kinds of mapping:

- ``kind: table``: each output table takes its columns from the source rows (``columns``:
  contract column -> a source column name or a rule), optionally adds rows derived from the same
  source rows (``extra_rows``, e.g. refunds as negative payments) or is derived from another
  output table, one row per key (``derive``, e.g. clients from payments);
- ``kind: eventlog``: one ticket per case of a process-mining log, its events and its agents.

A column rule may take a ``column`` or a constant ``value``; ``map`` values (``default`` for
values not in the map: without it such a row is set aside with the reason); ``format`` and
``timezone`` for timestamps; ``minutes_after`` (a duration in minutes after another output
timestamp, e.g. Zendesk's first reply time); ``negate``, ``suffix``, ``fallback`` (another column
when the first is empty, or absent from the source). ``column`` and ``fallback`` may each be a list
of names that exports spell differently (e.g. Stripe's ``Created (UTC)`` and older ``Created``):
the first one the source has is used. ``filters`` set rows aside before mapping, each with its reason. Every
row read is written or set aside, and the counts are printed per table with the reasons.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from analysis.errors import InputError
from analysis.data.io import write_table

__all__ = ["Mapping", "load_mapping", "read_sources", "run_import", "PRESETS", "MAPPING_DIR"]

MAPPING_DIR = Path(__file__).resolve().parent / "mappings"
PRESETS = ("zendesk", "stripe", "eventlog")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Rule(_Strict):
    column: str | list[str] | None = None
    value: Any = None
    map: dict[str, Any] | None = None
    default: Any = Field(default=None)
    keep_unmapped: bool = False       # a value not in the map is kept as it is
    format: str | None = None
    timezone: str | None = None
    minutes_after: str | None = None
    negate: bool = False
    suffix: str | None = None
    fallback: str | list[str] | None = None
    lower: bool = False


class Filter(_Strict):
    column: str
    keep: list[str] | None = None     # keep rows whose value is in the list
    drop: list[str] | None = None     # or set aside rows whose value is in the list
    not_empty: bool = False           # or set aside rows where the column is empty
    reason: str | None = None


class Condition(_Strict):
    column: str
    gt: float | None = None
    notna: bool | None = None


class ExtraRows(_Strict):
    when: Condition
    columns: dict[str, str | Rule]


class Derive(_Strict):
    table: str
    keys: list[str]                   # one output row per distinct combination of these columns
    rename: dict[str, str] = {}       # key column -> output name
    first: dict[str, str] = {}        # output column -> column of the other table, its minimum
    last: dict[str, str] = {}         # ... its maximum


class TableSpec(_Strict):
    columns: dict[str, str | Rule] = {}
    extra_rows: list[ExtraRows] = []
    derive: Derive | None = None


class EventLog(_Strict):
    case: str
    time: str | Rule
    tier: str | Rule
    agent: str | Rule | None = None
    priority: str | Rule | None = None
    channel: str | Rule = Rule(value="web")
    client: str | Rule | None = None
    first_response: dict[str, list[str]]      # column -> values: the first such event is the first response
    resolved: dict[str, list[str]]            # the last such event is the resolution
    reply: dict[str, list[str]] | None = None  # each run of such events starts an agent_reply


class Mapping(_Strict):
    kind: Literal["table", "eventlog"]
    description: str | None = None
    filters: list[Filter] = []
    tables: dict[str, TableSpec] = {}
    eventlog: EventLog | None = None


def load_mapping(path: str | Path) -> Mapping:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"mapping file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        return Mapping.model_validate(raw)
    except yaml.YAMLError as exc:
        raise InputError(f"mapping {path}: not valid YAML: {exc}") from None
    except ValidationError as exc:
        lines = []
        for e in exc.errors():
            where = ".".join(str(p) for p in e["loc"])
            lines.append(f"  - unknown key '{where}'" if e["type"] == "extra_forbidden" else f"  - '{where}': {e['msg']}")
        raise InputError(f"mapping {path}: {len(lines)} problem(s)\n" + "\n".join(lines)) from None


def read_sources(paths: list[str | Path]) -> pd.DataFrame:
    """Read every source file (CSV, optionally gzipped, UTF-8 with or without BOM; or Parquet) as
    text and stack them; a ``_source_row`` column keeps the file name and line for messages."""
    frames = []
    for p in map(Path, paths):
        if not p.is_file():
            raise InputError(f"source file not found: {p}")
        if p.name.endswith(".parquet"):
            f = pd.read_parquet(p).astype("string")
        else:
            try:
                f = pd.read_csv(p, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8-sig")
            except UnicodeDecodeError:
                raise InputError(f"{p.name}: not UTF-8; save the export as UTF-8") from None
        f.columns = [str(c).strip() for c in f.columns]
        line0 = 1 if p.name.endswith(".parquet") else 2
        f["_source_row"] = [f"{p.name}:{i + line0}" for i in range(len(f))]
        frames.append(f)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


class _Book:
    """Rows set aside per output table and reason, with up to five examples each."""

    def __init__(self):
        self.aside: dict[str, dict[str, list]] = {}

    def set_aside(self, table: str, reason: str, rows: pd.Series) -> None:
        if len(rows):
            entry = self.aside.setdefault(table, {}).setdefault(reason, [0, []])
            entry[0] += len(rows)
            entry[1] = (entry[1] + list(rows.astype(str)))[:5]


def _names(column: str | list[str]) -> list[str]:
    return [column] if isinstance(column, str) else list(column)


def _present(frame: pd.DataFrame, column: str | list[str]) -> str | None:
    """The first of the alternative names ``column`` that the source has, or None."""
    return next((c for c in _names(column) if c in frame.columns), None)


def _need(frame: pd.DataFrame, column: str | list[str], what: str) -> pd.Series:
    found = _present(frame, column)
    if found is None:
        known = ", ".join(c for c in frame.columns if c != "_source_row")
        wanted = " or ".join(repr(c) for c in _names(column))
        raise InputError(f"{what}: the source has no column {wanted}; its columns are: {known}")
    return frame[found]


def _text(s: pd.Series) -> pd.Series:
    s = s.astype("string").str.strip()
    return s.mask(s == "")


_OFFSET = r"(?:[+-]\d{2}:?\d{2}|Z)$"


def _timestamps(s: pd.Series, fmt: str | None, timezone: str) -> pd.Series:
    """Text to UTC timestamps: values with an offset (+03:00, +0300, Z) are converted; naive ones
    are read in ``timezone``. Each kind is parsed on its own, so they may be mixed."""
    text = s.astype("string")
    has_offset = text.str.contains(_OFFSET, regex=True).fillna(False).astype(bool)
    out = pd.Series(pd.NaT, index=s.index, dtype="datetime64[ns, UTC]")
    if has_offset.any():
        out[has_offset] = pd.to_datetime(text[has_offset], format=fmt or "ISO8601", utc=True, errors="coerce")
    naive = ~has_offset & text.notna()
    if naive.any():
        local = pd.to_datetime(text[naive], format=fmt or "ISO8601", errors="coerce")
        out[naive] = local.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="shift_forward").dt.tz_convert("UTC")
    return out


def _apply_rule(frame: pd.DataFrame, rule: str | Rule, out: pd.DataFrame, name: str, table: str,
                book: _Book) -> tuple[pd.Series, pd.Series]:
    """The values of one output column and a mask of rows to keep (unmapped values set aside)."""
    rule = Rule(column=rule) if isinstance(rule, str) else rule
    keep = pd.Series(True, index=frame.index)
    if rule.column is not None:
        if rule.fallback is not None and _present(frame, rule.column) is None:  # an optional column
            s = _text(_need(frame, rule.fallback, f"{table}.{name} fallback"))
        else:
            s = _text(_need(frame, rule.column, f"{table}.{name}"))
            if rule.fallback is not None:
                s = s.fillna(_text(_need(frame, rule.fallback, f"{table}.{name} fallback")))
    else:
        s = pd.Series(rule.value, index=frame.index, dtype="object")
    if rule.lower:
        s = s.str.lower()
    if rule.map is not None:
        mapped = s.map(rule.map)
        unmapped = s.notna() & ~s.isin(list(rule.map))
        if rule.keep_unmapped:
            mapped = mapped.where(~unmapped, s)
        elif "default" in rule.model_fields_set:
            mapped = mapped.where(~unmapped, rule.default)
        else:
            for value, rows in frame.loc[unmapped, "_source_row"].groupby(s[unmapped], sort=True):
                book.set_aside(table, f"{name}: value {value!r} of {_present(frame, rule.column)} is not in the mapping", rows)
            keep &= ~unmapped
        s = mapped
    if rule.format or rule.timezone:
        t = _timestamps(s, rule.format, rule.timezone or "UTC")
        bad = s.notna() & t.isna()
        if bad.any():
            book.set_aside(table, f"{name}: {_present(frame, rule.column) or _present(frame, rule.fallback)} is not a timestamp"
                           + (f" of the format {rule.format}" if rule.format else ""), frame.loc[bad, "_source_row"])
            keep &= ~bad
        s = t
    if rule.minutes_after is not None:
        base = out[rule.minutes_after]
        minutes = pd.to_numeric(s, errors="coerce")
        s = base + pd.to_timedelta(minutes, unit="min")
    if rule.negate:
        s = -pd.to_numeric(s, errors="coerce")
    if rule.suffix:
        s = s.astype("string") + rule.suffix
    return s, keep


def _build(frame: pd.DataFrame, columns: dict[str, str | Rule], table: str, book: _Book) -> pd.DataFrame:
    out = pd.DataFrame(index=frame.index)
    keep = pd.Series(True, index=frame.index)
    for name, rule in columns.items():   # in the mapping's order: minutes_after refers to earlier columns
        out[name], ok = _apply_rule(frame, rule, out, name, table, book)
        keep &= ok
    return out[keep]


def _condition(frame: pd.DataFrame, cond: Condition) -> pd.Series:
    s = _need(frame, cond.column, "extra_rows.when")
    if cond.gt is not None:
        return pd.to_numeric(s, errors="coerce").fillna(0) > cond.gt
    return s.notna() if cond.notna else s.isna()


def _import_tables(source: pd.DataFrame, mapping: Mapping, book: _Book) -> dict[str, pd.DataFrame]:
    tables: dict[str, pd.DataFrame] = {}
    for name, spec in mapping.tables.items():
        if spec.derive is not None:
            continue
        parts = [_build(source, spec.columns, name, book)]
        for extra in spec.extra_rows:
            rows = source[_condition(source, extra.when)]
            parts.append(_build(rows, {**spec.columns, **extra.columns}, name, book))
        tables[name] = pd.concat(parts, ignore_index=True)
    for name, spec in mapping.tables.items():
        if spec.derive is None:
            continue
        d = spec.derive
        if d.table not in tables:
            raise InputError(f"mapping: table {name} derives from {d.table}, which the mapping does not build")
        base = tables[d.table].dropna(subset=d.keys)
        g = base.groupby(d.keys, sort=True)
        out = pd.DataFrame(index=g.size().index)
        for col, src in d.first.items():
            out[col] = g[src].min()
        for col, src in d.last.items():
            out[col] = g[src].max()
        tables[name] = out.reset_index().rename(columns=d.rename)
    return tables


def _matches(frame: pd.DataFrame, cond: dict[str, list[str]]) -> pd.Series:
    m = pd.Series(True, index=frame.index)
    for col, values in cond.items():
        m &= _need(frame, col, "eventlog condition").isin(values)
    return m


def _import_eventlog(source: pd.DataFrame, spec: EventLog, book: _Book) -> dict[str, pd.DataFrame]:
    """Tickets, ticket_events and agents from a case/time/level log (see data/README.md)."""
    cols = {"case": spec.case, "time": spec.time, "tier": spec.tier}
    for opt in ("agent", "priority", "client", "channel"):
        if getattr(spec, opt) is not None:
            cols[opt] = getattr(spec, opt)
    ev = _build(source, cols, "tickets", book)
    missing = ev["case"].isna() | ev["time"].isna() | ev["tier"].isna()
    book.set_aside("tickets", "event without case, time or tier", source.loc[ev.index[missing], "_source_row"])
    ev = ev[~missing]
    flags = source.loc[ev.index]
    ev["first_response"] = _matches(flags, spec.first_response).to_numpy()
    ev["resolved"] = _matches(flags, spec.resolved).to_numpy()
    ev["reply"] = _matches(flags, spec.reply).to_numpy() if spec.reply else ev["first_response"]
    ev = ev.sort_values(["case", "time"], kind="stable").reset_index(drop=True)
    g = ev.groupby("case", sort=False)
    same_case = ev["case"].eq(ev["case"].shift())
    run_start = {c: ev[c] & ~(same_case & ev[c].shift(fill_value=False).astype(bool)) for c in ("reply", "resolved")}
    first = g.head(1).set_index("case")
    last = g.tail(1).set_index("case")
    # the resolution is the start of the case's last run of resolution events (Resolved, then
    # Closed a week later by the system, is one resolution at the Resolved time), and only when
    # the case ends in that run: a case reopened after it and not resolved again is open
    last_run = ev[run_start["resolved"]].groupby("case", sort=False).tail(1).set_index("case")
    ends_resolved = last["resolved"].astype(bool)
    resolved_rows = last_run[last_run.index.isin(ends_resolved[ends_resolved].index)]
    first_response = ev[ev["first_response"]].groupby("case", sort=False)["time"].min()
    holder = last.copy()
    holder.loc[resolved_rows.index, :] = resolved_rows
    tickets = pd.DataFrame({"ticket_id": first.index, "created_at": first["time"].to_numpy(),
                            "channel": first["channel"].to_numpy() if "channel" in first else "web",
                            "first_tier": first["tier"].to_numpy()})
    tickets["client_id"] = first["client"].to_numpy() if "client" in first else None
    tickets["first_response_at"] = first_response.reindex(first.index).to_numpy()
    tickets["resolved_at"] = resolved_rows["time"].reindex(first.index).to_numpy()
    tickets["final_tier"] = holder["tier"].reindex(first.index).to_numpy()
    if "agent" in ev:
        tickets["agent_id"] = holder["agent"].reindex(first.index).to_numpy()
    if "priority" in ev:
        tickets["priority"] = last["priority"].reindex(first.index).to_numpy()
    # reopened: an event that is not a resolution right after a resolution of the same case
    prev_resolved = g["resolved"].shift(fill_value=False).astype(bool)
    reopen = prev_resolved & ~ev["resolved"]
    tickets["reopened"] = reopen.groupby(ev["case"], sort=False).sum().reindex(first.index).to_numpy()
    # events: assigned on each change of tier or agent (not inside a run of resolution events,
    # where the closing system account is no assignment); replies and solves at run starts
    key = ev["tier"].astype(str) + "\x00" + (ev["agent"].astype(str) if "agent" in ev else "")
    assigned = (~same_case | key.ne(key.shift())) & ~(ev["resolved"] & ~run_start["resolved"])
    parts = [(assigned, "assigned"), (run_start["reply"], "agent_reply"), (run_start["resolved"], "solved"),
             (reopen, "reopened")]
    events = pd.concat([pd.DataFrame({"ticket_id": ev.loc[m, "case"], "at": ev.loc[m, "time"], "event": name,
                                      "tier": ev.loc[m, "tier"], "order": i,
                                      "agent_id": ev.loc[m, "agent"] if "agent" in ev else None})
                        for i, (m, name) in enumerate(parts)], ignore_index=True)
    events = (events.sort_values(["ticket_id", "at", "order"], kind="stable").drop(columns="order")
              .reset_index(drop=True))
    out = {"tickets": tickets, "ticket_events": events}
    if "agent" in ev:
        seen = ev.dropna(subset=["agent"]).groupby(["agent", "tier"], sort=True)["time"].agg(["min", "max"])
        out["agents"] = pd.DataFrame({"agent_id": seen.index.get_level_values(0),
                                      "tier": seen.index.get_level_values(1),
                                      "active_from": seen["min"].to_numpy(), "active_to": seen["max"].to_numpy()})
    return out


def _filter(source: pd.DataFrame, mapping: Mapping, book: _Book, target: str) -> pd.DataFrame:
    keep = pd.Series(True, index=source.index)
    for f in mapping.filters:
        s = _need(source, f.column, "filters")
        if f.not_empty:
            out = s.isna()
        else:
            out = ~s.isin(f.keep) if f.keep is not None else s.isin(f.drop or [])
        out &= keep
        reason = f.reason or (f"{f.column} is empty" if f.not_empty else
                              f"{f.column} not in {f.keep}" if f.keep is not None else f"{f.column} in {f.drop}")
        book.set_aside(target, f"filter: {reason}", source.loc[out, "_source_row"])
        keep &= ~out
    return source[keep]


def run_import(fmt: str, sources: list[str], out: str | Path, mapping_path: str | None = None,
               out_format: str = "csv", log=print) -> dict:
    """Import ``sources`` with the preset or mapping, write the tables into ``out`` and return
    the accounting: per table rows written and set aside by reason (plus source rows read)."""
    if mapping_path is None:
        if fmt not in PRESETS:
            raise InputError(f"format {fmt!r} needs --mapping FILE (presets: {', '.join(PRESETS)})")
        mapping_path = MAPPING_DIR / f"{fmt}.yaml"
    mapping = load_mapping(mapping_path)
    if (fmt == "eventlog") != (mapping.kind == "eventlog") and fmt != "table":
        raise InputError(f"format {fmt!r} does not match the mapping's kind {mapping.kind!r}")
    source = read_sources(sources)
    book = _Book()
    first_table = "tickets" if mapping.kind == "eventlog" else next(iter(mapping.tables), "tables")
    kept = _filter(source, mapping, book, first_table)
    if mapping.kind == "eventlog":
        if mapping.eventlog is None:
            raise InputError("mapping: kind eventlog needs an `eventlog:` section")
        tables = _import_eventlog(kept, mapping.eventlog, book)
    else:
        tables = _import_tables(kept, mapping, book)
    out = Path(out)
    for suffix in (".csv", ".parquet"):
        for name in tables:
            (out / f"{name}{suffix}").unlink(missing_ok=True)
    report = {"source_rows": len(source), "source_rows_set_aside_by_filters": len(source) - len(kept), "tables": {}}
    for name, frame in tables.items():
        write_table(frame.reset_index(drop=True), out, name, out_format)
        aside = {r: {"rows": n, "examples": ex} for r, (n, ex) in book.aside.get(name, {}).items()}
        report["tables"][name] = {"written": len(frame), "set_aside": sum(v["rows"] for v in aside.values()),
                                  "set_aside_by_reason": aside}
    log(f"read {len(source):,} source rows from {len(sources)} file(s)")
    for name, r in report["tables"].items():
        log(f"  {name}: {r['written']:,} rows written, {r['set_aside']:,} set aside")
        for reason, v in r["set_aside_by_reason"].items():
            log(f"    - {v['rows']:,} {reason} (e.g. {', '.join(v['examples'][:3])})")
    return report
