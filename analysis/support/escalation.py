"""Where tickets go: escalation matrix and rates, tier paths, ownership time, reassignments,
one-touch and reopen rates (anchor: Zendesk groups, group stations and group SLA).

- escalation rate of a tier = tickets entering at the tier whose resolving tier differs
  (resolved or not) / tickets entering at the tier (DESIGN §4);
- with ticket_events: a ticket's *segments* are the spans during which one tier owned it. The
  first starts at created_at with first_tier; each ``assigned`` event to another tier closes the
  current segment and opens the next (an assignment within the same tier is a reassignment, not a
  new segment). The last segment ends at the ticket's (latest) resolution, or is still open at
  as-of. Events at one instant are taken in a fixed order (the entry, then assignments in ladder
  order), so the segments depend only on the data, not on the order of its rows. Ownership time
  = segment end - start (Zendesk's group SLA); the path is the sequence of segment tiers
  (L1 -> L1.5 -> L2);
- one-touch rate = resolved tickets with exactly one agent reply / resolved tickets with events;
- reopen rate = tickets reopened at least once / tickets solved at least once.
"""
from __future__ import annotations

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from analysis.data.config import Config
from analysis.data.engine import Engine, as_count, derived_key
from analysis.stats import duration_aggregates, rate_table
from analysis.support.durations import business_clock, minutes_between
from analysis.support.sla import business_clock_table, ticket_table
from analysis.support.tiers import entry_code, per_tier, tier_code

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


def _handovers(eng: Engine, config: Config) -> ir.Table:
    """The rows that can open an ownership segment: one *entry* per ticket (of the tickets
    table) that has events, at created_at in first_tier, and each ``assigned`` event of such a
    ticket, at its time in its tier. Columns: ticket_id, at, tier (ladder code, -1 outside the
    config), step (the order at one instant: the entry 0, then assignments in ladder order,
    tiers outside the ladder last) and the ticket's resolved_at."""
    tickets, ev = eng.table("tickets"), eng.table("ticket_events")
    resolved = tickets.resolved_at if "resolved_at" in tickets.columns else ibis.null("timestamp")
    known = tickets.select("ticket_id", "created_at", "first_tier", resolved_at=resolved)
    entered = known.semi_join(ev, "ticket_id")
    entry = entered.select("ticket_id", at=entered.created_at, tier=entry_code(entered, config),
                           resolved_at=entered.resolved_at)
    moved = ev.filter(ev.event == "assigned")
    moved = moved.join(known.select("ticket_id", "resolved_at"), "ticket_id")
    moves = moved.select("ticket_id", at=moved["at"], tier=tier_code(moved.tier, config), resolved_at=moved.resolved_at)
    entry = entry.mutate(step=ibis.literal(0, "int64"))
    moves = moves.mutate(step=ibis.ifelse(moves.tier >= 0, moves.tier + 1, len(config.tier_ids) + 1).cast("int64"))
    return entry.union(moves.select(*[moves[c].cast(entry[c].type()).name(c) for c in entry.columns]))


def tier_segments(eng: Engine, config: Config, as_of: pd.Timestamp) -> ir.Table:
    """One row per (ticket, ownership segment): ticket_id, seq (0 = the entry segment), tier
    (ladder code, -1 outside the config), start, end (null = still owned at as-of),
    ownership_min (end - start on the config's clock; null while open) and open. A derived table
    (``Engine.derived``), computed once per engine and as-of: the backlog, paths, ownership and
    reassignments read it (at 1M clients, computing the window again for each cost 01 17 s and
    0.35 GB more peak than storing its rows).

    Only tickets of the tickets table that have at least one event are segmented. Rows of
    ``_handovers`` in time order per ticket (ties at one instant: the entry first, then the
    assignments in ladder order); a row in the tier of the row before it opens no segment. A
    segment ends where the next begins; the last at the ticket's resolution when that is not
    before the segment's start (resolved before it: reopened, still open).
    """
    return eng.derived(f"tier_segments_{derived_key(pd.Timestamp(as_of), config)}", lambda e: _segments(e, config, as_of))


def _segments(eng: Engine, config: Config, as_of: pd.Timestamp) -> ir.Table:
    rows = _handovers(eng, config)
    w = ibis.window(group_by=rows.ticket_id, order_by=[rows["at"], rows.step])
    rows = rows.mutate(prev=rows.tier.lag().over(w))
    rows = rows.filter(rows.prev.isnull() | (rows.prev != rows.tier))
    w = ibis.window(group_by=rows.ticket_id, order_by=[rows["at"], rows.step])
    seg = rows.mutate(seq=ibis.row_number().over(w).cast("int64"), after=rows["at"].lead().over(w))
    last_end = ibis.ifelse(seg.resolved_at.notnull() & (seg.resolved_at >= seg["at"]), seg.resolved_at,
                           ibis.null("timestamp"))
    seg = seg.select("ticket_id", "seq", "tier", start=seg["at"],
                     end=ibis.ifelse(seg.after.isnull(), last_end, seg.after))
    if config.business_hours is None:
        return seg.mutate(ownership_min=minutes_between(seg.start, seg.end), open=seg.end.isnull())
    clock = business_clock_table(eng, config, as_of)
    timed = business_clock(business_clock(seg, "start", clock), "end", clock)
    return timed.select(*seg.columns, ownership_min=timed.end_clock - timed.start_clock, open=timed.end.isnull())


def tier_paths(eng: Engine, config: Config, as_of: pd.Timestamp) -> pd.Series:
    """Tickets per path of owning tiers (the segments' tiers in ``seq`` order joined with
    arrows, "L1 → L1.5 → L2"), most frequent first, ties by path; index "path", name "tickets".

    A step whose tier is outside the config leaves the path as it is (a ticket that entered
    outside the ladder and went to L2 has the path "L2"). Counted in the engine: one column per
    step (as many as the longest path), grouped by those columns; only the distinct paths are
    spelled."""
    seg = tier_segments(eng, config, as_of)
    top = eng.frame(seg.aggregate(k=seg.seq.max()))["k"].iloc[0]
    longest = 0 if pd.isna(top) else int(top) + 1
    steps = [f"s{k}" for k in range(longest)]
    per_ticket = seg.group_by("ticket_id").aggregate(**{
        name: ibis.ifelse((seg.seq == k) & (seg.tier >= 0), seg.tier, ibis.null("int64")).max()
        for k, name in enumerate(steps)})
    counts = eng.frame(per_ticket.group_by(steps).aggregate(tickets=per_ticket.count())) if steps \
        else pd.DataFrame(columns=["tickets"])
    labels = config.tier_ids
    spelled = [ARROW.join(labels[int(c)] for c in row if pd.notna(c)) for row in counts[steps].itertuples(index=False)]
    out = pd.Series(counts["tickets"].map(as_count).to_numpy(dtype="int64"), index=pd.Index(spelled, name="path"),
                    name="tickets").groupby(level=0).sum()
    order = sorted(range(len(out)), key=lambda i: (-out.iloc[i], out.index[i]))
    return out.iloc[order]


def path_frequencies(paths: pd.Series, top: int = 10) -> pd.DataFrame:
    """The ``top`` most frequent paths of ``tier_paths`` (tickets per path, most frequent first)
    with tickets, share of all segmented tickets and steps (arrows); the rest pooled as
    "(other paths)"."""
    total = int(paths.sum())
    head = paths.head(top)
    rest = paths.iloc[top:].sum()
    if rest:
        head = pd.concat([head, pd.Series({"(other paths)": rest})])
    out = head.rename("tickets").to_frame()
    out["share"] = out["tickets"] / total if total else np.nan
    out["steps"] = [p.count(ARROW) for p in out.index]
    return out.rename_axis("path")


def ownership_time(eng: Engine, config: Config, as_of: pd.Timestamp) -> pd.DataFrame:
    """Per tier (ladder order): segments, still open at as-of, and n / median / p90 / mean
    ownership minutes of the closed segments (open ones are censored and left out of the
    statistics)."""
    seg = tier_segments(eng, config, as_of)
    g = per_tier(eng.frame(seg.group_by(tier=seg.tier).aggregate(
        segments=seg.count(), open_at_as_of=ibis.ifelse(seg.open, 1, 0).sum(),
        **duration_aggregates(seg.ownership_min, prefix="ownership_"))), config, fill=None)
    for col in ("segments", "open_at_as_of", "ownership_n"):
        g[col] = g[col].map(as_count).astype("int64")
    return g[["segments", "open_at_as_of", "ownership_n", "ownership_median_min", "ownership_p90_min",
              "ownership_mean_min"]].astype({c: "float64" for c in ("ownership_median_min", "ownership_p90_min",
                                                                   "ownership_mean_min")})


def _share(num: pd.Series, den: pd.Series) -> pd.Series:
    """num / den, null where den is 0."""
    return num / den.where(den > 0)


def reassignments(eng: Engine, config: Config, as_of: pd.Timestamp) -> pd.DataFrame:
    """Per entry tier (tickets with events): tickets, mean group stations (segments: tiers that
    owned the ticket in turn), share passed between tiers (> 1 station), mean assignee stations
    and share reassigned (> 1 assignee station).

    Assignee stations = 1 + changes of agent between consecutive ``assigned`` events (in time;
    ties at one instant in ladder order of their tiers, then by agent_id; events without an
    agent are skipped); a ticket without such an event has no assignee count (left out of the
    mean) and is not reassigned. Without an agent_id column in the events only group stations
    are shown."""
    seg = tier_segments(eng, config, as_of)
    tickets, ev = eng.table("tickets"), eng.table("ticket_events")
    per = seg.group_by("ticket_id").aggregate(groups=seg.count())
    with_agents = "agent_id" in ev.columns
    if with_agents:
        a = ev.filter((ev.event == "assigned") & ev.agent_id.notnull()).semi_join(tickets, "ticket_id")
        code = tier_code(a.tier, config)
        a = a.select("ticket_id", "at", "agent_id", step=ibis.ifelse(code >= 0, code, len(config.tier_ids)))
        w = ibis.window(group_by=a.ticket_id, order_by=[a["at"], a.step, a.agent_id])
        a = a.mutate(changed=ibis.ifelse(a.agent_id.lag().over(w).notnull() & (a.agent_id.lag().over(w) != a.agent_id), 1, 0))
        stations = a.group_by("ticket_id").aggregate(stations=1 + a.changed.sum())
        j = per.left_join(stations, per.ticket_id == stations.ticket_id)
        per = j.select(j.ticket_id, j.groups, stations=j.stations.cast("int64"))
    j = per.join(tickets.select("ticket_id", entry=entry_code(tickets, config)), "ticket_id")
    # sums and counts in the engine, the means in pandas (PostgreSQL's mean of integers is numeric)
    agg = {"tickets": j.count(), "groups": j.groups.sum(), "passed": ibis.ifelse(j.groups > 1, 1, 0).sum()}
    if with_agents:
        agg |= {"stations": j.stations.sum(), "with_stations": j.stations.count(),
                "reassigned": ibis.ifelse((j.stations > 1).fill_null(False), 1, 0).sum()}
    g = per_tier(eng.frame(j.group_by(tier=j.entry).aggregate(**agg)), config)[list(agg)].map(as_count).astype("int64")
    out = pd.DataFrame({"tickets": g["tickets"], "group_stations_mean": _share(g["groups"], g["tickets"]),
                        "passed_between_tiers": _share(g["passed"], g["tickets"])})
    if with_agents:
        out["assignee_stations_mean"] = _share(g["stations"], g["with_stations"])
        out["reassigned_share"] = _share(g["reassigned"], g["tickets"])
    return out


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
