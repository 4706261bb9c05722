"""Cohorts and lifetime value (DESIGN §4, Retention; anchor: ChartMogul / Stripe cohorts).

- a client's start = paid_at of the earliest charge (amount > 0), even if later refunded; the
  cohort is its UTC month; clients without a charge are not in cohorts;
- LTV at k months = mean, over the clients whose start + k months <= as-of, of their net
  payments (charges + refunds, each by its own paid_at) in [start, start + k months);
- the cohort matrix holds, per cohort and age k, that mean over all the cohort's clients, and is
  masked (NaN, never 0) unless every client of the cohort has start + k months <= as-of.
Amounts are in the reporting currency (the loader converts when payments carry currencies).
"""
from __future__ import annotations

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from analysis.data import engine
from analysis.data.engine import Engine
from analysis.retention.months import add_months, months_between
from analysis.stats import mean_replicates, percentile_interval

__all__ = ["starts_table", "starts_in", "client_starts", "aged_payments", "ltv_table", "client_ltv", "ltv_cells", "ltv_matrix", "ltv_by_group", "ltv_ratios",
           "ltv_ratios_within", "quantile_bands", "check_bands", "HORIZONS"]

HORIZONS = (1, 3, 6, 12)


def starts_table(payments: ir.Table) -> ir.Table:
    """Per client with a charge (an Ibis expression): client_id, start (the earliest paid_at
    with amount > 0), cohort ('YYYY-MM', UTC) and first_charge (the sum of the charges at the
    start instant: ties at one instant add up). A payment without a client_id gives no start."""
    charges = payments.filter((payments.amount > 0) & payments.client_id.notnull())
    charges = charges.mutate(start=charges.paid_at.min().over(group_by=charges.client_id))
    first = charges.filter(charges.paid_at == charges.start)
    out = first.group_by(["client_id", "start"]).aggregate(first_charge=first.amount.sum())
    return out.mutate(cohort=engine.month_label(out.start))


def starts_in(eng: Engine) -> ir.Table:
    """``starts_table`` of the engine's payments, computed once per engine (``Engine.derived``):
    the LTV, the matrix, churn, win-back and the covariates all join it."""
    return eng.derived("client_starts", lambda e: starts_table(e.table("payments")))


def client_starts(eng: Engine) -> pd.DataFrame:
    """The engine's client starts (``starts_in``), index client_id in text order, with the
    client's segment ("(none)" when empty) when clients has the column."""
    starts, clients = starts_in(eng), eng.table("clients")
    if clients is not None and "segment" in clients.columns:
        starts = starts.left_join(clients.select("client_id", "segment"), "client_id").drop("client_id_right")
        starts = starts.mutate(segment=starts.segment.fill_null("(none)"))
    out = eng.frame(starts)
    columns = ["start", "cohort", "first_charge"] + (["segment"] if "segment" in out.columns else [])
    out = out.set_index("client_id")[columns].sort_index()
    out["cohort"] = out["cohort"].astype(object)
    return out


def aged_payments(payments: ir.Table, starts: ir.Table) -> ir.Table:
    """Payments of clients with a start, with their cohort and month of age: age m means paid_at
    in [start + m months, start + (m + 1) months); payments before the start get a negative age."""
    s = starts.select("client_id", "start", "cohort", **engine.calendar(starts.start, "start"))
    p = payments.select("client_id", "paid_at", "amount", **engine.calendar(payments.paid_at, "paid_at"))
    p = p.join(s, "client_id")
    return p.select("client_id", "paid_at", "amount", "start", "cohort",
                    age=engine.whole_months(p, "start", "paid_at"))


def ltv_table(payments: ir.Table, starts: ir.Table, as_of: pd.Timestamp, horizons=HORIZONS) -> ir.Table:
    """Per client with a start: ``ltv_{k}m`` = net payments in [start, start + k months), null
    when start + k months > as-of (not old enough to count at that horizon).

    The window's end start + k months is computed once per client (``engine.add_months``), so
    each payment is only compared with it: a payment's month of age m is < k exactly when
    paid_at < start + k months (``aged_payments``' definition, add_months increasing in m),
    and no per-payment calendar arithmetic is needed (at 1M clients it was half the query)."""
    ends = starts.select("client_id", "start", **{f"end_{k}": engine.add_months(starts.start, k) for k in horizons})
    paid = payments.select("client_id", "paid_at", "amount").join(ends, "client_id")
    net = paid.group_by("client_id").aggregate(**{
        f"net_{k}": paid.amount.sum(where=(paid.paid_at >= paid.start) & (paid.paid_at < paid[f"end_{k}"]))
        for k in horizons})
    s = starts.select("client_id", "start", **engine.calendar(starts.start, "start"))
    s = s.mutate(age_at_cut=engine.whole_months(s, "start", as_of)).left_join(net, "client_id")
    # start + k months <= as-of exactly when the whole months from start to as-of are >= k
    return s.select("client_id", **{
        f"ltv_{k}m": ibis.ifelse(s.age_at_cut >= k, s[f"net_{k}"].fill_null(0.0), ibis.null("float64"))
        for k in horizons})


def client_ltv(eng: Engine, as_of: pd.Timestamp, horizons=HORIZONS) -> pd.DataFrame:
    """``ltv_table`` on the engine's payments, index client_id in text order (as client_starts)."""
    out = eng.frame(ltv_table(eng.table("payments"), starts_in(eng), as_of, horizons))
    return out.set_index("client_id")[[f"ltv_{k}m" for k in horizons]].astype("float64").sort_index()


def ltv_cells(payments: ir.Table, starts: ir.Table) -> ir.Table:
    """Net payments per cohort and month of age (age >= 0): the cohort matrix before it is
    accumulated and divided by the cohort's clients."""
    aged = aged_payments(payments, starts)
    aged = aged.filter(aged.age >= 0)
    return aged.group_by(["cohort", "age"]).aggregate(net=aged.amount.sum())


def ltv_matrix(eng: Engine, starts: pd.DataFrame, as_of: pd.Timestamp,
               max_age: int | None = None) -> tuple[pd.DataFrame, pd.Series]:
    """Cumulative LTV per client by cohort (rows) and age in months k = 1.. (columns), and the
    number of clients per cohort. Cell (c, k) = sum of the cohort's net payments in
    [start, start + k months) / its clients; masked (NaN) unless the cohort's last start + k
    months <= as-of. Columns run to ``max_age`` or to the oldest observable age. ``starts`` =
    client_starts of the same engine (the sizes and last starts of the cohorts)."""
    size = starts.groupby("cohort").size().rename("clients")
    if not len(starts):
        return pd.DataFrame(), size
    cells = eng.frame(ltv_cells(eng.table("payments"), starts_in(eng)))
    top = int(months_between(pd.Series([starts["start"].min()]), pd.Series([as_of])).iloc[0])
    top = max(1, min(top, max_age) if max_age else top)
    sums = (cells.assign(cohort=cells["cohort"].astype(object), age=cells["age"].astype("int64"))
            .pivot_table(index="cohort", columns="age", values="net", aggfunc="sum")
            .reindex(index=size.index, columns=range(top)).fillna(0.0))
    cumulative = sums.cumsum(axis=1)
    cumulative.columns = range(1, top + 1)
    values = cumulative.div(size, axis=0)
    last_start = starts.groupby("cohort")["start"].max()
    observed = pd.DataFrame({k: add_months(last_start, k) <= as_of for k in values.columns}, index=values.index)
    return values.where(observed), size


def _members(groups: pd.Series, index: pd.Index, label: str | None = None) -> np.ndarray:
    """Whether each client of ``index`` is in group ``label`` (None: every client), as a numpy
    mask: a missing group is in none. Masks on numpy arrays, not Series: at 1M clients a text
    index makes each ``Series.dropna`` or aligned ``loc`` cost tens of milliseconds."""
    if label is None:
        return np.ones(len(index), dtype=bool)
    return groups.reindex(index).eq(label).fillna(False).to_numpy(dtype=bool)


def _present(values: pd.DataFrame, col: str, mask: np.ndarray) -> np.ndarray:
    """The non-missing values of column ``col`` at the rows ``mask``, in row order."""
    x = values[col].to_numpy(dtype="float64")
    return x[mask & ~np.isnan(x)]


def ltv_by_group(values: pd.DataFrame, groups: pd.Series | None = None, reps: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per group and horizon: clients (with a start), eligible (old enough), ltv (mean) and its
    bootstrap 95% interval over clients (seeded per group and horizon). ``values`` = client_ltv;
    without ``groups`` only "all"; "all" is always included."""
    g = pd.Series("all", index=values.index) if groups is None else groups.reindex(values.index)
    rows = []
    labels = ["all"] + sorted(set(g.dropna()) - {"all"})
    for gi, label in enumerate(labels):
        members = _members(g, values.index, None if label == "all" else label)
        for col in values.columns:
            v = _present(values, col, members)
            rng = np.random.default_rng([seed, gi, int(col[4:-1])])
            lo, hi = percentile_interval(mean_replicates(np.sort(v), reps, rng))
            rows.append({"group": label, "horizon": col, "clients": int(members.sum()), "eligible": len(v),
                         "ltv": v.mean() if len(v) else np.nan, "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows)


def ltv_ratios(values: pd.DataFrame, groups: pd.Series, numerator: str, denominator: str,
               reps: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per horizon: mean LTV of ``numerator`` / mean LTV of ``denominator`` with a bootstrap 95%
    interval (each group resampled on its own); null when either group has no eligible client."""
    rows = []
    in_a, in_b = _members(groups, values.index, numerator), _members(groups, values.index, denominator)
    for col in values.columns:
        a, b = np.sort(_present(values, col, in_a)), np.sort(_present(values, col, in_b))
        k = int(col[4:-1])
        ra = mean_replicates(a, reps, np.random.default_rng([seed, k, 1]))
        rb = mean_replicates(b, reps, np.random.default_rng([seed, k, 2]))
        ok = len(a) and len(b) and b.mean() != 0
        with np.errstate(divide="ignore", invalid="ignore"):
            lo, hi = percentile_interval(np.where(rb != 0, ra / rb, np.nan)) if ok else (np.nan, np.nan)
        rows.append({"horizon": col, "ratio": a.mean() / b.mean() if ok else np.nan, "ci_low": lo, "ci_high": hi,
                     f"n_{numerator}": len(a), f"n_{denominator}": len(b)})
    return pd.DataFrame(rows)


def ltv_ratios_within(values: pd.DataFrame, groups: pd.Series, strata: pd.Series, numerator: str,
                      denominator: str, horizon: str = "ltv_12m", reps: int = 1000, seed: int = 0) -> pd.DataFrame:
    """The LTV ratio at one horizon within each stratum (check band, segment): comparing clients of
    similar size removes the part of the gap that size explains. One row per stratum."""
    rows = []
    for i, (label, idx) in enumerate(sorted(strata.reindex(values.index).dropna().groupby(strata).groups.items())):
        r = ltv_ratios(values.loc[idx, [horizon]], groups, numerator, denominator, reps, seed + 1000 * (i + 1))
        rows.append({strata.name or "stratum": label, **r.iloc[0].drop("horizon").to_dict()})
    return pd.DataFrame(rows)


def quantile_bands(values: pd.Series, bands: int = 4, fmt: str = ",.0f", name: str = "band") -> pd.Series:
    """Bands of ``values`` by quantile (Q1 = smallest), ties split by order, labelled with their
    range ("Q1 (120-1,450)"); fewer values than bands: one band each."""
    if not len(values):
        return pd.Series(dtype="object", index=values.index, name=name)
    bands = min(bands, len(values))
    q = pd.qcut(values.rank(method="first"), bands, labels=False) + 1
    lo, hi = values.groupby(q).min(), values.groupby(q).max()
    names = {b: f"Q{b} ({lo[b]:{fmt}}-{hi[b]:{fmt}})" for b in lo.index}
    return q.map(names).rename(name)


def check_bands(starts: pd.DataFrame, bands: int = 4) -> pd.Series:
    """Bands of the first charge by quantile (Q1 = smallest checks), labelled with their range."""
    return quantile_bands(starts["first_charge"], bands, name="check_band")
