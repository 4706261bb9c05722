"""Staffing what-if for voice tiers: Erlang C agents needed per hour of day.

Erlang C (M/M/N queue, no abandonment): with arrival rate lambda, average handle time AHT and
N agents, traffic A = lambda x AHT (Erlangs).
    P(wait) = C(N, A) = N B / (N - A (1 - B)), with Erlang B from the stable recursion
              B(0) = 1, B(k) = A B(k-1) / (k + A B(k-1));   C = 1 when N <= A
    service level SL(T) = 1 - C exp(-(N - A) T / AHT)        (share answered within T)
    average speed of answer ASA = C AHT / (N - A)
Required agents = the smallest N with SL(T) >= target (and occupancy A / N <= the maximum).
Published check: 100 calls per 30 min, AHT 3 min (A = 10), N = 14, T = 20 s ->
P(wait) = 0.174, SL = 0.888.

pyworkforce (the maintained Erlang package) needs Python >= 3.12 from 0.5.2 on, and its last
3.11 release pulls in OR-Tools for this one formula, so the formula is implemented here.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.present import page
from analysis.data.config import Config
from analysis.data.engine import Engine, instant
from analysis.support.durations import business_days, local_timezone
from analysis.support.tiers import entry_tier

__all__ = ["erlang_c", "service_level", "average_speed_of_answer", "required_agents",
           "hourly_arrivals", "staffing_table", "staffing_view", "staffing_sentences", "PLAN_COLUMNS"]


def erlang_c(traffic, agents) -> np.ndarray:
    """Probability that a call waits, C(N, A), vectorised over arrays of traffic and agents."""
    a = np.atleast_1d(np.asarray(traffic, dtype="float64"))
    n = np.atleast_1d(np.asarray(agents, dtype="int64"))
    a, n = np.broadcast_arrays(a, n)
    b = np.ones(a.shape)
    out = np.ones(a.shape)
    for k in range(1, int(n.max(initial=0)) + 1):
        b = a * b / (k + a * b)
        at_k = n == k
        out[at_k] = (k * b[at_k]) / (k - a[at_k] * (1 - b[at_k]))
    out = np.where(n > a, out, 1.0)
    return np.where(a > 0, out, 0.0)


def service_level(traffic, agents, handle_s: float, answer_within_s: float) -> np.ndarray:
    """Share of calls answered within ``answer_within_s`` seconds: 1 - C exp(-(N - A) T / AHT);
    0 when N <= A (the queue grows without bound)."""
    a = np.asarray(traffic, dtype="float64")
    n = np.asarray(agents, dtype="float64")
    sl = 1 - erlang_c(a, n.astype("int64")) * np.exp(-(n - a) * answer_within_s / handle_s)
    return np.where(n > a, sl, 0.0)


def average_speed_of_answer(traffic, agents, handle_s: float) -> np.ndarray:
    """Mean wait in seconds over all calls: C AHT / (N - A); infinite when N <= A."""
    a = np.asarray(traffic, dtype="float64")
    n = np.asarray(agents, dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n > a, erlang_c(a, n.astype("int64")) * handle_s / (n - a), np.inf)


def required_agents(traffic, handle_s: float, answer_within_s: float, target: float,
                    max_occupancy: float = 1.0) -> np.ndarray:
    """Smallest N with service level >= target and A / N <= max_occupancy (0 where A = 0)."""
    a = np.atleast_1d(np.asarray(traffic, dtype="float64"))
    n = np.maximum(np.floor(a).astype("int64") + 1, np.ceil(a / max_occupancy).astype("int64"))
    n = np.where(a > 0, n, 0)
    todo = (a > 0) & (service_level(a, n, handle_s, answer_within_s) < target)
    while todo.any():  # a few steps past the traffic; vectorised over all hours
        n = np.where(todo, n + 1, n)
        todo = (a > 0) & (service_level(a, n, handle_s, answer_within_s) < target)
    return n


def hourly_arrivals(eng: Engine, config: Config, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Mean voice tickets arriving per hour of day (business timezone, else UTC) and entry tier
    over the days of [start, end): count / number of days (working days only when the config has
    business hours). Rows: hour 0-23; columns: tiers that receive voice tickets.

    The voice tickets of the window (creation time and entry tier) leave the engine; the window
    is a few weeks, so they are few."""
    t = eng.table("tickets")
    if "channel_kind" in t.columns:
        t = t.filter((t.channel_kind == "voice") & (t.created_at >= instant(start)) & (t.created_at < instant(end)))
        voice = eng.frame(t.select("created_at", "first_tier"))
    else:
        voice = pd.DataFrame({"created_at": pd.Series(dtype="datetime64[ns, UTC]"), "first_tier": pd.Series(dtype="string")})
    tz = local_timezone(config.business_hours)
    local = voice["created_at"].dt.tz_convert(tz)
    days = pd.date_range(start.tz_convert(tz).tz_localize(None).normalize(),
                         (end - pd.Timedelta(days=1)).tz_convert(tz).tz_localize(None).normalize(), freq="D")
    days = business_days(days, config.business_hours)
    open_day = local.dt.tz_localize(None).dt.normalize().isin(days)
    local, voice = local[open_day], voice[open_day]
    counts = pd.crosstab(local.dt.hour.rename("hour"), entry_tier(voice, config).rename("tier"), dropna=False)
    counts = counts.reindex(index=range(24), fill_value=0)
    counts = counts.loc[:, counts.sum() > 0]
    return counts / max(len(days), 1)


def staffing_table(arrivals: pd.DataFrame, handle_min: float, target: float, answer_within_s: float,
                   max_occupancy: float = 1.0) -> pd.DataFrame:
    """Per tier and hour: calls per hour, traffic (Erlangs), required agents and, with them,
    the expected service level, probability of waiting, average speed of answer and occupancy."""
    long = arrivals.stack().rename("calls_per_hour").reset_index()
    handle_s = handle_min * 60.0
    a = long["calls_per_hour"].to_numpy() * handle_min / 60.0
    n = required_agents(a, handle_s, answer_within_s, target, max_occupancy)
    long["traffic_erlangs"] = a
    long["agents"] = n
    long["service_level"] = np.where(n > 0, service_level(a, n, handle_s, answer_within_s), np.nan)
    long["p_wait"] = np.where(n > 0, erlang_c(a, n), np.nan)
    long["asa_s"] = np.where(n > 0, average_speed_of_answer(a, n, handle_s), np.nan)
    long["occupancy"] = np.where(n > 0, a / np.where(n > 0, n, 1), np.nan)
    return long[["tier", "hour", "calls_per_hour", "traffic_erlangs", "agents", "service_level", "p_wait",
                 "asa_s", "occupancy"]]


# what a planner reads per hour, in reading order: the demand, the answer, what it buys
PLAN_COLUMNS = ["calls_per_hour", "agents_needed", "asa_s", "service_level"]


def staffing_view(plan: pd.DataFrame) -> pd.DataFrame:
    """``staffing_table`` for the report: one row per hour of day, for each voice tier its calls
    per hour, the agents needed (``agents_needed``) and, with them, the expected (mean) answer
    time in seconds (``asa_s``) and the share of calls answered within the target
    (``service_level``); columns: tier x those four. Hours with no calls show 0 calls and 0
    agents and no answer time."""
    tiers = list(dict.fromkeys(plan["tier"]))
    wide = plan.rename(columns={"agents": "agents_needed"}).pivot(index="hour", columns="tier", values=PLAN_COLUMNS)
    wide = wide.swaplevel(0, 1, axis=1).reindex(columns=pd.MultiIndex.from_product([tiers, PLAN_COLUMNS]))
    wide.index.name = "hour of day"
    return wide


def staffing_sentences(plan: pd.DataFrame, target: float, answer_within_s: float, clock: str):
    """One sentence per voice tier of ``staffing_table``: the busiest and the quietest hour (calls
    per hour; the earliest hour on a tie), the range of agents needed, and the longest expected
    answer time those agents give, with its hour. ``clock`` names the hours' timezone."""
    lines = []
    for tier, d in plan.groupby("tier", sort=False, observed=True):
        d = d.sort_values("hour")
        busy = d.loc[d["calls_per_hour"].idxmax()]
        quiet = d.loc[d["calls_per_hour"].idxmin()]
        answered = d.dropna(subset=["asa_s"])
        slow = answered.loc[answered["asa_s"].idxmax()] if len(answered) else None
        agents = (f"{int(d['agents'].min())} agent{'s' if d['agents'].min() != 1 else ''}"
                  if d["agents"].min() == d["agents"].max()
                  else f"from {int(d['agents'].min())} to {int(d['agents'].max())} agents")
        text = page.md("- **{tier}**: from {quiet:,.2f} calls per hour ({qh:02d}:00) to {busy:,.2f} ({bh:02d}:00, "
                          "{clock}); {agents} per hour answer {target:.0%} within {within:,.0f} s",
                          tier=tier, quiet=quiet["calls_per_hour"], qh=int(quiet["hour"]), busy=busy["calls_per_hour"],
                          bh=int(busy["hour"]), clock=clock, agents=agents, target=target, within=answer_within_s)
        if slow is not None:
            text += page.md("; the longest expected answer is {asa:,.0f} s, at {h:02d}:00.", asa=slow["asa_s"],
                               h=int(slow["hour"]))
        else:
            text += page.md(".")
        lines.append(text)
    return page.join(lines)
