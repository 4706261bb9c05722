"""The input data contract (DESIGN §2): table specs, typing of raw columns, validation rules.

``validate_tables`` takes the raw tables as read by ``analysis.data.io`` and returns typed tables, or
the complete list of problems found in one pass. Typing (text IDs, UTC timestamps, numbers,
csat and yes/no normalisation) is done here with pandas; the rules (required values,
uniqueness, allowed values, tiers against the config, ``amount != 0``, time order, references
between tables) are one pandera schema per table, validated lazily so every failure is
collected. Each failure becomes a ``Problem``: file, column, rule, row count, up to five rows.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow
import pyarrow.compute as pc
from pandera.errors import SchemaErrors

from analysis.data import ids
from analysis.data.config import Config
from analysis.data.io import Problem, RawTable

__all__ = ["Col", "TABLES", "TEXT_CHANNELS", "VOICE_CHANNELS", "TICKET_EVENTS", "CAMPAIGNS", "CALL_STATUSES",
           "CALL_RESULTS",
           "TIMESTAMP_COLUMNS", "validate_tables"]

TEXT_CHANNELS = ("chat", "email", "messenger", "web", "form", "sms", "social")
VOICE_CHANNELS = ("phone", "voice", "call")
TICKET_EVENTS = ("assigned", "agent_reply", "customer_reply", "solved", "reopened")
CAMPAIGNS = ("onboarding", "winback", "retention")
CALL_STATUSES = ("no_answer", "secretary", "decision_maker", "consent")
CALL_RESULTS = ("presented", "lead", "sale")
_TRUE = ("true", "1", "yes", "y", "t")
_FALSE = ("false", "0", "no", "n", "f")


@dataclass(frozen=True)
class Col:
    """A contract column. kind: id, text, timestamp, amount, rate, csat, flag, count, tier."""

    name: str
    kind: str
    required: bool = False
    unique: bool = False
    allowed: tuple[str, ...] | None = None
    nullable: bool | None = None  # default: nullable unless required

    @property
    def may_be_null(self) -> bool:
        return (not self.required) if self.nullable is None else self.nullable


TABLES: dict[str, tuple[Col, ...]] = {
    "clients": (
        Col("client_id", "id", required=True, unique=True),
        Col("signed_up_at", "timestamp", required=True),
        Col("segment", "text"), Col("acquisition_channel", "text"), Col("country", "text"),
    ),
    "payments": (
        Col("payment_id", "id", required=True, unique=True),
        Col("client_id", "id", required=True),
        Col("paid_at", "timestamp", required=True),
        Col("amount", "amount", required=True),
        Col("currency", "text"), Col("kind", "text"),
    ),
    "tickets": (
        Col("ticket_id", "id", required=True, unique=True),
        Col("created_at", "timestamp", required=True),
        Col("channel", "text", required=True, allowed=TEXT_CHANNELS + VOICE_CHANNELS),
        Col("first_tier", "tier", required=True),
        Col("client_id", "id"),
        Col("first_response_at", "timestamp"), Col("resolved_at", "timestamp"),
        Col("final_tier", "tier"), Col("agent_id", "id"), Col("priority", "text"),
        Col("topic", "text"), Col("csat_score", "csat"), Col("reopened", "count"),
    ),
    "ticket_events": (
        Col("ticket_id", "id", required=True),
        Col("at", "timestamp", required=True),
        Col("event", "text", required=True, allowed=TICKET_EVENTS),
        Col("tier", "tier", required=True),
        Col("agent_id", "id"),
    ),
    "agents": (
        Col("agent_id", "id", required=True),
        Col("tier", "tier", required=True),
        Col("active_from", "timestamp"), Col("active_to", "timestamp"),
    ),
    "leads": (
        Col("lead_id", "id", required=True, unique=True),
        Col("created_at", "timestamp", required=True),
        Col("source", "text", required=True),
        Col("client_id", "id"), Col("qualified_at", "timestamp"), Col("converted_at", "timestamp"),
        Col("revenue", "amount_any"),
    ),
    "calls": (
        Col("call_id", "id", required=True, unique=True),
        Col("lead_id", "id", required=True),
        Col("operator_id", "id", required=True),
        Col("started_at", "timestamp", required=True),
        Col("duration_s", "seconds", required=True),
        Col("status", "text", required=True, allowed=CALL_STATUSES),
        Col("result", "text", allowed=CALL_RESULTS), Col("stage", "text"), Col("vendor", "text"),
    ),
    "fx_rates": (
        Col("date", "timestamp", required=True),
        Col("currency", "text", required=True),
        Col("rate", "rate", required=True),
    ),
    "outreach": (
        Col("client_id", "id", required=True),
        Col("at", "timestamp", required=True),
        Col("campaign", "text", required=True, allowed=CAMPAIGNS),
        Col("channel", "text", required=True),
        Col("reached", "flag"), Col("outcome", "text"),
    ),
    # product activity (DESIGN §2): `events` actions in the period starting at `at` (one row per
    # event, day or week); the best proxy of the engagement that drives contact and retention alike
    "usage": (
        Col("client_id", "id", required=True),
        Col("at", "timestamp", required=True),
        Col("events", "whole", required=True),
        Col("feature", "text"),
    ),
}

TIMESTAMP_COLUMNS = {t: [c.name for c in cols if c.kind == "timestamp"] for t, cols in TABLES.items()}

# (table, column) -> (referenced table, referenced column)
REFERENCES = {
    ("payments", "client_id"): ("clients", "client_id"),
    ("tickets", "client_id"): ("clients", "client_id"),
    ("outreach", "client_id"): ("clients", "client_id"),
    ("usage", "client_id"): ("clients", "client_id"),
    ("ticket_events", "ticket_id"): ("tickets", "ticket_id"),
    ("tickets", "agent_id"): ("agents", "agent_id"),
    ("ticket_events", "agent_id"): ("agents", "agent_id"),
    ("calls", "lead_id"): ("leads", "lead_id"),
}

# (table, rule name) -> (later column, earlier column): later >= earlier when both are present
ORDER_RULES = {
    "tickets": [("first_response_at", "created_at"), ("resolved_at", "created_at")],
    "agents": [("active_to", "active_from")],
    "leads": [("qualified_at", "created_at"), ("converted_at", "created_at")],
}

_KEYS = {"clients": "client_id", "payments": "payment_id", "tickets": "ticket_id", "fx_rates": "currency",
         "leads": "lead_id", "calls": "call_id",
         "ticket_events": "ticket_id", "agents": "agent_id", "outreach": "client_id", "usage": "client_id"}


# ---------------------------------------------------------------- typing of raw columns
TEXT = pd.StringDtype("pyarrow")  # text columns: Arrow-backed (compact, fast to group and join)


def _as_text(s: pd.Series) -> pd.Series:
    """IDs and labels as text; integral floats from Parquet lose their '.0'."""
    if pd.api.types.is_float_dtype(s):
        whole = s.dropna()
        if (whole == np.floor(whole)).all():
            s = s.astype("Int64")
    return s.astype(TEXT)


def _as_timestamp(s: pd.Series) -> pd.Series:
    """ISO 8601 text or datetimes -> datetime64[ns, UTC]; naive values are taken as UTC."""
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        return s.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    if pd.api.types.is_datetime64_any_dtype(s):
        return s.dt.tz_localize("UTC").astype("datetime64[ns, UTC]")
    text = s.astype("string").str.strip()
    # parse values with and without an offset apart: in one call pandas applies the first
    # row's offset to the naive rows (seen with pandas 2.3), instead of taking them as UTC
    has_offset = text.str.contains(r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$", regex=True).fillna(False).astype(bool)
    out = pd.Series(pd.NaT, index=s.index, dtype="datetime64[ns, UTC]")
    for part in (has_offset, ~has_offset):
        if part.any():
            out[part] = pd.to_datetime(text[part], utc=True, format="ISO8601", errors="coerce")
    return out


def _as_amount(s: pd.Series) -> pd.Series:
    return pd.to_numeric(s, errors="coerce").astype("float64")


def _as_flag(s: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(s):
        return s.astype("boolean")
    text = s.astype(TEXT).str.strip().str.lower()
    out = pd.Series(pd.NA, index=s.index, dtype="boolean")
    out[text.isin(_TRUE)] = True
    out[text.isin(_FALSE)] = False
    return out


def _is_number_column(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)   # Parquet numbers


def _as_whole(s: pd.Series) -> pd.Series:
    """A whole number >= 0 (7, "7", 7.0) -> Int64; anything else (text, -1, 2.5) -> NA."""
    num = s.astype("float64") if _is_number_column(s) else pd.to_numeric(s.astype(TEXT).str.strip(), errors="coerce")
    integral = num.notna() & (num >= 0) & (num == np.floor(num.fillna(0)))
    out = pd.Series(pd.NA, index=s.index, dtype="Int64")
    out[integral] = num[integral].astype("int64")
    return out


def _as_count(s: pd.Series) -> pd.Series:
    """reopened: a yes/no flag or a count of reopens -> non-negative integer count."""
    out = _as_whole(s)
    if not _is_number_column(s):
        flag = _as_flag(s)
        from_flag = flag.notna() & out.isna()
        out[from_flag] = flag[from_flag].astype("int64")
    return out


def _as_csat(s: pd.Series) -> tuple[pd.Series, pd.Series]:
    """csat_score: integer 1-5 (5, "5", 5.0) or good/bad in any case.

    Returns the normalised score as text ("1".."5", "good", "bad") and a nullable boolean
    ``satisfied`` (4-5 or good; 3 is rated but not satisfied).
    """
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        text, num = pd.Series(pd.NA, index=s.index, dtype=TEXT), s.astype("float64")  # Parquet numbers
    else:
        text = s.astype(TEXT).str.strip().str.lower()
        num = pd.to_numeric(text, errors="coerce")
    numeric_ok = num.isin([1, 2, 3, 4, 5])
    word_ok = text.isin(["good", "bad"])
    score = pd.Series(pd.NA, index=s.index, dtype=TEXT)
    score[numeric_ok] = num[numeric_ok].astype("int64").astype(TEXT)
    score[word_ok] = text[word_ok]
    satisfied = pd.Series(pd.NA, index=s.index, dtype="boolean")
    satisfied[numeric_ok] = num[numeric_ok] >= 4
    satisfied[word_ok] = text[word_ok] == "good"
    return score, satisfied


_TYPE_RULES = {
    "timestamp": "not an ISO 8601 timestamp",
    "amount": "not a number",
    "rate": "not a number",
    "amount_any": "not a number",
    "seconds": "not a number of seconds",
    "csat": "csat_score must be an integer 1-5 or good/bad",
    "flag": "must be true/false (any case) or 1/0",
    "count": "must be true/false, 1/0 or a whole number of reopens >= 0",
    "whole": "must be a whole number >= 0",
}


def _examples(raw: RawTable, index, columns: list[str]) -> list[str]:
    key = _KEYS[raw.name]
    cols = [key] + [c for c in columns if c != key and c in raw.frame.columns]
    rows = raw.frame.loc[list(index)[:5], cols]
    out = []
    for i, row in rows.iterrows():
        cells = ", ".join(f"{c}={row[c]!r}" if pd.notna(row[c]) else f"{c}=<empty>" for c in cols)
        out.append(f"{raw.row_label(i)}: {cells}")
    return out


def _type_table(raw: RawTable) -> tuple[pd.DataFrame, list[Problem], dict[str, set]]:
    """Type every contract column present; report values that do not parse."""
    frame = raw.frame.copy(deep=False)  # columns are replaced, never changed in place
    problems: list[Problem] = []
    bad_rows: dict[str, set] = {}
    present = set(frame.columns)
    for col in TABLES[raw.name]:
        if col.name not in present:
            if col.required:
                problems.append(Problem(raw.where, col.name, "required column is missing", len(frame),
                                        [f"columns found: {', '.join(map(str, frame.columns)) or '(none)'}"]))
            continue
        s = frame[col.name]
        if col.kind == "timestamp":
            typed = _as_timestamp(s)
        elif col.kind in ("amount", "rate", "amount_any", "seconds"):
            typed = _as_amount(s)
        elif col.kind == "flag":
            typed = _as_flag(s)
        elif col.kind == "count":
            typed = _as_count(s)
        elif col.kind == "whole":
            typed = _as_whole(s)
        elif col.kind == "csat":
            typed, frame["csat_satisfied"] = _as_csat(s)
        else:
            typed = _as_text(s)
        failed = s.notna() & typed.isna() if col.kind in _TYPE_RULES else pd.Series(False, index=s.index)
        if failed.any():
            idx = failed[failed].index
            bad_rows[col.name] = set(idx)
            problems.append(Problem(raw.where, col.name, _TYPE_RULES[col.kind], len(idx),
                                    _examples(raw, idx, [col.name])))
        frame[col.name] = typed
    if raw.name == "tickets" and "channel" in frame.columns:
        kind = pd.Series(pd.NA, index=frame.index, dtype=TEXT)
        kind[frame["channel"].isin(TEXT_CHANNELS)] = "text"
        kind[frame["channel"].isin(VOICE_CHANNELS)] = "voice"
        frame["channel_kind"] = kind
    return frame, problems, bad_rows


# ---------------------------------------------------------------- pandera rules
def _order_check(later: str, earlier: str) -> pa.Check:
    def check(df: pd.DataFrame) -> pd.Series:
        if later not in df.columns or earlier not in df.columns:
            return pd.Series(True, index=df.index)
        return (df[later].isna() | df[earlier].isna() | (df[later] >= df[earlier])).astype(bool)
    return pa.Check(check, name=f"{later} >= {earlier}")


def _arrow(s: pd.Series) -> pyarrow.ChunkedArray | pyarrow.Array:
    """The Arrow data behind a column typed as text."""
    return ids.arrow_text(s.astype(TEXT))


def _unique(s: pd.Series) -> pd.Series:
    """Every row of a duplicated value fails (pandera's ``unique``, report all). The usual case,
    no duplicate, is proven by sorting the Arrow data once and comparing neighbours (at 21M ids
    several times faster than a hash table of them); a duplicate found is then marked exactly."""
    data = _arrow(s)
    if data is not None and data.null_count <= 1:
        ordered = data.take(pc.sort_indices(data)) if len(data) > 1 else data
        if len(data) < 2 or not pc.any(pc.equal(ordered[1:], ordered[:-1])).as_py():
            return pd.Series(True, index=s.index)
    return ~s.duplicated(keep=False)


def _member_of(values: pyarrow.Array):
    """A vectorised membership test against the key values (Arrow ``is_in``): the same rule
    as ``Check.isin``, without pandas building a Python list of the keys for every check and
    without pandera deep-copying them with the schema."""
    def check(s: pd.Series) -> pd.Series:
        found = pc.is_in(_arrow(s), value_set=values)
        return pd.Series(found.to_numpy(zero_copy_only=False), index=s.index, dtype=bool)
    return check


def _schema(name: str, config: Config, known: dict[tuple[str, str], pyarrow.Array]) -> pa.DataFrameSchema:
    columns = {}
    for col in TABLES[name]:
        checks = []
        if col.allowed:
            checks.append(pa.Check.isin(col.allowed, error=f"allowed values: {', '.join(col.allowed)}"))
        if col.kind == "tier":
            checks.append(pa.Check.isin(config.tier_ids, error="tier"))
        if col.kind == "amount":
            checks.append(pa.Check.ne(0, error="amount != 0 (a charge is > 0, a refund < 0)"))
        if col.kind == "seconds":
            checks.append(pa.Check.ge(0, error="duration_s >= 0"))
        if col.kind == "rate":
            checks.append(pa.Check.gt(0, error="rate > 0 (reporting-currency units per unit of the currency)"))
        ref = REFERENCES.get((name, col.name))
        if ref and ref in known:
            label = f"reference to {ref[0]}.{ref[1]}"
            checks.append(pa.Check(_member_of(known[ref]), name=label, error=label))
        if col.unique:
            checks.append(pa.Check(_unique, name="field_uniqueness", error="field_uniqueness"))
        columns[col.name] = pa.Column(nullable=col.may_be_null, unique=False, required=False,
                                      checks=checks, coerce=False)
    frame_checks = [_order_check(later, earlier) for later, earlier in ORDER_RULES.get(name, [])]
    return pa.DataFrameSchema(columns, checks=frame_checks, strict=False, name=name)


def _rule_text(check: str, column: str, values: pd.Series, config: Config, name: str) -> str:
    if check == "not_nullable":
        return "required value is empty"
    if check == "field_uniqueness":
        return f"{column} must be unique; duplicated values"
    if check == "tier":
        unknown = ", ".join(sorted(map(str, values.dropna().unique()))[:10])
        return f"tier not in the config (unknown values: {unknown}; config has {', '.join(config.tier_ids)})"
    if check.startswith("allowed values"):
        bad = ", ".join(sorted(map(str, values.dropna().unique()))[:10])
        return f"{check}; found {bad}"
    if check.startswith("reference to"):
        return f"{check}: value not found there"
    return check


def _rule_problems(raw: RawTable, typed: pd.DataFrame, schema: pa.DataFrameSchema, config: Config,
                   bad_rows: dict[str, set]) -> list[Problem]:
    try:
        schema.validate(typed, lazy=True)
        return []
    except SchemaErrors as exc:
        cases = exc.failure_cases
    problems = []
    cases = cases[cases["index"].notna()].copy()
    is_frame_check = cases["schema_context"] == "DataFrameSchema"
    frame_cases = cases[is_frame_check]
    for check, grp in frame_cases.groupby("check", sort=True):
        idx = sorted(set(grp["index"].astype(int)))
        later, earlier = [p.strip() for p in str(check).split(">=")]
        problems.append(Problem(raw.where, later, str(check), len(idx),
                                _examples(raw, idx, [earlier, later])))
    col_cases = cases[~is_frame_check]
    for (column, check), grp in col_cases.groupby(["column", "check"], sort=True):
        idx = [i for i in sorted(set(grp["index"].astype(int))) if i not in bad_rows.get(column, set())]
        if not idx:
            continue
        rule = _rule_text(str(check), str(column), typed.loc[idx, column], config, raw.name)
        problems.append(Problem(raw.where, str(column), rule, len(idx), _examples(raw, idx, [str(column)])))
    return problems


_RULE_THREADS = 2


def validate_tables(raw: dict[str, RawTable], config: Config) -> tuple[dict[str, pd.DataFrame], list[Problem]]:
    """Type and validate every table; return the typed tables and all problems found."""
    typed: dict[str, pd.DataFrame] = {}
    problems: list[Problem] = []
    bad: dict[str, dict[str, set]] = {}
    names = [name for name in TABLES if name in raw]
    with ThreadPoolExecutor(max_workers=_RULE_THREADS) as pool:  # typing is per table too
        for name, (frame, found, bad_rows) in zip(names, pool.map(lambda n: _type_table(raw[n]), names)):
            typed[name], bad[name] = frame, bad_rows
            problems += found
    # the referenced columns as they are (a repeated id is reported by its own uniqueness rule)
    known = {(t, c): ids.one_array(_arrow(typed[t][c].dropna())) for t, c in set(REFERENCES.values())
             if t in typed and c in typed[t].columns}
    # the tables' rules are independent and their heavy parts (Arrow hashing for uniqueness and
    # references) release the GIL: two threads; problems are collected in table order
    def rules(name: str) -> list[Problem]:
        return _rule_problems(raw[name], typed[name], _schema(name, config, known), config, bad[name])
    with ThreadPoolExecutor(max_workers=_RULE_THREADS) as pool:
        for found in pool.map(rules, list(typed)):
            problems += found
    return typed, problems
