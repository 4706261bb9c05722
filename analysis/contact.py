"""Who talked to support, relative to their start (DESIGN §4, Retention).

- contacted (early) = the client has a ticket with created_at < start + contact window days
  (no lower bound: a ticket before the first charge counts);
- ever contacted = the client has any ticket before as-of: the naive split, biased because a
  client must still be around to write (immortal time) and long-lived clients have more time to.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import keys

__all__ = ["first_contacts", "contact_groups", "group_label", "EARLY", "NAIVE"]

EARLY = {True: "contacted", False: "not_contacted"}
NAIVE = {True: "ever_contacted", False: "never_contacted"}


def first_contacts(tickets: pd.DataFrame, exclude_topics: tuple[str, ...] = ()) -> pd.Series:
    """Each client's earliest ticket created_at (tickets without a client are left out), optionally
    ignoring tickets on some topics (e.g. refund requests, which follow a decision to leave)."""
    if "client_id" not in tickets.columns:
        t = tickets.iloc[:0]
        return t.groupby("client_id")["created_at"].min().rename("first_contact_at")
    keep = tickets["client_id"].notna().to_numpy()
    if exclude_topics and "topic" in tickets.columns:
        keep &= ~np.asarray(tickets["topic"].isin(exclude_topics), dtype=bool)
    rows = np.flatnonzero(keep)
    code, ids = keys.factorize(tickets["client_id"], rows)  # integer codes (the kept client rows), not the text
    first = keys.time_extreme(tickets["created_at"].take(rows), code, len(ids))
    out = pd.Series(first.array, index=pd.Index(ids, name="client_id"), name="first_contact_at")
    return out.iloc[keys.sorted_order(out.index)]


def contact_groups(starts: pd.DataFrame, tickets: pd.DataFrame, window_days: int) -> pd.DataFrame:
    """Per client with a start: first_contact_at, early (ticket before start + window) and ever."""
    first = first_contacts(tickets).reindex(starts.index)
    out = pd.DataFrame({"first_contact_at": first}, index=starts.index)
    out["early"] = (first < starts["start"] + pd.Timedelta(days=window_days)).fillna(False).astype(bool)
    out["ever"] = first.notna()
    return out


def group_label(flags: pd.Series, naive: bool = False) -> pd.Series:
    """contacted / not_contacted (or ever_contacted / never_contacted for the naive split)."""
    return flags.map(NAIVE if naive else EARLY).rename("group")
