"""The retention reports' words and keys: the metrics.json keys (`ltv.*`, `churn.*`,
DESIGN §5), headlines and the plain-language caveats. Formulas live in ``cohorts``, ``churn``,
``contact`` and ``survival``; this module only puts their results together and into words."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.present import page
from analysis.retention.effect import ESTIMANDS, METHOD_LABELS

# the support-effect method the churn report leads with: the renewal model, whose estimand is the
# effect of having contacted support; chosen on the calibration study (docs/calibration.md): no
# more false alarms than 10% where engagement is measured, and the least bias under a real effect
HEADLINE_METHOD = "renewal"

__all__ = ["ltv_metrics", "churn_metrics", "ltv_headline", "churn_headline", "ltv_caveats",
           "effect_caveats", "calibration_summary", "load_calibration", "HEADLINE_METHOD", "GROUP_ORDER"]

GROUP_ORDER = ["all", "contacted", "not_contacted", "ever_contacted", "never_contacted"]


def ltv_metrics(table: pd.DataFrame, window_days: int, ratios: pd.DataFrame | None = None,
                naive_ratios: pd.DataFrame | None = None, adjusted: dict | None = None,
                horizon: str = "ltv_12m") -> dict:
    """`ltv`: contact_window_days, by_group.<group>: clients, ltv_1m.. (and eligible_*, ci_*),
    and, with tickets, the contacted / not_contacted ratio (and the biased naive one) and
    ``ratio_adjusted`` (``effect.ltv_effect`` at ``horizon``: ratio, interval, p, E-values,
    adjusted_for)."""
    by_group: dict = {}
    for r in table.to_dict("records"):
        g = by_group.setdefault(r["group"], {"clients": r["clients"]})
        k = r["horizon"]
        g[k] = r["ltv"]
        g[f"{k}_eligible"] = r["eligible"]
        g[f"{k}_ci_low"], g[f"{k}_ci_high"] = r["ci_low"], r["ci_high"]
    out: dict = {"contact_window_days": window_days, "by_group": by_group}
    for key, frame in (("ratio_contacted_to_not", ratios), ("ratio_ever_to_never_biased", naive_ratios)):
        if frame is not None:
            out[key] = {r["horizon"]: {"ratio": r["ratio"], "ci_low": r["ci_low"], "ci_high": r["ci_high"]}
                        for r in frame.to_dict("records")}
    if adjusted is not None:
        out["ratio_adjusted"] = {"horizon": horizon, **{k: adjusted[k] for k in (
            "ratio", "ci_low", "ci_high", "e_value", "e_value_ci", "clients", "contacted", "adjusted_for")},
            "p_value": float(f"{adjusted['p_value']:.3g}") if pd.notna(adjusted["p_value"]) else None}
    return {"ltv": out}


def churn_metrics(first_month: pd.DataFrame, grace_days: int, survival: pd.DataFrame | None = None,
                  effects: pd.DataFrame | None = None, logrank: dict | None = None) -> dict:
    """`churn`: grace_days, first_month.<group>: clients, churned, rate, rate_low, rate_high;
    survival.<group> (median lifetime, RMST); support_effect.headline (the method the report leads
    with) and support_effect.methods.<method>: hazard ratio, interval, p, clients, events,
    E-values, adjusted_for (DESIGN §5); logrank."""
    out: dict = {"grace_days": grace_days, "first_month": {
        g: {"clients": r["clients"], "churned": r["churned"], "rate": r["rate"], "rate_low": r["rate_low"],
            "rate_high": r["rate_high"]} for g, r in first_month.to_dict("index").items()}}
    if survival is not None:
        out["survival"] = {g: {k: r[k] for k in ("clients", "churned", "median_lifetime_months", "rmst_months",
                                                   "rmst_low", "rmst_high", "survival_at_horizon")}
                           for g, r in survival.to_dict("index").items()}
    if effects is not None:
        keys = ("hazard_ratio", "ci_low", "ci_high", "p_value", "clients", "events", "e_value", "e_value_ci",
                "adjusted_for")
        out["support_effect"] = {"headline": HEADLINE_METHOD,
                                 "methods": {m: {**{k: r[k] for k in keys}, "p_value": _p3(r["p_value"])}
                                             for m, r in effects.to_dict("index").items()}}
    if logrank is not None:
        out["logrank"] = {**logrank, "p_value": _p3(logrank["p_value"])}
    return {"churn": out}


def _p3(p: float) -> float:
    """A p-value to three significant digits (5.7e-24 stays 5.7e-24: DESIGN §5)."""
    return float(f"{p:.3g}") if pd.notna(p) else np.nan


def _fmt_ratio(row) -> str:
    return f"x{row['ratio']:.2f} (95% CI {row['ci_low']:.2f}-{row['ci_high']:.2f})"


def ltv_headline(table: pd.DataFrame, ratios: pd.DataFrame | None, horizon: str = "ltv_12m",
                 adjusted: dict | None = None) -> str:
    """'2,444 paying clients; LTV at 12 months 77,764 (n = 1,222 old enough); clients who wrote to
    support in their first days, adjusted for first charge, ...: x1.08 (0.97-1.21), E-value 1.12;
    unadjusted x2.45 (2.20-2.71), confounded.' The adjusted ratio (``effect.ltv_effect``) leads when
    it is estimable; the raw ratio follows, labelled."""
    allrow = table[(table["group"] == "all") & (table["horizon"] == horizon)]
    if not len(allrow):
        return "No paying clients."
    a = allrow.iloc[0]
    k = horizon[4:-1]
    text = f"{a['clients']:,} paying clients; LTV at {k} months {a['ltv']:,.0f} (n = {a['eligible']:,} old enough)"
    raw = None
    if ratios is not None:
        r = ratios[ratios["horizon"] == horizon]
        raw = r.iloc[0] if len(r) and pd.notna(r.iloc[0]["ratio"]) else None
    if adjusted is not None and pd.notna(adjusted["ratio"]):
        text += (f"; clients who wrote to support in their first days, adjusted for "
                 f"{', '.join(adjusted['adjusted_for'])}: x{adjusted['ratio']:.2f} "
                 f"({adjusted['ci_low']:.2f}-{adjusted['ci_high']:.2f}), E-value {adjusted['e_value']:.2f}")
        if raw is not None:
            text += f"; unadjusted {_fmt_ratio(raw)}, confounded"
    elif raw is not None:
        text += (f"; clients who wrote to support in their first days paid {_fmt_ratio(raw)} as much, "
                 "a confounded comparison (engaged clients write more and pay more), not an effect of support")
    return text + "."


def churn_headline(first_month: pd.DataFrame, effects: pd.DataFrame | None) -> str:
    """'First-month churn 19.0% of 2,305 eligible clients; support contact and churn (contact before
    each renewal, adjusted for first charge, ...): HR 0.78 (0.68-0.90), E-value 1.65; naive HR 0.21
    (biased).'"""
    a = first_month.loc["all"]
    text = f"First-month churn {a['rate']:.1%} of {int(a['clients']):,} eligible clients" if a["clients"] else \
        "No client is old enough for first-month churn"
    if effects is not None and HEADLINE_METHOD in effects.index:
        h = effects.loc[HEADLINE_METHOD]
        if pd.notna(h["hazard_ratio"]):
            text += (f"; support contact and churn ({METHOD_LABELS[HEADLINE_METHOD]} for "
                     f"{', '.join(h['adjusted_for'])}): HR {h['hazard_ratio']:.2f} "
                     f"({h['ci_low']:.2f}-{h['ci_high']:.2f}), E-value {h['e_value']:.2f}")
        else:
            text += "; the adjusted support effect cannot be estimated on this data"
        if "naive" in effects.index and pd.notna(effects.loc["naive", "hazard_ratio"]):
            text += f"; naive HR {effects.loc['naive', 'hazard_ratio']:.2f} (biased)"
    return text + "."


def _sensitivity(e: float, e_ci: float, linked: str, estimate: str, null: str) -> page.Md:
    """The E-value of an estimate and of its interval limit nearest 1 in one sentence (the
    interval's E-value is 1 when it already includes ``null``)."""
    if e_ci > 1:
        return page.md("- **Sensitivity (E-value).** An unmeasured factor linked to both {linked} by a risk ratio "
                          "of {e:.2f} each could explain the {estimate} away, and one of {eci:.2f} each could move its "
                          "interval to include {null}.", linked=linked, e=e, estimate=estimate, eci=e_ci, null=null)
    return page.md("- **Sensitivity (E-value).** The adjusted interval already includes {null}; an unmeasured factor "
                      "linked to both {linked} by a risk ratio of {e:.2f} each would explain the point estimate away.",
                      null=null, linked=linked, e=e)


def _engagement_unmeasured(subject: str, outcome: str, remedy: str) -> page.Md:
    """Why an adjusted estimate stays confounded without a usage table."""
    return page.md("- **Engagement is not measured here.** Without a `usage` table the {subject} confounded by how "
                      "engaged clients are: engaged clients both write to support and {outcome}.{remedy}",
                      subject=subject, outcome=outcome, remedy=page.Md(remedy))


def ltv_caveats(ratios: pd.DataFrame | None, naive_ratios: pd.DataFrame | None, window_days: int,
                adjusted: dict | None = None, usage_given: bool = False) -> page.Md:
    """Plain-language caveats for the LTV comparison, with the computed ratios and, given the
    adjusted ratio (``effect.ltv_effect``), its E-value in one sentence."""
    lines = []
    if adjusted is not None and pd.notna(adjusted["ratio"]):
        lines.append(_sensitivity(adjusted["e_value"], adjusted["e_value_ci"], "early contact and LTV",
                                  "adjusted ratio", "no difference"))
        if not usage_given:
            lines.append(_engagement_unmeasured("adjusted ratio stays", "pay more", ""))
    lines += [page.md("- **Clients are not assigned to contact support at random.** Engaged clients and clients "
                        "with larger checks both write to support more and pay more, so the gap between the groups "
                        "mixes the effect of support with who the clients are. The comparison within check-size "
                        "bands and segments removes part of that mix; the churn report estimates the effect with "
                        "models that remove more.")]
    if naive_ratios is not None and ratios is not None:
        n12 = naive_ratios.set_index("horizon")["ratio"].get("ltv_12m", np.nan)
        e12 = ratios.set_index("horizon")["ratio"].get("ltv_12m", np.nan)
        if pd.notna(n12) and pd.notna(e12):
            lines.append(page.md(
                "- **\"Ever contacted\" is the most biased split** (x{n12:.2f} at 12 months against x{e12:.2f} for "
                "contact in the first {window} days): a client has to stay to write, and a client who stays longer "
                "has more months to write in, so long-lived clients land in the contacted group because they lived "
                "long (immortal time), not the other way round.", n12=n12, e12=e12, window=window_days))
    lines.append(page.md("- **Young cohorts are not zeros.** A cell is shown only when every client of the cohort "
                            "is old enough; LTV at k months averages only clients whose start + k months is before "
                            "the as-of date."))
    lines.append(page.md("- **Refunds are netted** on the date they were paid, so a refund after the horizon does "
                            "not lower that horizon's LTV."))
    return page.join(lines)


def effect_caveats(effects: pd.DataFrame, window_days: int, grace_days: int, calibration: dict,
                   usage_given: bool) -> page.Md:
    """The reading of the support-effect table: each estimand, the E-value of the headline in
    one sentence, what is confounded without usage, why no "Cox from the start" row is shown,
    and how far to trust the headline method by the calibration study."""
    lines = []
    for key, row in effects.iterrows():
        covariates = ", ".join(row["adjusted_for"]) or "nothing"
        lines.append(page.md("- **{label}**: {estimand}.", label=METHOD_LABELS[key],
                                estimand=ESTIMANDS[key].format(window=window_days, covariates=covariates)))
    h = effects.loc[HEADLINE_METHOD] if HEADLINE_METHOD in effects.index else None
    if h is not None and pd.notna(h["hazard_ratio"]):
        lines.append(_sensitivity(h["e_value"], h["e_value_ci"], "contact and churn", "adjusted estimate", "no effect"))
    if not usage_given:
        lines.append(_engagement_unmeasured("adjusted estimates stay", "stay",
                                            " Add product usage (the `usage` table) to remove it."))
    if 28 + grace_days >= window_days:
        lines.append(page.md(
            "- **One landmark row, not two.** No churn can be recorded before 1 month + {grace} days after the first "
            "charge (a churn is dated a month and the grace days after the last charge), after the day-{window} "
            "landmark, so a Cox fit of early contact from the first charge is the same model as the landmark fit: "
            "it is not shown twice.", grace=grace_days, window=window_days))
    lines.append(calibration_summary(calibration))
    return page.join(lines)


def calibration_summary(calibration: dict) -> page.Md:
    """'How far to trust this': the headline method's false positives, bias and coverage in the
    calibration study, with engagement measured by usage and without it."""
    rows = [r for r in calibration["rows"] if r["method"] == HEADLINE_METHOD]

    def pick(effect: str, confounding: str) -> dict | None:
        return next((r for r in rows if r["effect"] == effect and r["confounding"] == confounding), None)

    parts = [page.md("- **How far to trust this.** In the calibration study ({seeds} generated worlds per "
                        "setting, {clients:,} registrations each, docs/calibration.md in the project), the "
                        "{label} method:", seeds=calibration["seeds"], clients=calibration["clients"],
                        label=METHOD_LABELS[HEADLINE_METHOD])]
    null_measured, moderate, null_unmeasured = (pick("none", "measured"), pick("moderate", "measured"),
                                                pick("none", "unmeasured"))
    if null_measured:
        parts.append(page.md("    - with no real effect and engagement measured by usage, reported a significant "
                                "effect in {fp:.0%} of runs (interval coverage {cov:.0%});",
                                fp=null_measured["false_positive_rate"], cov=null_measured["coverage"]))
    if moderate:
        understates = moderate["bias"] > 0 and moderate["coverage"] < 0.9
        parts.append(page.md("    - with a true hazard ratio of {hr:.2f}, averaged {mean:.2f} and its interval held the "
                                "truth in {cov:.0%} of runs{reading};", hr=moderate["true_hr"], mean=moderate["mean_hr"],
                                cov=moderate["coverage"],
                                reading=": it understates a real effect, so read it as a conservative estimate"
                                if understates else ""))
    if null_unmeasured:
        parts.append(page.md("    - without usage in the data and with no real effect, still reported a significant "
                                "effect in {fp:.0%} of runs: the engagement it cannot see.",
                                fp=null_unmeasured["false_positive_rate"]))
    return page.join(parts)


def load_calibration() -> dict:
    """The calibration study's summary shipped with the package (``benchmarks/calibrate.py``)."""
    return json.loads((Path(__file__).resolve().parent / "calibration.json").read_text())
