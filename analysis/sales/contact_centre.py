"""Outsourced contact centre economics (DOMAIN §3; DESIGN §7): what the same calls cost under
each pricing model, CPA, ROI and break-even conversion per model and vendor, the scenario
calculator behind the source's case, and a pilot read-out.

Conventions (data/README.md): a lead belongs to the vendor of its first cold call (calls.vendor;
"in-house" calls are the company's own conveyor and are not priced); a lead is converted when it
has converted_at; its revenue is leads.revenue when given, else the net payments of its client
(leads.client_id) from the conversion to as-of.

Pricing models, cost for one vendor's calls and leads:
  per_minute         price x billable minutes (each call rounded up to the billing increment)
  per_hour           price x operator hours (sum of call durations / 3600)
  per_status_minute  sum over calls of price[status] x billable minutes
  per_result_call    price x calls with a result (the presentation was delivered)
  per_lead           price x leads qualified (qualified_at, or a call with result lead / sale)
  per_client         price x converted leads
  revenue_share      share x revenue of the converted leads
CPA = cost / converted leads; ROI = (revenue - cost) / cost; break-even conversion = the
conversion at which the revenue of the same leads pays the cost: cost / (leads x revenue per
converted lead) for the models priced on work; for per_client it is met at any conversion when
the price is below the revenue per client (null otherwise), and revenue_share at any (null).
"""
from __future__ import annotations

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from analysis.present import page
from analysis.data.engine import Engine, memtable
from analysis.errors import InputError
from analysis.stats import wilson_interval

__all__ = ["vendor_summary", "implied_scenario", "price_table", "MODELS", "DEFAULT_PRICES", "lead_table", "lead_outcomes", "billable_minutes", "call_units", "model_costs", "unit_economics",
           "cpa_change", "implied_cost_ratio", "scenario", "pilot_readout", "pilot_from_data", "prices_from",
           "contact_centre_metrics", "headline", "scenario_text", "pilot_text", "RISKS"]

MODELS = ("per_minute", "per_hour", "per_status_minute", "per_result_call", "per_lead", "per_client",
          "revenue_share")
DEFAULT_PRICES = {"per_minute": 12.0, "per_hour": 600.0,
                  "per_status_minute": {"no_answer": 4.0, "secretary": 8.0, "decision_maker": 14.0, "consent": 20.0},
                  "per_result_call": 60.0, "per_lead": 400.0, "per_client": 3000.0, "revenue_share": 0.10}


def lead_table(leads: ir.Table, calls: ir.Table, payments: ir.Table | None = None) -> ir.Table:
    """Per lead: lead_id, created_at, vendor (of its first call not made in-house; ties in time
    by vendor name; null without one), called_qualified (a call with result lead or sale), the
    lead's own qualified_at, converted_at, revenue and client_id when it has them, and paid_since
    (its client's net payments at or after the conversion, when payments are given)."""
    own = [c for c in ("qualified_at", "converted_at", "revenue", "client_id") if c in leads.columns]
    out = leads.select("lead_id", "created_at", *own)
    if "vendor" in calls.columns:
        cold = calls.filter((calls.vendor.fill_null("in-house") != "in-house") & calls.lead_id.notnull())
        order = [cold.started_at.isnull(), cold.started_at, cold.vendor]  # a missing time sorts last
        cold = cold.mutate(rank=ibis.row_number().over(group_by=cold.lead_id, order_by=order))
        first = cold.filter(cold["rank"] == 0).select("lead_id", "vendor")
        out = out.left_join(first, "lead_id").drop("lead_id_right")
    if "result" in calls.columns:
        hit = calls.filter(calls.result.isin(["lead", "sale"])).select("lead_id").distinct()
        out = out.left_join(hit.mutate(called_qualified=ibis.literal(True)), "lead_id").drop("lead_id_right")
    if payments is not None and "client_id" in leads.columns and "converted_at" in leads.columns:
        link = leads.filter(leads.client_id.notnull() & leads.converted_at.notnull()).select(
            "lead_id", "client_id", "converted_at")
        j = link.join(payments.select("client_id", "paid_at", "amount"), "client_id")
        since = j.filter(j.paid_at >= j.converted_at).group_by("lead_id").aggregate(paid_since=lambda t: t.amount.sum())
        out = out.left_join(since, "lead_id").drop("lead_id_right")
    return out


def lead_outcomes(eng: Engine) -> pd.DataFrame:
    """Per lead (index lead_id, in text order): created_at, vendor (of its first call not made
    in-house; "vendor" when calls have no vendor column), qualified (a call with result lead or
    sale, or qualified_at set), converted (converted_at set) and revenue (the lead's revenue when
    the leads carry it, else its client's net payments from the conversion on; 0 unless
    converted)."""
    calls = eng.table("calls")
    t = eng.frame(lead_table(eng.table("leads"), calls, eng.table("payments"))).set_index("lead_id").sort_index()
    out = pd.DataFrame({"created_at": t["created_at"]}, index=t.index)
    out["vendor"] = t["vendor"] if "vendor" in calls.columns else "vendor"
    qualified = t["called_qualified"].astype("boolean").fillna(False).astype(bool) if "called_qualified" in t.columns \
        else pd.Series(False, index=t.index)
    if "qualified_at" in t.columns:
        qualified |= t["qualified_at"].notna()
    out["qualified"] = qualified.to_numpy(dtype=bool)
    out["converted"] = t["converted_at"].notna().to_numpy() if "converted_at" in t.columns else False
    revenue = pd.Series(0.0, index=t.index)
    if "revenue" in t.columns and t["revenue"].notna().any():
        revenue = t["revenue"].astype("float64").fillna(0.0)
    elif "paid_since" in t.columns:
        revenue = t["paid_since"].astype("float64").fillna(0.0)
    out["revenue"] = revenue.where(out["converted"], 0.0)
    return out


def billable_minutes(duration_s: ir.NumericValue, increment_s: int = 60) -> ir.FloatingValue:
    """Each call rounded up to the billing increment, in minutes: ceil(duration_s / increment) x
    increment / 60 (0, 1, 60, 61, 150 s at 60 -> 0, 1, 1, 2, 3; a 0-second call bills nothing;
    null without a duration)."""
    return (duration_s.cast("float64") / increment_s).ceil().cast("float64") * (increment_s / 60.0)


def call_units(eng: Engine, prices: dict, increment_s: int = 60) -> pd.DataFrame:
    """Per vendor (index, text order) of the calls not made in-house (every call is "vendor"'s
    when calls have no vendor column): billable minutes, hours (durations / 3600), status_cost
    (each call's status price x its billable minutes; a status without a price costs nothing) and
    result_calls (calls with a result). Summed in the engine."""
    calls = eng.table("calls")
    if "vendor" in calls.columns:
        calls = calls.filter(calls.vendor.fill_null("in-house") != "in-house")
        vendor = calls.vendor
    else:
        vendor = ibis.literal("vendor")
    minutes = billable_minutes(calls.duration_s, increment_s)
    status_price = ibis.cases(*[(calls.status == k, float(v)) for k, v in prices["per_status_minute"].items()],
                              else_=ibis.null("float64")) if prices["per_status_minute"] else ibis.null("float64")
    results = ibis.ifelse(calls.result.notnull(), 1, 0) if "result" in calls.columns else ibis.literal(0)
    out = eng.frame(calls.group_by(vendor=vendor).aggregate(
        minutes=minutes.sum(), hours=(calls.duration_s.cast("float64") / 3600).sum(),
        status_cost=(status_price.cast("float64") * minutes).sum(), result_calls=results.sum()))
    out = out.set_index("vendor").sort_index()
    return out.astype("float64").fillna(0.0)


def model_costs(eng: Engine, outcomes: pd.DataFrame, prices: dict, increment_s: int = 60) -> pd.DataFrame:
    """Cost of each vendor's work under every pricing model (rows: vendor x model), with the
    units billed: the calls' from ``call_units``, the leads' from ``outcomes``; in-house calls
    are not priced."""
    g = call_units(eng, prices, increment_s)
    lo = outcomes.dropna(subset=["vendor"]).groupby("vendor")
    units = pd.DataFrame({"per_minute": g["minutes"], "per_hour": g["hours"],
                          "per_status_minute": g["minutes"], "per_result_call": g["result_calls"],
                          "per_lead": lo["qualified"].sum(), "per_client": lo["converted"].sum(),
                          "revenue_share": lo["revenue"].sum()}).fillna(0.0)
    cost = pd.DataFrame({"per_minute": units["per_minute"] * prices["per_minute"],
                         "per_hour": units["per_hour"] * prices["per_hour"],
                         "per_status_minute": g["status_cost"],
                         "per_result_call": units["per_result_call"] * prices["per_result_call"],
                         "per_lead": units["per_lead"] * prices["per_lead"],
                         "per_client": units["per_client"] * prices["per_client"],
                         "revenue_share": units["revenue_share"] * prices["revenue_share"]}).fillna(0.0)
    out = pd.concat({"units": units.stack(), "cost": cost.stack()}, axis=1)
    out.index.names = ["vendor", "model"]
    return out


def unit_economics(costs: pd.DataFrame, outcomes: pd.DataFrame, prices: dict) -> pd.DataFrame:
    """Per vendor and model: leads, conversions, conversion with its Wilson interval, revenue,
    cost, CPA, ROI and break-even conversion (see the module docstring)."""
    o = outcomes.dropna(subset=["vendor"]).groupby("vendor").agg(leads=("converted", "size"),
                                                                  converted=("converted", "sum"),
                                                                  revenue=("revenue", "sum"))
    t = costs.reset_index().merge(o.reset_index(), on="vendor", how="left")
    t["conversion"] = t["converted"] / t["leads"]
    t["conversion_low"], t["conversion_high"] = wilson_interval(t["converted"], t["leads"])
    t["cpa"] = t["cost"] / t["converted"].where(t["converted"] > 0)
    t["roi"] = (t["revenue"] - t["cost"]) / t["cost"].where(t["cost"] > 0)
    per_client = t["revenue"] / t["converted"].where(t["converted"] > 0)
    t["break_even_conversion"] = t["cost"] / (t["leads"] * per_client)
    price_client = prices["per_client"]
    t.loc[t["model"] == "per_client", "break_even_conversion"] = np.where(
        price_client < per_client[t["model"] == "per_client"], 0.0, np.nan)
    t.loc[t["model"] == "revenue_share", "break_even_conversion"] = np.nan
    return t.set_index(["vendor", "model"])


def cpa_change(conv_before: float, conv_after: float, cost_ratio: float) -> float:
    """Relative change of CPA when conversion moves and the cost per processed lead is multiplied
    by ``cost_ratio``: CPA = cost per lead / conversion, so the change = cost_ratio x
    conv_before / conv_after - 1."""
    return cost_ratio * conv_before / conv_after - 1


VENDOR_COLUMNS = ["leads", "converted", "conversion", "conversion_low", "conversion_high", "revenue"]


def vendor_summary(economics: pd.DataFrame) -> pd.DataFrame:
    """One row per vendor of ``unit_economics`` (whose rows are vendor x pricing model): its
    leads, conversions, conversion with its Wilson interval and revenue, which are the same in
    every model's row (the models price the same calls)."""
    return economics.groupby(level="vendor", sort=False).first()[VENDOR_COLUMNS]


def implied_cost_ratio(conv_before: float, conv_after: float, change: float) -> float:
    """The cost-per-lead ratio that a CPA change implies: (1 + change) x conv_after / conv_before."""
    return (1 + change) * conv_after / conv_before


def scenario(leads: int, conv_before: float, conv_after: float, cost_per_lead_before: float,
             cost_per_lead_after: float, revenue_per_client: float) -> dict:
    """The source's calculator: the same lead base worked at two conversions and two costs per
    processed lead. Returns the CPA before and after, its change, and the extra clients and
    revenue from the same base."""
    cpa_b = cost_per_lead_before / conv_before
    cpa_a = cost_per_lead_after / conv_after
    extra = leads * (conv_after - conv_before)
    return {"cpa_before": cpa_b, "cpa_after": cpa_a, "cpa_change": cpa_a / cpa_b - 1,
            "extra_clients": extra, "extra_revenue": extra * revenue_per_client,
            "cost_before": leads * cost_per_lead_before, "cost_after": leads * cost_per_lead_after}


def implied_scenario(leads: int, conv_before: float, conv_after: float, cost_per_lead_before: float,
                     cpa_change_seen: float, revenue_per_client: float) -> tuple[float, dict]:
    """The source's case worked backwards: the cost-per-lead ratio a seen CPA change implies
    (``implied_cost_ratio``), and the calculator (``scenario``) at the cost per lead after =
    before x that ratio. Returns (ratio, scenario)."""
    ratio = implied_cost_ratio(conv_before, conv_after, cpa_change_seen)
    return ratio, scenario(leads, conv_before, conv_after, cost_per_lead_before, cost_per_lead_before * ratio,
                           revenue_per_client)


def pilot_readout(trial_leads: int, trial_conversions: int, centre_cost_per_lead: float,
                  revenue_per_client: float, client_margin: float = 1.0) -> dict:
    """A limited trial read out: conversion with its Wilson 95% interval, and the price per
    converted client at which each side breaks even. The centre breaks even when the price pays
    its cost per client = its cost per processed lead / conversion (with the interval, from the
    conversion's bounds); the client when the price is at most its margin on a client's revenue."""
    conv = trial_conversions / trial_leads if trial_leads else np.nan
    lo, hi = wilson_interval([trial_conversions], [trial_leads])
    return {"leads": trial_leads, "conversions": trial_conversions, "conversion": conv,
            "conversion_low": float(lo[0]), "conversion_high": float(hi[0]),
            "centre_break_even_price": centre_cost_per_lead / conv if conv else np.nan,
            "centre_break_even_price_range": (centre_cost_per_lead / hi[0] if hi[0] else np.nan,
                                              centre_cost_per_lead / lo[0] if lo[0] else np.inf),
            "client_break_even_price": revenue_per_client * client_margin,
            "deal_possible": bool(conv and centre_cost_per_lead / conv <= revenue_per_client * client_margin)}


RISKS = pd.DataFrame([
    ("per_minute", "work", "client", "The centre is paid for time whatever comes of it; low conversion costs the client."),
    ("per_hour", "work", "client", "As per minute, coarser; idle and hold time are billed too."),
    ("per_status_minute", "work", "shared", "Minutes reaching decision makers cost more: pays for reach, not outcome."),
    ("per_result_call", "result", "shared", "The centre carries reach (bases, secretaries); the client carries the offer."),
    ("per_lead", "result", "centre", "The centre carries reach and qualification; the client, its own sales."),
    ("per_client", "result", "centre", "The centre carries the whole funnel, including the client's inaction."),
    ("revenue_share", "result", "centre", "The centre carries everything and shares the upside of big checks."),
], columns=["model", "paid_for", "risk_with", "why"]).set_index("model")


def prices_from(per_minute: float, per_hour: float, per_status_minute: dict, per_result_call: float, per_lead: float,
                per_client: float, revenue_share: float) -> dict:
    """The prices of every model in one dict (notebook parameters -> model_costs)."""
    missing = [s for s in ("no_answer", "secretary", "decision_maker", "consent") if s not in per_status_minute]
    if missing:
        raise InputError(f"price_per_status_minute needs a price for: {', '.join(missing)}")
    return {"per_minute": per_minute, "per_hour": per_hour, "per_status_minute": dict(per_status_minute),
            "per_result_call": per_result_call, "per_lead": per_lead, "per_client": per_client,
            "revenue_share": revenue_share}


def price_table(prices: dict, currency: str | None = None) -> pd.DataFrame:
    """The assumed prices as a table for the report: one row per pricing model and call status
    (only the status-priced minute has several), with what one unit is and its price as text:
    money in the reporting ``currency`` (``page.format_money``), the revenue share as a
    percentage of the converted clients' revenue."""
    units = {"per_minute": "a started billing increment, as minutes", "per_hour": "an hour of calls",
             "per_result_call": "a call with a result", "per_lead": "a confirmed lead",
             "per_client": "a converted client", "revenue_share": "share of the converted clients' revenue"}
    rows = []
    for model, price in prices.items():
        if isinstance(price, dict):
            rows += [{"model": model, "status": status, "unit": f"a minute of a call ending with {status}",
                      "price": page.format_money(p, currency)} for status, p in price.items()]
        else:
            text = page.format_percent(price) if model == "revenue_share" else page.format_money(price, currency)
            rows.append({"model": model, "status": "", "unit": units.get(model, ""), "price": text})
    return pd.DataFrame(rows).set_index(["model", "status"])


def pilot_from_data(eng: Engine, outcomes: pd.DataFrame, vendor: str, trial_leads: int, prices: dict,
                    increment_s: int = 60, client_margin: float = 1.0) -> dict:
    """A trial read out from the data: the vendor's first ``trial_leads`` leads (by creation).
    The centre's cost per lead is what their calls cost at the per-minute price (summed in the
    engine over the trial leads' calls by the vendor); the revenue per client is the mean over
    the vendor's converted leads."""
    o = outcomes[outcomes["vendor"] == vendor].sort_values("created_at", kind="stable")  # lead_id order on ties
    trial = o.head(trial_leads)
    calls = eng.table("calls")
    cost = 0.0
    if len(trial):
        ids = memtable(pd.DataFrame({"lead_id": pd.array(trial.index.astype(str), dtype="string")}))
        tc = calls.filter(calls.vendor == vendor) if "vendor" in calls.columns else calls
        tc = tc.semi_join(ids, tc.lead_id == ids.lead_id)
        minutes = eng.frame(tc.aggregate(m=billable_minutes(tc.duration_s, increment_s).sum()))["m"].iloc[0]
        cost = float(0.0 if pd.isna(minutes) else minutes) * prices["per_minute"]
    per_lead = cost / len(trial) if len(trial) else np.nan
    conv = o[o["converted"]]
    revenue = float(conv["revenue"].mean()) if len(conv) else np.nan
    out = pilot_readout(len(trial), int(trial["converted"].sum()), per_lead, revenue, client_margin)
    return {"vendor": vendor, "centre_cost_per_lead": per_lead, "revenue_per_client": revenue, **out}


def contact_centre_metrics(economics: pd.DataFrame, scenario_result: dict, pilot: dict) -> dict:
    """`contact_centre`: vendors.<v> (leads, converted, conversion and interval, revenue),
    models.<v>.<model> (cost, cpa, roi, break_even_conversion), scenario, pilot."""
    vendors = {}
    for v, r in economics.groupby(level="vendor").first().to_dict("index").items():
        vendors[v] = {k: r[k] for k in ("leads", "converted", "conversion", "conversion_low", "conversion_high", "revenue")}
    models: dict = {}
    for (v, m), r in economics.to_dict("index").items():
        models.setdefault(v, {})[m] = {k: r[k] for k in ("units", "cost", "cpa", "roi", "break_even_conversion")}
    pilot = {k: v for k, v in pilot.items() if k != "centre_break_even_price_range"} | {
        "centre_break_even_price_low": pilot["centre_break_even_price_range"][0],
        "centre_break_even_price_high": pilot["centre_break_even_price_range"][1]}
    return {"contact_centre": {"vendors": vendors, "models": models, "scenario": scenario_result, "pilot": pilot}}


def headline(economics: pd.DataFrame) -> str:
    """'generic converts 2.2% (CPA 2,276 per minute), specialist 3.5% (CPA 1,640 per minute).'"""
    parts = []
    per_minute = economics.xs("per_minute", level="model") if len(economics) else economics
    for v, r in per_minute.to_dict("index").items():
        parts.append(f"{v} converts {r['conversion']:.1%} of {int(r['leads']):,} leads (CPA at per-minute pricing "
                     f"{r['cpa']:,.0f})" if pd.notna(r["cpa"]) else f"{v}: no conversions")
    return "; ".join(parts) + "." if parts else "No outsourced calls."


def scenario_text(calc: dict, ratio: float, conv_before: float, conv_after: float) -> page.Md:
    """The calculator's arithmetic in words, with the implied cost per processed lead."""
    return page.md(
        "CPA = cost per processed lead / conversion: before {before:,.2f}, after {after:,.2f}, a change of "
        "**{change:+.2%}**. With conversion x{conv:.3f}, that change needs the cost per processed lead x{ratio:.4f}: "
        "if the minute price is 10% higher, the minutes per lead must be x{minutes:.3f} ({fewer:.1%} fewer), e.g. "
        "shorter calls by operators who know the product. The same base then brings {clients:,.0f} more clients "
        "and {revenue:,.0f} more revenue.", before=calc["cpa_before"], after=calc["cpa_after"],
        change=calc["cpa_change"], conv=conv_after / conv_before, ratio=ratio, minutes=ratio / 1.1,
        fewer=1 - ratio / 1.1, clients=calc["extra_clients"], revenue=calc["extra_revenue"])


def pilot_text(p: dict) -> page.Md:
    """The pilot read-out in words."""
    lo, hi = p["centre_break_even_price_range"]
    return page.md(
        "Trial with {vendor}: {conversions:,} of {leads:,} leads converted, **{conversion:.1%}** (95% CI "
        "{low:.1%}-{high:.1%}). At the per-minute price the centre spends {cost:,.2f} per lead, so it breaks even at "
        "**{price:,.0f} per converted client** ({lo:,.0f}-{hi:,.0f} over the interval); the company breaks even up "
        "to {client:,.0f} (revenue per client x margin). {verdict}", vendor=p["vendor"], conversions=p["conversions"],
        leads=p["leads"], conversion=p["conversion"], low=p["conversion_low"], high=p["conversion_high"],
        cost=p["centre_cost_per_lead"], price=p["centre_break_even_price"], lo=lo, hi=hi,
        client=p["client_break_even_price"],
        verdict="A price between the two suits both sides." if p["deal_possible"] else
        "No price suits both sides at this conversion.")
