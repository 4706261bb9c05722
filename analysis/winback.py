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

import numpy as np
import pandas as pd
from lifelines import KaplanMeierFitter

from analysis import keys, present
from analysis.months import add_months
from analysis.stats import rate_table

__all__ = ["recovered_revenue", "activities", "dormancy_events", "winback_outcomes", "winback_rates", "return_times",
           "return_curves", "early_warning", "early_warning_text", "winback_metrics", "winback_headline"]


def _sorted_asof(left: pd.DataFrame, right: pd.DataFrame, left_on: str, right_on: str, by: str = "client_id",
                 **kw) -> pd.DataFrame:
    """merge_asof by ``by`` that keeps the left frame's row order and index (``right`` is sorted
    on ``right_on``, stable, unless it already is)."""
    l = left.reset_index(names="_row").sort_values(left_on, kind="stable")
    r = right if right[right_on].is_monotonic_increasing else right.sort_values(right_on, kind="stable")
    out = pd.merge_asof(l, r, left_on=left_on, right_on=right_on, by=by, **kw)
    return out.set_index("_row").reindex(left.index)


def activities(payments: pd.DataFrame, tickets: pd.DataFrame | None, starts: pd.DataFrame) -> pd.DataFrame:
    """Activity instants per client (client_id, at), unique and sorted (client_id, then time),
    from the client's start on. Worked on integer client rows and int64 nanoseconds; client_id
    is categorical over the starts' ids (its codes are the client's row in ``starts``), not a
    copy of the text per activity (24M activities at 1M clients)."""
    pos = keys.codes(payments["client_id"], starts.index, read_only=True)
    charge = np.flatnonzero((payments["amount"].to_numpy() > 0) & (pos >= 0))
    client, at = [pos[charge]], [keys.ns(payments["paid_at"])[charge]]
    if tickets is not None and "client_id" in tickets.columns:
        t = keys.codes(tickets["client_id"], starts.index, read_only=True)  # a null client is -1: left out
        asked = np.flatnonzero(t >= 0)
        client.append(t[asked])
        at.append(keys.ns(tickets["created_at"])[asked])
    client, at = np.concatenate(client), np.concatenate(at)
    # sorted by client_id, then time: a stable sort on time (linear when the tables come in time
    # order), then a counting sort on the client's rank (``keys.order_by`` without its last
    # gathers: the sorted clients are each one repeated by its count, read in sequence)
    ids = starts.index
    by_rank = None if keys.increasing(ids) else keys.sorted_order(ids)  # starts come sorted by id
    by_time = np.argsort(at, kind="stable")
    at = at[by_time]
    row = np.arange(len(starts), dtype=keys.row_dtype(len(starts)))
    if by_rank is None:
        code = client[by_time]
    else:
        rank = np.empty_like(row)
        rank[by_rank] = row
        code = rank[client][by_time]
    order, counts = keys.group_order(code, len(starts), counts=True)
    at = at[order]
    client = np.repeat(row if by_rank is None else by_rank.astype(row.dtype), counts)
    # from the client's start on, one activity per instant (an instant before the start is never
    # equal to a later one of the same client, so duplicates can be found before that cut)
    keep = at >= keys.ns(starts["start"])[client]
    if len(at):
        keep[1:] &= (client[1:] != client[:-1]) | (at[1:] != at[:-1])
    client, at = client[keep], at[keep]
    kind = pd.CategoricalDtype(pd.Index(ids, dtype=ids.dtype, name=None))
    return pd.DataFrame({"client_id": pd.Categorical.from_codes(client, dtype=kind), "at": keys.from_ns(at)})


def dormancy_events(act: pd.DataFrame, as_of: pd.Timestamp, dormancy_days: int) -> pd.DataFrame:
    """One row per dormancy: client_id, last_activity, dormant_at (D). ``act`` as ``activities``
    gives it (sorted by client, then time)."""
    nxt = act["at"].shift(-1).where(keys.same_as_next(act["client_id"]))
    d = act["at"] + pd.Timedelta(days=dormancy_days)
    is_event = (nxt.isna() | (nxt >= d)) & (d <= as_of)
    client = act.loc[is_event, "client_id"]
    if isinstance(client.dtype, pd.CategoricalDtype):  # the ids themselves (as ``activities`` gives them)
        client = pd.Series(client.cat.categories.take(client.cat.codes.to_numpy()), index=client.index)
    return pd.DataFrame({"client_id": client, "last_activity": act.loc[is_event, "at"],
                         "dormant_at": d[is_event]}).reset_index(drop=True)


def _window_sum(events: pd.DataFrame, cum: pd.DataFrame, at: pd.Series) -> pd.Series:
    """Sum of a client's payments strictly before ``at`` (cumulative sums looked up as-of)."""
    left = pd.DataFrame({"_c": events["_c"], "t": at}, index=events.index)
    got = _sorted_asof(left, cum, "t", "paid_at", by="_c", direction="backward", allow_exact_matches=False)
    return got["cum"].fillna(0.0)


def winback_outcomes(events: pd.DataFrame, payments: pd.DataFrame, outreach: pd.DataFrame | None,
                     as_of: pd.Timestamp, window_days: int) -> pd.DataFrame:
    """Per dormancy event: counted (window over by as-of), return_at (first charge at or after D),
    won_back, channel, mean_check_before, band, revenue_90d and revenue_180d (net payments in
    [D, D + 90 / 180 days), null while that span is not over).

    Clients are joined on integer codes of their ids (the events' clients; payments of other
    clients never match and are left out of the per-client running sums)."""
    out = events.copy()
    window = pd.Timedelta(days=window_days)
    out["counted"] = out["dormant_at"] + window <= as_of
    universe = pd.Index(out["client_id"].unique())
    out["_c"] = keys.codes(out["client_id"], universe)
    code = keys.codes(payments["client_id"], universe)  # once for every payment; -1: not an event's client
    charge = payments["amount"].to_numpy() > 0
    mean_all = payments["amount"][charge].mean()
    # the events' clients' payments in time order (stable: table order at one instant), so that
    # per-client running sums run in time order and the as-of merges need no further sort
    keep = np.flatnonzero(code >= 0)
    keep = keep[np.argsort(keys.ns(payments["paid_at"])[keep], kind="stable")]  # one linear pass if already so
    p = pd.DataFrame({"paid_at": payments["paid_at"].array.take(keep), "amount": payments["amount"].to_numpy()[keep],
                      "_c": code[keep]})
    charges = p[p["amount"].to_numpy() > 0]
    first_back = _sorted_asof(out[["_c", "dormant_at"]], charges[["_c", "paid_at"]].assign(back=charges["paid_at"]),
                              "dormant_at", "paid_at", by="_c", direction="forward", allow_exact_matches=True)
    out["return_at"] = first_back["back"]
    out["won_back"] = out["return_at"] < out["dormant_at"] + window
    # channel: earliest winback outreach in [D, D + window), ties by channel name
    out["channel"] = "none"
    if outreach is not None and len(outreach):
        wb = outreach.loc[outreach["campaign"] == "winback", ["client_id", "at", "channel"]]
        wb = wb.assign(_c=keys.codes(wb["client_id"], universe))
        pairs = out[["_c", "dormant_at"]].reset_index(names="event").merge(wb[wb["_c"] >= 0].drop(columns="client_id"), on="_c")
        pairs = pairs[(pairs["at"] >= pairs["dormant_at"]) & (pairs["at"] < pairs["dormant_at"] + window)]
        first = pairs.sort_values(["event", "at", "channel"], kind="stable").drop_duplicates("event")
        out.loc[first["event"].to_numpy(), "channel"] = first["channel"].to_numpy()
    # check size: the client's mean charge before D against the mean of all charges
    cum = charges.assign(total=charges.groupby("_c")["amount"].cumsum(), n=charges.groupby("_c").cumcount() + 1)
    before = _sorted_asof(out[["_c", "dormant_at"]], cum[["_c", "paid_at", "total", "n"]],
                          "dormant_at", "paid_at", by="_c", direction="backward", allow_exact_matches=False)
    out["mean_check_before"] = before["total"] / before["n"]
    out["band"] = np.where(out["mean_check_before"] > mean_all, "above", "below")
    # revenue recovered: net payments (refunds included) in [D, D + k days)
    cum_all = p[["_c", "paid_at"]].assign(cum=p.groupby("_c")["amount"].cumsum())
    at_d = _window_sum(out, cum_all, out["dormant_at"])
    for k in (90, 180):
        end = out["dormant_at"] + pd.Timedelta(days=k)
        out[f"revenue_{k}d"] = (_window_sum(out, cum_all, end) - at_d).where(end <= as_of)
    return out.drop(columns="_c")


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


def early_warning(payments: pd.DataFrame, act: pd.DataFrame, starts: pd.DataFrame, as_of: pd.Timestamp,
                  dormancy_days: int, drop_threshold: float = 0.3) -> pd.DataFrame:
    """Active clients whose last 3 months' net revenue fell by more than ``drop_threshold`` against
    their own previous 6 months, ranked by revenue at risk.

    recent   = net payments in [as-of - 3 months, as-of)
    baseline = net payments in [as-of - 9 months, as-of - 3 months) / 2   (a 3-month average)
    drop     = 1 - recent / baseline;   revenue at risk = baseline - recent (per 3 months)
    Active = last activity + dormancy days > as-of (the trigger has not fired yet); only clients
    started by as-of - 9 months (a full baseline) with a positive baseline are ranked.
    """
    cut = pd.Series([as_of])
    m3, m9 = add_months(cut, -3).iloc[0], add_months(cut, -9).iloc[0]
    # last activity per client: the latest instant of each client's block in ``act``
    ends = np.flatnonzero(~keys.same_as_next(act["client_id"]))
    opens = np.r_[0, ends[:-1] + 1] if len(ends) else ends
    act_ns = keys.ns(act["at"])
    last = np.full(len(starts), keys.NAT)
    if len(ends):
        last[keys.codes(act["client_id"].take(ends), starts.index)] = np.maximum.reduceat(act_ns, opens)
    active = (last != keys.NAT) & (last + pd.Timedelta(days=dormancy_days).value > as_of.value)
    eligible = np.flatnonzero(active & (starts["start"] <= m9).to_numpy())
    pos = keys.codes(payments["client_id"], starts.index, read_only=True)
    paid = keys.ns(payments["paid_at"])
    amount = payments["amount"].to_numpy()

    def net(lo: pd.Timestamp, hi: pd.Timestamp) -> np.ndarray:  # per starts row, in payment order
        sel = (pos >= 0) & (paid >= lo.value) & (paid < hi.value)
        return pd.Series(amount[sel]).groupby(keys.code_groups(pos[sel], len(starts)), observed=False).sum().to_numpy()

    frame = pd.DataFrame({"baseline_3m": net(m9, m3)[eligible] / 2, "recent_3m": net(m3, as_of)[eligible]},
                         index=starts.index[eligible])
    keep = frame["baseline_3m"].to_numpy() > 0
    frame = frame[keep]
    frame["drop"] = 1 - frame["recent_3m"] / frame["baseline_3m"]
    frame["revenue_at_risk_3m"] = frame["baseline_3m"] - frame["recent_3m"]
    frame["last_activity"] = keys.from_ns(last[eligible][keep])
    if "segment" in starts.columns:
        frame["segment"] = starts["segment"].iloc[eligible[keep]].set_axis(frame.index)
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


def early_warning_text(warning: pd.DataFrame, threshold: float) -> present.Md:
    """'12 active clients dropped by more than 30%; revenue at risk over 3 months: 45,000.'"""
    return present.md("{n:,} active clients dropped by more than {threshold:.0%}; revenue at risk over 3 months: "
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
