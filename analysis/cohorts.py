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

import numpy as np
import pandas as pd

from analysis import keys
from analysis.months import add_months, month_label, months_between, months_since
from analysis.stats import mean_replicates, percentile_interval

__all__ = ["client_starts", "payment_ages", "client_ltv", "ltv_matrix", "ltv_by_group", "ltv_ratios",
           "ltv_ratios_within", "quantile_bands", "check_bands", "HORIZONS"]

HORIZONS = (1, 3, 6, 12)


def client_starts(payments: pd.DataFrame, clients: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per client with a charge (index client_id): start, cohort ('YYYY-MM', UTC), first_charge
    (the sum of charges at the start instant) and, when clients has it, segment."""
    charge = np.asarray(payments["amount"] > 0, dtype=bool)
    # group on integer keys, not on the text: each payment's row in clients (one Arrow lookup,
    # shared with later calls), else the payments' own codes when a charge has no client row
    row = keys.codes(payments["client_id"], clients["client_id"], read_only=True) if clients is not None else None
    by_client_row = row is not None and not (charge & (row < 0)).any()
    if by_client_row:
        universe = clients["client_id"]
    else:
        row, uniques = pd.factorize(payments["client_id"])
        universe = pd.Series(uniques)
        charge &= row >= 0  # a null client_id (-1) has no start
    # on int64 nanoseconds: the first instant per client row, a charge at it adds to first_charge
    paid = keys.ns(payments["paid_at"])
    first = keys.ns_extreme(paid, row, len(universe), where=charge)
    has = np.flatnonzero(first != keys.NAT)  # clients with a charge, in row order
    # the charges at their client's first instant (in blocks: no whole-length temporaries)
    at_start = np.concatenate([np.flatnonzero(charge[b] & (paid[b] == first[row[b]])) + b.start
                               for b in keys.blocks(len(paid))] or [np.zeros(0, dtype="int64")])
    dense = np.full(len(universe), -1, dtype="int64")
    dense[has] = np.arange(len(has))
    out = pd.DataFrame(index=pd.Index(universe.take(has).array, name="client_id"))
    out["start"] = keys.as_times(first[has], payments["paid_at"].dtype).array
    out["cohort"] = month_label(out["start"])
    out["first_charge"] = pd.Series(payments["amount"].to_numpy()[at_start]).groupby(
        keys.code_groups(dense[row[at_start]], len(has)), observed=False).sum().to_numpy()
    if clients is not None and "segment" in clients.columns:
        segment = clients["segment"].take(has).set_axis(out.index) if by_client_row \
            else clients.set_index("client_id")["segment"].reindex(out.index)
        out["segment"] = segment.fillna("(none)")
    order = keys.sorted_order(out.index)  # by client_id (no sort when the clients come so)
    if not (np.diff(order) == 1).all():
        out = out.take(order)
    if by_client_row:  # each client row's place among the starts, for lookups in them
        back = np.full(len(universe) + 1, -1, dtype=keys.row_dtype(len(universe)))
        back[has[order]] = np.arange(len(has))
        keys.remember_subset(universe, out.index, back)
    return out


def _ages(payments: pd.DataFrame, starts: pd.DataFrame) -> tuple[np.ndarray | slice, np.ndarray, np.ndarray]:
    """(rows of ``payments`` whose client has a start, that client's row in ``starts``, month of
    age). When every payment's client has one (the usual case: refunds come from payers), rows
    is ``slice(None)``, every row, and nothing is copied to select them."""
    pos = keys.codes(payments["client_id"], starts.index, read_only=True)
    if len(pos) and pos.min() >= 0:
        return slice(None), pos, months_since(starts["start"], pos, payments["paid_at"])
    rows, pos = keys.found(payments["client_id"], starts.index)
    return rows, pos, months_since(starts["start"], pos, payments["paid_at"].take(rows))


def payment_ages(payments: pd.DataFrame, starts: pd.DataFrame) -> pd.DataFrame:
    """Payments of clients with a start, with their month of age: age m means paid_at in
    [start + m months, start + (m + 1) months); payments before the start get a negative age.
    ``pos`` is the client's row in ``starts`` (an integer key to group on)."""
    rows, pos, age = _ages(payments, starts)
    p = payments if isinstance(rows, slice) else payments.take(rows)
    return pd.DataFrame({"client_id": p["client_id"], "amount": p["amount"], "age": age, "pos": pos.astype("int64")},
                        index=p.index)


def client_ltv(payments: pd.DataFrame, starts: pd.DataFrame, as_of: pd.Timestamp,
               horizons=HORIZONS) -> pd.DataFrame:
    """Per client: net payments in [start, start + k months) as column ``ltv_{k}m``, null when
    start + k months > as-of (the client is not old enough to be counted at that horizon)."""
    rows, pos, age = _ages(payments, starts)
    amount = payments["amount"].to_numpy()[rows]
    out = pd.DataFrame(index=starts.index)
    for k in horizons:
        inside = (age >= 0) & (age < k)
        net = pd.Series(amount[inside]).groupby(keys.code_groups(pos[inside], len(starts)), observed=False).sum()
        old_enough = add_months(starts["start"], k) <= as_of
        out[f"ltv_{k}m"] = pd.Series(net.to_numpy(), index=starts.index).where(old_enough)
    return out


def ltv_matrix(payments: pd.DataFrame, starts: pd.DataFrame, as_of: pd.Timestamp,
               max_age: int | None = None) -> tuple[pd.DataFrame, pd.Series]:
    """Cumulative LTV per client by cohort (rows) and age in months k = 1.. (columns), and the
    number of clients per cohort. Cell (c, k) = sum of the cohort's net payments in
    [start, start + k months) / its clients; masked (NaN) unless the cohort's last start + k
    months <= as-of. Columns run to ``max_age`` or to the oldest observable age."""
    size = starts.groupby("cohort").size().rename("clients")
    if not len(starts):
        return pd.DataFrame(), size
    rows, pos, age = _ages(payments, starts)
    top = int(months_between(pd.Series([starts["start"].min()]), pd.Series([as_of])).iloc[0])
    top = max(1, min(top, max_age) if max_age else top)
    cohort_code, cohort_names = pd.factorize(starts["cohort"])
    amount = pd.Series(payments["amount"].to_numpy()[rows])
    ages = max(int(age.max()) if len(age) else 0, 0) + 1
    # one integer key per (cohort, age) (pandas' sums, no MultiIndex); a payment before its
    # client's start (age < 0) gets no cell (-1), which leaves every cell's sum as it is
    cell = np.empty(len(age), dtype=keys.row_dtype(len(cohort_names) * ages))
    for b in keys.blocks(len(age)):
        c = cohort_code[pos[b]] * ages
        c += age[b]
        c[age[b] < 0] = -1
        cell[b] = c
    sums = amount.groupby(keys.code_groups(cell, len(cohort_names) * ages), observed=False).sum()
    sums = (pd.DataFrame(sums.to_numpy().reshape(len(cohort_names), ages), index=pd.Index(cohort_names),
                         columns=range(ages))
            .reindex(index=size.index, columns=range(top), fill_value=0.0).fillna(0.0))
    cumulative = sums.cumsum(axis=1)
    cumulative.columns = range(1, top + 1)
    values = cumulative.div(size, axis=0)
    last_start = starts.groupby("cohort")["start"].max()
    observed = pd.DataFrame({k: add_months(last_start, k) <= as_of for k in values.columns}, index=values.index)
    return values.where(observed), size


def ltv_by_group(values: pd.DataFrame, groups: pd.Series | None = None, reps: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per group and horizon: clients (with a start), eligible (old enough), ltv (mean) and its
    bootstrap 95% interval over clients (seeded per group and horizon). ``values`` = client_ltv;
    without ``groups`` only "all"; "all" is always included."""
    g = pd.Series("all", index=values.index) if groups is None else groups.reindex(values.index)
    rows = []
    labels = ["all"] + sorted(set(g.dropna()) - {"all"})
    for gi, label in enumerate(labels):
        members = values if label == "all" else values[g == label]
        for col in values.columns:
            v = members[col].dropna().to_numpy()
            rng = np.random.default_rng([seed, gi, int(col[4:-1])])
            lo, hi = percentile_interval(mean_replicates(np.sort(v), reps, rng))
            rows.append({"group": label, "horizon": col, "clients": len(members), "eligible": len(v),
                         "ltv": v.mean() if len(v) else np.nan, "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows)


def ltv_ratios(values: pd.DataFrame, groups: pd.Series, numerator: str, denominator: str,
               reps: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per horizon: mean LTV of ``numerator`` / mean LTV of ``denominator`` with a bootstrap 95%
    interval (each group resampled on its own); null when either group has no eligible client."""
    rows = []
    g = groups.reindex(values.index)
    for col in values.columns:
        a = np.sort(values.loc[g == numerator, col].dropna().to_numpy())
        b = np.sort(values.loc[g == denominator, col].dropna().to_numpy())
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
