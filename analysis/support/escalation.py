"""Where tickets go: escalation matrix and rates, tier paths, ownership time, reassignments,
one-touch and reopen rates (anchor: Zendesk groups, group stations and group SLA).

- escalation rate of a tier = tickets entering at the tier whose resolving tier differs
  (resolved or not) / tickets entering at the tier (DESIGN §4);
- with ticket_events: a ticket's *segments* are the spans during which one tier owned it. The
  first starts at created_at with first_tier; each ``assigned`` event to another tier closes the
  current segment and opens the next (an assignment within the same tier is a reassignment, not a
  new segment). The last segment ends at the ticket's (latest) resolution, or is still open at
  as-of. Ownership time = segment end - start (Zendesk's group SLA); the path is the sequence of
  segment tiers (L1 -> L1.5 -> L2);
- one-touch rate = resolved tickets with exactly one agent reply / resolved tickets with events;
- reopen rate = tickets reopened at least once / tickets solved at least once.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.data import ids
from analysis.data.config import Config
from analysis.support.durations import minutes
from analysis.stats import duration_stats, rate_table
from analysis.support.tiers import entry_tier, ladder, resolving_tier, tier_codes

__all__ = ["escalation_matrix", "escalation_rates", "tier_segments", "tier_paths", "path_frequencies",
           "ownership_time", "reassignments", "agent_replies", "reply_counts", "escalated", "one_touch", "reopen_rate", "ARROW"]

ARROW = " → "


def escalation_matrix(tickets: pd.DataFrame, config: Config) -> pd.DataFrame:
    """Tickets by entry tier (rows) and resolving tier (columns), every tier in ladder order
    (zeros where no ticket, also with no ticket at all)."""
    frame = pd.DataFrame({"entry tier": entry_tier(tickets, config), "resolving tier": resolving_tier(tickets, config)})
    return frame.groupby(["entry tier", "resolving tier"], observed=False).size().unstack("resolving tier")


def escalation_rates(tickets: pd.DataFrame, config: Config) -> pd.DataFrame:
    """Per entry tier: tickets, escalated (resolving tier != entry tier), escalation_rate with
    its Wilson 95% interval (null where the tier has no tickets)."""
    entry = entry_tier(tickets, config)
    moved = pd.Series(escalated(entry, resolving_tier(tickets, config)), index=tickets.index).astype("int64")
    g = pd.DataFrame({"tickets": 1, "escalated": moved}).groupby(entry.rename("tier"), observed=False).sum()
    return g.join(rate_table(g["escalated"], g["tickets"], name="escalation_rate"))


def _is(values: pd.Series, label: str) -> np.ndarray:
    """Boolean array: equals ``label`` (null -> False)."""
    return np.asarray((values == label).fillna(False), dtype=bool)


def escalated(entry: pd.Series, resolving: pd.Series) -> np.ndarray:
    """Resolving tier != entry tier, on the ladder codes (a tier outside the ladder differs from
    everything, itself included, as NaN does)."""
    e, r = entry.cat.codes.to_numpy(), resolving.cat.codes.to_numpy()
    return (r != e) | (r < 0)


def tier_segments(tickets: pd.DataFrame, events: pd.DataFrame, config: Config, as_of: pd.Timestamp) -> pd.DataFrame:
    """One row per (ticket, ownership segment), in ticket_id order: ticket_id, seq, tier, start,
    end (NaT = still owned at as-of), ownership_min (on the config's clock; null while open), open.

    Only tickets present in ``tickets`` and having at least one event are segmented. Worked on
    integer positions (ticket row, tier code, nanoseconds); ties in time keep the entry first,
    then the events in their table order.
    """
    ticket_ids = tickets["ticket_id"]
    row = ids.codes(events["ticket_id"], ticket_ids)  # the event's ticket row, -1 when not in tickets
    known = row >= 0
    entered = np.flatnonzero(np.bincount(row[known], minlength=len(tickets)) > 0)
    moved = np.flatnonzero(_is(events["event"], "assigned") & known)
    ticket = np.concatenate([entered, row[moved]])
    at = np.concatenate([ids.ns(tickets["created_at"])[entered], ids.ns(events["at"])[moved]])
    tier = np.concatenate([tier_codes(tickets["first_tier"], config)[entered],
                           tier_codes(events["tier"], config)[moved]])
    # stable: ticket_id, time, entry first, then the events' table order. The entries come first
    # in these arrays, so a stable sort on (ticket_id, time) keeps each ticket's entry before its
    # events at the same instant: the order np.lexsort((step, at, rank)) gives, by a stable sort
    # on time and a counting sort on the ticket's rank (ids.order_by)
    rank = ticket if ids.increasing(ticket_ids) else ids.sorted_rank(ticket_ids)[ticket]
    order = ids.order_by(rank, len(tickets), at)
    ticket, at, tier = ticket[order], at[order], tier[order]
    first = np.r_[True, ticket[1:] != ticket[:-1]] if len(ticket) else np.zeros(0, bool)
    new = first | np.r_[True, tier[1:] != tier[:-1]] if len(ticket) else first
    ticket, at, tier, first = ticket[new], at[new], tier[new], first[new]
    opens = np.flatnonzero(first)
    seq = np.arange(len(ticket)) - np.repeat(opens, np.diff(np.r_[opens, len(ticket)]))
    last = np.r_[first[1:], True] if len(ticket) else first
    resolved = ids.ns(tickets["resolved_at"])[ticket] if "resolved_at" in tickets.columns \
        else np.full(len(ticket), ids.NAT)
    last_end = np.where((resolved != ids.NAT) & (resolved >= at), resolved, ids.NAT)  # resolved before: reopened, open
    end = np.where(last, last_end, np.r_[at[1:], ids.NAT][:len(at)])
    seg = pd.DataFrame({"ticket_id": ticket_ids.take(ticket).reset_index(drop=True), "seq": seq.astype("int64"),
                        "tier": pd.Categorical.from_codes(tier, dtype=ladder(config)),
                        "start": pd.Series(ids.from_ns(at)), "end": pd.Series(ids.from_ns(end))})
    seg["ownership_min"] = minutes(seg["start"], seg["end"], config.business_hours)
    seg["open"] = seg["end"].isna()
    return seg


def tier_paths(segments: pd.DataFrame) -> pd.Series:
    """Per ticket (index ticket_id, sorted): the sequence of owning tiers in ``seq`` order
    joined with arrows ("L1 → L1.5 → L2").

    Built on integers: each step extends the ticket's path id by one tier code, and only the
    distinct paths are spelled out as text."""
    ticket, ticket_ids = ids.factorize(segments["ticket_id"])  # from the kept ticket rows when tier_segments made them
    tiers = pd.Series(segments["tier"], copy=False).astype("category")
    labels = [str(v) for v in tiers.cat.categories]
    tier = tiers.cat.codes.to_numpy().astype("int64")
    seq = segments["seq"].to_numpy()
    path = np.zeros(len(ticket_ids), "int64")  # 0: the empty path
    spelled = [""]
    for k in np.unique(seq):  # a handful of steps, vectorised over tickets
        at = (seq == k) & (tier >= 0)  # a step without a tier leaves the path as it is
        t, c = ticket[at], tier[at]
        pair, first = np.unique(path[t] * (len(labels) + 1) + c + 1, return_index=True)
        prev = path[t][first]
        code = c[first]
        base = len(spelled)
        spelled += [spelled[p] + (ARROW if k else "") + labels[cc] for p, cc in zip(prev, code)]
        path[t] = base + np.searchsorted(pair, path[t] * (len(labels) + 1) + c + 1)
    out = pd.Series(np.asarray(spelled, dtype=object)[path], index=pd.Index(ticket_ids, name="ticket_id"), name="path")
    return out.iloc[ids.sorted_order(out.index)] if len(out) else out


def path_frequencies(paths: pd.Series, top: int = 10) -> pd.DataFrame:
    """The most frequent paths with tickets and share; the rest pooled as "(other paths)"."""
    counts = paths.value_counts()
    total = int(counts.sum())
    head = counts.head(top)
    rest = counts.iloc[top:].sum()
    if rest:
        head = pd.concat([head, pd.Series({"(other paths)": rest})])
    out = head.rename("tickets").to_frame()
    out["share"] = out["tickets"] / total if total else np.nan
    out["steps"] = [p.count(ARROW) for p in out.index]
    return out.rename_axis("path")


def ownership_time(segments: pd.DataFrame) -> pd.DataFrame:
    """Per tier: segments, still open at as-of, and n / median / p90 / mean ownership minutes of
    the closed segments (open ones are censored and left out of the statistics)."""
    stats = duration_stats(segments["ownership_min"], segments["tier"], prefix="ownership_")
    g = segments.groupby("tier", observed=False)
    out = pd.DataFrame({"segments": g.size(), "open_at_as_of": g["open"].sum().astype("int64")})
    return out.join(stats)


def reassignments(tickets: pd.DataFrame, events: pd.DataFrame, segments: pd.DataFrame,
                  config: Config) -> pd.DataFrame:
    """Per entry tier (tickets with events): mean group stations (tiers that owned the ticket),
    share passed between tiers, mean assignee stations and share reassigned (> 1 agent).

    Assignee stations = 1 + changes of agent between consecutive ``assigned`` events (in time,
    ties in table order; events without an agent are skipped); a segmented ticket without such
    an event has no assignee count and is not reassigned. Without an agent_id column only group
    stations are shown. Counted on integer ticket rows.
    """
    ticket_ids = tickets["ticket_id"]
    groups = np.bincount(ids.codes(segments["ticket_id"], ticket_ids), minlength=len(tickets))  # every segment is in tickets
    held = groups > 0
    frame = pd.DataFrame({"group_stations": groups[held]})
    if "agent_id" in events.columns:
        row = ids.codes(events["ticket_id"], ticket_ids)
        pick = _is(events["event"], "assigned") & events["agent_id"].notna().to_numpy() & (row >= 0)
        pick &= held[np.maximum(row, 0)]
        t, at = row[pick], ids.ns(events["at"])[pick]
        agent = pd.factorize(events["agent_id"][pick])[0]
        order = np.lexsort((at, t))  # stable: time, then table order
        t, agent = t[order], agent[order]
        change = np.r_[False, (t[1:] == t[:-1]) & (agent[1:] != agent[:-1])] if len(t) else np.zeros(0, bool)
        stations = 1.0 + np.bincount(t[change], minlength=len(tickets))
        stations[np.bincount(t, minlength=len(tickets)) == 0] = np.nan
        frame["assignee_stations"] = stations[held]
    tier = pd.Series(pd.Categorical.from_codes(tier_codes(tickets["first_tier"], config)[held],
                                               dtype=ladder(config)), name="tier")
    frame["passed_between_tiers"] = frame["group_stations"] > 1
    agg = {"tickets": ("group_stations", "size"), "group_stations_mean": ("group_stations", "mean"),
           "passed_between_tiers": ("passed_between_tiers", "mean")}
    if "assignee_stations" in frame.columns:
        frame["reassigned"] = frame["assignee_stations"] > 1
        agg |= {"assignee_stations_mean": ("assignee_stations", "mean"), "reassigned_share": ("reassigned", "mean")}
    return frame.groupby(tier, observed=False).agg(**agg)


def agent_replies(events: pd.DataFrame) -> pd.Series:
    """Number of agent_reply events per ticket_id (tickets without any are absent)."""
    return events[events["event"] == "agent_reply"].groupby("ticket_id").size()


def reply_counts(tickets: pd.DataFrame, events: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``tickets``: its number of agent_reply events (int64) and whether it has any
    event at all (bool); counted on integer ticket rows."""
    row = ids.codes(events["ticket_id"], tickets["ticket_id"])
    known = row >= 0
    has = np.bincount(row[known], minlength=len(tickets)) > 0
    replies = np.bincount(row[known & _is(events["event"], "agent_reply")], minlength=len(tickets))
    return replies.astype("int64"), has


def one_touch(tickets: pd.DataFrame, events: pd.DataFrame, config: Config) -> pd.DataFrame:
    """Per resolving tier, among resolved tickets that have events: how many agent replies they
    took (0, 1, 2, 3+) and the one-touch rate (exactly one reply) with its Wilson interval."""
    replies, has = reply_counts(tickets, events)
    keep = tickets["resolved_at"].notna().to_numpy() & has
    n = pd.Series(replies[keep], index=tickets.index[keep])
    bucket = pd.cut(n, [-1, 0, 1, 2, np.inf], labels=["0 replies", "1 reply", "2 replies", "3+ replies"])
    tier = resolving_tier(tickets, config)[keep].rename("tier")
    counts = (pd.DataFrame({"tier": tier, "bucket": bucket}).groupby(["tier", "bucket"], observed=False).size()
              .unstack("bucket"))  # every tier and bucket, also with no resolved ticket
    counts.columns = list(counts.columns.astype(str))
    counts["resolved"] = counts.sum(axis=1)
    return counts.join(rate_table(counts["1 reply"], counts["resolved"], name="one_touch_rate"))


def reopen_rate(tickets: pd.DataFrame, config: Config, events: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per resolving tier: tickets solved at least once, reopened at least once, reopen_rate.

    From ``tickets.reopened`` (count of reopens) when present, else from ``reopened`` events;
    solved at least once = resolved at as-of or reopened (a reopened ticket was solved before).
    Empty frame when neither source exists.
    """
    if "reopened" in tickets.columns:
        reopened = tickets["reopened"].fillna(0).gt(0)
    elif events is not None:
        reopened = ids.isin(tickets["ticket_id"], events.loc[events["event"] == "reopened", "ticket_id"])
    else:
        return pd.DataFrame()
    solved = tickets["resolved_at"].notna() | reopened
    frame = pd.DataFrame({"solved": solved.astype("int64"), "reopened": (reopened & solved).astype("int64")})
    g = frame.groupby(resolving_tier(tickets, config).rename("tier"), observed=False).sum()
    return g.join(rate_table(g["reopened"], g["solved"], name="reopen_rate"))
