"""First-month churn and client lifetimes (DESIGN §4, Retention).

- first-month churn = share of clients with no further charge (amount > 0, paid_at > start) in
  (start, start + 1 month + grace] among the eligible clients: those with
  start + 1 month + grace <= as-of (younger clients cannot have churned yet, and are not counted);
- lifetime: churn date = last charge + 1 month + grace when that is <= as-of (the renewal that
  never came, plus grace), else the client is censored at as-of. Durations are measured from the
  start as lifelines' ``datetimes_to_durations`` measures them, with the as-of date as its fill
  date (``durations``);
- first spell (``first_spells``, for the renewal model of the support effect): the same rule
  applied to every charge in time order, so a client who lapsed and came back later has churned
  at the first lapse (the return is a win-back, the subject of 05_winback_comebacks).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import keys
from analysis.months import add_months
from analysis.stats import rate_table

__all__ = ["first_month_status", "first_month_churn", "first_month_table", "first_month_by_cohort", "lifetimes",
           "first_spells", "durations", "DAYS_PER_MONTH"]

DAYS_PER_MONTH = 30.4375  # for showing day durations in months (365.25 / 12)


def first_month_status(payments: pd.DataFrame, starts: pd.DataFrame, as_of: pd.Timestamp,
                       grace_days: int) -> pd.DataFrame:
    """Per client with a start: deadline (start + 1 month + grace), eligible, churned (null when
    not eligible)."""
    deadline = add_months(starts["start"], 1) + pd.Timedelta(days=grace_days)
    pos = keys.codes(payments["client_id"], starts.index, read_only=True)
    amount, paid = payments["amount"].to_numpy(), keys.ns(payments["paid_at"])
    # each client's window (start, deadline] as one 16-byte item: one random read per payment
    # fetches both ends (two separate lookups take twice the cache misses at 1M clients)
    window = np.empty((len(starts), 2), dtype="int64")
    window[:, 0], window[:, 1] = keys.ns(starts["start"]), keys.ns(deadline)
    window = window.view("V16").ravel()
    renewed = np.zeros(len(starts), dtype=bool)
    if not len(starts):  # no client with a charge: nothing to look up (below, -1 reads the last client)
        pos = pos[:0]
    # on int64 nanoseconds, in blocks (a start is never null; a null paid_at, the smallest
    # int64, is never after a start, so it is never in a window, as with NaT)
    for b in keys.blocks(len(pos)):
        p, t = pos[b], paid[b]
        charge = (amount[b] > 0) & (p >= 0)  # a -1 reads the last client below, and is left out here
        w = window[p].view("int64").reshape(-1, 2)
        renewed[p[charge & (t > w[:, 0]) & (t <= w[:, 1])]] = True
    eligible = deadline <= as_of
    churned = pd.Series(~renewed, index=starts.index).astype("boolean").where(eligible)
    return pd.DataFrame({"deadline": deadline, "eligible": eligible, "churned": churned}, index=starts.index)


def first_month_churn(status: pd.DataFrame, by: pd.Series | list[pd.Series] | None = None) -> pd.DataFrame:
    """clients (eligible), churned and rate with its Wilson 95% interval, overall or per group.
    Rate null (not 0) where no client is eligible."""
    frame = pd.DataFrame({"clients": status["eligible"].astype("int64"),
                          "churned": status["churned"].fillna(False).astype("int64")}, index=status.index)
    counts = frame.sum().to_frame("all").T if by is None else frame.groupby(by, observed=True).sum()
    counts = counts.astype("int64")
    return counts.join(rate_table(counts["churned"], counts["clients"], name="rate"))


def first_month_table(status: pd.DataFrame, groups: pd.Series | None = None) -> pd.DataFrame:
    """First-month churn for "all" and, with ``groups``, each group below it."""
    parts = [first_month_churn(status)]
    if groups is not None:
        parts.append(first_month_churn(status, groups.rename("group")))
    return pd.concat(parts)


def first_month_by_cohort(status: pd.DataFrame, cohort: pd.Series, groups: pd.Series | None = None) -> pd.DataFrame:
    """First-month churn per cohort (and group): long table cohort, group, clients, churned, rate
    with its Wilson interval; cohorts with no eligible client are left out (nothing to measure)."""
    g = pd.Series("all", index=status.index, name="group") if groups is None else groups.rename("group")
    parts = [first_month_churn(status, [cohort.rename("cohort"), pd.Series("all", index=status.index, name="group")])]
    if groups is not None:
        parts.append(first_month_churn(status, [cohort.rename("cohort"), g]))
    out = pd.concat(parts).reset_index()
    return out[out["clients"] > 0].sort_values(["group", "cohort"], kind="stable").reset_index(drop=True)


def lifetimes(payments: pd.DataFrame, starts: pd.DataFrame, as_of: pd.Timestamp, grace_days: int) -> pd.DataFrame:
    """Per client with a start: last_charge, churn_at (NaT when censored), churned, and duration
    in days from the start to the churn date or to as-of (fractional, from hours)."""
    pos = keys.codes(payments["client_id"], starts.index, read_only=True)
    last = keys.ns_extreme(keys.ns(payments["paid_at"]), pos, len(starts), largest=True,
                           where=payments["amount"].to_numpy() > 0)
    last = pd.Series(keys.as_times(last, payments["paid_at"].dtype).array, index=starts.index)
    churn_at = add_months(last, 1) + pd.Timedelta(days=grace_days)
    churn_at = churn_at.where(churn_at <= as_of)
    hours, observed = durations(starts["start"], churn_at, fill_date=as_of, freq="h")
    return pd.DataFrame({"start": starts["start"], "last_charge": last, "churn_at": churn_at,
                         "churned": observed.astype(bool), "duration_days": hours / 24.0}, index=starts.index)


def first_spells(payments: pd.DataFrame, starts: pd.DataFrame, as_of: pd.Timestamp, grace_days: int) -> pd.DataFrame:
    """Per client of ``starts``: the first paying spell, as ``lifetimes`` shows a whole life.

    The churn rule of ``lifetimes`` (no charge within 1 month + grace after a charge) is applied
    to each charge (amount > 0) in time order: the spell's last charge is the first charge c whose
    next charge comes after c + 1 month + grace days, or that has none. churn_at = that charge +
    1 month + grace when <= as-of, else NaT (still in the first spell: censored). Charges at one
    instant count once. Without a lapse the spell is the whole life (``lifetimes``' last charge).
    A client who lapsed and came back churned at the first lapse: the months of the gap are not
    renewals, and the return is a win-back, not a renewal decision (the renewal model,
    ``effect.renewal_panel``, follows the first spell).

    >>> t = lambda d: pd.Timestamp(d, tz="UTC")
    >>> pay = pd.DataFrame({"client_id": ["a"] * 4, "amount": [10.0] * 4,
    ...                     "paid_at": [t("2025-01-01"), t("2025-02-01"), t("2025-06-01"), t("2025-07-01")]})
    >>> starts = pd.DataFrame({"start": [t("2025-01-01")]}, index=pd.Index(["a"], name="client_id"))
    >>> r = first_spells(pay, starts, t("2025-08-01"), 14).iloc[0]
    >>> str(r.last_charge.date()), str(r.churn_at.date()), bool(r.churned)
    ('2025-02-01', '2025-03-15', True)
    """
    pos = keys.codes(payments["client_id"], starts.index, read_only=True)
    keep = (pos >= 0) & (payments["amount"].to_numpy() > 0)
    code, at = pos[keep], keys.ns(payments["paid_at"])[keep]
    order = np.lexsort((at, code))
    code, at = code[order], at[order]
    deadline = keys.ns(add_months(pd.Series(keys.from_ns(at)), 1)) + grace_days * 86_400 * 10**9
    same_next = np.zeros(len(code), dtype=bool)
    same_next[:-1] = code[1:] == code[:-1]
    next_at = np.zeros(len(code), dtype="int64")
    next_at[:-1] = at[1:]
    lapse = ~same_next | (next_at > deadline)
    rows = np.flatnonzero(lapse)
    client, first = np.unique(code[rows], return_index=True)   # each client's first lapse
    last = np.full(len(starts), keys.NAT, dtype="int64")
    last[client] = at[rows[first]]
    last = pd.Series(keys.from_ns(last), index=starts.index)
    churn_at = add_months(last, 1) + pd.Timedelta(days=grace_days)
    churn_at = churn_at.where(churn_at <= as_of)
    return pd.DataFrame({"start": starts["start"], "last_charge": last, "churn_at": churn_at,
                         "churned": churn_at.notna().to_numpy()}, index=starts.index)


def durations(start: pd.Series, end: pd.Series, fill_date: pd.Timestamp, freq: str = "h") -> tuple[np.ndarray, np.ndarray]:
    """lifelines' ``datetimes_to_durations(start, end, fill_date=fill_date, freq=freq)`` for
    timestamp columns: (durations as floats in whole ``freq`` units, observed). An end is
    observed when it is not null and not after ``fill_date``; otherwise the duration runs to
    ``fill_date``. The duration is numpy's cast of (end - start) to ``timedelta64[freq]``, as
    lifelines does. lifelines also tests every end against the text "" through
    ``astype(str)``, a string per row (1.5 s per million clients); for timestamps that test is
    never true and is left out. Checked against lifelines in the tests (nulls, ends after the
    fill date, ends before the start).

    >>> s = pd.Series(pd.to_datetime(["2024-01-01", "2024-01-01"], utc=True))
    >>> e = pd.Series(pd.to_datetime(["2024-01-02 05:30", None], utc=True))
    >>> t, c = durations(s, e, pd.Timestamp("2024-01-03", tz="UTC"))
    >>> t.tolist(), c.tolist()
    ([29.0, 48.0], [True, False])
    """
    start, end = pd.Series(start), pd.Series(end, index=pd.Series(start).index)
    observed = (end.notna() & ~(end > fill_date)).to_numpy()
    ends = end.where(observed, fill_date)
    return (ends - start).to_numpy().astype(f"timedelta64[{freq}]").astype(float), observed
