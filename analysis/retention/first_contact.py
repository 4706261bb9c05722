"""Who talked to support, relative to their start (DESIGN §4, Retention).

- contacted (early) = the client has a ticket with created_at < start + contact window days
  (no lower bound: a ticket before the first charge counts);
- ever contacted = the client has any ticket before as-of: the naive split, biased because a
  client must still be around to write (immortal time) and long-lived clients have more time to.
"""
from __future__ import annotations

import ibis.expr.types as ir
import pandas as pd

from analysis.data.engine import Engine, of_clients

__all__ = ["first_contact_table", "first_contacts", "contact_groups", "group_label", "Groups", "EARLY", "NAIVE"]

EARLY = {True: "contacted", False: "not_contacted"}
NAIVE = {True: "ever_contacted", False: "never_contacted"}


def first_contact_table(tickets: ir.Table, exclude_topics: tuple[str, ...] = ()) -> ir.Table:
    """Each client's earliest ticket (client_id, first_contact_at); tickets without a client are
    left out, and so are tickets on ``exclude_topics`` (e.g. refund requests, which follow a
    decision to leave)."""
    t = tickets.filter(tickets.client_id.notnull())
    if exclude_topics and "topic" in tickets.columns:
        t = t.filter(t.topic.isnull() | ~t.topic.isin(list(exclude_topics)))
    return t.group_by("client_id").aggregate(first_contact_at=t.created_at.min())


def first_contacts(eng: Engine, exclude_topics: tuple[str, ...] = (), clients=None) -> pd.Series:
    """``first_contact_table`` of the engine's tickets as a Series by client_id (text order);
    empty when the tickets have no client_id column. ``clients`` (a sample's ids): only their
    tickets are read (``engine.of_clients``)."""
    tickets = eng.table("tickets")
    if "client_id" not in tickets.columns:
        return pd.Series(dtype="datetime64[ns, UTC]", index=pd.Index([], name="client_id"), name="first_contact_at")
    if clients is not None:
        tickets = of_clients(tickets, clients)
    out = eng.frame(first_contact_table(tickets, exclude_topics)).set_index("client_id")["first_contact_at"]
    return out.sort_index()


def contact_groups(starts: pd.DataFrame, first: pd.Series, window_days: int) -> pd.DataFrame:
    """Per client with a start: first_contact_at (``first_contacts``), early (a ticket before
    start + window) and ever (any ticket before as-of)."""
    first = first.reindex(starts.index)
    out = pd.DataFrame({"first_contact_at": first}, index=starts.index)
    out["early"] = (first < starts["start"] + pd.Timedelta(days=window_days)).fillna(False).astype(bool)
    out["ever"] = first.notna()
    return out


def group_label(flags: pd.Series, naive: bool = False) -> pd.Series:
    """contacted / not_contacted (or ever_contacted / never_contacted for the naive split)."""
    return flags.map(NAIVE if naive else EARLY).rename("group")


class Groups:
    """Per client with a start: the early-contact label and the naive "ever contacted" label
    (both None without a tickets table)."""

    def __init__(self, starts: pd.DataFrame, eng: Engine, window_days: int):
        self.window_days = window_days
        if not eng.has("tickets"):
            self.flags = None
            self.early = self.naive = None
        else:
            self.flags = contact_groups(starts, first_contacts(eng), window_days)
            self.early = group_label(self.flags["early"])
            self.naive = group_label(self.flags["ever"], naive=True)
