"""Before/after comparison of the support metrics for two date ranges, with seeded bootstrap
95% intervals of the difference and a generated sentence per metric.

A ticket belongs to a period when its created_at is in [from, to) (a day-level metric: when its
day is). Each metric is computed on each period's tickets exactly as in the main report (same
functions, same clock, same as-of), per tier and for all tickets. The interval is the percentile
interval of (after* - before*), where before* and after* are bootstrap replicates drawn
independently from each period:
- medians and p90: resampled tickets' quantile, drawn exactly (``stats.quantile_replicates``);
- means: resampled tickets; rates: Binomial(n, p) / n, which is what resampling n 0/1 values gives;
- per-day metrics (load, backlog): ratio of sums over days resampled in blocks of consecutive
  days (a stationary bootstrap, ``stats.block_ratio_replicates``): a day's backlog is the day
  before's plus the day's net inflow, so resampling single days as if independent would give
  an interval many times too narrow. The expected block length is in ``block_days``.
The relative change (after / before - 1) has its interval from the same replicates.
"""
from __future__ import annotations

from dataclasses import dataclass

import ibis
import numpy as np
import pandas as pd

from analysis.present import page
from analysis.data.config import Config
from analysis.data.dataset import parse_day
from analysis.errors import InputError
from analysis.data.engine import Engine, instant
from analysis.support.csat import satisfied_expr
from analysis.support.sla import ticket_table
from analysis.stats import (block_ratio_replicates, difference_interval, mean_replicates, percentile_interval,
                            proportion_replicates, quantile_replicates)
from analysis.support.escalation import escalated_expr, with_event_counts
from analysis.support.tiers import ladder

__all__ = ["Period", "periods", "ticket_measures", "METRICS", "compare_periods", "change_sentence",
           "sentences_markdown", "comparison_metrics", "changes_view"]


@dataclass(frozen=True)
class Period:
    label: str
    start: pd.Timestamp  # inclusive, UTC
    end: pd.Timestamp    # exclusive, UTC
    note: str = ""       # e.g. cut at the as-of date

    def __str__(self) -> str:
        last = self.end - pd.Timedelta(days=1)
        return f"{self.start:%Y-%m-%d} to {last:%Y-%m-%d}"

    def contains(self, times: pd.Series) -> pd.Series:
        return (times >= self.start) & (times < self.end)


def periods(before_from: str, before_to: str, after_from: str, after_to: str, as_of: pd.Timestamp,
            default_days: int = 91) -> tuple[Period, Period]:
    """The two half-open date ranges [from, to) of the comparison.

    All four empty: the last ``default_days`` days before as-of against the same number of days
    just before them. Otherwise all four must be given and each range non-empty; a range ending
    after as-of is cut at as-of (the data after it is not seen) and its ``note`` says so; a range
    that starts at or after as-of is left empty (every metric null) and its ``note`` says so.
    """
    given = [before_from, before_to, after_from, after_to]
    if not any(given):
        after = Period("after", as_of - pd.Timedelta(days=default_days), as_of)
        return Period("before", after.start - pd.Timedelta(days=default_days), after.start), after
    if not all(given):
        raise InputError("before/after: give all four of before_from, before_to, after_from, after_to "
                         "(YYYY-MM-DD, ranges [from, to)) or none of them")
    names = ["before_from", "before_to", "after_from", "after_to"]
    b0, b1, a0, a1 = (parse_day(v, n) for v, n in zip(given, names))
    out = []
    for lo, hi, label in ((b0, b1, "before"), (a0, a1, "after")):
        note = ""
        if hi > as_of:
            note = f"the {label} range was given up to {hi:%Y-%m-%d} and is cut at the as-of date {as_of:%Y-%m-%d}"
            hi = as_of
        if lo >= hi and not note:
            raise InputError(f"before/after: the {label} range from {lo:%Y-%m-%d} to {hi:%Y-%m-%d} is empty")
        if lo >= hi:  # it starts at or after as-of: no data is seen in it, every metric is null
            note = (f"the {label} range starts on {lo:%Y-%m-%d}, at or after the as-of date {as_of:%Y-%m-%d}: "
                    "no ticket is seen in it, so nothing is compared")
            hi = lo
        out.append(Period(label, lo, hi, note))
    return out[0], out[1]


def ticket_measures(eng: Engine, config: Config, as_of: pd.Timestamp, *compared: Period) -> pd.DataFrame:
    """One row per ticket created in the span of the ``compared`` periods (from the earliest start
    to the latest end; every ticket without periods; computed in the engine
    on ``sla.ticket_table``) with what every per-ticket metric needs: created_at, entry and
    resolving tier, first response and resolution minutes (config clock), first-response and
    resolution SLA status (True achieved, False breached, null active), satisfied (null = not
    rated or not resolved), rated_of_resolved (null unless resolved), resolved, escalated,
    one_touch (null unless resolved with events) and reopened (from ``tickets.reopened``; null
    unless solved at least once or without that column). Ordered by created_at, then ticket_id."""
    t = with_event_counts(eng, ticket_table(eng, config, as_of))
    if compared:
        start, end = min(p.start for p in compared), max(p.end for p in compared)
        t = t.filter((t.created_at >= instant(start)) & (t.created_at < instant(end)))
    resolved = t.resolved_at.notnull()
    satisfied = satisfied_expr(t)
    none = ibis.null("boolean")
    columns = {"created_at": t.created_at, "entry": t.entry, "resolving": t.resolving,
               "first_response_min": t.first_response_min, "resolution_min": t.resolution_min,
               "first_response_sla": t.first_response_sla, "resolution_sla": t.resolution_sla, "resolved": resolved,
               "satisfied": satisfied, "rated_of_resolved": ibis.ifelse(resolved, satisfied.notnull(), none),
               "escalated": escalated_expr(t),
               "one_touch": ibis.ifelse(resolved & (t.events > 0), t.replies == 1, none),
               "reopened": none}
    if "reopened" in t.columns:
        r = t.reopened.fill_null(0) > 0
        columns["reopened"] = ibis.ifelse(resolved | r, r, none)
    out = eng.frame(t.select(ticket_id=t.ticket_id, **columns).order_by(["created_at", "ticket_id"]))
    for c in ("entry", "resolving"):
        out[c] = pd.Categorical.from_codes(out[c].astype("int64").to_numpy(), dtype=ladder(config))
    for c in ("first_response_sla", "resolution_sla"):
        out[c] = out[c].astype("Int64").astype("boolean")
    for c in ("satisfied", "rated_of_resolved", "one_touch", "reopened"):
        out[c] = out[c].astype("boolean")
    out["resolved"] = out["resolved"].astype(bool)
    out["escalated"] = out["escalated"].astype(bool)
    for c in ("first_response_min", "resolution_min"):
        out[c] = out[c].astype("float64")
    return out.drop(columns=["ticket_id"])


# metric, label, unit, tier the ticket counts under, statistic, column
METRICS: tuple[tuple[str, str, str, str, str, str], ...] = (
    ("tickets", "tickets", "count", "entry", "count", ""),
    ("first_response_median_min", "median first response", "min", "entry", "q0.5", "first_response_min"),
    ("first_response_p90_min", "90th percentile first response", "min", "entry", "q0.9", "first_response_min"),
    ("first_response_mean_min", "mean first response", "min", "entry", "mean", "first_response_min"),
    ("sla_achieved", "first-response SLA achieved", "rate", "entry", "rate", "first_response_sla"),
    ("resolution_median_min", "median resolution time", "min", "resolving", "q0.5", "resolution_min"),
    ("resolution_sla_achieved", "resolution SLA achieved", "rate", "resolving", "rate", "resolution_sla"),
    ("csat", "CSAT", "rate", "resolving", "rate", "satisfied"),
    ("csat_response_rate", "CSAT response rate", "rate", "resolving", "rate", "rated_of_resolved"),
    ("escalation_rate", "escalation rate", "rate", "entry", "rate", "escalated"),
    ("tier_share", "share of all tickets resolved by the tier", "rate", "resolving", "share", ""),
    ("one_touch_rate", "one-touch rate", "rate", "resolving", "rate", "one_touch"),
    ("reopen_rate", "reopen rate", "rate", "resolving", "rate", "reopened"),
)
DAY_METRICS = (("resolved_per_agent_day", "tickets resolved per agent per working day", "per day"),
               ("backlog_mean", "mean unsolved backlog at day end", "tickets"))


def _replicates(stat: str, values: pd.Series, n_all: int, reps: int, rng) -> tuple[float, int, np.ndarray]:
    """(point estimate, n, replicates) of one statistic on one period's values."""
    if stat.startswith("q"):
        v = values.dropna().to_numpy(dtype="float64")
        q = float(stat[1:])
        point = float(np.quantile(v, q)) if len(v) else np.nan
        return point, len(v), quantile_replicates(v, q, reps, rng)
    if stat == "mean":
        v = np.sort(values.dropna().to_numpy(dtype="float64"))  # sorted: replicates do not depend on row order
        return (float(v.mean()) if len(v) else np.nan), len(v), mean_replicates(v, reps, rng)
    if stat in ("rate", "share"):
        v = values.dropna()
        n = n_all if stat == "share" else len(v)
        k = int(v.astype(bool).sum())
        return (k / n if n else np.nan), n, proportion_replicates(k, n, reps, rng)
    raise ValueError(stat)


def _row(metric, label, unit, group, before, after, reps_b, reps_a, n_b, n_a) -> dict:
    diff = after - before
    lo, hi = percentile_interval(reps_a - reps_b)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = after / before - 1 if before else np.nan
        rel_lo, rel_hi = percentile_interval(np.where(reps_b != 0, reps_a / reps_b - 1, np.nan))
    return {"metric": metric, "tier": group, "label": label, "unit": unit, "before": before, "after": after,
            "n_before": n_b, "n_after": n_a, "difference": diff, "ci_low": lo, "ci_high": hi,
            "relative_change": rel, "relative_ci_low": rel_lo, "relative_ci_high": rel_hi}


def compare_periods(measures: pd.DataFrame, before: Period, after: Period, config: Config,
                    daily: pd.DataFrame | None = None, backlog: pd.DataFrame | None = None,
                    reps: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Every metric of METRICS (and DAY_METRICS when ``daily`` load rows / ``backlog`` are given)
    per tier and for "all", in both periods: before, after, n, difference with its 95% interval
    (Newcombe's hybrid score interval for rates and shares, the bootstrap's percentile interval
    for the others), relative change with its bootstrap interval, and a sentence. Replicates are seeded from
    (seed, metric, tier, period), so the result does not depend on the order of computation.
    """
    groups = ["all"] + config.tier_ids
    parts = {p.label: measures[p.contains(measures["created_at"])] for p in (before, after)}
    rows = []
    for mi, (metric, label, unit, tier_col, stat, column) in enumerate(METRICS):
        for gi, group in enumerate(groups):
            if stat == "share" and group == "all":
                continue
            est = {}
            for pi, (plabel, part) in enumerate(parts.items()):
                rng = np.random.default_rng([seed, mi, gi, pi])
                sel = part if group == "all" else part[part[tier_col] == group]
                if stat == "count":
                    est[plabel] = (float(len(sel)), len(sel), np.full(reps, float(len(sel))))
                elif stat == "share":
                    est[plabel] = _replicates("share", (part[tier_col] == group), len(part), reps, rng)
                else:
                    est[plabel] = _replicates(stat, sel[column], len(sel), reps, rng)
            (b, nb, rb), (a, na, ra) = est["before"], est["after"]
            row = _row(metric, label, unit, group, b, a, rb, ra, nb, na)
            if stat == "count":
                row.update(ci_low=np.nan, ci_high=np.nan, relative_ci_low=np.nan, relative_ci_high=np.nan)
            elif stat in ("rate", "share"):  # Newcombe, not the percentile bootstrap: (0, 0) for 0 of 25
                lo, hi = difference_interval(round(a * na) if na else 0, na, round(b * nb) if nb else 0, nb)
                row.update(ci_low=lo, ci_high=hi)
            rows.append(row)
    day_sources = {"resolved_per_agent_day": daily, "backlog_mean": backlog}
    for mi, (metric, label, unit) in enumerate(DAY_METRICS, start=len(METRICS)):
        frame = day_sources[metric]
        if frame is None or not len(frame):
            continue
        for gi, group in enumerate(groups):
            if group == "all" and metric == "resolved_per_agent_day":
                continue
            est = {}
            for pi, p in enumerate((before, after)):
                rng = np.random.default_rng([seed, mi, gi, pi])
                if metric == "resolved_per_agent_day":
                    d = frame[(frame["tier"] == group) & frame["working"].astype(bool)]
                    d = d[p.contains(d["day"].dt.tz_localize("UTC"))]
                    num, den = d["resolved"].to_numpy(float), d["agents"].to_numpy(float)
                else:
                    d = frame[p.contains(frame.index.tz_localize("UTC"))]
                    num = (d.sum(axis=1) if group == "all" else d[group]).to_numpy(float)
                    den = np.ones(len(num))
                point = num.sum() / den.sum() if den.sum() > 0 else np.nan
                replicates, block = block_ratio_replicates(num, den, reps, rng)
                est[p.label] = (point, len(num), replicates, block)
            (b, nb, rb, block_b), (a, na, ra, block_a) = est["before"], est["after"]
            rows.append({**_row(metric, label, unit, group, b, a, rb, ra, nb, na),
                         "block_days": max((x for x in (block_b, block_a) if not np.isnan(x)), default=np.nan)})
    out = pd.DataFrame(rows)
    out["sentence"] = [change_sentence(r) for r in out.to_dict("records")]
    return out


def _fmt(value: float, unit: str, signed: bool = False) -> str:
    sign = "+" if signed else ""
    if unit == "rate":
        return f"{value * 100:{sign}.1f}" + (" pp" if signed else "%")
    if unit == "count":
        return f"{value:{sign},.0f}"
    if unit == "min":
        return f"{value:{sign},.1f} min"
    return f"{value:{sign},.2f}" + (f" {unit}" if unit not in ("per day",) else "")


def change_sentence(row: dict) -> str:
    """'Median first response (all) fell from 25.0 min to 22.1 min (-2.9 min, -11.6%;
    95% CI -3.4 min to -2.4 min).' The sentence says so when the interval includes no change."""
    label, unit, tier = row["label"], row["unit"], row["tier"]
    b, a = row["before"], row["after"]
    who = "all tiers" if tier == "all" else tier
    head = f"{label[0].upper()}{label[1:]} ({who})"
    if pd.isna(b) or pd.isna(a):
        return f"{head}: not measurable in both periods (n = {row['n_before']:,} before, {row['n_after']:,} after)."
    d = row["difference"]
    verb = "rose" if d > 0 else "fell" if d < 0 else "stayed"
    if verb == "stayed":
        text = f"{head} stayed at {_fmt(b, unit)}"
    else:
        text = f"{head} {verb} from {_fmt(b, unit)} to {_fmt(a, unit)} ({_fmt(d, unit, True)}"
        if unit != "rate" and b and not pd.isna(row["relative_change"]):
            text += f", {row['relative_change'] * 100:+.1f}%"
        text += ")"
    if pd.isna(row["ci_low"]):
        return text + "."
    text += f"; 95% CI of the change {_fmt(row['ci_low'], unit, True)} to {_fmt(row['ci_high'], unit, True)}"
    if row["ci_low"] <= 0 <= row["ci_high"]:
        text += ", which includes no change"
    block = row.get("block_days", np.nan)
    if not pd.isna(block):
        text += (", with days resampled one by one (no dependence between days found)" if block < 1.5 else
                 f", with days resampled in runs of about {block:.0f}, as each day depends on the days before")
    return text + "."


def sentences_markdown(table: pd.DataFrame) -> page.Md:
    """A Markdown list of the sentences, grouped by tier (all tiers first), leaving out what was
    measurable in neither period (and a tier with no tickets in either), and naming in one line
    what was measurable in only one."""
    lines = []
    one_sided = []
    for tier, rows in table.groupby("tier", sort=False):
        idle = rows["metric"].isin(["tickets", "tier_share"]) & (rows["before"] == 0) & (rows["after"] == 0)
        measurable = rows[rows["before"].notna() & rows["after"].notna() & ~idle]
        if len(measurable):
            lines.append(page.md("**{tier}**", tier="All tiers" if tier == "all" else tier))
            lines += [page.md("- {sentence}", sentence=s) for s in measurable["sentence"]]
            lines.append("")
        only = rows[rows["before"].isna() ^ rows["after"].isna()]
        one_sided += [f"{label} ({tier})" for label in only["label"]]
    if one_sided:
        lines.append(page.md("Measurable in one period only (no comparison): {items}.", items="; ".join(one_sided)))
    return page.join(lines)


def comparison_metrics(table: pd.DataFrame, before: Period, after: Period) -> dict:
    """The `sla.before_after` keys of metrics.json: the two ranges and, per tier (and all) and
    metric, before, after, difference, ci_low, ci_high, relative_change, n_before, n_after."""
    by_tier: dict = {}
    for r in table.to_dict("records"):
        by_tier.setdefault(r["tier"], {})[r["metric"]] = {
            k: r[k] for k in ("before", "after", "difference", "ci_low", "ci_high", "relative_change",
                              "n_before", "n_after")}
    return {"before": {"from": f"{before.start:%Y-%m-%d}", "to_exclusive": f"{before.end:%Y-%m-%d}"},
            "after": {"from": f"{after.start:%Y-%m-%d}", "to_exclusive": f"{after.end:%Y-%m-%d}"},
            "by_tier": by_tier}


def changes_view(table: pd.DataFrame, tier: str = "all") -> pd.DataFrame:
    """The comparison of one tier for the report, one row per metric, each value in its own
    unit (rates as percentages and their difference in points, times in minutes, counts whole):
    before, after, change with its 95% interval, relative change, n before and after."""
    rows = table[table["tier"] == tier]
    records = rows.to_dict("records")
    def shown(value, unit, signed=False):
        return "" if pd.isna(value) else _fmt(value, unit, signed)
    out = pd.DataFrame({
        "before": [shown(r["before"], r["unit"]) for r in records],
        "after": [shown(r["after"], r["unit"]) for r in records],
        "change": [shown(r["difference"], r["unit"], True) for r in records],
        "change_95_ci": ["" if pd.isna(r["ci_low"]) else f"{_fmt(r['ci_low'], r['unit'], True)} to "
                         f"{_fmt(r['ci_high'], r['unit'], True)}" for r in records],
        "relative_change": ["" if pd.isna(r["relative_change"]) else f"{r['relative_change']:+.1%}" for r in records],
        "n_before": rows["n_before"].to_numpy(), "n_after": rows["n_after"].to_numpy()},
        index=pd.Index([f"{l[0].upper()}{l[1:]}" for l in rows["label"]], name="metric"))
    return out
