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

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from analysis.data import ids
from analysis.data.config import Config
from analysis.data.engine import Engine, as_count
from analysis.support.sla import ticket_table
from analysis.support.durations import minutes
from analysis.stats import duration_stats, rate_table
from analysis.support.tiers import ladder, per_tier, tier_codes

__all__ = ["escalation_matrix", "escalated_expr", "escalation_rates", "tier_segments", "tier_paths", "path_frequencies",
           "ownership_time", "reassignments", "event_counts", "with_event_counts", "one_touch", "reopened_expr",
           "reopen_rate", "ARROW", "BUCKETS"]

ARROW = " → "


def escalation_matrix(eng: Engine, config: Config, as_of: pd.Timestamp) -> pd.DataFrame:
    """Tickets by entry tier (rows) and resolving tier (columns), every tier in ladder order
    (zeros where no ticket, also with no ticket at all); tickets with a tier outside the config
    are left out."""
    t = ticket_table(eng, config, as_of)
    t = t.filter((t.entry >= 0) & (t.resolving >= 0))
    counts = eng.frame(t.group_by(entry=t.entry, resolving=t.resolving).aggregate(n=t.count()))
    out = pd.DataFrame(0, index=pd.Index(config.tier_ids, name="entry tier"),
                       columns=pd.Index(config.tier_ids, name="resolving tier"), dtype="int64")
    for e, r, n in counts[["entry", "resolving", "n"]].itertuples(index=False):  # at most tiers x tiers cells
        out.iloc[int(e), int(r)] = as_count(n)
    return out


def escalated_expr(t: ir.Table) -> ir.BooleanValue:
    """Resolving tier != entry tier, on the ladder codes (a resolving tier outside the ladder
    differs from everything, itself included, as NaN does)."""
    return (t.resolving != t.entry) | (t.resolving < 0)


def escalation_rates(eng: Engine, config: Config, as_of: pd.Timestamp) -> pd.DataFrame:
    """Per entry tier: tickets, escalated (resolving tier != entry tier), escalation_rate with
    its Wilson 95% interval (null where the tier has no tickets)."""
    t = ticket_table(eng, config, as_of)
    t = t.filter(t.entry >= 0)
    g = per_tier(eng.frame(t.group_by(tier=t.entry)
                           .aggregate(tickets=t.count(), escalated=ibis.ifelse(escalated_expr(t), 1, 0).sum())), config)
    g = g[["tickets", "escalated"]].map(as_count).astype("int64")
    return g.join(rate_table(g["escalated"], g["tickets"], name="escalation_rate"))


def _is(values: pd.Series, label: str) -> np.ndarray:
    """Boolean array: equals ``label`` (null -> False)."""
    return np.asarray((values == label).fillna(False), dtype=bool)


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


def event_counts(eng: Engine) -> ir.Table:
    """Per ticket_id with events (computed once per engine): events (all kinds), replies
    (``agent_reply`` events) and reopens (``reopened`` events)."""
    def build(e: Engine) -> ir.Table:
        ev = e.table("ticket_events")
        return ev.group_by("ticket_id").aggregate(events=ev.count(), replies=ibis.ifelse(ev.event == "agent_reply", 1, 0).sum(),
                                                  reopens=ibis.ifelse(ev.event == "reopened", 1, 0).sum())
    return eng.derived("ticket_event_counts", build)


def with_event_counts(eng: Engine, t: ir.Table) -> ir.Table:
    """``t`` (rows with a ticket_id) with its ``event_counts`` (0 where it has no event; all 0
    without a ticket_events table)."""
    if not eng.has("ticket_events"):
        return t.mutate(events=ibis.literal(0, "int64"), replies=ibis.literal(0, "int64"), reopens=ibis.literal(0, "int64"))
    c = event_counts(eng)
    j = t.left_join(c, t.ticket_id == c.ticket_id)
    return j.select(*t.columns, **{k: j[k].fill_null(0).cast("int64") for k in ("events", "replies", "reopens")})


BUCKETS = ("0 replies", "1 reply", "2 replies", "3+ replies")


def one_touch(eng: Engine, config: Config, as_of: pd.Timestamp) -> pd.DataFrame:
    """Per resolving tier, among resolved tickets that have events: how many agent replies they
    took (0, 1, 2, 3+) and the one-touch rate (exactly one reply) with its Wilson interval."""
    t = with_event_counts(eng, ticket_table(eng, config, as_of))
    t = t.filter((t.resolving >= 0) & t.resolved_at.notnull() & (t.events > 0))
    k = t.replies
    counts = per_tier(eng.frame(t.group_by(tier=t.resolving).aggregate(**{
        BUCKETS[0]: ibis.ifelse(k == 0, 1, 0).sum(), BUCKETS[1]: ibis.ifelse(k == 1, 1, 0).sum(),
        BUCKETS[2]: ibis.ifelse(k == 2, 1, 0).sum(), BUCKETS[3]: ibis.ifelse(k >= 3, 1, 0).sum()})), config)
    counts = counts[list(BUCKETS)].map(as_count).astype("int64")
    counts["resolved"] = counts.sum(axis=1)
    return counts.join(rate_table(counts["1 reply"], counts["resolved"], name="one_touch_rate"))


def reopened_expr(eng: Engine, t: ir.Table) -> ir.BooleanValue | None:
    """Per ticket of ``t`` (a ``ticket_table``, with ``with_event_counts`` when there are
    events): reopened at least once, from ``tickets.reopened`` (count of reopens) when present,
    else from ``reopened`` events; None when neither source exists."""
    if "reopened" in t.columns:
        return t.reopened.fill_null(0) > 0
    if "reopens" in t.columns and eng.has("ticket_events"):
        return t.reopens > 0
    return None


def reopen_rate(eng: Engine, config: Config, as_of: pd.Timestamp) -> pd.DataFrame:
    """Per resolving tier: tickets solved at least once, reopened at least once, reopen_rate.

    From ``tickets.reopened`` (count of reopens) when present, else from ``reopened`` events;
    solved at least once = resolved at as-of or reopened (a reopened ticket was solved before).
    Empty frame when neither source exists.
    """
    t = ticket_table(eng, config, as_of)
    if "reopened" not in t.columns:
        t = with_event_counts(eng, t)
    reopened = reopened_expr(eng, t)
    if reopened is None:
        return pd.DataFrame()
    t = t.mutate(reopened_=reopened).filter(t.resolving >= 0)
    reopened = t.reopened_
    solved = t.resolved_at.notnull() | reopened
    g = per_tier(eng.frame(t.group_by(tier=t.resolving).aggregate(
        solved=ibis.ifelse(solved, 1, 0).sum(), reopened=ibis.ifelse(reopened & solved, 1, 0).sum())), config)
    g = g[["solved", "reopened"]].map(as_count).astype("int64")
    return g.join(rate_table(g["reopened"], g["solved"], name="reopen_rate"))
