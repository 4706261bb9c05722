"""Customer satisfaction (CSAT) per resolving tier and per agent (anchor: Zendesk).

CSAT = satisfied / rated: rated = resolved tickets with a csat_score, satisfied = 4-5 or "good"
(3 is rated but not satisfied). Response rate = rated / resolved. Both rating scales are
normalised by the contract into ``csat_satisfied`` (nullable boolean). Intervals: Wilson 95%.
Counted in the engine on ``sla.ticket_table``; only the per-tier (per-agent) counts leave it.
"""
from __future__ import annotations

import ibis
import ibis.expr.types as ir
import pandas as pd

from analysis.data.config import Config
from analysis.data.engine import Engine, as_count
from analysis.stats import rate_table
from analysis.support.sla import ticket_table
from analysis.support.tiers import per_tier

__all__ = ["satisfied_expr", "csat_aggregates", "csat_rates", "csat_by_tier", "csat_by_agent"]


def satisfied_expr(t: ir.Table) -> ir.BooleanValue:
    """Per ticket: the rating was satisfied (True), not satisfied (False), or there is none
    (null): a survey answers a solved ticket, so an unresolved ticket counts as not rated.
    Tickets without a ``csat_satisfied`` column are not rated."""
    rating = t.csat_satisfied if "csat_satisfied" in t.columns else ibis.null("boolean")
    return ibis.ifelse(t.resolved_at.notnull(), rating, ibis.null("boolean"))  # a column either way


def csat_aggregates(t: ir.Table) -> dict[str, ir.Value]:
    """resolved, csat_responses (rated) and satisfied as aggregates over ``ticket_table`` rows."""
    s = satisfied_expr(t)
    return {"resolved": t.resolved_at.count(), "csat_responses": s.count(),
            "satisfied": ibis.ifelse(s, 1, 0).sum()}


def csat_rates(counts: pd.DataFrame) -> pd.DataFrame:
    """resolved, csat_responses, satisfied, csat with its Wilson interval and the response rate,
    from counted rows (``csat_aggregates``). Where nothing is rated the csat is null, not 0;
    where nothing is resolved the response rate is null."""
    counts = counts[["resolved", "csat_responses", "satisfied"]].map(as_count).astype("int64")
    out = counts.join(rate_table(counts["satisfied"], counts["csat_responses"], name="csat"))
    out["response_rate"] = counts["csat_responses"] / counts["resolved"].where(counts["resolved"] > 0)
    return out


def csat_by_tier(eng: Engine, config: Config, as_of: pd.Timestamp) -> pd.DataFrame:
    """CSAT per resolving tier (final_tier, else first_tier), every configured tier listed."""
    t = ticket_table(eng, config, as_of)
    t = t.filter(t.resolving >= 0)
    return csat_rates(per_tier(eng.frame(t.group_by(tier=t.resolving)
                                         .aggregate(**csat_aggregates(t))), config))


def csat_by_agent(eng: Engine, config: Config, as_of: pd.Timestamp, min_responses: int = 1) -> pd.DataFrame:
    """CSAT per resolving tier and agent (tickets.agent_id), agents with at least
    ``min_responses`` ratings, lowest interval bound first (who needs a look), ties by more
    ratings, then tier and agent id. Empty without an agent_id column."""
    t = ticket_table(eng, config, as_of)
    if "agent_id" not in t.columns:
        return pd.DataFrame()
    t = t.filter((t.resolving >= 0) & t.agent_id.notnull())
    counts = eng.frame(t.group_by(tier=t.resolving, agent_id=t.agent_id).aggregate(**csat_aggregates(t)))
    counts["tier"] = counts["tier"].astype("int64").map(dict(enumerate(config.tier_ids))).astype("object")
    out = csat_rates(counts.set_index(["tier", "agent_id"]).sort_index())
    out = out[out["csat_responses"] >= min_responses]
    return out.sort_values(["csat_low", "csat_responses"], ascending=[True, False], kind="stable")
