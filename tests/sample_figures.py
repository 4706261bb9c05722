"""Independent, plain-pandas reference figures of a generated sample, for the calibration tests.

These recompute the DOMAIN.md figures straight from the tables by their DESIGN definitions,
deliberately without the package's metric functions (an independent yardstick, like SQL),
so that a generator drift and a formula bug cannot hide each other.
"""
from __future__ import annotations

import pandas as pd


def onboarding(ds) -> dict:
    c, p, o = ds.clients, ds.payments, ds.outreach
    reg = c[c["signed_up_at"] < ds.as_of]
    ob = o[(o["campaign"] == "onboarding") & o["reached"].fillna(False).astype(bool)]
    reached = reg["client_id"].isin(ob["client_id"])
    first = p[p["amount"] > 0].groupby("client_id")["paid_at"].min()
    paid = reg["client_id"].isin(first.index)
    days = (first.reindex(reg["client_id"]).reset_index(drop=True)
            - reg["signed_up_at"].reset_index(drop=True)).dt.total_seconds().div(86400).dropna()
    return {"registrations": len(reg), "reach_rate": reached.mean(),
            "paid_rate_reached": paid[reached].mean(), "paid_rate_not_reached": paid[~reached].mean(),
            "paid_reached_n": int(reached.sum()), "paid_not_reached_n": int((~reached).sum()),
            "share_within_3_days": float((days <= 3).mean()), "payers": int(paid.sum())}


def support_windows(ds, restructure: str, months: int = 3) -> dict:
    t = ds.tickets
    r = pd.Timestamp(restructure, tz="UTC")
    before = t[(t["created_at"] >= r - pd.DateOffset(months=months)) & (t["created_at"] < r)]
    after = t[(t["created_at"] >= r) & (t["created_at"] < r + pd.DateOffset(months=months))]
    out = {}
    for name, w in (("before", before), ("after", after)):
        frt = (w["first_response_at"] - w["created_at"]).dt.total_seconds().div(60).dropna()
        res = (w["resolved_at"] - w["created_at"]).dt.total_seconds().div(60).dropna()
        rated = w["csat_satisfied"].dropna().astype(bool)
        line = w[~w["topic"].isin(["billing", "refund_request", "cancellation"])]
        out[name] = {"tickets": len(w), "frt_median": frt.median(), "frt_n": len(frt),
                     "res_median": res.median(), "res_n": len(res),
                     "csat": rated.mean(), "csat_n": len(rated),
                     "l2_share": (line["final_tier"] == "L2").mean(), "line_n": len(line)}
    return out


def early_contact_split(ds, window_days: int = 30, grace_days: int = 14) -> dict:
    """Naive split: LTV at 12 months ratio and first-month churn by early contact."""
    p, t = ds.payments, ds.tickets
    start = p[p["amount"] > 0].groupby("client_id")["paid_at"].min().rename("start")
    first_ticket = t.dropna(subset=["client_id"]).groupby("client_id")["created_at"].min()
    s = start.to_frame()
    s["early"] = first_ticket.reindex(s.index) < s["start"] + pd.Timedelta(days=window_days)
    s["early"] = s["early"].fillna(False)
    pj = p.join(s, on="client_id")
    out = {}
    for k in (1, 12):
        end = s["start"] + pd.DateOffset(months=k)
        ok = end <= ds.as_of
        pe = pj.join(end.rename("end"), on="client_id")
        inwin = pe[(pe["paid_at"] >= pe["start"]) & (pe["paid_at"] < pe["end"])]
        net = inwin.groupby("client_id")["amount"].sum().reindex(s.index, fill_value=0)
        g = net[ok].groupby(s.loc[ok, "early"]).mean()
        out[f"ltv_{k}m"] = {"early": g.get(True), "not": g.get(False), "ratio": g.get(True) / g.get(False)}
    end1 = s["start"] + pd.DateOffset(months=1) + pd.Timedelta(days=grace_days)
    elig = end1 <= ds.as_of
    ch = pj[(pj["amount"] > 0) & (pj["paid_at"] > pj["start"])].join(end1.rename("e1"), on="client_id")
    renewed = ch[ch["paid_at"] <= ch["e1"]]["client_id"].unique()
    churned = ~s.index.isin(renewed)
    g = pd.Series(churned[elig]).groupby(s.loc[elig, "early"].to_numpy()).agg(["mean", "size"])
    out["churn_1m"] = {"early": g.loc[True, "mean"], "not": g.loc[False, "mean"],
                       "ratio": g.loc[True, "mean"] / g.loc[False, "mean"],
                       "early_n": int(g.loc[True, "size"]), "not_n": int(g.loc[False, "size"])}
    return out
