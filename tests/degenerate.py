"""Small valid data sets of degenerate shapes (DESIGN §2: every table optional, an empty table
valid), written as CSV for the notebooks and the property-based tests to run on."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

__all__ = ["DEGENERATE", "write_set", "tables_of"]

COLUMNS = {
    "clients": ["client_id", "signed_up_at", "segment", "acquisition_channel", "country"],
    "payments": ["payment_id", "client_id", "paid_at", "amount"],
    "tickets": ["ticket_id", "created_at", "channel", "first_tier", "client_id", "first_response_at", "resolved_at",
                "final_tier", "agent_id", "priority", "topic", "csat_score", "reopened"],
    "ticket_events": ["ticket_id", "at", "event", "tier", "agent_id"],
    "agents": ["agent_id", "tier", "active_from", "active_to"],
    "outreach": ["client_id", "at", "campaign", "channel", "reached", "outcome"],
    "leads": ["lead_id", "created_at", "source", "client_id", "qualified_at", "converted_at"],
    "calls": ["call_id", "lead_id", "operator_id", "started_at", "duration_s", "status", "result", "stage", "vendor"],
}


def tables_of(source: Path) -> dict[str, pd.DataFrame]:
    return {p.name[:-4]: pd.read_csv(p, dtype=str, keep_default_na=False, na_values=[""])
            for p in sorted(source.glob("*.csv"))}


def _empty(name: str) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=str) for c in COLUMNS[name]})


def _one_client() -> dict[str, pd.DataFrame]:
    return {"clients": pd.DataFrame({"client_id": ["c1"], "signed_up_at": ["2025-03-01T10:00:00Z"]}),
            "payments": pd.DataFrame({"payment_id": ["p1"], "client_id": ["c1"], "paid_at": ["2025-03-02T10:00:00Z"],
                                      "amount": ["100"]})}


def _one_day() -> dict:
    day = "2025-06-10"
    out = {"clients": pd.DataFrame({"client_id": ["a", "b"], "signed_up_at": [f"{day}T08:00:00Z", f"{day}T09:00:00Z"]}),
           "payments": pd.DataFrame({"payment_id": ["p1", "p2"], "client_id": ["a", "b"],
                                     "paid_at": [f"{day}T10:00:00Z", f"{day}T11:00:00Z"], "amount": ["50", "70"]}),
           "tickets": pd.DataFrame({"ticket_id": ["t1"], "created_at": [f"{day}T12:00:00Z"], "channel": ["phone"],
                                    "first_tier": ["L1"], "client_id": ["a"],
                                    "first_response_at": [f"{day}T12:05:00Z"], "resolved_at": [f"{day}T13:00:00Z"],
                                    "final_tier": ["L1"], "csat_score": ["5"]})}
    return out


def _degenerate(base: dict[str, pd.DataFrame]) -> dict[str, dict[str, pd.DataFrame]]:
    t = {k: v.copy() for k, v in base.items()}
    tickets = t["tickets"]
    sets = {
        "empty_payments": {**t, "payments": _empty("payments")},
        "every_table_empty": {name: _empty(name) for name in COLUMNS},
        "no_refund_requests": {**t, "tickets": tickets.assign(topic=tickets["topic"].replace("refund_request", "billing"))},
        "nothing_resolved": {**t, "tickets": tickets.assign(resolved_at=None, final_tier=None, csat_score=None),
                             "ticket_events": t["ticket_events"][t["ticket_events"]["event"] != "solved"]},
        "no_ratings_one_tier": {**{k: v for k, v in t.items() if k != "ticket_events"},
                                "tickets": tickets.assign(first_tier="L1", final_tier="L1", csat_score=None),
                                "agents": t["agents"].assign(tier="L1")},
        "no_outreach_no_events_no_leads": {k: v for k, v in t.items()
                                           if k not in ("outreach", "ticket_events", "leads", "calls")},
        "no_payer": {k: v for k, v in t.items() if k != "payments"},
        "refunds_only": {**t, "payments": t["payments"].assign(amount=(-pd.to_numeric(t["payments"]["amount"]).abs())
                                                                .astype(str))},
        "one_client_one_payment": _one_client(),
        "one_day": _one_day(),
        "tickets_alone": {"tickets": tickets},
    }
    return sets


def write_set(tables: dict[str, pd.DataFrame], target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        frame.to_csv(target / f"{name}.csv", index=False)
    return target


DEGENERATE = ("empty_payments", "every_table_empty", "no_refund_requests", "nothing_resolved", "no_ratings_one_tier",
              "no_outreach_no_events_no_leads", "no_payer", "refunds_only", "one_client_one_payment", "one_day",
              "tickets_alone")


def degenerate_sets(source: Path) -> dict[str, dict[str, pd.DataFrame]]:
    return _degenerate(tables_of(source))
