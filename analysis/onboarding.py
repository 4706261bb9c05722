"""Onboarding funnel and the support revenue share (DESIGN §4; DOMAIN §2).

Funnel: registrations (clients with signed_up_at < as-of) -> reached (an outreach row with
campaign "onboarding" and reached true; any such row when the column is absent) -> paid (a charge
before as-of); reached and paid are counted among the registrations.
reach_rate = reached / registrations; paid_rate_reached = paid among reached / reached;
paid_rate_not_reached = paid among the not reached / (registrations - reached).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import keys, present
from analysis.dataset import parse_day
from analysis.errors import InputError
from analysis.months import add_months
from analysis.stats import mean_replicates, percentile_interval, rate_table

__all__ = ["funnel_flags", "funnel", "days_to_first_charge", "first_check_by_reach", "revenue_share",
           "support_revenue_share", "share_within", "share_period", "onboarding_metrics", "onboarding_headline",
           "revenue_share_text"]


def funnel_flags(clients: pd.DataFrame, payments: pd.DataFrame, outreach: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Per registration: reached, paid, signed_up_at, first_charge_at, first_charge."""
    signed = np.flatnonzero(np.asarray(clients["signed_up_at"] < as_of, dtype=bool))
    reg = clients[["client_id", "signed_up_at"]].take(signed).set_index("client_id")
    # reached: a (reached) onboarding contact with the client, found through the outreach's
    # client rows (kept from validation's reference check) instead of hashing the ids again
    sel = np.asarray((outreach["campaign"] == "onboarding").fillna(False), dtype=bool)
    if "reached" in outreach.columns:
        sel &= np.asarray(outreach["reached"].fillna(False), dtype=bool)
    contacted = keys.present(clients["client_id"], outreach["client_id"], where=sel)
    # the first charge per registration, on int64 nanoseconds
    pos = keys.codes(payments["client_id"], reg.index, read_only=True)  # integer keys; charges of others drop out
    rows = np.flatnonzero((payments["amount"].to_numpy() > 0) & (pos >= 0))
    pos, paid = pos[rows], keys.ns(payments["paid_at"])[rows]
    first = keys.ns_extreme(paid, pos, len(reg))  # NAT: no charge
    at_first = np.flatnonzero(paid == first[pos])
    at_first = at_first[paid[at_first] != keys.NAT]  # a null time is no first charge
    out = reg.copy()
    out["reached"] = contacted[signed]
    out["first_charge_at"] = keys.as_times(first, payments["paid_at"].dtype).array
    out["paid"] = out["first_charge_at"].notna()
    amount = pd.Series(payments["amount"].to_numpy()[rows[at_first]])
    out["first_charge"] = amount.groupby(keys.code_groups(pos[at_first], len(reg)), observed=False).sum(
        min_count=1).to_numpy()  # null without a charge
    return out


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


def revenue_share(tickets: pd.DataFrame, payments: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> dict:
    """The source's support revenue share over [start, end).

    contacted = clients with a ticket created in the period (first such ticket = the contact);
    E = contacted clients with a charge in [contact, end): they paid after contacting support;
    N = those of E with no charge before the contact (new clients);
    S = contacted clients with a charge before the contact (they had paid before);
    share = (E - N) / S: the share of already-paying clients who paid again after writing.
    """
    t = tickets[tickets["client_id"].notna() & (tickets["created_at"] >= start) & (tickets["created_at"] < end)]
    contact = t.groupby("client_id")["created_at"].min()
    pos = keys.codes(payments["client_id"], contact.index, read_only=True)  # the contacted client's row, -1 for others
    rows = np.flatnonzero((payments["amount"].to_numpy() > 0) & (pos >= 0))
    pos, paid = pos[rows], keys.ns(payments["paid_at"])[rows]
    at = keys.ns(contact)[pos]
    after = np.bincount(pos[(paid >= at) & (paid < end.value)], minlength=len(contact)) > 0
    before = np.bincount(pos[paid < at], minlength=len(contact)) > 0
    e = int(after.sum())
    n = int((after & ~before).sum())
    s = int(before.sum())
    return {"from": f"{start:%Y-%m-%d}", "to_exclusive": f"{end:%Y-%m-%d}", "contacted": len(contact),
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


def revenue_share_text(result: dict) -> present.Md:
    """The (E - N) / S figure with its arithmetic and caveats, in plain words."""
    e, n, s = result["E"], result["N"], result["S"]
    last = pd.Timestamp(result["to_exclusive"]) - pd.Timedelta(days=1)
    period = f"{result['from']} to {last:%Y-%m-%d}"
    share = result["share"]
    head = present.md("From {period}, {contacted:,} clients wrote to support. E = {e:,} of them paid after writing, "
                      "N = {n:,} of those were new (no charge before), S = {s:,} had paid before writing. ",
                      period=period, contacted=result["contacted"], e=e, n=n, s=s)
    # not in bold: with no comparison group the figure is the least trustworthy on the page
    head += (present.md("Share = (E - N) / S = ({e:,} - {n:,}) / {s:,} = {share:.1%}, a count of clients with no "
                        "comparison group, not revenue that support caused (the caveats below).", e=e, n=n, s=s,
                        share=share)
             if s else present.md("S is 0: no share."))
    caveats = [
        "It counts clients, not money: a client who paid once more counts as much as one who doubled the check.",
        "There is no comparison group: clients who did not write may pay again at the same rate, so this is not "
        "revenue caused by support (the source itself dropped the measure as too crude).",
        "It depends on the period: a longer period leaves more time to pay again after writing.",
    ]
    return present.join([head, "", *(present.md("- {caveat}", caveat=c) for c in caveats)])
