"""The input data contract (DESIGN §2): table specs, typing of raw columns, validation rules.

What the contract says, in two parts that ``analysis.data.validate`` runs:

- typing (``type_batch``): text IDs, UTC timestamps, numbers, csat and yes/no normalisation, with
  pandas, one batch of rows at a time (every value is typed on its own), noting the values that
  do not parse;
- the rules on the typed tables, as Ibis predicates the engine evaluates over whole tables
  (``column_rules``: required values, allowed values, tiers against the config, ``amount != 0``;
  ``UNIQUE``, ``REFERENCES`` between tables and ``ORDER_RULES`` in time).

Each failure becomes a ``Problem``: file, column, rule, row count, up to five rows.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.data.config import Config

__all__ = ["Col", "TABLES", "TEXT_CHANNELS", "VOICE_CHANNELS", "TICKET_EVENTS", "CAMPAIGNS", "CALL_STATUSES",
           "CALL_RESULTS", "TIMESTAMP_COLUMNS", "REFERENCES", "ORDER_RULES", "UNIQUE", "TYPE_RULES", "KEYS", "Rule",
           "type_batch", "float_id_columns", "column_rules", "rule_text"]

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


def _as_text(s: pd.Series, whole_floats: bool = False) -> pd.Series:
    """IDs and labels as text; floats from Parquet lose their '.0' when the whole column is
    integral (``whole_floats``, decided for the table: see ``type_batch``)."""
    if pd.api.types.is_float_dtype(s) and whole_floats:
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


TYPE_RULES = {
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


def type_batch(name: str, frame: pd.DataFrame, whole_float_ids: frozenset[str] = frozenset()
               ) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Type every contract column of a batch of table ``name`` that it holds; return the typed
    batch and, per column with a type rule, where a value was given but does not parse.

    Every row is typed on its own (the batch's size does not change a value), except the one
    table-wide choice: a float column of IDs (Parquet) is written without '.0' only when every
    value of it is whole, which the caller decides for the table (``whole_float_ids``). Columns
    outside the contract are kept, text as Arrow-backed strings."""
    frame = frame.copy(deep=False)  # columns are replaced, never changed in place
    failed: dict[str, np.ndarray] = {}
    for col in TABLES[name]:
        if col.name not in frame.columns:
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
            typed = _as_text(s, col.name in whole_float_ids)
        if col.kind in TYPE_RULES:
            failed[col.name] = (s.notna() & typed.isna()).to_numpy(dtype=bool)
        frame[col.name] = typed
    for c in frame.columns:  # a CSV's own columns: text
        if frame[c].dtype == object and pd.api.types.infer_dtype(frame[c], skipna=True) in ("string", "empty"):
            frame[c] = frame[c].astype(TEXT)
    if name == "tickets" and "channel" in frame.columns:
        kind = pd.Series(pd.NA, index=frame.index, dtype=TEXT)
        kind[frame["channel"].isin(TEXT_CHANNELS)] = "text"
        kind[frame["channel"].isin(VOICE_CHANNELS)] = "voice"
        frame["channel_kind"] = kind
    return frame, failed


def float_id_columns(name: str, columns: dict[str, bool]) -> list[str]:
    """The ID and text columns of table ``name`` that arrive as floats (``columns``: name -> is a
    float column), whose wholeness the caller checks over the whole table."""
    return [c.name for c in TABLES[name] if c.kind not in _NOT_TEXT and columns.get(c.name)]


_NOT_TEXT = {"timestamp", "amount", "rate", "amount_any", "seconds", "flag", "count", "whole", "csat"}


# ---------------------------------------------------------------- the rules, as predicates
@dataclass(frozen=True)
class Rule:
    """One rule on a typed table: ``fails(t)`` is an Ibis boolean that is true on a failing row
    (null values pass every rule but ``required value``). ``check`` orders a table's messages
    (by column, then check, as pandera's failure cases were) and ``rule`` is the message;
    ``listed`` rules name the failing values in their message."""

    column: str
    check: str
    rule: str
    fails: Callable
    listed: bool = False


def column_rules(name: str, config: Config, columns: list[str]) -> list[Rule]:
    """The value rules of table ``name`` on the columns it has (DESIGN §2): required values,
    allowed values, tiers against the config, ``amount != 0``, ``duration_s >= 0``, ``rate > 0``.
    Uniqueness, references and time order are table-wide and checked by the caller (``UNIQUE``,
    ``REFERENCES``, ``ORDER_RULES``)."""
    out = []
    for col in TABLES[name]:
        if col.name not in columns:
            continue
        c = col.name
        if not col.may_be_null:
            out.append(Rule(c, "not_nullable", "required value is empty", lambda t, c=c: t[c].isnull()))
        if col.allowed:
            text = f"allowed values: {', '.join(col.allowed)}"
            out.append(Rule(c, text, text, lambda t, c=c, a=col.allowed: t[c].notnull() & ~t[c].isin(a), listed=True))
        if col.kind == "tier":
            out.append(Rule(c, "tier", f"tier not in the config (config has {', '.join(config.tier_ids)})",
                            lambda t, c=c: t[c].notnull() & ~t[c].isin(config.tier_ids), listed=True))
        if col.kind == "amount":
            out.append(Rule(c, "amount != 0 (a charge is > 0, a refund < 0)", "amount != 0 (a charge is > 0, a refund < 0)",
                            lambda t, c=c: t[c].notnull() & (t[c] == 0)))
        if col.kind == "seconds":
            out.append(Rule(c, "duration_s >= 0", "duration_s >= 0", lambda t, c=c: t[c].notnull() & (t[c] < 0)))
        if col.kind == "rate":
            text = "rate > 0 (reporting-currency units per unit of the currency)"
            out.append(Rule(c, text, text, lambda t, c=c: t[c].notnull() & (t[c] <= 0)))
    return out


def rule_text(rule: Rule, values: list) -> str:
    """The message of a failed rule; a listed rule names up to ten of the failing values."""
    if not rule.listed:
        return rule.rule
    shown = ", ".join(sorted(map(str, values))[:10])
    if rule.check == "tier":
        config_has = rule.rule[rule.rule.index("(config has ") + 1:-1]
        return f"tier not in the config (unknown values: {shown}; {config_has})"
    return f"{rule.rule}; found {shown}"


UNIQUE = {name: [c.name for c in cols if c.unique] for name, cols in TABLES.items()}
UNIQUE_CHECK = "field_uniqueness"
UNIQUE_TEXT = "{column} must be unique; duplicated values"
REFERENCE_TEXT = "reference to {table}.{column}: value not found there"
KEYS = _KEYS
