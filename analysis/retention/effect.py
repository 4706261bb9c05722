"""The support effect on churn (DESIGN §4 "support effect"): estimators with stated estimands.

The source claims clients who talk to support "churn 50% less". Who writes to support is not
random: engaged clients write more and stay longer (confounding), and a client must still be
around to write (immortal time). Each estimator here says what it estimates and what it is
adjusted for; which one to trust is decided by the calibration study on generated worlds with
known truth (``benchmarks/calibrate.py``, ``docs/calibration.md``), never by one run.

- ``naive``: ever contacted vs never, Cox from the start. Biased by immortal time and
  engagement; shown because the source quotes it.
- ``unadjusted``: early contact (a ticket before start + window) among clients still paying at
  the landmark start + window, churn counted after it, no covariates: confounded by engagement.
- ``adjusted``: the same landmark comparison adjusted for what is known by the landmark: the
  first charge (log, standardised), segment, acquisition channel, country and, when the
  ``usage`` table is given, the client's product usage in the first days (``engagement``).
  Estimand: the hazard ratio of churn after the landmark for early contact vs none by then;
  clients who write later are in the "not early" group, so a real effect of any contact is
  diluted towards 1 (the calibration shows how much).
- ``renewal``: contact as a time-varying exposure on monthly renewal decisions: one row per
  client and renewal due (start + k months) of the client's first paying spell
  (``churn.first_spells``: a client who lapsed and came back churned at the lapse; the return is
  a win-back, not a renewal), event = the client did not renew (the churn definition: no charge
  for a month and the grace days), a discrete-time proportional-hazards model (binomial GLM with
  the complementary log-log link, one baseline per month of age), the same covariates, intervals
  clustered by client. A client counts as contacted for the renewal due at start + k months when
  the first ticket came before start + (k - 1) months, the beginning of the month that renewal
  pays for: nothing later than the start of the month is used, so a client need not survive
  anything to be counted as contacted (no immortal time). Decisions start at the second renewal
  (``FIRST_DECISION``): the early usage the model adjusts for is measured in the client's first
  days, inside the first month, where a client who leaves early also stops using the product; from
  the second renewal on it is a baseline measure, and a first-month contact is an exposure from
  the start. First-month churn has its own comparison (``churn.first_month_table``). Estimand:
  the hazard ratio of not renewing, from the second renewal on, once a client has contacted
  support. A contact during a month lowers that month's risk only from the contact on, and the
  month counts as not contacted: a real effect is diluted a little towards 1 (the calibration
  study measures how much).

Usage that support itself raises is a mediator, not a confounder: it is measured before the first
ticket and within the first ``ENGAGEMENT_DAYS`` days after sign-up, where contact cannot yet have
changed it. Every hazard ratio carries its 95% interval and E-values (``stats.e_value``).
"""
from __future__ import annotations

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import statsmodels.api as sm
from lifelines import CoxPHFitter
from lifelines.exceptions import ConvergenceError

from analysis.retention import churn, cohorts
from analysis.retention.first_contact import first_contact_table, first_contacts
from analysis.data.engine import Engine, from_frames
from analysis.retention.months import add_months, months_between
from analysis.stats import e_value, e_value_interval, smd_to_risk_ratio

__all__ = ["landmark_ph_check", "ENGAGEMENT_DAYS", "FIRST_DECISION", "RETENTION_TOPICS", "engagement", "adjustment_covariates", "naive_effect",
           "landmark_frame", "fit_cox", "landmark_effect", "renewal_panel", "renewal_effect", "with_e_values",
           "covariates_for", "support_effects", "support_effects_of", "table_view", "ltv_effect", "ltv_effect_view", "METHOD_LABELS", "ESTIMANDS"]

ENGAGEMENT_DAYS = 14   # usage is measured in the first two weeks after sign-up, before the first ticket
FIRST_DECISION = 2     # the renewal model starts at the second renewal (the module docstring says why)
# tickets that follow a decision to leave: not a contact that could change it (the renewal model)
RETENTION_TOPICS = ("refund_request", "cancellation")
_NOT_ESTIMABLE = (ConvergenceError, np.linalg.LinAlgError, ZeroDivisionError, ValueError)
_PERFECT = getattr(sm.tools.sm_exceptions, "PerfectSeparationError", ValueError)

METHOD_LABELS = {"naive": "naive: ever contacted vs never (biased)",
                 "unadjusted": "early contact, landmark, unadjusted (confounded)",
                 "adjusted": "early contact, landmark, adjusted",
                 "renewal": "contact before each renewal, first spell, adjusted"}
ESTIMANDS = {
    "naive": "hazard ratio of churn for clients who ever wrote vs never, from the first charge; biased by "
             "immortal time (a client must stay to write) and by engagement",
    "unadjusted": "hazard ratio of churn after day {window} for clients who wrote before it vs not, among "
                  "clients still paying on day {window}; confounded by who writes",
    "adjusted": "the same landmark comparison, adjusted for {covariates}",
    "renewal": "hazard ratio of not renewing a month, from the second renewal of a client's first paying "
               "spell on, once the client has written to support (contact counted from the start of the month "
               "the renewal pays for), adjusted for {covariates}",
}


def engagement_table(clients: ir.Table, starts: ir.Table, tickets: ir.Table | None, usage: ir.Table,
                     days: int = ENGAGEMENT_DAYS) -> ir.Table:
    """Per client with a start: signed_up_at, window_end and events = the client's product events
    in [sign-up, window_end), where window_end = sign-up + ``days``, cut at the first ticket, and
    at least sign-up + 1 day (see ``engagement``)."""
    s = starts.select("client_id").join(clients.select("client_id", "signed_up_at"), "client_id")
    if tickets is not None and "client_id" in tickets.columns:
        s = s.left_join(first_contact_table(tickets), "client_id").drop("client_id_right")
        full = s.signed_up_at + ibis.interval(days=days)
        end = ibis.ifelse(s.first_contact_at.notnull() & (s.first_contact_at < full), s.first_contact_at, full)
    else:
        end = s.signed_up_at + ibis.interval(days=days)
    one_day = s.signed_up_at + ibis.interval(days=1)
    s = s.select("client_id", "signed_up_at", window_end=ibis.ifelse(end < one_day, one_day, end))
    u = usage.select("client_id", "at", "events")
    j = s.join(u, "client_id")
    inside = (j.at >= j.signed_up_at) & (j.at < j.window_end)
    counted = j.group_by("client_id").aggregate(events=j.events.cast("float64").sum(where=inside))
    out = s.left_join(counted, "client_id").drop("client_id_right")
    return out.mutate(events=out.events.fill_null(0.0))


def engagement(eng: Engine, starts: pd.DataFrame, days: int = ENGAGEMENT_DAYS) -> pd.Series:
    """Per client of ``starts`` (``cohorts.client_starts`` of the same engine): log(1 + product
    events per day) over [sign-up, sign-up + days), cut at the first ticket (support cannot have
    changed usage yet). A client whose first ticket came within a day of signing up is measured
    over the first day anyway (a rate needs some time; the mediator share of one day is small).
    No usage row: 0 events."""
    t = eng.frame(engagement_table(eng.table("clients"), cohorts.starts_in(eng), eng.table("tickets"),
                                   eng.table("usage"), days)).set_index("client_id").reindex(starts.index)
    span = (t["window_end"] - t["signed_up_at"]).dt.total_seconds() / 86400
    return pd.Series(np.log1p(t["events"] / span), index=starts.index, name="engagement")


def adjustment_covariates(starts: pd.DataFrame, clients: pd.DataFrame | None = None,
                          usage_engagement: pd.Series | None = None) -> pd.DataFrame:
    """The covariates known by the landmark, one row per client with a start: log_check (log
    first charge, standardised), one indicator per segment, acquisition channel and country but
    the most frequent (columns named ``segment=smb``, ...; levels seen in under 20 clients are
    pooled into ``other``), and ``engagement`` when given. ``attrs["adjusted_for"]`` names them in
    words."""
    logc = np.log(starts["first_charge"].clip(lower=1e-9))
    sd = logc.std()
    out = pd.DataFrame({"log_check": (logc - logc.mean()) / (sd if sd > 0 else 1.0)}, index=starts.index)
    named = ["first charge"]
    # aligned once: at 1M clients each alignment of a text index takes half a second
    known = [c for c in ("segment", "acquisition_channel", "country")
             if clients is not None and c in clients.columns and c not in starts.columns]
    aligned = clients.set_index("client_id")[known].reindex(starts.index) if known else None
    for column in ("segment", "acquisition_channel", "country"):
        source = starts[column] if column in starts.columns else (aligned[column] if column in known else None)
        if source is None:
            continue
        values = source.astype("string").fillna("(empty)")
        counts = values.value_counts()
        values = values.where(values.map(counts) >= 20, "other")
        levels = values.value_counts()
        if len(levels) < 2:
            continue
        for level in levels.index[1:]:
            out[f"{column}={level}"] = (values == level).astype(float).to_numpy()
        named.append(column.replace("_", " "))
    if usage_engagement is not None:
        out["engagement"] = usage_engagement.reindex(starts.index).fillna(0.0)
        named.append(f"product usage in the first {ENGAGEMENT_DAYS} days")
    out.attrs["adjusted_for"] = named
    return out


def _row(method: str, hr: float, lo: float, hi: float, p: float, clients: int, events: int, note: str,
         adjusted_for: list[str]) -> dict:
    return {"key": method, "method": METHOD_LABELS[method], "hazard_ratio": hr, "ci_low": lo, "ci_high": hi,
            "p_value": p, "clients": clients, "events": events, "note": note, "adjusted_for": adjusted_for}


def _empty(method: str, clients: int, events: int, why: str, adjusted_for: list[str]) -> dict:
    return _row(method, np.nan, np.nan, np.nan, np.nan, clients, events, f"not estimable: {why}", adjusted_for)


def _usable(frame: pd.DataFrame, columns: list[str]) -> list[str]:
    """Covariates that vary in the frame (a constant column makes the fit singular)."""
    return [c for c in columns if frame[c].nunique() > 1]


def fit_cox(frame: pd.DataFrame, robust: bool = True) -> tuple[CoxPHFitter | None, str]:
    """Cox fit of ``frame`` (duration, churned, exposed, covariates) and "", or None and why it
    cannot be estimated: no churn, one exposure group only, or no convergence."""
    if frame["churned"].sum() == 0 or frame["exposed"].nunique() < 2:
        return None, "no churn or only one exposure group"
    try:
        return CoxPHFitter().fit(frame, duration_col="duration", event_col="churned", robust=robust), ""
    except _NOT_ESTIMABLE:
        return None, "the model does not converge on these clients"


def _cox_row(method: str, frame: pd.DataFrame, note: str, named: list[str], robust: bool = True) -> dict:
    n, events = len(frame), int(frame["churned"].sum())
    cph, why = fit_cox(frame, robust)
    if cph is None:
        return _empty(method, n, events, why, named)
    s = cph.summary.loc["exposed"]
    return _row(method, float(s["exp(coef)"]), float(s["exp(coef) lower 95%"]), float(s["exp(coef) upper 95%"]),
                float(s["p"]), n, events, note, named)


def naive_effect(life: pd.DataFrame, ever: pd.Series) -> dict:
    """Cox HR of "ever contacted" (any ticket before as-of), unadjusted, from the start: biased."""
    frame = pd.DataFrame({"duration": life["duration_days"], "churned": life["churned"].astype(int),
                          "exposed": ever.reindex(life.index).fillna(False).astype(int)})
    return _cox_row("naive", frame, "a client must stay to write, and long-lived clients have more time to", [],
                    robust=False)


def landmark_frame(life: pd.DataFrame, first_contact: pd.Series, window_days: int, as_of: pd.Timestamp,
                   covs: pd.DataFrame | None) -> pd.DataFrame:
    """The landmark cohort: clients observed and still paying at start + window; duration and
    churn after it, exposed = first ticket before it, and the covariates that vary."""
    at = life["start"] + pd.Timedelta(days=window_days)
    keep = (at <= as_of) & (life["duration_days"] > window_days)
    sub = life[keep]
    frame = pd.DataFrame({"duration": sub["duration_days"] - window_days, "churned": sub["churned"].astype(int),
                          "exposed": (first_contact.reindex(sub.index) < at[keep]).fillna(False).astype(int)})
    if covs is None:
        return frame
    frame = frame.join(covs)
    return frame[["duration", "churned", "exposed", *_usable(frame, list(covs.columns))]]


def landmark_effect(life: pd.DataFrame, first_contact: pd.Series, window_days: int, as_of: pd.Timestamp,
                    covs: pd.DataFrame | None) -> dict:
    """Cox HR of early contact (first ticket before start + window) on churn after the landmark
    start + window, among clients observed and still paying then; ``covs`` None: unadjusted,
    else adjusted for its columns. Robust (sandwich) intervals."""
    method = "unadjusted" if covs is None else "adjusted"
    named = [] if covs is None else list(covs.attrs.get("adjusted_for", list(covs.columns)))
    frame = landmark_frame(life, first_contact, window_days, as_of, covs)
    return _cox_row(method, frame, f"clients paying on day {window_days}; contact before it; churn after it", named)


def renewal_panel(spell: pd.DataFrame, first_contact: pd.Series, first_decision: int = FIRST_DECISION) -> pd.DataFrame:
    """One row per client and renewal decision k = first_decision, ... (the charge due at start
    + k months) of the first spell (``churn.first_spells``): ``client`` (row of ``spell``),
    ``month`` k, ``churned`` (1 at the decision a churned client failed), ``exposed`` (first
    ticket before start + (k - 1) months).

    A client paid months_paid = whole months from the start to the spell's last charge + 1
    monthly periods; decisions 1 .. months_paid - 1 were renewals; a churned client failed
    decision months_paid; for a client still paying it is pending (not in the panel). Decisions
    before ``first_decision`` are left out (a client who churned there is not in the panel)."""
    paid = months_between(spell["start"], spell["last_charge"]).to_numpy().astype(np.int64) + 1
    churned = spell["churned"].to_numpy(dtype=bool)
    last = paid - 1 + churned                               # the last decision in the panel
    rows = np.maximum(last - first_decision + 1, 0)
    client = np.repeat(np.arange(len(spell)), rows)
    k = np.arange(len(client)) - np.repeat(np.cumsum(rows) - rows, rows) + first_decision
    event = churned[client] & (k == paid[client])
    month_began = add_months(spell["start"].iloc[client].reset_index(drop=True), k - 1)  # the month decision k pays for
    contact = first_contact.reindex(spell.index).iloc[client].reset_index(drop=True)
    exposed = (contact < month_began).fillna(False).to_numpy()
    return pd.DataFrame({"client": client, "month": k, "churned": event.astype(int), "exposed": exposed.astype(int)})


def renewal_effect(spell: pd.DataFrame, first_contact: pd.Series, covs: pd.DataFrame) -> dict:
    """Discrete-time proportional-hazards HR of contact on not renewing (see the module
    docstring): complementary log-log binomial GLM on ``renewal_panel`` of the first spells
    (``churn.first_spells``) with a baseline per month of age (months 2-12 each, 13+ pooled) and
    the covariates, standard errors clustered by client."""
    named = list(covs.attrs.get("adjusted_for", list(covs.columns)))
    panel = renewal_panel(spell, first_contact)
    n, events = int(panel["client"].nunique()) if len(panel) else 0, int(panel["churned"].sum())
    if events == 0 or panel["exposed"].nunique() < 2:
        return _empty("renewal", n, events, "no churn or only one exposure group", named)
    x = covs.reindex(spell.index).iloc[panel["client"].to_numpy()].reset_index(drop=True)
    x = x[_usable(x, list(x.columns))]
    month = np.minimum(panel["month"].to_numpy(), 13)
    base = pd.get_dummies(pd.Categorical(month), prefix="m", dtype=float)
    base = base.loc[:, base.sum() > 0]
    design = pd.concat([pd.DataFrame({"exposed": panel["exposed"].astype(float)}), x, base], axis=1)
    model = sm.GLM(panel["churned"].to_numpy(float), design,
                   family=sm.families.Binomial(link=sm.families.links.CLogLog()))
    try:
        fit = model.fit(cov_type="cluster", cov_kwds={"groups": panel["client"].to_numpy()})
    except (*_NOT_ESTIMABLE, _PERFECT):
        return _empty("renewal", n, events, "the model does not converge on these clients", named)
    beta, se = float(fit.params["exposed"]), float(fit.bse["exposed"])
    if not (np.isfinite(beta) and np.isfinite(se)):
        return _empty("renewal", n, events, "the model does not converge on these clients", named)
    return _row("renewal", float(np.exp(beta)), float(np.exp(beta - 1.959963984540054 * se)),
                float(np.exp(beta + 1.959963984540054 * se)), float(fit.pvalues["exposed"]), n, events,
                f"{len(panel):,} renewal decisions of {n:,} clients; intervals clustered by client", named)


def with_e_values(rows: list[dict]) -> pd.DataFrame:
    """The estimates as a table indexed by method key, with the E-value of each hazard ratio and
    of its interval limit nearest 1 (churn is a common outcome: the HR is converted to a risk
    ratio first, VanderWeele & Ding 2017)."""
    out = pd.DataFrame(rows).set_index("key")
    out["e_value"] = [e_value(hr) for hr in out["hazard_ratio"]]
    out["e_value_ci"] = [e_value_interval(lo, hi) for lo, hi in zip(out["ci_low"], out["ci_high"])]
    return out.astype({"clients": "Int64", "events": "Int64"})


def table_view(effects: pd.DataFrame) -> pd.DataFrame:
    """The estimates for a report: one row per method by its label, the covariates as text."""
    view = effects.set_index("method")[["hazard_ratio", "ci_low", "ci_high", "p_value", "e_value", "e_value_ci",
                                        "clients", "events"]].copy()
    view["adjusted for"] = [", ".join(a) or "nothing" for a in effects["adjusted_for"]]
    view["note"] = effects["note"].to_numpy()
    view.index = pd.Index([METHOD_LABELS.get(k, k) for k in view.index], name="method")
    return view


def covariates_for(eng: Engine, starts: pd.DataFrame) -> pd.DataFrame:
    """``adjustment_covariates`` of the engine's data: with a usage table, engagement measured
    before the first ticket (``engagement``); without one, the rest only."""
    clients = eng.table("clients")
    frame = None
    if clients is not None:
        columns = [c for c in ("segment", "acquisition_channel", "country") if c in clients.columns]
        frame = eng.frame(clients.select("client_id", *columns))
    usage = engagement(eng, starts) if eng.has("usage", "clients") else None
    return adjustment_covariates(starts, frame, usage)


def support_effects_of(tables: dict, as_of: pd.Timestamp, grace_days: int, window_days: int) -> pd.DataFrame:
    """``support_effects`` on a whole data set's tables (clients, payments, tickets, usage when
    given), every client with a start: what the calibration study and the tests run on each
    generated world (the report runs the same steps on a stated sample of clients)."""
    eng = from_frames({n: tables.get(n) for n in ("payments", "clients", "tickets", "usage")})
    starts = cohorts.client_starts(eng)
    life = churn.lifetimes(eng, as_of, grace_days)
    spell = churn.first_spells(eng, as_of, grace_days)
    return support_effects(life, spell, eng, covariates_for(eng, starts), window_days, as_of)


def support_effects(life: pd.DataFrame, spell: pd.DataFrame, eng: Engine, covs: pd.DataFrame,
                    window_days: int, as_of: pd.Timestamp) -> pd.DataFrame:
    """Every estimator on the clients of ``life`` (``churn.lifetimes``; ``spell`` holds their
    first spells, ``churn.first_spells``, for the renewal model), with E-values
    (``with_e_values``), indexed by method key: what 03_churn_survival shows and what the
    calibration study measures. First contacts come from the engine's tickets, read for the
    clients of ``life`` only."""
    first = first_contacts(eng, clients=life.index)
    return with_e_values([
        naive_effect(life, first.reindex(life.index).notna()),
        landmark_effect(life, first, window_days, as_of, None),
        landmark_effect(life, first, window_days, as_of, covs),
        renewal_effect(spell.reindex(life.index), first_contacts(eng, RETENTION_TOPICS, life.index), covs),
    ])


def ltv_effect(values: pd.DataFrame, early: pd.Series, covs: pd.DataFrame, horizon: str) -> dict:
    """The LTV comparison of 02_cohort_ltv adjusted for everything known early at once: the ratio
    of mean LTV at ``horizon`` (a column of ``cohorts.client_ltv``), contacted early vs not,
    among the clients old enough, from a log-link GLM with the Poisson quasi-likelihood and
    robust (HC1) standard errors: log E[LTV] = b0 + b x contacted + covariates (the usual
    estimator of a ratio of means of a non-negative outcome; ratio = exp(b)). A net LTV below 0
    (refunds above charges in the window) enters as 0; the note counts such clients.

    E-value (VanderWeele & Ding 2017, continuous outcome): d = (m1 - m0) / sd, with m1 the mean
    LTV of the contacted, m0 = m1 / ratio what the model says they would have paid without
    contact, sd the standard deviation of LTV of the clients in the model; RR = exp(0.91 d)
    (``stats.smd_to_risk_ratio``); the interval limit nearest 1 the same way. Not covered by the
    calibration study (which measures the churn estimators); confounded by engagement without
    usage, like them. Not estimable (NaN, with the reason in ``note``) without both groups or
    when the model does not converge."""
    named = list(covs.attrs.get("adjusted_for", list(covs.columns)))
    y = values[horizon].reindex(early.index)
    ok = y.notna() & early.isin(["contacted", "not_contacted"])
    y, group = y[ok], early[ok]
    contacted = (group == "contacted").to_numpy(float)
    row = {"ratio": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan, "e_value": np.nan,
           "e_value_ci": np.nan, "clients": int(len(y)), "contacted": int(contacted.sum()), "adjusted_for": named}
    negative = int((y < 0).sum())
    if contacted.sum() == 0 or contacted.sum() == len(y) or float(y.clip(lower=0).sum()) <= 0:
        return {**row, "note": "not estimable: needs clients old enough in both groups and some payments"}
    x = covs.reindex(y.index).reset_index(drop=True)
    x = x[_usable(x, list(x.columns))]
    design = pd.concat([pd.DataFrame({"const": 1.0, "contacted": contacted}), x], axis=1)
    target = y.clip(lower=0).to_numpy(float)
    try:
        with np.errstate(all="ignore"):
            fit = sm.GLM(target, design, family=sm.families.Poisson()).fit(cov_type="HC1")
        beta, se = float(fit.params["contacted"]), float(fit.bse["contacted"])
    except (*_NOT_ESTIMABLE, _PERFECT):
        beta, se = np.nan, np.nan
    if not (np.isfinite(beta) and np.isfinite(se)):
        return {**row, "note": "not estimable: the model does not converge on these clients"}
    z = 1.959963984540054
    ratio, lo, hi = float(np.exp(beta)), float(np.exp(beta - z * se)), float(np.exp(beta + z * se))
    m1, sd = float(target[contacted == 1].mean()), float(target.std(ddof=1))
    d = (lambda r: (m1 - m1 / r) / sd if sd > 0 else np.nan)
    near = 1.0 if lo <= 1 <= hi else (lo if lo > 1 else hi)
    note = f"{len(y):,} clients old enough, {int(contacted.sum()):,} contacted; robust intervals"
    if negative:
        note += f"; {negative:,} net LTV below 0 counted as 0"
    return {**row, "ratio": ratio, "ci_low": lo, "ci_high": hi, "p_value": float(fit.pvalues["contacted"]),
            "e_value": e_value(smd_to_risk_ratio(d(ratio)), rare=True),
            "e_value_ci": 1.0 if near == 1.0 else e_value(smd_to_risk_ratio(d(near)), rare=True), "note": note}


def ltv_effect_view(row: dict) -> pd.DataFrame:
    """``ltv_effect``'s result as a one-row table for a report."""
    view = pd.DataFrame([{k: row[k] for k in ("ratio", "ci_low", "ci_high", "e_value", "e_value_ci", "clients",
                                             "contacted")}], index=pd.Index(["adjusted"], name="method"))
    view["p_value"] = row["p_value"]
    view["adjusted for"] = ", ".join(row["adjusted_for"]) or "nothing"
    view["note"] = row["note"]
    return view


def landmark_ph_check(landmark: pd.DataFrame) -> pd.DataFrame:
    """The proportional-hazards check (``survival.ph_check``: Schoenfeld residuals per
    covariate) of the adjusted landmark Cox model fitted on ``landmark`` (``fit_cox``); an empty
    table when the model cannot be fitted."""
    from analysis.retention.survival import ph_check
    return ph_check(fit_cox(landmark)[0], landmark)
