"""The retention reports' assembly: contact groups, the metrics.json keys (`ltv.*`, `churn.*`,
DESIGN §5), headlines and the plain-language caveats. Formulas live in ``cohorts``, ``churn``,
``contact`` and ``survival``; this module only puts their results together and into words."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import present
from analysis.contact import contact_groups, group_label

__all__ = ["Groups", "ltv_metrics", "churn_metrics", "ltv_headline", "churn_headline",
           "ltv_caveats", "effect_caveats", "true_hazard_ratio", "GROUP_ORDER"]

GROUP_ORDER = ["all", "contacted", "not_contacted", "ever_contacted", "never_contacted"]


class Groups:
    """Per client with a start: the early-contact label and the naive "ever contacted" label
    (both None without a tickets table)."""

    def __init__(self, starts: pd.DataFrame, tickets: pd.DataFrame | None, window_days: int):
        self.window_days = window_days
        if tickets is None:
            self.flags = None
            self.early = self.naive = None
        else:
            self.flags = contact_groups(starts, tickets, window_days)
            self.early = group_label(self.flags["early"])
            self.naive = group_label(self.flags["ever"], naive=True)


def ltv_metrics(table: pd.DataFrame, window_days: int, ratios: pd.DataFrame | None = None,
                naive_ratios: pd.DataFrame | None = None) -> dict:
    """`ltv`: contact_window_days, by_group.<group>: clients, ltv_1m.. (and eligible_*, ci_*),
    and, with tickets, the contacted / not_contacted ratio (and the biased naive one)."""
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
    return {"ltv": out}


def churn_metrics(first_month: pd.DataFrame, grace_days: int, survival: pd.DataFrame | None = None,
                  effects: pd.DataFrame | None = None, logrank: dict | None = None) -> dict:
    """`churn`: grace_days, first_month.<group>: clients, churned, rate, rate_low, rate_high;
    survival.<group> (median lifetime, RMST); support_effect.<method> (hazard ratios); logrank."""
    out: dict = {"grace_days": grace_days, "first_month": {
        g: {"clients": r["clients"], "churned": r["churned"], "rate": r["rate"], "rate_low": r["rate_low"],
            "rate_high": r["rate_high"]} for g, r in first_month.to_dict("index").items()}}
    if survival is not None:
        out["survival"] = {g: {k: r[k] for k in ("clients", "churned", "median_lifetime_months", "rmst_months",
                                                   "rmst_low", "rmst_high", "survival_at_horizon")}
                           for g, r in survival.to_dict("index").items()}
    if effects is not None:
        rows = effects.drop(index="true effect", errors="ignore")
        out["support_effect"] = {m: {k: r[k] for k in ("hazard_ratio", "ci_low", "ci_high", "p_value", "clients",
                                                       "events")} for m, r in rows.to_dict("index").items()}
    if logrank is not None:
        out["logrank"] = logrank
    return {"churn": out}


def _fmt_ratio(row) -> str:
    return f"x{row['ratio']:.2f} (95% CI {row['ci_low']:.2f}-{row['ci_high']:.2f})"


def ltv_headline(table: pd.DataFrame, ratios: pd.DataFrame | None, horizon: str = "ltv_12m") -> str:
    """'2,444 paying clients; LTV at 12 months 77,764 (n = 1,222); contacted support early: x2.45 ...'"""
    allrow = table[(table["group"] == "all") & (table["horizon"] == horizon)]
    if not len(allrow):
        return "No paying clients."
    a = allrow.iloc[0]
    k = horizon[4:-1]
    text = f"{a['clients']:,} paying clients; LTV at {k} months {a['ltv']:,.0f} (n = {a['eligible']:,} old enough)"
    if ratios is not None:
        r = ratios[ratios["horizon"] == horizon]
        if len(r) and pd.notna(r.iloc[0]["ratio"]):
            text += f"; early support contacts pay {_fmt_ratio(r.iloc[0])}, a biased comparison (see caveats)"
    return text + "."


def churn_headline(first_month: pd.DataFrame, effects: pd.DataFrame | None) -> str:
    """'First-month churn 19.0% of 2,305; naive HR 0.21, adjusted HR 0.72 (0.64-0.80).'"""
    a = first_month.loc["all"]
    text = f"First-month churn {a['rate']:.1%} of {int(a['clients']):,} eligible clients" if a["clients"] else \
        "No client is old enough for first-month churn"
    if effects is not None and len(effects):
        est = effects.drop(index="true effect", errors="ignore")
        naive = est.iloc[0]
        best = est.loc[est.index.str.startswith("time-varying")]
        if len(best) and pd.notna(best.iloc[0]["hazard_ratio"]):
            b = best.iloc[0]
            text += (f"; support contact: naive HR {naive['hazard_ratio']:.2f}, time-varying adjusted HR "
                     f"{b['hazard_ratio']:.2f} ({b['ci_low']:.2f}-{b['ci_high']:.2f})")
    return text + "."


def ltv_caveats(ratios: pd.DataFrame | None, naive_ratios: pd.DataFrame | None, window_days: int) -> present.Md:
    """Plain-language caveats for the LTV comparison, with the computed ratios."""
    lines = [present.md("- **Clients are not assigned to contact support at random.** Engaged clients and clients "
                        "with larger checks both write to support more and pay more, so the gap between the groups "
                        "mixes the effect of support with who the clients are. The comparison within check-size "
                        "bands and segments removes part of that mix; the churn report estimates the effect with "
                        "models that remove more.")]
    if naive_ratios is not None and ratios is not None:
        n12 = naive_ratios.set_index("horizon")["ratio"].get("ltv_12m", np.nan)
        e12 = ratios.set_index("horizon")["ratio"].get("ltv_12m", np.nan)
        if pd.notna(n12) and pd.notna(e12):
            lines.append(present.md(
                "- **\"Ever contacted\" is the most biased split** (x{n12:.2f} at 12 months against x{e12:.2f} for "
                "contact in the first {window} days): a client has to stay to write, and a client who stays longer "
                "has more months to write in, so long-lived clients land in the contacted group because they lived "
                "long (immortal time), not the other way round.", n12=n12, e12=e12, window=window_days))
    lines.append(present.md("- **Young cohorts are not zeros.** A cell is shown only when every client of the cohort "
                            "is old enough; LTV at k months averages only clients whose start + k months is before "
                            "the as-of date."))
    lines.append(present.md("- **Refunds are netted** on the date they were paid, so a refund after the horizon does "
                            "not lower that horizon's LTV."))
    return present.join(lines)


def effect_caveats(effects: pd.DataFrame, grace_days: int) -> present.Md:
    """Plain-language reading of the support-effect table, generated from its numbers."""
    est = effects.drop(index="true effect", errors="ignore")
    lines = []
    naive = est.iloc[0]
    if pd.notna(naive["hazard_ratio"]):
        lines.append(present.md("- The naive split says clients who ever wrote churn at {hr:.2f} times the rate of "
                                "those who never did. Most of that is immortal time: the clients who stayed longest "
                                "had the most time to write.", hr=naive["hazard_ratio"]))
    lines.append(present.md("- The landmark and Cox rows compare clients by contact in the first weeks, adjusted for "
                            "check size (and segment): they remove immortal time and the confounding that these "
                            "columns capture."))
    lines.append(present.md("- The time-varying row counts a client as contacted only from the first ticket on "
                            "(refund and cancellation requests excluded, since they follow a decision to leave), "
                            "lagged by 1 month + {grace} days because a churn is recorded that long after the last "
                            "payment.", grace=grace_days))
    lines.append(present.md("- None of them can remove confounding by what the data does not hold (how engaged a "
                            "client is): read them as the range in which the true effect plausibly lies, not as a "
                            "controlled experiment."))
    if "contains_truth" in effects.columns and "true effect" in effects.index:
        lines.append(present.md("- This is generated sample data: the true effect is HR {hr:.2f} (truth.json), shown "
                                "beside the estimates.", hr=effects.loc["true effect", "hazard_ratio"]))
    return present.join(lines)


def true_hazard_ratio(data_dir: str | Path) -> float | None:
    """The generator's true HR of contact when the data directory holds a truth.json (sample data)."""
    path = Path(data_dir) / "truth.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text()).get("retention", {}).get("true_hazard_ratio_contact")
