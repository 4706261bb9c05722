"""The conveyor sales department (DOMAIN §4; DESIGN §7): per-stage conversion and time between
stages, successful calls per operator per day against the target, meeting conversion, the value
of the clients the conveyor brought, and the stage that lost the most in the last period.

A lead reaches a stage when it has a call with that stage (the first such call dates it);
stages are ordered cold_call -> need_found -> proposal -> meeting -> contract -> account, and a
lead that reached a later stage counts as having passed the earlier ones.
"""
from __future__ import annotations

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from analysis.data.engine import Engine, as_count, day_dates, day_number
from analysis.stats import rate_table

__all__ = ["STAGES", "first_stage_calls", "stage_times", "stage_funnel", "successful_calls", "operator_roles", "operator_summary", "stage_losses", "most_changed_loss",
           "clients_brought", "conveyor_metrics", "headline"]

STAGES = ("cold_call", "need_found", "proposal", "meeting", "contract", "account")


def first_stage_calls(calls: ir.Table) -> ir.Table:
    """The first call of each lead at each stage it reached: lead_id, stage, first_at (calls with
    a stage outside STAGES, or without a time, are left out)."""
    c = calls.filter(calls.stage.isin(list(STAGES)) & calls.started_at.notnull() & calls.lead_id.notnull())
    return c.group_by(["lead_id", "stage"]).aggregate(first_at=c.started_at.min())


def stage_times(eng: Engine) -> pd.DataFrame:
    """Per lead (rows, lead_id order) and stage (columns, in order): the first call at that stage
    (NaT: not reached), plus the deepest stage reached as ``depth`` (0 = cold call)."""
    long = eng.frame(first_stage_calls(eng.table("calls")))
    ids = pd.Index(sorted(long["lead_id"].unique()), dtype=long["lead_id"].dtype, name="lead_id")
    wide = pd.DataFrame({stage: long.loc[long["stage"] == stage].set_index("lead_id")["first_at"].reindex(ids)
                         .astype("datetime64[ns, UTC]") for stage in STAGES}, index=ids)
    wide.columns.name = "stage"
    reached = wide.notna().to_numpy()
    depth = np.where(reached.any(axis=1), reached.shape[1] - 1 - np.argmax(reached[:, ::-1], axis=1), -1) \
        if len(wide) else np.zeros(0, dtype="int64")
    wide["depth"] = depth
    return wide


def stage_funnel(times: pd.DataFrame) -> pd.DataFrame:
    """Per stage: leads that reached it (or a later stage), conversion from the previous stage with
    its Wilson interval, and the median days from the previous stage's first call."""
    depth = times["depth"]
    reached = pd.Series([int((depth >= i).sum()) for i in range(len(STAGES))], index=list(STAGES))
    prev = reached.shift(1).fillna(reached.iloc[0]).astype("int64")
    out = pd.DataFrame({"leads": reached, "from_previous": prev})
    out = out.join(rate_table(out["leads"], out["from_previous"], name="conversion"))
    days = {}
    for a, b in zip(STAGES[:-1], STAGES[1:]):
        d = (times[b] - times[a]).dt.total_seconds() / 86400
        days[b] = d.dropna().median() if d.notna().any() else np.nan
    out["median_days_from_previous"] = pd.Series(days)
    out.loc[STAGES[0], ["conversion", "conversion_low", "conversion_high"]] = np.nan
    return out.rename_axis("stage")


def successful_calls(eng: Engine, min_seconds: int = 30) -> pd.DataFrame:
    """Per operator and calendar day (UTC) with any call: calls and successful calls (lasting at
    least ``min_seconds``; a call without a duration is not successful), counted in the engine.
    Calls without an operator or a time are left out. Rows by operator_id, then day."""
    calls = eng.table("calls")
    c = calls.filter(calls.operator_id.notnull() & calls.started_at.notnull())
    g = eng.frame(c.group_by(operator_id=c.operator_id, day=day_number(c.started_at)).aggregate(
        calls=c.count(), successful=ibis.ifelse(c.duration_s >= min_seconds, 1, 0).sum()))
    out = pd.DataFrame({"operator_id": g["operator_id"], "day": day_dates(g["day"]),
                        "calls": g["calls"].astype("int64"), "successful": g["successful"].map(as_count).astype("int64")})
    return out.sort_values(["operator_id", "day"]).reset_index(drop=True)


def operator_roles(eng: Engine) -> pd.Series:
    """Per operator (operator_id order): "telemarketer" when most of their calls are cold calls
    (the first stage), else "manager" (sales and account managers work the later stages with
    fewer, longer calls); a tie counts as telemarketer. Calls without a stage are not counted; an
    operator with none known, or no ``stage`` column at all, is a telemarketer (judged by the
    target, as before roles were told apart). Counted in the engine."""
    calls = eng.table("calls")
    c = calls.filter(calls.operator_id.notnull())
    if "stage" in c.columns:
        counts = eng.frame(c.group_by("operator_id").aggregate(
            cold=ibis.ifelse(c.stage == STAGES[0], 1, 0).sum(), known=c.stage.count()))
    else:
        counts = eng.frame(c.select("operator_id").distinct()).assign(cold=0, known=0)
    counts = counts.set_index("operator_id").sort_index()
    cold, known = counts["cold"].map(as_count), counts["known"].map(as_count)
    share = cold / known.where(known > 0)
    role = np.where(share.isna() | (share >= 0.5), "telemarketer", "manager")
    return pd.Series(role, index=pd.Index(counts.index, name="operator_id"), name="role")


def operator_summary(daily: pd.DataFrame, target: int = 45, roles: pd.Series | None = None) -> pd.DataFrame:
    """Per operator: role, working days, mean successful calls per day, and the days and share of
    days on the target of successful calls. The target is the telemarketers' (the source's
    minimum for cold calling): a manager's days on target are left empty, not 0, since a manager
    is not judged by it. Telemarketers first, each group by successful calls per day, highest
    first. Without ``roles`` everyone is a telemarketer."""
    on_target = (daily["successful"] >= target).groupby(daily["operator_id"]).sum()
    g = daily.groupby("operator_id")
    out = pd.DataFrame({"days": g.size(), "successful_per_day": g["successful"].mean(),
                        "days_on_target": on_target.astype("Int64")})
    out.insert(0, "role", (roles.reindex(out.index) if roles is not None else pd.Series(index=out.index, dtype=object))
               .fillna("telemarketer"))
    out["share_days_on_target"] = (out["days_on_target"] / out["days"]).astype("float64")
    judged = out["role"] == "telemarketer"
    out.loc[~judged, "days_on_target"] = pd.NA
    out.loc[~judged, "share_days_on_target"] = np.nan
    out["_order"] = np.where(judged, 0, 1)
    return out.sort_values(["_order", "successful_per_day"], ascending=[True, False]).drop(columns="_order")


def stage_losses(times: pd.DataFrame, as_of: pd.Timestamp, days: int = 91) -> pd.DataFrame:
    """Per stage (but the last), in the conveyor's order: of the leads that reached it in the last
    ``days`` days before as-of and in the same span before, how many have not gone further (yet:
    recent leads have had less time, which the previous span shows), the loss rates and
    ``loss_rate_change`` = last - previous (in shares; NaN without leads in either span). The
    first stage always loses the most leads; what a manager asks is where the loss *changed*."""
    rows = []
    periods = {"last": (as_of - pd.Timedelta(days=days), as_of),
               "previous": (as_of - pd.Timedelta(days=2 * days), as_of - pd.Timedelta(days=days))}
    for i, stage in enumerate(STAGES[:-1]):
        row = {"stage": stage}
        for name, (lo, hi) in periods.items():
            entered = times[(times[stage] >= lo) & (times[stage] < hi)]
            stopped = int((entered["depth"] == i).sum())
            row[f"entered_{name}"] = len(entered)
            row[f"lost_{name}"] = stopped
            row[f"loss_rate_{name}"] = stopped / len(entered) if len(entered) else np.nan
        row["loss_rate_change"] = row["loss_rate_last"] - row["loss_rate_previous"]
        rows.append(row)
    return pd.DataFrame(rows).set_index("stage")


def most_changed_loss(losses: pd.DataFrame) -> str | None:
    """The stage whose loss rate changed the most (either way) between the two spans; None when
    no stage has leads in both."""
    change = losses["loss_rate_change"].dropna() if len(losses) else pd.Series(dtype=float)
    return change.abs().idxmax() if len(change) else None


def clients_brought(eng: Engine, starts: pd.DataFrame) -> pd.Series:
    """Label per paying client (``starts``' index): "conveyor" when a converted lead links to it,
    else "other". A lead is converted when its converted_at is set; without that column, when it
    links to a client (who is paying, being in ``starts``). Only the linked client ids leave the
    engine."""
    leads = eng.table("leads")
    linked: list = []
    if "client_id" in leads.columns:
        kept = leads.filter(leads.client_id.notnull())
        if "converted_at" in kept.columns:
            kept = kept.filter(kept.converted_at.notnull())
        linked = eng.frame(kept.select("client_id").distinct())["client_id"].tolist()
    return pd.Series(np.where(starts.index.isin(linked), "conveyor", "other"), index=starts.index, name="group")


def conveyor_metrics(funnel: pd.DataFrame, operators: pd.DataFrame, target: int, losses: pd.DataFrame,
                     value: pd.DataFrame | None = None, survival: pd.DataFrame | None = None) -> dict:
    """`conveyor`: stages.<stage> (leads, conversion), meeting_conversion, successful-call target
    figures (``operators``: the telemarketers judged by it; ``managers_not_judged``), the stage
    that lost the most in the last period, and the brought clients' value."""
    tele = (operators["role"] == "telemarketer") if "role" in operators.columns else pd.Series(True, operators.index)
    out = {"stages": {s: {"leads": r["leads"], "conversion": r["conversion"],
                          "median_days_from_previous": r["median_days_from_previous"]}
                      for s, r in funnel.to_dict("index").items()},
           "meeting_conversion": funnel.loc["contract", "conversion"],
           "successful_calls_target": target,
           "operators": int(tele.sum()),
           "operators_meeting_target_on_average": int((operators.loc[tele, "successful_per_day"] >= target).sum()),
           "managers_not_judged": int((~tele).sum()),
           "stage_lost_most_last_period": losses["lost_last"].idxmax() if len(losses) and losses["lost_last"].sum() else None,
           "stage_loss_changed_most": most_changed_loss(losses)}
    if value is not None:
        out["clients_value"] = {}
        for r in value.to_dict("records"):
            g = out["clients_value"].setdefault(r["group"], {"clients": r["clients"]})
            g[r["horizon"]] = r["ltv"]
            g[f"{r['horizon']}_eligible"] = r["eligible"]
    if survival is not None:
        out["lifetime"] = {g: {"median_lifetime_months": r["median_lifetime_months"], "rmst_months": r["rmst_months"]}
                           for g, r in survival.to_dict("index").items()}
    return {"conveyor": out}


def headline(funnel: pd.DataFrame, losses: pd.DataFrame) -> str:
    """'20,000 leads; 566 reached account (2.8%); meeting conversion 30.7%; the loss rate changed
    most at proposal (+4.1 pp on the previous period).' (The first stage always loses the most.)"""
    first = funnel["leads"].iloc[0]
    last = funnel["leads"].iloc[-1]
    text = f"{first:,} leads; {last:,} reached {funnel.index[-1]} ({last / first:.1%})" if first else "No conveyor calls"
    if pd.notna(funnel.loc["contract", "conversion"]):
        text += f"; meeting conversion {funnel.loc['contract', 'conversion']:.1%}"
    stage = most_changed_loss(losses)
    if stage is not None:
        text += (f"; the loss rate changed most at {stage} "
                 f"({losses.loc[stage, 'loss_rate_change'] * 100:+.1f} pp on the previous period)")
    return text + "."
