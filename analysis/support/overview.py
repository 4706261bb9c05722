"""The support tiers report's summary: one row per configured tier, its metrics.json keys
(`sla.by_tier.*`, DESIGN §5) and its headline. The formulas live in ``sla``, ``csat``,
``escalation`` and ``load``; this module only puts their results side by side."""
from __future__ import annotations

import pandas as pd

from analysis.present import page
from analysis.data.config import Config
from analysis.support.csat import csat_by_tier
from analysis.support.escalation import escalation_rates, one_touch, reopen_rate
from analysis.support.workload import load_table
from analysis.data.engine import Engine
from analysis.support.sla import clock, duration_stats_by_tier, sla_table, ticket_table
from analysis.support.tiers import tier_names

__all__ = ["duration_table", "tier_summary", "summary_view", "extra_tier_metrics", "sla_metrics", "headline", "headline_block",
           "KEY_CHANGES", "SUMMARY_COLUMNS"]

SUMMARY_COLUMNS = ["tickets", "first_response_n", "first_response_median_min", "first_response_p90_min",
                   "first_response_mean_min", "sla_achieved", "sla_achieved_low", "sla_achieved_high",
                   "sla_achieved_count", "sla_breached", "sla_active", "resolved", "resolution_median_min",
                   "resolution_p90_min", "resolution_mean_min", "resolution_sla_achieved", "csat", "csat_low",
                   "csat_high", "csat_responses", "csat_response_rate", "escalation_rate", "escalated"]


def duration_table(eng: Engine, config: Config, as_of: pd.Timestamp) -> pd.DataFrame:
    """n, median, p90 and mean of first response (per entry tier) and resolution (per resolving
    tier), on the calendar clock and, when the config has business hours, the business clock."""
    clocks = {"calendar": ticket_table(eng, config, as_of, business=False)}
    if config.business_hours is not None:
        clocks["business"] = ticket_table(eng, config, as_of, business=True)
    parts = []
    for name, t in clocks.items():
        for measure in ("first_response", "resolution"):
            s = duration_stats_by_tier(eng, t, config, measure)
            s.columns = ["n", "median_min", "p90_min", "mean_min"]
            parts.append(s.assign(measure=measure.replace("_", " "), clock=name))
    return pd.concat(parts).reset_index().set_index(["measure", "clock", "tier"])


def tier_summary(eng: Engine, config: Config, as_of: pd.Timestamp) -> pd.DataFrame:
    """Per tier in ladder order: tickets (entering), first response n/median/p90/mean, SLA
    achieved with its interval and counts, resolved and resolution statistics, resolution SLA,
    CSAT with interval, responses and response rate, escalation rate. Config clock throughout;
    every figure counted in the engine on ``sla.ticket_table``."""
    t = ticket_table(eng, config, as_of)
    fr = duration_stats_by_tier(eng, t, config, "first_response", prefix="first_response_")
    res = duration_stats_by_tier(eng, t, config, "resolution", prefix="resolution_").rename(
        columns={"resolution_n": "resolved"})
    sla = sla_table(eng, config, as_of, "first_response").rename(
        columns={"achieved": "sla_achieved_count", "breached": "sla_breached", "active": "sla_active"})
    rsla = sla_table(eng, config, as_of, "resolution")
    cs = csat_by_tier(eng, config, as_of).rename(columns={"response_rate": "csat_response_rate"})
    esc = escalation_rates(eng, config, as_of)
    out = pd.concat([sla[["tickets", "sla_achieved", "sla_achieved_low", "sla_achieved_high", "sla_achieved_count",
                          "sla_breached", "sla_active"]], fr, res,
                     rsla[["sla_achieved"]].rename(columns={"sla_achieved": "resolution_sla_achieved"}),
                     cs[["csat", "csat_low", "csat_high", "csat_responses", "csat_response_rate"]],
                     esc[["escalation_rate", "escalated"]]], axis=1)
    out.index.name = "tier"
    return out[SUMMARY_COLUMNS].reindex(config.tier_ids)


def summary_view(summary: pd.DataFrame, config: Config) -> pd.DataFrame:
    """The tier summary with readable column names and rates as percentages, for the report.
    Each tier's first-response and resolution targets stand beside its figures (SLA achieved is
    against the tier's own target: 59% against 30 minutes and 95% against 2 hours are not a
    ranking); "(by priority)" marks a tier whose targets also vary by priority."""
    v = pd.DataFrame(index=list(tier_names(config).values()))
    s = summary.reset_index(drop=True).set_axis(v.index)
    def pct(col):
        return s[col].map(lambda x: "" if pd.isna(x) else f"{x:.1%}")
    def num(col):
        return s[col].map(lambda x: "" if pd.isna(x) else f"{x:,.1f}")
    def ci(col):
        return [("" if pd.isna(lo) else f"{lo:.1%} to {hi:.1%}") for lo, hi in zip(s[f"{col}_low"], s[f"{col}_high"])]
    targets = {t.id: t for t in config.tiers}
    def target(field):
        return [("" if getattr(targets[tid], field) is None else f"{getattr(targets[tid], field):,.0f}")
                + (" (by priority)" if getattr(targets[tid], field.replace("_min", "_by_priority_min")) else "")
                for tid in config.tier_ids]
    v["tickets (entering)"] = s["tickets"]
    v["first response median, min"] = num("first_response_median_min")
    v["first response p90, min"] = num("first_response_p90_min")
    v["first-response target, min"] = target("first_response_target_min")
    v["SLA achieved"] = pct("sla_achieved")
    v["SLA 95% CI"] = ci("sla_achieved")
    v["achieved / breached / active"] = [f"{a:,} / {b:,} / {c:,}" for a, b, c in
                                         zip(s["sla_achieved_count"], s["sla_breached"], s["sla_active"])]
    v["resolved"] = s["resolved"]
    v["resolution median, min"] = num("resolution_median_min")
    v["resolution target, min"] = target("resolution_target_min")
    v["CSAT"] = pct("csat")
    v["CSAT 95% CI"] = ci("csat")
    v["ratings"] = s["csat_responses"]
    v["escalation rate"] = pct("escalation_rate")
    return v


def extra_tier_metrics(eng: Engine, daily: pd.DataFrame, config: Config, as_of: pd.Timestamp) -> dict:
    """Per tier: resolved_per_agent_day (when load is computable), reopen_rate (when reopens are
    known) and one_touch_rate (with events), for `sla.by_tier` in metrics.json."""
    out: dict = {tier: {} for tier in config.tier_ids}
    if len(daily):
        for tier, v in load_table(daily, config)["resolved_per_agent_day"].items():
            out[tier]["resolved_per_agent_day"] = v
    reopen = reopen_rate(eng, config, as_of)
    for tier, v in (reopen["reopen_rate"].items() if len(reopen) else ()):
        out[tier]["reopen_rate"] = v
    if eng.has("ticket_events"):
        for tier, v in one_touch(eng, config, as_of)["one_touch_rate"].items():
            out[tier]["one_touch_rate"] = v
    return out


def sla_metrics(summary: pd.DataFrame, config: Config, extra_by_tier: dict | None = None,
                extra: dict | None = None) -> dict:
    """`sla` section of metrics.json: clock, tiers (the tier ids in the config's ladder order;
    by_tier's keys are sorted in the file), then by_tier.<tier> with the DESIGN §5 keys (plus the
    rest of the summary row, the tier's first-response and resolution targets in minutes, null
    when not set, and ``extra_by_tier``), then ``extra`` sections. Counts are integers; rates
    and medians null when not measurable."""
    keep = ["tickets", "first_response_n", "first_response_median_min", "first_response_p90_min",
            "first_response_mean_min", "sla_achieved", "sla_achieved_count", "sla_breached", "sla_active",
            "resolved", "resolution_median_min", "resolution_p90_min", "resolution_sla_achieved", "csat",
            "csat_responses", "csat_response_rate", "escalation_rate", "escalated"]
    by_tier = {tier: {k: row[k] for k in keep} for tier, row in summary[keep].to_dict("index").items()}
    for t in config.tiers:
        by_tier.setdefault(t.id, {}).update(first_response_target_min=t.first_response_target_min,
                                            resolution_target_min=t.resolution_target_min)
    for tier, values in (extra_by_tier or {}).items():
        by_tier.setdefault(tier, {}).update(values)
    return {"sla": {"clock": clock(config), "tiers": list(config.tier_ids), "by_tier": by_tier, **(extra or {})}}


def headline(summary: pd.DataFrame, config: Config) -> str:
    """One sentence for index.html: volume, the first tier's speed and SLA (named: each tier has
    its own target), CSAT over all tiers, escalation from the first tier."""
    first = summary.iloc[0]
    total = int(summary["tickets"].sum())
    csat_n = int(summary["csat_responses"].sum())
    csat = (summary["csat"] * summary["csat_responses"]).sum() / csat_n if csat_n else None
    parts = [f"{total:,} tickets"]
    if pd.notna(first["first_response_median_min"]):
        parts.append(f"{summary.index[0]} median first response {first['first_response_median_min']:.0f} min "
                     f"({clock(config)} clock)")
    if pd.notna(first["sla_achieved"]):
        parts.append(f"{summary.index[0]} SLA achieved {first['sla_achieved']:.0%}")
    if csat is not None:
        parts.append(f"CSAT {csat:.0%} of {csat_n:,} ratings, all tiers")
    if pd.notna(first["escalation_rate"]):
        parts.append(f"{first['escalation_rate']:.0%} escalated from {summary.index[0]}")
    return "; ".join(parts) + "."


# the before/after rows quoted at the top of the report
KEY_CHANGES = ("first_response_median_min", "sla_achieved", "resolution_median_min", "csat")


def headline_block(as_of_date: str, config: Config, summary: pd.DataFrame, changes: pd.DataFrame | None,
                   periods: tuple | None = None) -> page.Md:
    """Markdown for the top of the report: as-of and clock, the headline, and the before/after
    sentences of the key metrics and of every tier whose share of tickets changed beyond its
    interval."""
    hours = config.business_hours
    lines = [page.md("**As-of {as_of}**, durations on the **{clock}** clock{hours}.", as_of=as_of_date,
                        clock=clock(config), hours=f" ({hours.timezone}, {hours.start}-{hours.end})" if hours else ""),
             "", page.md("- {headline}", headline=headline(summary, config))]
    if changes is not None and periods is not None and len(changes):
        before, after = periods
        lines.append(page.md("- Before ({before}) vs after ({after}):", before=before, after=after))
        key = changes[(changes["tier"] == "all") & changes["metric"].isin(KEY_CHANGES)]
        moved = changes[(changes["metric"] == "tier_share") & ((changes["ci_low"] > 0) | (changes["ci_high"] < 0))]
        for sentence in list(key["sentence"]) + list(moved["sentence"]):
            lines.append(page.md("    - {sentence}", sentence=sentence))
        for p in periods:
            if p.note:
                lines.append(page.md("- Note: {note}.", note=p.note))
    return page.join(lines)
