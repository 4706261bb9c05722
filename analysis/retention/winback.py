"""Dormancy, win-back and the early-warning list (DESIGN §4; DOMAIN §2: a trigger after three
months with no contact and no payment, emails for small and medium checks, calls above the
average, about 20% come back).

- activity = a charge (amount > 0) or a ticket's created_at at or after the client's start
  (refunds and outreach are not activity); activities at one instant count once;
- a client goes dormant at D = activity + dormancy days whenever no activity lies strictly
  between the two and D <= as-of; a client can go dormant more than once;
- won back = a charge in [D, D + window); `dormancy_events` = events with D + window <= as-of;
  rate = won_back / dormancy_events;
- channel = the channel of the earliest outreach with campaign "winback" in [D, D + window) (ties
  by channel name), "none" without one; check band = the client's mean charge before D above the
  mean of all charges, or not ("above" / "below").
"""
from __future__ import annotations

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
from lifelines import KaplanMeierFitter

from analysis.retention import cohorts
from analysis.present import page
from analysis.data.engine import Engine, day_number, derived_key, instant
from analysis.retention.months import add_months
from analysis.stats import rate_table

__all__ = ["recovered_revenue", "activity_table", "dormancy_table", "outcome_table", "warning_table", "dormancy_events", "winback_outcomes", "winback_rates", "return_times",
           "return_curves", "early_warning", "early_warning_text", "winback_metrics", "winback_headline"]


def activity_table(payments: ir.Table, tickets: ir.Table | None, starts: ir.Table, distinct: bool = True) -> ir.Table:
    """Activity instants (client_id, at), one per client and instant, from the client's start
    on: charges (amount > 0) and, when the data has them, tickets' created_at (a ticket without a
    client is nobody's activity). ``distinct=False`` keeps an instant as often as it occurs,
    for a reader that repeats do not change (the latest instant; a block's first and last, as
    ``dormancy_table`` reads them): the distinct pass over 24M instants at 1M clients is then
    saved."""
    parts = [payments.filter(payments.amount > 0).select("client_id", at=payments.paid_at)]
    if tickets is not None and "client_id" in tickets.columns:
        parts.append(tickets.select("client_id", at=tickets.created_at))
    act = ibis.union(*parts, distinct=False)
    j = act.join(starts.select("client_id", "start"), "client_id")
    j = j.filter(j.at >= j.start).select("client_id", "at")
    return j.distinct() if distinct else j


def dormancy_table(act: ir.Table, as_of: pd.Timestamp, dormancy_days: int) -> ir.Table:
    """One row per dormancy: client_id, last_activity, dormant_at (D = an activity + dormancy
    days with no activity strictly between and D <= as-of; the next activity at exactly D still
    leaves the client dormant at that instant).

    Only the last of a client's activities in a block of ``dormancy_days`` UTC days (blocks:
    days since 1970-01-01 // dormancy_days) can start a dormancy: any other has a next activity
    in its own block, less than dormancy days later. So the activities are first reduced to each
    block's first and last instant (a grouping, which the engine spills to disk when it must),
    and the window that finds the next activity runs over the blocks: the next activity after a
    block's last is the first of the client's next block. Instants repeated at one moment need
    no distinct pass (a block's first and last are the same with or without them). At 1M
    clients the window sorts 4.1M blocks instead of 24.2M activity rows (DuckDB's window, unlike
    its grouping, keeps its input in memory): 1.14 GB and 8.5 s for the stored events against
    2.11 GB and 15.4 s for the window over distinct instants."""
    a = act.mutate(_block=day_number(act.at) // dormancy_days)
    blocks = a.group_by(["client_id", "_block"]).aggregate(first=a.at.min(), last=a.at.max())
    w = ibis.window(group_by=blocks.client_id, order_by=blocks._block)
    b = blocks.mutate(next_at=blocks.first.lead().over(w), dormant_at=blocks["last"] + ibis.interval(days=dormancy_days))
    ev = b.filter((b.next_at.isnull() | (b.next_at >= b.dormant_at)) & (b.dormant_at <= instant(as_of)))
    return ev.select("client_id", last_activity=ev["last"], dormant_at=ev.dormant_at)


def _events(eng: Engine, as_of: pd.Timestamp, dormancy_days: int) -> ir.Table:
    """The engine's dormancy events (``dormancy_table``), stored once per engine, as-of and
    dormancy (``Engine.derived``): the window over the activity blocks runs as a query of its
    own, and the outcomes' join over every payment reads its result instead of holding memory
    beside it (at 10M clients the two in one query ran out of a 9.4 GiB share)."""
    def build(e: Engine) -> ir.Table:
        act = activity_table(e.table("payments"), e.table("tickets"), cohorts.starts_in(e), distinct=False)
        return dormancy_table(act, as_of, dormancy_days)
    return eng.derived(f"dormancy_{derived_key(as_of, dormancy_days)}", build)


def _by_client_and_time(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["client_id", "dormant_at"], kind="stable").reset_index(drop=True)


def dormancy_events(eng: Engine, as_of: pd.Timestamp, dormancy_days: int) -> pd.DataFrame:
    """``dormancy_table`` on the engine's payments and tickets, by client_id then time."""
    return _by_client_and_time(eng.frame(_events(eng, as_of, dormancy_days)))


def outcome_table(events: ir.Table, payments: ir.Table, outreach: ir.Table | None, as_of: pd.Timestamp,
                  window_days: int) -> ir.Table:
    """Per dormancy event (client_id, dormant_at): counted (D + window <= as-of), return_at
    (first charge at or after D), won_back (return_at < D + window), channel (the earliest
    winback outreach in [D, D + window), ties by channel name; "none"), mean_check_before (the
    client's mean charge before D), revenue_90d and revenue_180d (net payments in [D, D + 90 /
    180 days), null while that span is not over)."""
    cut = instant(as_of)
    ev = events.mutate(window_end=events.dormant_at + ibis.interval(days=window_days))
    p = payments.select("client_id", "paid_at", "amount")
    j = ev.join(p, "client_id")
    charge, at, d = j.amount > 0, j.paid_at, j.dormant_at
    spans = {k: d + ibis.interval(days=k) for k in (90, 180)}
    per = j.group_by(["client_id", "dormant_at"]).aggregate(
        return_at=at.min(where=charge & (at >= d)),
        before_total=j.amount.sum(where=charge & (at < d)),
        before_n=j.amount.count(where=charge & (at < d)),
        **{f"net_{k}": j.amount.sum(where=(at >= d) & (at < end)) for k, end in spans.items()})
    out = ev.left_join(per, ["client_id", "dormant_at"]).drop("client_id_right", "dormant_at_right")
    if outreach is not None:
        wb = outreach.filter(outreach.campaign == "winback").select("client_id", sent=outreach.at, channel=outreach.channel)
        pairs = ev.select("client_id", "dormant_at", "window_end").join(wb, "client_id")
        pairs = pairs.filter((pairs.sent >= pairs.dormant_at) & (pairs.sent < pairs.window_end))
        first = pairs.mutate(rank=ibis.row_number().over(group_by=[pairs.client_id, pairs.dormant_at],
                                                         order_by=[pairs.sent, pairs.channel]))
        first = first.filter(first["rank"] == 0).select("client_id", "dormant_at", "channel")
        out = out.left_join(first, ["client_id", "dormant_at"]).drop("client_id_right", "dormant_at_right")
        channel = out.channel.fill_null("none")
    else:
        channel = ibis.literal("none")
    return out.select(
        "client_id", "last_activity", "dormant_at", counted=out.window_end <= cut, return_at=out.return_at,
        won_back=out.return_at.notnull() & (out.return_at < out.window_end), channel=channel,
        mean_check_before=out.before_total / ibis.ifelse(out.before_n > 0, out.before_n, ibis.null("int64")),
        **{f"revenue_{k}d": ibis.ifelse(out.dormant_at + ibis.interval(days=k) <= cut,
                                        out[f"net_{k}"].fill_null(0.0), ibis.null("float64")) for k in (90, 180)})


def winback_outcomes(eng: Engine, as_of: pd.Timestamp, dormancy_days: int, window_days: int) -> pd.DataFrame:
    """``outcome_table`` of every dormancy (``dormancy_events``), by client_id then time, with
    band: "above" when the client's mean charge before D is above the mean of all charges."""
    payments = eng.table("payments")
    out = _by_client_and_time(eng.frame(outcome_table(_events(eng, as_of, dormancy_days), payments,
                                                      eng.table("outreach"), as_of, window_days)))
    mean_all = eng.frame(payments.filter(payments.amount > 0).aggregate(mean=lambda t: t.amount.mean()))["mean"].iloc[0]
    out["counted"] = out["counted"].astype(bool)
    out["won_back"] = out["won_back"].astype(bool)
    out["channel"] = out["channel"].astype(object)
    out["band"] = np.where(out["mean_check_before"] > mean_all, "above", "below")
    return out[["client_id", "last_activity", "dormant_at", "counted", "return_at", "won_back", "channel",
                "mean_check_before", "band", "revenue_90d", "revenue_180d"]]


def winback_rates(outcomes: pd.DataFrame, by: list[str] | None = None) -> pd.DataFrame:
    """events (counted), won_back and rate with its Wilson 95% interval, overall or per column(s),
    plus revenue recovered within 90 days (sum over the events whose 90 days are over)."""
    o = outcomes[outcomes["counted"]]
    frame = pd.DataFrame({"events": 1, "won_back": o["won_back"].astype("int64"),
                          "revenue_90d": o["revenue_90d"].fillna(0.0)}, index=o.index)
    g = frame.sum().to_frame("all").T if not by else frame.groupby([o[c] for c in by]).sum()
    g[["events", "won_back"]] = g[["events", "won_back"]].astype("int64")
    return g.join(rate_table(g["won_back"], g["events"], name="rate"))


def return_times(outcomes: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Per dormancy event: days from D to the first charge at or after it (returned), or to as-of
    (censored), for a Kaplan-Meier curve of time to return."""
    back = outcomes["return_at"].notna()
    end = outcomes["return_at"].where(back, as_of)
    return pd.DataFrame({"days": (end - outcomes["dormant_at"]).dt.total_seconds() / 86400,
                         "returned": back, "channel": outcomes["channel"]}, index=outcomes.index)


def return_curves(times: pd.DataFrame) -> dict:
    """Kaplan-Meier curves of the time to return (months from D), all events and per channel."""
    fits = {}
    for label in ["all"] + sorted(times["channel"].unique()):
        sel = times if label == "all" else times[times["channel"] == label]
        if len(sel):
            fits[label] = KaplanMeierFitter(label=label).fit(sel["days"] / 30.4375, sel["returned"])
    return fits


def warning_table(payments: ir.Table, act: ir.Table, starts: ir.Table, as_of: pd.Timestamp) -> ir.Table:
    """Per client with a start: start, last_activity (the latest instant of ``act``, repeated
    instants or not), and net payments in [as-of - 9 months, as-of - 3 months) (prior_6m) and
    in [as-of - 3 months, as-of) (recent_3m)."""
    cut = pd.Series([as_of])
    m3, m9 = add_months(cut, -3).iloc[0], add_months(cut, -9).iloc[0]
    last = act.group_by("client_id").aggregate(last_activity=act.at.max())
    p = payments
    net = p.group_by("client_id").aggregate(
        prior_6m=p.amount.sum(where=(p.paid_at >= instant(m9)) & (p.paid_at < instant(m3))),
        recent_3m=p.amount.sum(where=(p.paid_at >= instant(m3)) & (p.paid_at < instant(as_of))))
    s = starts.select("client_id", "start").left_join(last, "client_id").drop("client_id_right")
    s = s.left_join(net, "client_id").drop("client_id_right")
    return s.mutate(prior_6m=s.prior_6m.fill_null(0.0), recent_3m=s.recent_3m.fill_null(0.0))


def early_warning(eng: Engine, starts: pd.DataFrame, as_of: pd.Timestamp, dormancy_days: int,
                  drop_threshold: float = 0.3) -> pd.DataFrame:
    """Active clients whose last 3 months' net revenue fell by more than ``drop_threshold`` against
    their own previous 6 months, ranked by revenue at risk.

    recent   = net payments in [as-of - 3 months, as-of)
    baseline = net payments in [as-of - 9 months, as-of - 3 months) / 2   (a 3-month average)
    drop     = 1 - recent / baseline;   revenue at risk = baseline - recent (per 3 months)
    Active = last activity + dormancy days > as-of (the trigger has not fired yet); only clients
    started by as-of - 9 months (a full baseline) with a positive baseline are ranked.
    ``starts`` = client_starts of the same engine (its segment is shown).
    """
    payments = eng.table("payments")
    s = cohorts.starts_in(eng)
    t = eng.frame(warning_table(payments, activity_table(payments, eng.table("tickets"), s, distinct=False), s, as_of))
    t = t.set_index("client_id").sort_index()
    m9 = add_months(pd.Series([as_of]), -9).iloc[0]
    active = t["last_activity"].notna() & (t["last_activity"] + pd.Timedelta(days=dormancy_days) > as_of)
    frame = t[active & (t["start"] <= m9)]
    frame = pd.DataFrame({"baseline_3m": frame["prior_6m"] / 2, "recent_3m": frame["recent_3m"],
                          "last_activity": frame["last_activity"]}, index=frame.index)
    frame = frame[frame["baseline_3m"] > 0]
    frame["drop"] = 1 - frame["recent_3m"] / frame["baseline_3m"]
    frame["revenue_at_risk_3m"] = frame["baseline_3m"] - frame["recent_3m"]
    frame = frame[["baseline_3m", "recent_3m", "drop", "revenue_at_risk_3m", "last_activity"]]
    if "segment" in starts.columns:
        frame["segment"] = starts["segment"].reindex(frame.index)
    flagged = frame[frame["drop"] > drop_threshold]
    return flagged.sort_values(["revenue_at_risk_3m", "drop"], ascending=False, kind="stable").rename_axis("client_id")


def winback_metrics(overall: pd.DataFrame, by_channel: pd.DataFrame, dormancy_days: int, window_days: int,
                    by_band: pd.DataFrame | None = None, saves: pd.DataFrame | None = None,
                    warning: pd.DataFrame | None = None) -> dict:
    """`winback` (DESIGN §5): dormancy_events, won_back, rate, by_channel.<channel> (channels with
    counted events only); plus dormancy_days, window_days, rate interval, by_band, and the
    retention-save and early-warning figures when given."""
    a = overall.loc["all"]
    out = {"dormancy_days": dormancy_days, "window_days": window_days, "dormancy_events": int(a["events"]),
           "won_back": int(a["won_back"]), "rate": a["rate"], "rate_low": a["rate_low"], "rate_high": a["rate_high"],
           "revenue_90d": a["revenue_90d"],
           "by_channel": {ch: {"events": r["events"], "won_back": r["won_back"], "rate": r["rate"]}
                          for ch, r in by_channel.to_dict("index").items() if r["events"] > 0}}
    if by_band is not None:
        out["by_band"] = {b: {"events": r["events"], "won_back": r["won_back"], "rate": r["rate"]}
                          for b, r in by_band.to_dict("index").items() if r["events"] > 0}
    if saves is not None:
        s = saves.loc["all"]
        out["retention_saves"] = {"requests": int(s["requests"]), "saved": int(s["saved"]), "save_rate": s["save_rate"],
                                  "revenue_kept": s["revenue_kept"]}
    if warning is not None:
        out["early_warning"] = {"clients": len(warning), "revenue_at_risk_3m": float(warning["revenue_at_risk_3m"].sum())}
    return {"winback": out}


def early_warning_text(warning: pd.DataFrame, threshold: float) -> page.Md:
    """'12 active clients dropped by more than 30%; revenue at risk over 3 months: 45,000.'"""
    return page.md("{n:,} active clients dropped by more than {threshold:.0%}; revenue at risk over 3 months: "
                      "{risk:,.0f}.", n=len(warning), threshold=threshold, risk=warning["revenue_at_risk_3m"].sum())


def winback_headline(overall: pd.DataFrame, by_channel: pd.DataFrame) -> str:
    """'1,313 dormancies with a full window; 17.7% won back (none 6.6%, email 19.6%, call 28.9%;
    channels go to different clients, so the rates are not the channels' effect).'"""
    a = overall.loc["all"]
    if not a["events"]:
        return "No dormancy event has a complete win-back window yet."
    parts = ", ".join(f"{ch} {r['rate']:.1%}" for ch, r in by_channel.to_dict("index").items() if r["events"])
    caveat = "; channels go to different clients, so the rates are not the channels' effect" \
        if sum(1 for r in by_channel.to_dict("index").values() if r["events"]) > 1 else ""
    return f"{int(a['events']):,} dormancies with a full window; {a['rate']:.1%} won back ({parts}{caveat})."


def recovered_revenue(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Per outreach channel, the revenue recovered within 90 and 180 days of going dormant: the
    sum of ``winback_outcomes``' revenue_90d / revenue_180d over the counted dormancies whose span
    is over, and how many those are (a span still open at as-of is left out, not counted as 0)."""
    counted = outcomes[outcomes["counted"]]
    return counted.groupby("channel")[["revenue_90d", "revenue_180d"]].agg(["sum", "count"])
