"""Retention saves: clients who demanded a refund and were kept (DESIGN §4; DOMAIN §2: about a
third of angry refund demands are kept).

save rate = refund_request tickets whose client paid again (a charge) within the window after
the ticket and had no further refund in it / such tickets old enough to know (created_at +
window <= as-of). Revenue kept = the charges of saved clients in that window. By the tier that
resolved (or holds) the ticket.
"""
from __future__ import annotations

import ibis
import ibis.expr.types as ir
import pandas as pd

from analysis.data.config import Config
from analysis.data.engine import Engine
from analysis.stats import rate_table
from analysis.support.tiers import ladder, resolving_tier

__all__ = ["request_table", "handled_by_tier", "refund_requests", "save_rates", "REFUND_TOPIC"]

REFUND_TOPIC = "refund_request"


def request_table(tickets: ir.Table, payments: ir.Table, window_days: int) -> ir.Table:
    """Per refund_request ticket with a client: ticket_id, client_id, created_at, the tier
    columns, charged (the client's charges in (created_at, created_at + window]) and refunds
    (the number of refunds in it)."""
    tiers = [c for c in ("first_tier", "final_tier") if c in tickets.columns]
    t = tickets.filter((tickets.topic == REFUND_TOPIC) & tickets.client_id.notnull()).select(
        "ticket_id", "client_id", "created_at", *tiers)
    p = payments.select("client_id", "paid_at", "amount")
    j = t.select("ticket_id", "client_id", "created_at").join(p, "client_id")
    inside = (j.paid_at > j.created_at) & (j.paid_at <= j.created_at + ibis.interval(days=window_days))
    per = j.group_by("ticket_id").aggregate(charged=j.amount.sum(where=inside & (j.amount > 0)),
                                            refunds=ibis.ifelse(inside & (j.amount < 0), 1, 0).sum())
    return t.left_join(per, "ticket_id").drop("ticket_id_right")


def refund_requests(eng: Engine, config: Config, as_of: pd.Timestamp, window_days: int = 90) -> pd.DataFrame:
    """Per refund_request ticket with a client (by ticket_id): tier (the resolving tier), known
    (window over by as-of), paid_again, refunded_again, saved (null while not known) and
    revenue_kept (the charges of a known save in the window)."""
    tickets = eng.table("tickets")
    columns = ["ticket_id", "client_id", "created_at", "tier", "known", "paid_again", "refunded_again", "saved",
               "revenue_kept"]
    if "topic" not in tickets.columns or "client_id" not in tickets.columns:  # no request can be told
        empty = pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
        empty["tier"] = pd.Categorical([], dtype=ladder(config))
        for c in ("known", "paid_again", "refunded_again"):
            empty[c] = empty[c].astype(bool)
        empty["revenue_kept"] = empty["revenue_kept"].astype(float)
        return empty
    t = eng.frame(request_table(tickets, eng.table("payments"), window_days))
    t = t.sort_values("ticket_id", kind="stable").reset_index(drop=True)
    out = t[["ticket_id", "client_id", "created_at"]].copy()
    out["tier"] = resolving_tier(t, config)
    out["known"] = out["created_at"] + pd.Timedelta(days=window_days) <= as_of
    out["paid_again"] = t["charged"].notna().to_numpy()
    out["refunded_again"] = (t["refunds"].fillna(0) > 0).to_numpy()
    saved = out["paid_again"] & ~out["refunded_again"]
    out["saved"] = saved.astype("boolean").where(out["known"])
    out["revenue_kept"] = t["charged"].fillna(0.0).where(saved & out["known"], 0.0)
    return out


def save_rates(requests: pd.DataFrame, by: str | None = None) -> pd.DataFrame:
    """requests (known), saved, rate with its Wilson 95% interval and revenue kept, overall or per
    column (e.g. "tier"; every configured tier listed when it is the ladder categorical)."""
    r = requests[requests["known"]]
    frame = pd.DataFrame({"requests": 1, "saved": r["saved"].fillna(False).astype("int64"),
                          "revenue_kept": r["revenue_kept"]}, index=r.index)
    g = frame.sum().to_frame("all").T if by is None else frame.groupby(r[by], observed=False).sum()
    g[["requests", "saved"]] = g[["requests", "saved"]].astype("int64")
    return g.join(rate_table(g["saved"], g["requests"], name="save_rate"))


def handled_by_tier(requests: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """``save_rates`` per tier for the report: the tiers that handled at least one known refund
    demand, and the names of those that handled none (listed in a sentence, not as rows of 0)."""
    table = save_rates(requests, "tier")
    idle = [str(t) for t in table.index[table["requests"] == 0]]
    return table[table["requests"] > 0], idle
