"""The run's YAML config: support tiers (ladder order, SLA targets), business hours, retention.

The file is validated with pydantic models that forbid unknown keys, so a typo such as
``resolution_target_mins`` is an error naming the key instead of a silently ignored setting.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from analysis.errors import InputError

__all__ = ["Tier", "BusinessHours", "Retention", "Config", "load_config", "DEFAULT_CONFIG"]

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "config" / "default.yaml"

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tier(_Strict):
    """One line of support, in ladder order in the config's ``tiers`` list."""

    id: str = Field(min_length=1)
    name: str | None = None
    first_response_target_min: float | None = Field(default=None, gt=0)
    resolution_target_min: float | None = Field(default=None, gt=0)
    # optional per-priority targets: {priority value: minutes}
    first_response_target_by_priority_min: dict[str, float] | None = None
    resolution_target_by_priority_min: dict[str, float] | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _id_text(cls, v: Any) -> str:
        return str(v)


class BusinessHours(_Strict):
    timezone: str
    days: list[Weekday] = Field(min_length=1)
    start: str
    end: str
    holidays: list[dt.date] = []

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {v!r}") from exc
        return v

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, v: Any) -> str:
        text = str(v)
        try:
            dt.datetime.strptime(text, "%H:%M")
        except ValueError as exc:
            raise ValueError(f"time must be HH:MM, got {text!r}") from exc
        return text

    @model_validator(mode="after")
    def _start_before_end(self) -> "BusinessHours":
        if self.start >= self.end:
            raise ValueError(f"start {self.start} must be before end {self.end}")
        return self


class Retention(_Strict):
    contact_window_days: int = Field(default=30, ge=0)
    first_month_grace_days: int = Field(default=14, ge=0)
    dormancy_days: int = Field(default=90, gt=0)
    winback_window_days: int = Field(default=90, gt=0)


class Config(_Strict):
    """The validated config. ``tiers`` is in escalation order (index 0 = first line)."""

    tiers: list[Tier] = Field(min_length=1)
    business_hours: BusinessHours | None = None
    retention: Retention = Retention()
    # the currency amounts are reported in; needed when payments carry several currencies
    reporting_currency: str | None = None
    # extra notebook parameters, applied to every notebook that declares them
    parameters: dict[str, Any] = {}
    # a database source whose tables have other names: contract table -> its name there
    # ("schema.table" for a table outside the default schema); checked when the data is read
    source_tables: dict[str, str] = {}
    # --engine spark: the cluster to run on (a master URL such as spark://host:7077, or
    # sc://host:15002 for Spark Connect); none: a local session on this machine
    spark_master: str | None = None

    @field_validator("parameters", mode="after")
    @classmethod
    def _dates_as_text(cls, v: dict[str, Any]) -> dict[str, Any]:
        # YAML reads 2025-07-01 as a date, which papermill cannot pass (DESIGN §9): keep ISO text
        return {k: x.isoformat() if isinstance(x, (dt.date, dt.datetime)) else x for k, x in v.items()}

    @model_validator(mode="after")
    def _unique_tiers(self) -> "Config":
        ids = [t.id for t in self.tiers]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"tier ids must be unique, repeated: {', '.join(dupes)}")
        return self

    @property
    def tier_ids(self) -> list[str]:
        return [t.id for t in self.tiers]

    def notebook_parameters(self) -> dict[str, Any]:
        """Parameters the config gives the notebooks: the retention settings, then `parameters`."""
        return {**self.retention.model_dump(), **self.parameters}


def _describe(err: dict) -> str:
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    if err["type"] == "extra_forbidden":
        return f"unknown key '{where}' (not understood by the suite)"
    if err["type"] == "missing":
        return f"missing required key '{where}'"
    return f"'{where}': {err['msg']}"


def load_config(path: str | Path | None = None) -> Config:
    """Read and validate a config file; raise InputError naming every bad or unknown key."""
    path = Path(path) if path is not None else DEFAULT_CONFIG
    if not path.is_file():
        raise InputError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InputError(f"config {path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise InputError(f"config {path}: expected a mapping at the top level")
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        lines = [f"  - {_describe(e)}" for e in exc.errors()]
        raise InputError(f"config {path}: {len(lines)} problem(s)\n" + "\n".join(lines)) from None
