"""Survival of clients (anchor: lifelines).

Durations come from ``churn.lifetimes`` (days from the start; censored at as-of). Kaplan-Meier per
group with at-risk counts, median lifetime, restricted mean survival time (RMST: the area under
the curve up to a horizon, the expected months a client stays in the first H months), log-rank
test across groups, the model-based LTV (ARPA x RMST), the stratified sample the hazard-ratio
models are fitted on at scale, and the proportional-hazards check. The support-effect
estimators are in ``analysis.retention.effect``.
"""
from __future__ import annotations

import ibis.expr.types as ir
import numpy as np
import pandas as pd
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.statistics import multivariate_logrank_test, proportional_hazard_test

from analysis.retention.churn import DAYS_PER_MONTH
from analysis.data.engine import Engine

__all__ = ["kaplan_meier", "rmst", "survival_summary", "net_payments", "censor_aware_ltv", "at_risk_table", "logrank",
           "model_sample", "model_sample_note", "ph_check"]


def kaplan_meier(life: pd.DataFrame, groups: pd.Series | None = None) -> dict[str, KaplanMeierFitter]:
    """A fitted Kaplan-Meier curve (time in months) per group, plus "all"."""
    g = pd.Series("all", index=life.index) if groups is None else groups.reindex(life.index)
    fits = {}
    for label in ["all"] + sorted(set(g.dropna()) - {"all"}):
        sel = life if label == "all" else life[g == label]
        if len(sel):
            fits[label] = KaplanMeierFitter(label=label).fit(sel["duration_days"] / DAYS_PER_MONTH, sel["churned"])
    return fits


def rmst(kmf: KaplanMeierFitter, horizon: float) -> tuple[float, float]:
    """Restricted mean survival time up to ``horizon`` (area under the Kaplan-Meier step curve)
    and its variance (Greenwood-based: sum over event times t_i <= horizon of
    A_i^2 d_i / (n_i (n_i - d_i)), A_i = area under the curve from t_i to the horizon).
    Example: durations 2, 3, 3+, 5, 8+ -> S = 0.8 at 2, 0.6 at 3, 0.3 at 5; RMST(6) =
    2 x 1 + 1 x 0.8 + 2 x 0.6 + 1 x 0.3 = 4.3."""
    table = kmf.event_table
    times = table.index.to_numpy(dtype="float64")
    events, at_risk = table["observed"].to_numpy(float), table["at_risk"].to_numpy(float)
    keep = (times <= horizon) & (events > 0)
    t, d, n = times[keep], events[keep], at_risk[keep]
    surv = np.cumprod(1 - d / n)                                   # S just after each event time
    edges = np.concatenate([[0.0], t, [horizon]])
    levels = np.concatenate([[1.0], surv])                         # S on [edges[j], edges[j+1])
    pieces = levels * np.diff(edges)
    area = float(pieces.sum())
    tail = np.cumsum(pieces[::-1])[::-1][1:]                       # area from each t_i to the horizon
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(n > d, tail**2 * d / (n * (n - d)), 0.0)
    return area, float(terms.sum())


def survival_summary(fits: dict[str, KaplanMeierFitter], horizon_months: float = 12.0) -> pd.DataFrame:
    """Per group: clients, churned, median lifetime in months (null when the curve never falls to
    one half: more than half still active), survival at the horizon, and RMST up to the horizon
    with a normal 95% interval from its Greenwood-based variance."""
    rows = []
    for label, kmf in fits.items():
        mean, var = rmst(kmf, horizon_months)
        half = 1.959963984540054 * np.sqrt(var)
        median = kmf.median_survival_time_
        rows.append({"group": label, "clients": int(kmf.event_table["at_risk"].iloc[0]),
                     "churned": int(kmf.event_table["observed"].sum()),
                     "median_lifetime_months": float(median) if np.isfinite(median) else np.nan,
                     "survival_at_horizon": float(kmf.predict(horizon_months)),
                     "rmst_months": mean, "rmst_low": mean - half, "rmst_high": mean + half})
    columns = ["group", "clients", "churned", "median_lifetime_months", "survival_at_horizon", "rmst_months",
               "rmst_low", "rmst_high"]
    return pd.DataFrame(rows, columns=columns).set_index("group")  # no rows without a paying client


def net_payments(payments: ir.Table) -> ir.Table:
    """Each client's net payments (charges and refunds, all of them): client_id, net."""
    return payments.group_by("client_id").aggregate(net=payments.amount.sum())


def censor_aware_ltv(eng: Engine, life: pd.DataFrame, fits: dict[str, KaplanMeierFitter],
                     groups: pd.Series | None = None, horizon_months: float = 12.0) -> pd.DataFrame:
    """Two model-based LTVs per group, each labelled with its formula:
    - ARPA = net payments of the group's clients (start to as-of) / client-months observed
      (start to churn or as-of); LTV_H = ARPA x RMST(H): revenue per active month times the
      expected active months in the first H months, censoring handled by Kaplan-Meier;
    - vendor style (ChartMogul): LTV = ARPA / monthly churn rate, with the churn rate = churns /
      client-months (a constant hazard, no horizon): what subscription dashboards report.
    Net payments come from the engine's payments (``net_payments``).
    """
    g = pd.Series("all", index=life.index) if groups is None else groups.reindex(life.index)
    net = eng.frame(net_payments(eng.table("payments"))).set_index("client_id")["net"]
    net = net.reindex(life.index, fill_value=0.0)
    months = life["duration_days"] / DAYS_PER_MONTH
    rows = []
    for label, kmf in fits.items():
        sel = pd.Series(True, index=life.index) if label == "all" else (g == label)
        exposure = months[sel].sum()
        arpa = net[sel].sum() / exposure if exposure > 0 else np.nan
        churn_rate = life.loc[sel, "churned"].sum() / exposure if exposure > 0 else np.nan
        area, _ = rmst(kmf, horizon_months)
        rows.append({"group": label, "clients": int(sel.sum()), "client_months": exposure, "arpa": arpa,
                     "rmst_months": area, "ltv_arpa_x_rmst": arpa * area,
                     "monthly_churn_rate": churn_rate,
                     "ltv_arpa_over_churn": arpa / churn_rate if churn_rate else np.nan})
    columns = ["group", "clients", "client_months", "arpa", "rmst_months", "ltv_arpa_x_rmst", "monthly_churn_rate",
               "ltv_arpa_over_churn"]
    return pd.DataFrame(rows, columns=columns).set_index("group")  # no rows without a paying client


def at_risk_table(fits: dict[str, KaplanMeierFitter], months=(0, 3, 6, 12, 18, 24)) -> pd.DataFrame:
    """Clients still at risk (active and observed) at each month, per group."""
    out = {}
    for label, kmf in fits.items():
        durations = kmf.durations
        out[label] = [int((durations >= m).sum()) for m in months]
    return pd.DataFrame(out, index=pd.Index(months, name="month")).T


def logrank(life: pd.DataFrame, groups: pd.Series) -> dict:
    """Log-rank test that the groups' survival curves are equal: statistic, degrees of freedom, p."""
    g = groups.reindex(life.index)
    ok = g.notna()
    if g[ok].nunique() < 2:
        return {"statistic": np.nan, "df": 0, "p_value": np.nan}
    res = multivariate_logrank_test(life.loc[ok, "duration_days"], g[ok], life.loc[ok, "churned"])
    return {"statistic": float(res.test_statistic), "df": int(res.degrees_of_freedom), "p_value": float(res.p_value)}


def model_sample(life: pd.DataFrame, strata: pd.Series | None, max_clients: int | None, seed: int = 1) -> pd.DataFrame:
    """The clients the hazard-ratio models are fitted on: all of them up to ``max_clients``,
    else a seeded random sample stratified by churned x ``strata`` (e.g. early contact) with
    proportional allocation: round(n_stratum * max_clients / n) from each stratum, so the sample
    keeps the exposure and event mix of the whole base. 0 or None: no limit.

    Why: the Cox fits cost O(n) per iteration and the time-varying fit far more (lifelines loops
    over event times), so at a million payers they take hours; a 20,000-client sample gives an
    interval about sqrt(n / 20,000) times wider, which the table shows with its client count.
    """
    n = len(life)
    if not max_clients or n <= max_clients:
        return life
    key = life["churned"].astype(int).astype(str)
    if strata is not None:
        key = key + "|" + strata.reindex(life.index).astype(str)
    u = pd.Series(np.random.default_rng(seed).random(n), index=life.index)
    rank = u.groupby(key.to_numpy()).rank(method="first")
    quota = key.map(key.value_counts() * (max_clients / n)).round()
    return life[(rank <= quota).to_numpy()]


def model_sample_note(all_clients: int, used: int, seed: int) -> str:
    """One sentence for the report saying whether the models saw every client."""
    if used >= all_clients:
        return f"The hazard-ratio models are fitted on all {all_clients:,} paying clients."
    return (f"The hazard-ratio models are fitted on a stratified random sample of {used:,} of the "
            f"{all_clients:,} paying clients (strata: churned x early contact, proportional; seed {seed}), "
            "so their intervals are wider than the whole base would give; the Kaplan-Meier curves, "
            "RMST and log-rank test use every client.")


def ph_check(cph: CoxPHFitter | None, frame: pd.DataFrame) -> pd.DataFrame:
    """Schoenfeld-residual test of proportional hazards per covariate (rank time transform): a
    small p-value says the covariate's effect changes over time, so one HR summarises it poorly."""
    if cph is None:
        return pd.DataFrame(columns=["test_statistic", "p"])
    res = proportional_hazard_test(cph, frame, time_transform="rank")
    return res.summary[["test_statistic", "p"]]
