"""Which tier a ticket belongs to, in the config's ladder order (DESIGN §4, Zendesk groups).

First-response metrics use the entry tier (``first_tier``); resolution and CSAT use the
resolving tier (``final_tier``, or ``first_tier`` when the column is absent or empty). Tiers are
returned as an ordered categorical of every configured tier, so a ``groupby(observed=False)``
lists every tier in ladder order, with zero counts where a tier has no tickets.
"""
from __future__ import annotations

import pandas as pd

from analysis.config import Config

__all__ = ["ladder", "as_tier", "entry_tier", "resolving_tier", "tier_names"]


def ladder(config: Config) -> pd.CategoricalDtype:
    """The configured tiers as an ordered categorical dtype (index 0 = first line)."""
    return pd.CategoricalDtype(config.tier_ids, ordered=True)


def as_tier(values: pd.Series, config: Config) -> pd.Series:
    """Tier ids as the ladder categorical (values outside the config become null)."""
    return pd.Series(values, copy=False).astype("string").astype(ladder(config))


def entry_tier(tickets: pd.DataFrame, config: Config) -> pd.Series:
    """The tier that first owned the ticket: ``first_tier``."""
    return as_tier(tickets["first_tier"], config)


def resolving_tier(tickets: pd.DataFrame, config: Config) -> pd.Series:
    """The tier that resolved (or now holds) the ticket: ``final_tier``, else ``first_tier``."""
    final = tickets["final_tier"] if "final_tier" in tickets.columns else tickets["first_tier"]
    return as_tier(final.fillna(tickets["first_tier"]), config)


def tier_names(config: Config) -> dict[str, str]:
    """Tier id -> display label "id (name)" in ladder order."""
    return {t.id: f"{t.id} ({t.name})" if t.name else t.id for t in config.tiers}
