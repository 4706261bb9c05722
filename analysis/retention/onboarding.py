"""Onboarding funnel and the support revenue share (DESIGN §4; DOMAIN §2).

Funnel: registrations (clients with signed_up_at < as-of) -> reached (an outreach row with
campaign "onboarding" and reached true; any such row when the column is absent) -> paid (a charge
before as-of); reached and paid are counted among the registrations.
reach_rate = reached / registrations; paid_rate_reached = paid among reached / reached;
paid_rate_not_reached = paid among the not reached / (registrations - reached).
"""
from __future__ import annotations

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from analysis.present import page
from analysis.data.dataset import parse_day
from analysis.data.engine import Engine, instant
from analysis.errors import InputError
from analysis.retention.months import add_months
from analysis.stats import mean_replicates, percentile_interval, rate_table

__all__ = ["funnel_table", "revenue_share_table", "funnel_flags", "funnel", "days_to_first_charge", "first_check_by_reach", "revenue_share",
           "support_revenue_share", "share_within", "share_period", "onboarding_metrics", "onboarding_headline",
           "revenue_share_text"]


def funnel_table(clients: ir.Table, payments: ir.Table, outreach: ir.Table, as_of: pd.Timestamp) -> ir.Table:
    """Per registration (signed_up_at < as-of): client_id, signed_up_at, reached (an onboarding
    outreach row, reached true when the column exists), first_charge_at (the earliest charge,
    null without one) and first_charge (the charges at that instant added up)."""
    reg = clients.filter(clients.signed_up_at < instant(as_of)).select("client_id", "signed_up_at")
    sel = outreach.campaign == "onboarding"
    if "reached" in outreach.columns:
        sel &= outreach.reached.fill_null(False)
    touched = outreach.filter(sel).select("client_id").distinct().mutate(reached=ibis.literal(True))
    charges = payments.filter((payments.amount > 0) & payments.paid_at.notnull())
    charges = charges.mutate(first=charges.paid_at.min().over(group_by=charges.client_id))
    at_first = charges.filter(charges.paid_at == charges.first)
    first = at_first.group_by("client_id").aggregate(first_charge_at=at_first.paid_at.min(),
                                                     first_charge=at_first.amount.sum())
    out = reg.left_join(touched, "client_id").drop("client_id_right")
    out = out.left_join(first, "client_id").drop("client_id_right")
    return out.mutate(reached=out.reached.fill_null(False))


def funnel_flags(eng: Engine, as_of: pd.Timestamp) -> pd.DataFrame:
    """``funnel_table`` on the engine's clients, payments and outreach (index client_id, in text
    order): signed_up_at, reached, first_charge_at, paid (a first charge exists), first_charge."""
    out = eng.frame(funnel_table(eng.table("clients"), eng.table("payments"), eng.table("outreach"), as_of))
    out = out.set_index("client_id").sort_index()
    out["reached"] = out["reached"].astype(bool)
    out["paid"] = out["first_charge_at"].notna()
    return out[["signed_up_at", "reached", "first_charge_at", "paid", "first_charge"]]


def funnel(flags: pd.DataFrame) -> pd.DataFrame:
    """The funnel as rows registrations -> reached -> paid (with rates and Wilson intervals), and
    the paid rates of the reached and the not reached."""
    n = len(flags)
    reached = int(flags["reached"].sum())
    paid = int(flags["paid"].sum())
    paid_r = int((flags["paid"] & flags["reached"]).sum())
    paid_nr = int((flags["paid"] & ~flags["reached"]).sum())
    counts = pd.DataFrame({"clients": [n, reached, paid, paid_r, paid_nr],
                           "of": [n, n, n, reached, n - reached]},
                          index=pd.Index(["registrations", "reached", "paid", "paid_among_reached",
                                          "paid_among_not_reached"], name="step"))
    return counts.join(rate_table(counts["clients"], counts["of"], name="rate"))


def days_to_first_charge(flags: pd.DataFrame) -> pd.Series:
    """Days from registration to the first charge, per paying registration."""
    p = flags[flags["paid"]]
    return ((p["first_charge_at"] - p["signed_up_at"]).dt.total_seconds() / 86400).rename("days")


def first_check_by_reach(flags: pd.DataFrame, reps: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Mean and median first check of paying clients, reached vs not, and the ratio of means with a
    bootstrap 95% interval (the source's "pay 1.5-3x more")."""
    p = flags[flags["paid"]]
    a = np.sort(p.loc[p["reached"], "first_charge"].to_numpy())
    b = np.sort(p.loc[~p["reached"], "first_charge"].to_numpy())
    ra = mean_replicates(a, reps, np.random.default_rng([seed, 1]))
    rb = mean_replicates(b, reps, np.random.default_rng([seed, 2]))
    lo, hi = percentile_interval(ra / rb) if len(a) and len(b) else (np.nan, np.nan)
    rows = [{"group": g, "payers": len(v), "mean_first_check": v.mean() if len(v) else np.nan,
             "median_first_check": np.median(v) if len(v) else np.nan} for g, v in (("reached", a), ("not_reached", b))]
    out = pd.DataFrame(rows).set_index("group")
    out.attrs["ratio"] = (a.mean() / b.mean()) if len(a) and len(b) else np.nan
    out.attrs["ratio_ci"] = (lo, hi)
    return out


def support_revenue_share(e: int, n: int, s: int) -> float:
    """(E - N) / S exactly as the source computes it; null when S is 0.

    >>> support_revenue_share(3_500, 500, 6_000)
    0.5
    """
    return (e - n) / s if s else float("nan")


def revenue_share_table(tickets: ir.Table, payments: ir.Table, start: pd.Timestamp, end: pd.Timestamp) -> ir.Table:
    """Per client with a ticket created in [start, end): contact (the first such ticket), after
    (a charge in [contact, end)) and before (a charge before the contact)."""
    t = tickets.filter(tickets.client_id.notnull() & (tickets.created_at >= instant(start))
                       & (tickets.created_at < instant(end)))
    contact = t.group_by("client_id").aggregate(contact=t.created_at.min())
    charges = payments.filter(payments.amount > 0).select("client_id", "paid_at")
    j = contact.left_join(charges, "client_id")
    hit = lambda cond: ibis.ifelse(cond, 1, 0).sum()  # noqa: E731 (a count of rows meeting cond)
    return j.group_by(["client_id", "contact"]).aggregate(
        after=hit((j.paid_at >= j.contact) & (j.paid_at < instant(end))), before=hit(j.paid_at < j.contact))


def revenue_share(eng: Engine, start: pd.Timestamp, end: pd.Timestamp) -> dict:
    """The source's support revenue share over [start, end).

    contacted = clients with a ticket created in the period (first such ticket = the contact);
    E = contacted clients with a charge in [contact, end): they paid after contacting support;
    N = those of E with no charge before the contact (new clients);
    S = contacted clients with a charge before the contact (they had paid before);
    share = (E - N) / S: the share of already-paying clients who paid again after writing.
    """
    t = eng.frame(revenue_share_table(eng.table("tickets"), eng.table("payments"), start, end))
    after, before = t["after"].fillna(0) > 0, t["before"].fillna(0) > 0
    e, n, s = int(after.sum()), int((after & ~before).sum()), int(before.sum())
    return {"from": f"{start:%Y-%m-%d}", "to_exclusive": f"{end:%Y-%m-%d}", "contacted": len(t),
            "E": e, "N": n, "S": s, "share": support_revenue_share(e, n, s)}


def share_within(flags: pd.DataFrame, days: float = 3.0) -> float | None:
    """Share of paying registrations whose first charge came within ``days`` of signing up."""
    d = days_to_first_charge(flags)
    return float((d <= days).mean()) if len(d) else None


def onboarding_metrics(table: pd.DataFrame, flags: pd.DataFrame, check: pd.DataFrame | None = None) -> dict:
    """`onboarding` (DESIGN §5): registrations, reached, paid, reach_rate, paid_rate_reached,
    paid_rate_not_reached; plus share_paying_within_3_days and first_check_ratio_reached."""
    t = table["clients"]
    rate = table["rate"]
    return {"onboarding": {"registrations": t["registrations"], "reached": t["reached"], "paid": t["paid"],
                           "reach_rate": rate["reached"], "paid_rate_reached": rate["paid_among_reached"],
                           "paid_rate_not_reached": rate["paid_among_not_reached"],
                           "share_paying_within_3_days": share_within(flags),
                           "first_check_ratio_reached": check.attrs.get("ratio") if check is not None else None}}


def share_period(date_from: str, date_to: str, as_of: pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The revenue-share period [from, to): dates YYYY-MM-DD; empty `to` = as-of, empty `from` =
    12 months before `to`; a `to` after as-of is cut at as-of."""
    end = min(parse_day(date_to, "revenue_share_to"), as_of) if date_to else as_of
    start = parse_day(date_from, "revenue_share_from") if date_from else add_months(pd.Series([end]), -12).iloc[0]
    if start >= end:
        raise InputError(f"revenue share: the period {start:%Y-%m-%d} to {end:%Y-%m-%d} is empty")
    return start, end


def onboarding_headline(table: pd.DataFrame) -> str:
    t, r = table["clients"], table["rate"]
    if not t["registrations"]:
        return "No registrations before the as-of date."
    return (f"{t['registrations']:,} registrations; {r['reached']:.0%} reached by onboarding; paid "
            f"{r['paid_among_reached']:.1%} if reached vs {r['paid_among_not_reached']:.1%} if not.")


def revenue_share_text(result: dict) -> page.Md:
    """The (E - N) / S figure with its arithmetic and caveats, in plain words."""
    e, n, s = result["E"], result["N"], result["S"]
    last = pd.Timestamp(result["to_exclusive"]) - pd.Timedelta(days=1)
    period = f"{result['from']} to {last:%Y-%m-%d}"
    share = result["share"]
    head = page.md("From {period}, {contacted:,} clients wrote to support. E = {e:,} of them paid after writing, "
                      "N = {n:,} of those were new (no charge before), S = {s:,} had paid before writing. ",
                      period=period, contacted=result["contacted"], e=e, n=n, s=s)
    # not in bold: with no comparison group the figure is the least trustworthy on the page
    head += (page.md("Share = (E - N) / S = ({e:,} - {n:,}) / {s:,} = {share:.1%}, a count of clients with no "
                        "comparison group, not revenue that support caused (the caveats below).", e=e, n=n, s=s,
                        share=share)
             if s else page.md("S is 0: no share."))
    caveats = [
        "It counts clients, not money: a client who paid once more counts as much as one who doubled the check.",
        "There is no comparison group: clients who did not write may pay again at the same rate, so this is not "
        "revenue caused by support (the source itself dropped the measure as too crude).",
        "It depends on the period: a longer period leaves more time to pay again after writing.",
    ]
    return page.join([head, "", *(page.md("- {caveat}", caveat=c) for c in caveats)])
