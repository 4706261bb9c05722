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

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from analysis.retention import cohorts
from analysis.data import engine
from analysis.data.engine import Engine, of_clients
from analysis.stats import rate_table

__all__ = ["renewal_deadline", "first_month_table_expr", "last_charges", "first_lapses", "first_month_status", "first_month_churn", "first_month_table", "first_month_by_cohort", "lifetimes",
           "first_spells", "durations", "DAYS_PER_MONTH"]

DAYS_PER_MONTH = 30.4375  # for showing day durations in months (365.25 / 12)


def renewal_deadline(at: ir.TimestampValue, grace_days: int) -> ir.TimestampValue:
    """at + 1 calendar month + ``grace_days`` days (months before days, DESIGN §4)."""
    return engine.add_months(at, 1) + ibis.interval(days=grace_days)


def first_month_table_expr(payments: ir.Table, starts: ir.Table, grace_days: int) -> ir.Table:
    """Per client with a start: start, deadline (start + 1 month + grace) and renewals (the
    charges in (start, deadline]), as an Ibis expression."""
    s = starts.select("client_id", "start", deadline=renewal_deadline(starts.start, grace_days))
    charges = payments.filter(payments.amount > 0).select("client_id", "paid_at")
    j = s.join(charges, "client_id")
    inside = (j.paid_at > j.start) & (j.paid_at <= j.deadline)
    return j.group_by(["client_id", "start", "deadline"]).aggregate(
        renewals=ibis.ifelse(inside, 1, 0).sum())


def first_month_status(eng: Engine, as_of: pd.Timestamp, grace_days: int) -> pd.DataFrame:
    """Per client with a start (index client_id, in text order): deadline (start + 1 month +
    grace), eligible (deadline <= as-of), churned (no charge in (start, deadline]; null when not
    eligible)."""
    payments = eng.table("payments")
    out = eng.frame(first_month_table_expr(payments, cohorts.starts_in(eng), grace_days))
    out = out.set_index("client_id").sort_index()
    eligible = out["deadline"] <= as_of
    churned = (out["renewals"] == 0).astype("boolean").where(eligible)
    return pd.DataFrame({"deadline": out["deadline"], "eligible": eligible, "churned": churned}, index=out.index)


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


def last_charges(payments: ir.Table, grace_days: int) -> ir.Table:
    """Per client with a charge: start (the first charge), last_charge (the latest) and lapse_at
    = last charge + 1 month + grace (the renewal that never came), as an Ibis expression."""
    charges = payments.filter((payments.amount > 0) & payments.client_id.notnull())
    last = charges.group_by("client_id").aggregate(start=charges.paid_at.min(), last_charge=charges.paid_at.max())
    return last.mutate(lapse_at=renewal_deadline(last.last_charge, grace_days))


def _life(frame: pd.DataFrame, as_of: pd.Timestamp, with_durations: bool) -> pd.DataFrame:
    """A per-client frame with start, last_charge and lapse_at, as ``lifetimes`` returns it."""
    frame = frame.set_index("client_id").sort_index()
    churn_at = frame["lapse_at"].where(frame["lapse_at"] <= as_of)
    out = pd.DataFrame({"start": frame["start"], "last_charge": frame["last_charge"], "churn_at": churn_at,
                        "churned": churn_at.notna().to_numpy()}, index=frame.index)
    if with_durations:
        hours, _ = durations(out["start"], churn_at, fill_date=as_of, freq="h")
        out["duration_days"] = hours / 24.0
    return out


def lifetimes(eng: Engine, as_of: pd.Timestamp, grace_days: int) -> pd.DataFrame:
    """Per client with a start (index client_id, in text order): start, last_charge, churn_at
    (last charge + 1 month + grace when <= as-of, else NaT: censored), churned, and duration in
    days from the start to the churn date or to as-of (fractional, from whole hours)."""
    return _life(eng.frame(last_charges(eng.table("payments"), grace_days)), as_of, True)


def first_lapses(payments: ir.Table, grace_days: int) -> ir.Table:
    """Per client with a charge: start (the first charge), last_charge = the first charge whose
    next charge comes after it + 1 month + grace, or that has none, and lapse_at = that charge +
    1 month + grace, as an Ibis expression. Charges at one instant need no deduplication: each
    but the last of them has its next charge at the same instant, never a lapse."""
    charges = payments.filter((payments.amount > 0) & payments.client_id.notnull()).select("client_id", "paid_at")
    w = ibis.window(group_by=charges.client_id, order_by=charges.paid_at)
    charges = charges.mutate(next_at=charges.paid_at.lead().over(w),
                             deadline=renewal_deadline(charges.paid_at, grace_days))
    lapse = charges.next_at.isnull() | (charges.next_at > charges.deadline)
    first = charges.group_by("client_id").aggregate(start=charges.paid_at.min(),
                                                    last_charge=charges.paid_at.min(where=lapse))
    return first.mutate(lapse_at=renewal_deadline(first.last_charge, grace_days))


def first_spells(eng: Engine, as_of: pd.Timestamp, grace_days: int, clients=None) -> pd.DataFrame:
    """Per client with a start (or those of them in ``clients``, a sample's ids, whose payments
    alone are read: ``engine.of_clients``): the first paying spell, as ``lifetimes`` shows a
    whole life.

    The churn rule of ``lifetimes`` (no charge within 1 month + grace after a charge) is applied
    to each charge (amount > 0) in time order (``first_lapses``): churn_at = the spell's last
    charge + 1 month + grace when <= as-of, else NaT (still in the first spell: censored).
    Without a lapse the spell is the whole life (``lifetimes``' last charge). A client who
    lapsed and came back churned at the first lapse: the months of the gap are not renewals,
    and the return is a win-back, not a renewal decision (the renewal model,
    ``effect.renewal_panel``, follows the first spell).

    >>> from analysis.data.engine import from_frames
    >>> t = lambda d: pd.Timestamp(d, tz="UTC")
    >>> pay = pd.DataFrame({"client_id": ["a"] * 4, "amount": [10.0] * 4,
    ...                     "paid_at": [t("2025-01-01"), t("2025-02-01"), t("2025-06-01"), t("2025-07-01")]})
    >>> r = first_spells(from_frames({"payments": pay}), t("2025-08-01"), 14).iloc[0]
    >>> str(r.last_charge.date()), str(r.churn_at.date()), bool(r.churned)
    ('2025-02-01', '2025-03-15', True)
    """
    payments = eng.table("payments")
    if clients is not None:
        payments = of_clients(payments, clients)
    return _life(eng.frame(first_lapses(payments, grace_days)), as_of, False)


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
