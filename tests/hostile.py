"""A hostile copy of a generated data set (DESIGN §10): every free-text and id column of every
table, the tier ids and names of the config and a text parameter carry markup and script.

Each value keeps its original text first (ids stay unique, references stay consistent, groups
stay groups) and gets the payload of its column, tagged with the column's name, e.g.
``mid<img src=x onerror=alert("clients.segment")><script>...</script>[x](javascript:...)$x$``.
Values that carry meaning for a metric keep it where they must (the ``refund_request`` topic, the
conveyor's stage names, the ``in-house`` vendor, the ticket and call enumerations): there only
the other values, or an extra share of rows, are made hostile.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from conftest import ROOT

__all__ = ["payload", "hostile_copy", "HOSTILE_COLUMNS"]

# table -> columns made hostile on every value (text and ids)
HOSTILE_COLUMNS = {
    "clients": ["client_id", "segment", "acquisition_channel", "country"],
    "payments": ["payment_id", "client_id", "kind"],
    "tickets": ["ticket_id", "client_id", "agent_id", "priority", "segment"],
    "ticket_events": ["ticket_id", "agent_id"],
    "agents": ["agent_id"],
    "outreach": ["client_id", "channel", "outcome"],
    "usage": ["client_id", "feature"],
    "leads": ["lead_id", "client_id", "source"],
    "calls": ["call_id", "lead_id", "operator_id"],
}
# the same values in other tables must map the same way (references)
_SAME = {("payments", "client_id"): ("clients", "client_id"), ("tickets", "client_id"): ("clients", "client_id"),
         ("outreach", "client_id"): ("clients", "client_id"), ("leads", "client_id"): ("clients", "client_id"),
         ("usage", "client_id"): ("clients", "client_id"),
         ("ticket_events", "ticket_id"): ("tickets", "ticket_id"), ("ticket_events", "agent_id"): ("agents", "agent_id"),
         ("tickets", "agent_id"): ("agents", "agent_id"), ("calls", "lead_id"): ("leads", "lead_id"),
         ("tickets", "segment"): ("clients", "segment")}
TIER_COLUMNS = {"tickets": ["first_tier", "final_tier"], "ticket_events": ["tier"], "agents": ["tier"]}


def payload(tag: str) -> str:
    return (f'<img src=x onerror=alert("{tag}")><script>alert("{tag}")</script>'
            f'[x](javascript:alert("{tag}"))**{tag}**$x$')


def _hostile(values: pd.Series, tag: str, keep=()) -> pd.Series:
    text = values.astype("string")
    out = text + payload(tag)
    return out.where(text.notna() & ~text.isin(list(keep)), text)


def hostile_copy(source: Path, target: Path) -> tuple[Path, Path]:
    """Write the hostile data set (CSV) and its config; returns (data dir, config path)."""
    target.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((ROOT / "config" / "default.yaml").read_text())
    tier_map = {t["id"]: t["id"] + payload(f"tier {t['id']}") for t in config["tiers"]}
    for tier in config["tiers"]:
        tier["name"] = tier["name"] + payload(f"tier name {tier['id']}")
        tier["id"] = tier_map[tier["id"]]
    tables = {p.name[:-4]: pd.read_csv(p, dtype=str, keep_default_na=False, na_values=[""])
              for p in sorted(source.glob("*.csv"))}
    for name, frame in tables.items():
        for column in HOSTILE_COLUMNS.get(name, []):
            if column in frame.columns:
                tag = ".".join(_SAME.get((name, column), (name, column)))
                frame[column] = _hostile(frame[column], tag)
        for column in TIER_COLUMNS.get(name, []):
            if column in frame.columns:
                frame[column] = frame[column].map(tier_map).where(frame[column].notna(), None)
    tickets = tables["tickets"]
    tickets["topic"] = _hostile(tickets["topic"], "tickets.topic", keep=("refund_request",))
    calls = tables["calls"]
    calls["vendor"] = _hostile(calls["vendor"], "calls.vendor", keep=("in-house",))
    every_tenth = calls.index % 10 == 0
    calls.loc[every_tenth, "stage"] = _hostile(calls.loc[every_tenth, "stage"], "calls.stage")
    for name, frame in tables.items():
        frame.to_csv(target / f"{name}.csv", index=False)
    specialist = _hostile(pd.Series(["specialist"]), "calls.vendor").iloc[0]
    config["parameters"] = {"pilot_vendor": specialist}
    path = target.parent / f"{target.name}-config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False))
    return target, path
