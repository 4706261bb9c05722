"""Customer satisfaction (CSAT) per resolving tier and per agent (anchor: Zendesk).

CSAT = satisfied / rated: rated = resolved tickets with a csat_score, satisfied = 4-5 or "good"
(3 is rated but not satisfied). Response rate = rated / resolved. Both rating scales are
normalised by the contract into ``csat_satisfied`` (nullable boolean). Intervals: Wilson 95%.
"""
from __future__ import annotations

import pandas as pd

from analysis.data.config import Config
from analysis.stats import rate_table
from analysis.support.tiers import resolving_tier

__all__ = ["csat_table", "csat_by_tier", "csat_by_agent"]


def csat_table(tickets: pd.DataFrame, by: pd.Series | list[pd.Series] | None = None) -> pd.DataFrame:
    """resolved, csat_responses (rated), satisfied, csat with its Wilson interval, response rate.

    Where nothing is rated the csat is null, not 0; where nothing is resolved the response rate
    is null. Tickets without a ``csat_score`` column count as not rated.
    """
    satisfied = tickets["csat_satisfied"] if "csat_satisfied" in tickets.columns else \
        pd.Series(pd.NA, index=tickets.index, dtype="boolean")
    resolved = tickets["resolved_at"].notna() if "resolved_at" in tickets.columns else \
        pd.Series(False, index=tickets.index)
    rated = satisfied.notna() & resolved  # a survey answers a solved ticket (the loader blanks the others)
    frame = pd.DataFrame({"resolved": resolved.astype("int64"), "csat_responses": rated.astype("int64"),
                          "satisfied": (rated & satisfied.eq(True).fillna(False)).astype("int64")},
                         index=tickets.index)
    counts = frame.sum().to_frame("all").T if by is None else frame.groupby(by, observed=False).sum()
    counts = counts.astype("int64")
    out = counts.join(rate_table(counts["satisfied"], counts["csat_responses"], name="csat"))
    out["response_rate"] = counts["csat_responses"] / counts["resolved"].where(counts["resolved"] > 0)
    return out


def csat_by_tier(tickets: pd.DataFrame, config: Config) -> pd.DataFrame:
    """CSAT per resolving tier (final_tier, else first_tier), every configured tier listed."""
    return csat_table(tickets, resolving_tier(tickets, config).rename("tier"))


def csat_by_agent(tickets: pd.DataFrame, config: Config, min_responses: int = 1) -> pd.DataFrame:
    """CSAT per resolving tier and agent (tickets.agent_id), agents with at least
    ``min_responses`` ratings, lowest interval bound first (who needs a look)."""
    if "agent_id" not in tickets.columns:
        return pd.DataFrame()
    has_agent = tickets["agent_id"].notna()
    t = tickets[has_agent]
    tier = resolving_tier(t, config).astype("object").rename("tier")  # observed pairs only
    out = csat_table(t, [tier, t["agent_id"].rename("agent_id")])
    out = out[out["csat_responses"] >= min_responses]
    return out.sort_values(["csat_low", "csat_responses"], ascending=[True, False])
