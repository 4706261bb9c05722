"""Survival of clients and bias-aware estimates of the support effect (anchor: lifelines).

Durations come from ``churn.lifetimes`` (days from the start; censored at as-of). Estimates:
- Kaplan-Meier per group with at-risk counts, median lifetime, restricted mean survival time
  (RMST: the area under the curve up to a horizon, the expected months a client stays in the
  first H months), log-rank test across groups;
- the support effect as a hazard ratio (HR < 1: contact goes with lower churn), four ways:
  naive   Cox on "ever contacted" from the start: biased (immortal time: a client must live to
          write; long-lived clients have more time to);
  landmark at the contact window L: only clients still active and observed at L; exposure =
          contact before L; outcome = churn after L (time from L);
  Cox     early contact (within the window) adjusted for check size (log first charge,
          standardised) with segment as strata;
  time-varying  contact as an exposure that switches on at the first ticket (refund requests
          and cancellations excluded: they follow a decision to leave), with the same
          adjustment (lifelines CoxTimeVaryingFitter).
  Engagement that is not in the data still confounds every one of them; the report says so.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter, CoxTimeVaryingFitter, KaplanMeierFitter
from lifelines.exceptions import ConvergenceError
from lifelines.statistics import multivariate_logrank_test, proportional_hazard_test

from analysis import keys
from analysis.churn import DAYS_PER_MONTH

__all__ = ["kaplan_meier", "rmst", "survival_summary", "censor_aware_ltv", "at_risk_table", "logrank", "covariates", "naive_hr",
           "landmark_hr", "cox_hr", "time_varying_hr", "effect_table", "ph_check", "RETENTION_TOPICS",
           "model_sample", "model_sample_note"]

RETENTION_TOPICS = ("refund_request", "cancellation")


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


def censor_aware_ltv(payments: pd.DataFrame, life: pd.DataFrame, fits: dict[str, KaplanMeierFitter],
                     groups: pd.Series | None = None, horizon_months: float = 12.0) -> pd.DataFrame:
    """Two model-based LTVs per group, each labelled with its formula:
    - ARPA = net payments of the group's clients (start to as-of) / client-months observed
      (start to churn or as-of); LTV_H = ARPA x RMST(H): revenue per active month times the
      expected active months in the first H months, censoring handled by Kaplan-Meier;
    - vendor style (ChartMogul): LTV = ARPA / monthly churn rate, with the churn rate = churns /
      client-months (a constant hazard, no horizon): what subscription dashboards report.
    """
    g = pd.Series("all", index=life.index) if groups is None else groups.reindex(life.index)
    pos = keys.codes(payments["client_id"], life.index, read_only=True)  # integer keys, not the text
    keep = pos >= 0
    net = payments["amount"][keep].groupby(keys.code_groups(pos[keep], len(life)), observed=False).sum()
    net = pd.Series(net.to_numpy(), index=life.index)
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


def covariates(starts: pd.DataFrame) -> pd.DataFrame:
    """Adjustment covariates per client: log_check (log first charge, standardised) and segment."""
    logc = np.log(starts["first_charge"].clip(lower=1e-9))
    sd = logc.std()
    out = pd.DataFrame({"log_check": (logc - logc.mean()) / (sd if sd > 0 else 1.0)}, index=starts.index)
    if "segment" in starts.columns:
        out["segment"] = starts["segment"].astype(str)
    return out


def _hr_row(method: str, cph, term: str, n: int, events: int, note: str) -> dict:
    s = cph.summary.loc[term]
    return {"method": method, "hazard_ratio": float(s["exp(coef)"]), "ci_low": float(s["exp(coef) lower 95%"]),
            "ci_high": float(s["exp(coef) upper 95%"]), "p_value": float(s["p"]), "clients": n, "events": events,
            "note": note}


def _empty_row(method: str, n: int, events: int, note: str) -> dict:
    return {"method": method, "hazard_ratio": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan,
            "clients": n, "events": events, "note": note}


_NOT_ESTIMABLE = (ConvergenceError, np.linalg.LinAlgError, ZeroDivisionError)


def _fit(frame: pd.DataFrame, strata: list[str] | None) -> tuple[CoxPHFitter | None, str]:
    """CoxPH fit and "", or None and the reason when the data cannot give one: no churn, one
    exposure group only, or a fit that does not converge (few clients, a covariate that
    separates the groups)."""
    if frame["churned"].sum() == 0 or frame["exposed"].nunique() < 2:
        return None, "not estimable: no churn or only one exposure group"
    cph = CoxPHFitter()
    try:
        cph.fit(frame, duration_col="duration", event_col="churned", strata=strata or None)
    except _NOT_ESTIMABLE:
        return None, "not estimable: the model does not converge on these clients"
    return cph, ""


def _row(label: str, model, n: int, events: int, note: str, why: str) -> dict:
    return _hr_row(label, model, "exposed", n, events, note) if model else \
        _empty_row(label, n, events, f"{note}; {why}")


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


def naive_hr(life: pd.DataFrame, ever: pd.Series) -> dict:
    """Cox HR of "ever contacted" (any ticket before as-of), unadjusted, from the start: biased."""
    frame = pd.DataFrame({"duration": life["duration_days"], "churned": life["churned"].astype(int),
                          "exposed": ever.reindex(life.index).fillna(False).astype(int)})
    note = "biased: a client must stay to write, and long-lived clients have more time to"
    cph, why = _fit(frame, None)
    return _row("naive (ever contacted)", cph, len(frame), int(frame["churned"].sum()), note, why)


def landmark_hr(life: pd.DataFrame, first_contact: pd.Series, landmark_days: int, as_of: pd.Timestamp,
                covs: pd.DataFrame | None = None) -> dict:
    """Landmark at L days: clients observed and still active at start + L; exposure = a ticket
    before start + L; duration and churn counted after L; adjusted like ``cox_hr`` when
    ``covs`` is given."""
    at = life["start"] + pd.Timedelta(days=landmark_days)
    keep = (at <= as_of) & (life["duration_days"] > landmark_days)
    sub = life[keep]
    exposed = (first_contact.reindex(sub.index) < at[keep]).fillna(False).astype(int)
    frame = pd.DataFrame({"duration": sub["duration_days"] - landmark_days, "churned": sub["churned"].astype(int),
                          "exposed": exposed})
    strata = None
    if covs is not None:
        frame, strata = _adjust(frame, covs)
    note = (f"clients active at day {landmark_days}; contact before it; churn after it"
            + (", adjusted for check size" + (", stratified by segment" if strata else "") if covs is not None else ""))
    label = f"landmark at {landmark_days} days" + (", adjusted" if covs is not None else "")
    cph, why = _fit(frame, strata)
    return _row(label, cph, len(frame), int(frame["churned"].sum()), note, why)


def _adjust(frame: pd.DataFrame, covs: pd.DataFrame) -> tuple[pd.DataFrame, list[str] | None]:
    """Join the covariates; segment becomes strata when it has more than one value."""
    frame = frame.join(covs)
    strata = ["segment"] if "segment" in frame.columns and frame["segment"].nunique() > 1 else None
    if "segment" in frame.columns and not strata:
        frame = frame.drop(columns="segment")
    return frame, strata


def cox_hr(life: pd.DataFrame, early: pd.Series, covs: pd.DataFrame | None) -> tuple[dict, CoxPHFitter | None, pd.DataFrame]:
    """Cox HR of early contact from the start, adjusted for log_check with segment as strata
    (when ``covs`` is given; unadjusted otherwise). Returns the table row, the fitted model and
    its frame (for the proportional-hazards check)."""
    frame = pd.DataFrame({"duration": life["duration_days"], "churned": life["churned"].astype(int),
                          "exposed": early.reindex(life.index).fillna(False).astype(int)})
    strata = None
    if covs is not None:
        frame, strata = _adjust(frame, covs)
        label, note = "Cox, adjusted", "early contact, adjusted for check size" + (", stratified by segment" if strata else "")
    else:
        label, note = "early contact, unadjusted", "the source's split as a hazard ratio: confounded"
    cph, why = _fit(frame, strata)
    return _row(label, cph, len(frame), int(frame["churned"].sum()), note, why), cph, frame


def time_varying_hr(life: pd.DataFrame, first_contact: pd.Series, covs: pd.DataFrame, lag_days: float = 0.0) -> dict:
    """Contact as a time-varying exposure from the first ticket (day 0 when it came before the
    start), adjusted for log_check and segment (as dummies); CoxTimeVaryingFitter.

    ``lag_days`` delays the switch: a churn is recorded 1 month + grace after the last charge, so
    a client who has already stopped paying cannot contact support any more but is still
    "at risk" until the churn date; without the lag those weeks count as unexposed time ending
    in churn and the contact looks more protective than it is. Lagging the exposure by the same
    delay lines the exposure up with when the client actually left.
    """
    t_contact = ((first_contact.reindex(life.index) - life["start"]).dt.total_seconds() / 86400).clip(lower=0) + lag_days
    dur = life["duration_days"]
    base = covs[["log_check"]].copy()
    if "segment" in covs.columns and covs["segment"].nunique() > 1:
        base = base.join(pd.get_dummies(covs["segment"], prefix="seg", drop_first=True, dtype=float))
    contacted = t_contact.notna() & (t_contact < dur)
    before = pd.DataFrame({"id": life.index, "start": 0.0, "stop": np.where(contacted, t_contact, dur),
                           "exposed": 0, "churned": np.where(contacted, 0, life["churned"].astype(int))}, index=life.index)
    after = pd.DataFrame({"id": life.index[contacted], "start": t_contact[contacted], "stop": dur[contacted],
                          "exposed": 1, "churned": life.loc[contacted, "churned"].astype(int)}, index=life.index[contacted])
    long = pd.concat([before, after]).join(base)
    long = long[long["stop"] > long["start"]].reset_index(drop=True)
    note = ("contact switches on at the first ticket (refund/cancellation tickets excluded)"
            + (f", lagged {lag_days:.0f} days" if lag_days else "") + ", adjusted")
    n, ev = len(life), int(life["churned"].sum())
    if ev == 0 or long["exposed"].nunique() < 2:
        return _empty_row("time-varying contact", n, ev, f"{note}; not estimable: no churn or only one exposure group")
    ctv = CoxTimeVaryingFitter()
    try:
        ctv.fit(long, id_col="id", event_col="churned", start_col="start", stop_col="stop")
    except _NOT_ESTIMABLE:
        return _empty_row("time-varying contact", n, ev, f"{note}; not estimable: the model does not converge")
    return _hr_row("time-varying contact", ctv, "exposed", n, ev, note)


def effect_table(rows: list[dict], true_hr: float | None = None) -> pd.DataFrame:
    """The estimates side by side; with the generator's true HR (sample data) a last row and a
    column saying whether each interval contains it."""
    out = pd.DataFrame(rows).set_index("method")
    if true_hr is not None:
        out["contains_truth"] = (out["ci_low"] <= true_hr) & (true_hr <= out["ci_high"])
        truth = pd.DataFrame([{"hazard_ratio": true_hr, "note": "the generator's true effect (truth.json)"}],
                             index=pd.Index(["true effect"], name="method"))
        out = pd.concat([out, truth])
    return out.astype({"clients": "Int64", "events": "Int64"})


def ph_check(cph: CoxPHFitter | None, frame: pd.DataFrame) -> pd.DataFrame:
    """Schoenfeld-residual test of proportional hazards per covariate (rank time transform): a
    small p-value says the covariate's effect changes over time, so one HR summarises it poorly."""
    if cph is None:
        return pd.DataFrame(columns=["test_statistic", "p"])
    res = proportional_hazard_test(cph, frame, time_transform="rank")
    return res.summary[["test_statistic", "p"]]
