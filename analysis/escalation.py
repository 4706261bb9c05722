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

from analysis import keys
from analysis.config import Config
from analysis.durations import minutes
from analysis.stats import duration_stats, rate_table
from analysis.tiers import as_tier, entry_tier, resolving_tier

__all__ = ["escalation_matrix", "escalation_rates", "tier_segments", "tier_paths", "path_frequencies",
           "ownership_time", "reassignments", "agent_replies", "one_touch", "reopen_rate", "ARROW"]

ARROW = " → "


def escalation_matrix(tickets: pd.DataFrame, config: Config) -> pd.DataFrame:
    """Tickets by entry tier (rows) and resolving tier (columns), every tier in ladder order."""
    return pd.crosstab(entry_tier(tickets, config).rename("entry tier"),
                       resolving_tier(tickets, config).rename("resolving tier"), dropna=False)


def escalation_rates(tickets: pd.DataFrame, config: Config) -> pd.DataFrame:
    """Per entry tier: tickets, escalated (resolving tier != entry tier), escalation_rate with
    its Wilson 95% interval (null where the tier has no tickets)."""
    entry = entry_tier(tickets, config)
    escalated = (resolving_tier(tickets, config).astype("object") != entry.astype("object")).astype("int64")
    g = pd.DataFrame({"tickets": 1, "escalated": escalated}).groupby(entry.rename("tier"), observed=False).sum()
    return g.join(rate_table(g["escalated"], g["tickets"], name="escalation_rate"))


def tier_segments(tickets: pd.DataFrame, events: pd.DataFrame, config: Config, as_of: pd.Timestamp) -> pd.DataFrame:
    """One row per (ticket, ownership segment): ticket_id, seq, tier, start, end (NaT = still
    owned at as-of), ownership_min (on the config's clock; null while open), open.

    Only tickets present in ``tickets`` and having at least one event are segmented.
    """
    has_events = keys.isin(tickets["ticket_id"], events["ticket_id"])
    t = tickets.loc[has_events, ["ticket_id", "created_at", "first_tier"]]
    entry = pd.DataFrame({"ticket_id": t["ticket_id"].to_numpy(), "at": t["created_at"].to_numpy(),
                          "tier": t["first_tier"].astype("object").to_numpy(), "order": 0})
    a = events[(events["event"] == "assigned") & keys.isin(events["ticket_id"], t["ticket_id"])]
    assigned = pd.DataFrame({"ticket_id": a["ticket_id"].to_numpy(), "at": a["at"].to_numpy(),
                             "tier": a["tier"].astype("object").to_numpy(), "order": 1})
    steps = pd.concat([entry, assigned], ignore_index=True)
    steps["at"] = pd.to_datetime(steps["at"], utc=True)
    steps = steps.sort_values(["ticket_id", "at", "order"], kind="stable").reset_index(drop=True)
    same_ticket = steps["ticket_id"].eq(steps["ticket_id"].shift())
    new_tier = ~same_ticket | steps["tier"].ne(steps["tier"].shift())
    seg = steps[new_tier].reset_index(drop=True)
    seg["seq"] = seg.groupby("ticket_id", sort=False).cumcount()
    nxt_same = seg["ticket_id"].eq(seg["ticket_id"].shift(-1))
    resolved = tickets.set_index("ticket_id")["resolved_at"] if "resolved_at" in tickets.columns else None
    last_end = (keys.lookup(seg["ticket_id"], resolved) if resolved is not None
                else pd.Series(pd.NaT, index=seg.index, dtype="datetime64[ns, UTC]"))
    last_end = last_end.where(last_end >= seg["at"])  # reassigned after the resolution: reopened, still open
    seg["end"] = seg["at"].shift(-1).where(nxt_same, last_end)
    seg = seg.rename(columns={"at": "start"})
    seg["ownership_min"] = minutes(seg["start"], seg["end"], config.business_hours)
    seg["open"] = seg["end"].isna()
    seg["tier"] = as_tier(seg["tier"], config)
    return seg[["ticket_id", "seq", "tier", "start", "end", "ownership_min", "open"]]


def tier_paths(segments: pd.DataFrame) -> pd.Series:
    """Per ticket: the sequence of owning tiers joined with arrows ("L1 → L1.5 → L2")."""
    wide = segments.pivot(index="ticket_id", columns="seq", values="tier").astype("string")
    path = pd.Series("", index=wide.index, dtype="string")
    for seq in wide.columns:  # a handful of steps, vectorised over tickets
        step = wide[seq]
        path = path.where(step.isna(), path + (ARROW if seq else "") + step.fillna(""))
    return path.astype(object).rename("path")


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

    Assignee stations = 1 + changes of agent between consecutive ``assigned`` events (events
    without an agent are skipped); without an agent_id column only group stations are shown.
    """
    groups = segments.groupby("ticket_id", sort=False).size().rename("group_stations")
    frame = groups.to_frame()
    if "agent_id" in events.columns:
        a = events[(events["event"] == "assigned") & events["agent_id"].notna()
                   & keys.isin(events["ticket_id"], groups.index)].sort_values(["ticket_id", "at"], kind="stable")
        change = a["ticket_id"].eq(a["ticket_id"].shift()) & a["agent_id"].ne(a["agent_id"].shift())
        stations = (1 + change.groupby(a["ticket_id"], sort=False).sum()).rename("assignee_stations")
        frame = frame.join(stations)
    entry = tickets.set_index("ticket_id")["first_tier"].reindex(frame.index)
    tier = as_tier(entry, config).rename("tier")
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


def one_touch(tickets: pd.DataFrame, events: pd.DataFrame, config: Config) -> pd.DataFrame:
    """Per resolving tier, among resolved tickets that have events: how many agent replies they
    took (0, 1, 2, 3+) and the one-touch rate (exactly one reply) with its Wilson interval."""
    resolved = tickets[tickets["resolved_at"].notna() & keys.isin(tickets["ticket_id"], events["ticket_id"])]
    n = keys.lookup(resolved["ticket_id"], agent_replies(events)).fillna(0).astype("int64")
    bucket = pd.cut(n, [-1, 0, 1, 2, np.inf], labels=["0 replies", "1 reply", "2 replies", "3+ replies"])
    tier = resolving_tier(resolved, config).rename("tier")
    counts = pd.crosstab(tier, bucket, dropna=False).reindex(columns=bucket.cat.categories, fill_value=0)
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
        reopened = keys.isin(tickets["ticket_id"], events.loc[events["event"] == "reopened", "ticket_id"])
    else:
        return pd.DataFrame()
    solved = tickets["resolved_at"].notna() | reopened
    frame = pd.DataFrame({"solved": solved.astype("int64"), "reopened": (reopened & solved).astype("int64")})
    g = frame.groupby(resolving_tier(tickets, config).rename("tier"), observed=False).sum()
    return g.join(rate_table(g["reopened"], g["solved"], name="reopen_rate"))
