"""Which tier a ticket belongs to, in the config's ladder order (DESIGN §4, Zendesk groups).

First-response metrics use the entry tier (``first_tier``); resolution and CSAT use the
resolving tier (``final_tier``, or ``first_tier`` when the column is absent or empty). Tiers are
returned as an ordered categorical of every configured tier, so a ``groupby(observed=False)``
lists every tier in ladder order, with zero counts where a tier has no tickets.
"""
from __future__ import annotations

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from analysis.data.config import Config

__all__ = ["ladder", "as_tier", "entry_tier", "resolving_tier", "tier_names", "tier_code", "entry_code",
           "resolving_code", "per_tier"]


def ladder(config: Config) -> pd.CategoricalDtype:
    """The configured tiers as an ordered categorical dtype (index 0 = first line)."""
    return pd.CategoricalDtype(config.tier_ids, ordered=True)


def as_tier(values: pd.Series, config: Config) -> pd.Series:
    """Tier ids as the ladder categorical (values outside the config, and nulls, become null)."""
    return pd.Series(values, copy=False).astype("string").astype(ladder(config))


def entry_tier(tickets: pd.DataFrame, config: Config) -> pd.Series:
    """The tier that first owned the ticket: ``first_tier``."""
    return as_tier(tickets["first_tier"], config)


def resolving_tier(tickets: pd.DataFrame, config: Config) -> pd.Series:
    """The tier that resolved (or now holds) the ticket: ``final_tier``, else ``first_tier``."""
    first = as_tier(tickets["first_tier"], config)
    if "final_tier" not in tickets.columns:
        return first
    final = as_tier(tickets["final_tier"], config)
    codes = np.where(tickets["final_tier"].isna().to_numpy(), first.cat.codes.to_numpy(), final.cat.codes.to_numpy())
    return pd.Series(pd.Categorical.from_codes(codes, dtype=ladder(config)), index=tickets.index, name="final_tier")


def tier_names(config: Config) -> dict[str, str]:
    """Tier id -> display label "id (name)" in ladder order."""
    return {t.id: f"{t.id} ({t.name})" if t.name else t.id for t in config.tiers}


# ---- in the engine -----------------------------------------------------------------------------
def tier_code(value: ir.StringValue, config: Config) -> ir.IntegerValue:
    """A tier id's position in the ladder (0 = first line); -1 for a null or a tier outside the
    config (the codes of ``as_tier``)."""
    value = value.cast("string")
    return ibis.cases(*[(value == tier, i) for i, tier in enumerate(config.tier_ids)], else_=-1).cast("int64")


def entry_code(tickets: ir.Table, config: Config) -> ir.IntegerValue:
    """The ladder code of the tier that first owned the ticket (``entry_tier``)."""
    return tier_code(tickets.first_tier, config)


def resolving_code(tickets: ir.Table, config: Config) -> ir.IntegerValue:
    """The ladder code of the resolving tier (``resolving_tier``): ``final_tier``'s, or
    ``first_tier``'s where final_tier is null or absent; -1 for a final tier outside the config."""
    if "final_tier" not in tickets.columns:
        return entry_code(tickets, config)
    return ibis.ifelse(tickets.final_tier.isnull(), entry_code(tickets, config), tier_code(tickets.final_tier, config))


def per_tier(frame: pd.DataFrame, config: Config, code: str = "tier", fill=0) -> pd.DataFrame:
    """An engine aggregate keyed by ladder code (column ``code``; -1 rows dropped) as one row per
    configured tier in ladder order, indexed by tier id ("tier"), ``fill`` where a tier has no
    row (0 for counts; NaN for statistics, pass ``fill=None``)."""
    known = frame[frame[code] >= 0]
    out = known.set_index(known[code].astype("int64").map(dict(enumerate(config.tier_ids)))).drop(columns=[code])
    out = out.reindex(pd.Index(config.tier_ids, name="tier"))
    return out if fill is None else out.fillna(fill)
