"""Retention saves: clients who demanded a refund and were kept (DESIGN §4; DOMAIN §2: about a
third of angry refund demands are kept).

save rate = refund_request tickets whose client paid again (a charge) within the window after
the ticket and had no further refund in it / such tickets old enough to know (created_at +
window <= as-of). Revenue kept = the charges of saved clients in that window. By the tier that
resolved (or holds) the ticket.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import keys
from analysis.config import Config
from analysis.stats import rate_table
from analysis.tiers import resolving_tier

__all__ = ["handled_by_tier", "refund_requests", "save_rates", "REFUND_TOPIC"]

REFUND_TOPIC = "refund_request"


def refund_requests(tickets: pd.DataFrame, payments: pd.DataFrame, config: Config, as_of: pd.Timestamp,
                    window_days: int = 90) -> pd.DataFrame:
    """Per refund_request ticket with a client: tier, known (window over), paid_again,
    refunded_again, saved (null while not known) and revenue_kept."""
    if "topic" not in tickets.columns or "client_id" not in tickets.columns:  # no request can be told
        t = tickets.iloc[:0].assign(client_id=pd.Series(dtype="string"))
    else:
        t = tickets[(tickets["topic"] == REFUND_TOPIC) & tickets["client_id"].notna()]
    out = pd.DataFrame({"ticket_id": t["ticket_id"], "client_id": t["client_id"], "created_at": t["created_at"],
                        "tier": resolving_tier(t, config)})
    window = pd.Timedelta(days=window_days)
    out["known"] = out["created_at"] + window <= as_of
    pairs = _request_payments(out, payments)
    pairs = pairs[(pairs["paid_at"] > pairs["created_at"]) & (pairs["paid_at"] <= pairs["created_at"] + window)]
    charges = pairs[pairs["amount"] > 0].groupby("row")["amount"].sum()
    refunds = pairs[pairs["amount"] < 0].groupby("row").size()
    out["paid_again"] = keys.isin(out.index, charges.index)
    out["refunded_again"] = keys.isin(out.index, refunds.index)
    saved = out["paid_again"] & ~out["refunded_again"]
    out["saved"] = saved.astype("boolean").where(out["known"])
    out["revenue_kept"] = charges.reindex(out.index, fill_value=0.0).where(saved & out["known"], 0.0)
    return out.reset_index(drop=True)


def _request_payments(requests: pd.DataFrame, payments: pd.DataFrame) -> pd.DataFrame:
    """Every (request, payment of its client) pair: row (the request's label), created_at,
    paid_at, amount; in request order, then payment order (what an inner merge on client_id
    gives), built on integer client codes instead of hashing the text of every payment."""
    client = pd.Index(requests["client_id"].unique())
    asked = keys.codes(requests["client_id"], client)
    rows, paid = keys.found(payments["client_id"], client)  # payments of clients with a request
    rows = rows[keys.group_order(paid, len(client))]  # by client, payment order kept
    count = np.bincount(paid, minlength=len(client))
    first = np.cumsum(count) - count
    n = count[asked]
    request = np.repeat(np.arange(len(requests)), n)
    within = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    payment = rows[first[asked][request] + within]
    return pd.DataFrame({"row": requests.index.to_numpy()[request],
                         "created_at": requests["created_at"].array.take(request),
                         "paid_at": payments["paid_at"].array.take(payment),
                         "amount": payments["amount"].to_numpy()[payment]})


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
