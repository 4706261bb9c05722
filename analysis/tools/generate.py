"""Synthetic sample data calibrated to DOMAIN.md, with the true parameters in truth.json.

Every table of the contract is generated from one seeded ``numpy.random.Generator`` and
vectorised (no per-client Python loop), so the same seed and size give the same files.

The world (all dates UTC, data from 2024-01-01 to 2025-12-31):
- clients sign up uniformly; each has a latent engagement e ~ N(0, 1) and a segment;
- onboarding: an onboarding call reaches 60% of registrations within two days; 16% of the
  reached and 7% of the others pay; 70% of payers pay within 3 days of signing up; reached
  clients' checks are twice as large;
- payers renew monthly (plus top-ups) until a latent lifetime T ends. T has a monthly hazard
  h0 * exp(-b_e * e - b_c * z) (z = standardised log check) multiplied by the true causal
  hazard ratio of support contact from the first contact on. Engaged and large clients are
  more likely to contact support early (the confounders), and a client who already left
  cannot write (immortal time), so the naive split overstates the true effect;
- tickets: early and later contacts of payers, pre-sale questions of non-payers, tickets with
  no client; refund demands before churn (a third saved); on 2025-07-01 the support
  department moves from two lines (L1, L2) to L1 / L1.5 / L2 (plus CS and FIN lines):
  first response 25 -> 22 min, resolution 80 -> 50 min (medians), CSAT 86% -> 88%,
  L2's share of support tickets 0.25 -> 0.15 with the same L2 headcount (load -40%);
- the desk by the clock: tickets arrive by an hourly profile (Moscow time: quiet nights, morning
  and afternoon peaks), so voice staffing varies by hour; the slowest 2% of first replies and 3%
  of fixes take days but come (only tickets of the last days are open at the end); 1% are closed
  without a reply; a client's answer usually gets a further agent reply, as do escalations and
  reopens (one-touch about 56% of resolved tickets, 73% at L1; not 99%);
- dormancy: 90 days after the last activity, a win-back email (checks below the mean
  charge) or call (above) reaches 80% of dormant clients; 8% / 17% / 32% come back
  (none / email / call);
- product usage (the optional ``usage`` table): weekly rows while a client is active (a payer
  until the lifetime ends, anyone else for a 14-day trial), Poisson events with a rate of
  6 x exp(0.8 e) per week, the same engagement e that drives contact and churn: the measurable
  proxy of the confounder. With ``usage.contact_lift`` > 0 contact raises usage from the first
  ticket on (a mediator, not a confounder).

Knobs of the world, for calibration studies (``world=`` of ``build_tables`` / ``generate``, or the
CLI's ``--true-hr``, ``--confounding``, ``--no-usage``, ``--usage-contact-lift``):
``true_hazard_ratio_contact`` (1.0: contact has no effect), ``confounding`` (a factor on
engagement's effect on contact and on churn: 0 none, 1 the sample's), ``usage.write`` and
``usage.contact_lift``. The defaults are the sample; tables other than ``usage`` do not depend
on the usage knobs (its own random stream).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.data.io import write_table

__all__ = ["generate", "build_tables", "PARAMS", "PROFILES", "profile_params"]

START = pd.Timestamp("2024-01-01", tz="UTC")
END = pd.Timestamp("2026-01-01", tz="UTC")
RESTRUCTURE = pd.Timestamp("2025-07-01", tz="UTC")
DAY = np.int64(86_400 * 10**9)
MIN = np.int64(60 * 10**9)
MONTH_DAYS = 30.4375
MAX_LIFE_MONTHS = 1200.0

PARAMS = {
    "segments": {"smb": 0.70, "mid": 0.25, "enterprise": 0.05},
    "check_median": {"smb": 1500.0, "mid": 6000.0, "enterprise": 30000.0},
    "check_engagement_coef": 0.35, "check_noise_sigma": 0.4,
    "onboarding": {"call_attempt_rate": 0.9, "reach_rate": 0.60, "paid_rate_reached": 0.16,
                   "paid_rate_not_reached": 0.07, "share_paying_within_3_days": 0.70,
                   "late_payment_mean_days": 25.0, "check_multiplier_reached": 2.0},
    "early_contact_logit": {"intercept": -1.0, "engagement": 0.9, "check_z": 0.5},
    "later_contact_mean_days": 90.0,
    "later_ticket_rate_per_month": 1.5,
    "hazard": {"baseline_monthly": 0.22, "engagement": 0.5, "check_z": 0.35},
    "true_hazard_ratio_contact": 0.7,
    "confounding": 1.0,
    "usage": {"write": True, "weekly_events": 6.0, "engagement": 0.8, "contact_lift": 0.0, "trial_days": 14},
    "topups_per_month": 0.5,
    "currency": "RUB",   # payments.currency (one code: the reports show money with it); None: no column
    "random_refund_share": 0.02,
    "refund_request_share_of_churners": 0.20, "refund_save_rate": 1 / 3,
    "nonpayer_ticket_share": 0.5, "nonpayer_extra_tickets": 1.0,
    "no_client_ticket_share": 0.06,
    "channels": {"chat": 0.50, "email": 0.25, "messenger": 0.07, "phone": 0.18},
    "priorities": {"low": 0.2, "normal": 0.6, "high": 0.15, "urgent": 0.05},
    "topics": {"technical": 0.4, "tariffs": 0.2, "general": 0.2, "billing": 0.15, "cancellation": 0.05},
    "first_response_median_min": {"before": 25.0, "after": 22.0},
    "resolution_median_min": {"before": 80.0, "after": 50.0},
    "duration_sigma": 0.8, "duration_log_correlation": 0.9,
    "csat_response_rate": 0.30,
    "csat_satisfied_rate": {"before": 0.86, "after": 0.88},
    "escalation": {"before_l1_to_l2": 0.25, "after_l1_to_l15": 0.25, "after_l15_escalated_to_l2": 0.45,
                   "after_voice_l15_to_l2": 0.32},
    "late_reply_share": 0.02, "closed_without_reply_share": 0.01, "slow_resolution_share": 0.03,
    "reopened_share": 0.04,
    # what a real desk looks like: tickets arrive by the clock (Moscow time, UTC+3: quiet nights,
    # a morning and an afternoon peak), the slowest replies and fixes take days but come, and a
    # ticket often needs more than one reply (after the client answers, after an escalation or a
    # reopen); drawn from their own stream, so no other table changes
    "hour_of_day_weights_utc3": [0.15, 0.1, 0.08, 0.08, 0.1, 0.2, 0.4, 0.8, 1.4, 2.0, 2.4, 2.5,
                                 2.2, 2.3, 2.4, 2.3, 2.1, 1.8, 1.4, 1.1, 0.9, 0.7, 0.5, 0.3],
    "late_reply_mean_days": 1.5, "slow_resolution_mean_days": 3.0,
    "follow_up_reply_share": 0.8, "escalated_reply_share": 0.9,
    "agents": {"L1_before": 30, "promoted_to_L15": 10, "L1_hired_at_restructure": 12, "L2": 8, "CS": 5, "FIN": 4},
    "sales": {"leads_per_client": 1.0, "campaign_start": "2025-04-01",
              "vendors": {"generic": 0.5, "specialist": 0.5},
              "conversion": {"generic": 0.02, "specialist": 0.037},
              "status_probs": {"generic": {"no_answer": 0.45, "secretary": 0.30, "decision_maker": 0.20, "consent": 0.05},
                               "specialist": {"no_answer": 0.40, "secretary": 0.25, "decision_maker": 0.25, "consent": 0.10}},
              "duration_median_s": {"no_answer": 18, "secretary": 45, "decision_maker": 150, "consent": 320},
              "attempts_mean": 2.0, "operators_per_vendor": 1,
              "reach_beyond_cold_call": {"need_found": 0.20, "proposal": 0.55, "meeting": 0.6},
              "days_between_stages_mean": 4.0},
    "winback": {"dormancy_days": 90, "outreach_share": 0.8,
                "comeback_prob": {"none": 0.08, "email": 0.17, "call": 0.32},
                "comeback_extra_months_mean": 2.0, "rounds": 2},
}


# Volume profiles. "sample" is the world above, calibrated to DOMAIN.md (about 0.9 payments and
# 1.9 tickets per registration: 12% of registrations pay). "scale" is the DESIGN §8 volume used by
# the benchmarks (about 20 payments and 5 tickets per client): almost every client pays, stays
# longer and tops up more, and payers write more. Only these parameters differ; the sample's
# files stay byte-identical for a seed.
PROFILES = {
    "sample": {},
    "scale": {"onboarding": {"paid_rate_reached": 0.97, "paid_rate_not_reached": 0.93},
              "hazard": {"baseline_monthly": 0.035},
              "topups_per_month": 1.4,
              "later_ticket_rate_per_month": 0.36,
              "usage": {"write": False},    # DESIGN §8's volumes: no usage (weekly rows of 1M clients)
              "currency": None},            # ... and the contract's required columns only
}


def profile_params(profile: str = "sample", world: dict | None = None) -> dict:
    """PARAMS with the profile's overrides, then ``world``'s, merged in (one level of nesting).
    A key of ``world`` that PARAMS does not have is an error."""
    if profile not in PROFILES:
        raise ValueError(f"unknown generator profile {profile!r}: use one of {', '.join(PROFILES)}")
    unknown = sorted(set(world or {}) - set(PARAMS))
    if unknown:
        raise ValueError(f"unknown generator parameter(s): {', '.join(unknown)}")
    merged = {k: (dict(v) if isinstance(v, dict) else v) for k, v in PARAMS.items()}
    for overrides in (PROFILES[profile], world or {}):
        for key, value in overrides.items():
            merged[key] = {**merged[key], **value} if isinstance(value, dict) else value
    return merged


def _pick(rng, n, probs: dict) -> np.ndarray:
    keys = np.array(list(probs))
    return keys[rng.choice(len(keys), size=n, p=np.array(list(probs.values())) / sum(probs.values()))]


def _ts(ns: np.ndarray) -> pd.Series:
    return pd.Series(pd.to_datetime(ns, utc=True)).astype("datetime64[ns, UTC]").dt.floor("s")


def _add_months(ns: np.ndarray, months: int) -> np.ndarray:
    """Calendar months added with the day clamped to the month's end (pandas DateOffset)."""
    return (pd.DatetimeIndex(pd.to_datetime(ns, utc=True)) + pd.DateOffset(months=months)).asi8


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _seed_words(seed) -> tuple[int, ...]:
    return tuple(seed) if isinstance(seed, (tuple, list)) else (seed,)


def _stream(seed, *more: int) -> np.random.Generator:
    """A table's own random stream: (seed words..., more...), so one table's knobs move no other."""
    return np.random.default_rng([*_seed_words(seed), *more])


def build_tables(clients: int, seed: int | tuple[int, ...], profile: str = "sample",
                 world: dict | None = None) -> tuple[dict[str, pd.DataFrame], dict]:
    """Return the contract tables and the truth record for ``clients`` registrations; ``world``
    overrides parameters (the knobs in the module docstring). ``seed`` is an int, or a tuple
    (seed, chunk) for one chunk of a large set (``generate``)."""
    P = profile_params(profile, world)
    rng = np.random.default_rng(list(_seed_words(seed)))
    n = clients
    start_ns, end_ns = START.value, END.value

    # ---- clients -----------------------------------------------------------------
    signed = rng.integers(start_ns, end_ns - DAY, size=n)
    segment = _pick(rng, n, P["segments"])
    engagement = rng.standard_normal(n)
    client_id = np.char.add("0", np.char.zfill(np.arange(1, n + 1).astype(str), 7))  # leading zero kept
    clients_df = pd.DataFrame({
        "client_id": client_id, "signed_up_at": _ts(signed), "segment": segment,
        "acquisition_channel": _pick(rng, n, {"organic": 0.4, "ads": 0.35, "referral": 0.15, "partner": 0.1}),
        "country": _pick(rng, n, {"RU": 0.7, "KZ": 0.12, "BY": 0.08, "UZ": 0.06, "AM": 0.04}),
    })

    # ---- onboarding outreach and conversion ----------------------------------------
    ob = P["onboarding"]
    attempted = rng.random(n) < ob["call_attempt_rate"]
    call_at = signed + (rng.random(n) * 2 * DAY).astype(np.int64)
    reached = attempted & (rng.random(n) < ob["reach_rate"] / ob["call_attempt_rate"])
    pays = rng.random(n) < np.where(reached, ob["paid_rate_reached"], ob["paid_rate_not_reached"])
    quick = rng.random(n) < ob["share_paying_within_3_days"]
    delay_days = np.where(quick, rng.random(n) * 3, 3 + rng.exponential(ob["late_payment_mean_days"], n))
    first_pay = signed + (delay_days * DAY).astype(np.int64)
    pays &= first_pay < end_ns
    ob_rows = attempted & (call_at < end_ns)
    outreach = [pd.DataFrame({"client_id": client_id[ob_rows], "at": call_at[ob_rows], "campaign": "onboarding",
                              "channel": "call", "reached": reached[ob_rows],
                              "outcome": np.where(reached[ob_rows], "talked", "no_answer")})]

    # ---- payers: check size, contact, lifetime -------------------------------------
    pid = np.flatnonzero(pays)
    m = len(pid)
    e = engagement[pid]
    seg_median = np.vectorize(P["check_median"].get)(segment[pid]) if m else np.zeros(0)
    check = seg_median * np.exp(P["check_engagement_coef"] * e + P["check_noise_sigma"] * rng.standard_normal(m))
    check = np.round(check * np.where(reached[pid], ob["check_multiplier_reached"], 1.0), 2)
    logc = np.log(check)
    z = (logc - logc.mean()) / (logc.std() or 1.0) if m else logc
    start = first_pay[pid]
    lg, c = P["early_contact_logit"], P["confounding"]   # c scales engagement's effect on contact and churn
    early_intent = rng.random(m) < _sigmoid(lg["intercept"] + lg["engagement"] * c * e + lg["check_z"] * z)
    contact_days = np.where(early_intent, rng.uniform(-3, 30, m),
                            30 + rng.exponential(P["later_contact_mean_days"] * np.exp(-0.5 * c * e)))
    hz = P["hazard"]
    h = hz["baseline_monthly"] * np.exp(-hz["engagement"] * c * e - hz["check_z"] * z)
    hr = P["true_hazard_ratio_contact"]
    tc = np.maximum(contact_days, 0) / MONTH_DAYS  # months of exposure before contact
    draw = rng.exponential(1.0, m)
    life_m = np.where(draw < h * tc, draw / h, tc + (draw - h * tc) / (h * hr))
    contacted = life_m * MONTH_DAYS > contact_days  # still a client when the contact was due

    # refund demands just before churn; a third saved (lifetime extended)
    horizon_m = (end_ns - start) / DAY / MONTH_DAYS
    churns_in_window = life_m < horizon_m
    asks_refund = churns_in_window & (rng.random(m) < P["refund_request_share_of_churners"])
    saved = asks_refund & (rng.random(m) < P["refund_save_rate"])
    # (used only for clients who churn in the window; the cap keeps the others' int64 cast valid)
    request_at = start + (np.maximum(np.minimum(life_m, MAX_LIFE_MONTHS) * MONTH_DAYS * DAY - 2 * 3600 * 10**9,
                                     3600 * 10**9)).astype(np.int64)
    life_m = np.where(saved, life_m + 1.5 + rng.exponential(4.0, m), life_m)
    # a lifetime of centuries (a tiny hazard) would overflow int64 nanoseconds: cut at 100 years,
    # far past the data window, so nothing observable changes
    life_m = np.minimum(life_m, MAX_LIFE_MONTHS)
    life_end = start + (life_m * MONTH_DAYS * DAY).astype(np.int64)

    # ---- payments: first charge, monthly renewals, top-ups, refunds ------------------
    pay_client, pay_at, pay_amt = [pid], [start], [check]
    max_months = int(np.ceil((end_ns - start_ns) / DAY / 28)) + 1
    for k in range(1, max_months):
        at = _add_months(start, k)
        alive = (at < life_end) & (at < end_ns)
        if not alive.any():
            break
        idx = np.flatnonzero(alive)
        pay_client.append(pid[idx]); pay_at.append(at[idx])
        pay_amt.append(np.round(check[idx] * rng.lognormal(0, 0.15, len(idx)), 2))
        extra = rng.poisson(P["topups_per_month"], len(idx))
        rep = np.repeat(idx, extra)
        t_extra = np.repeat(at[idx], extra) + (rng.uniform(1, 25, len(rep)) * DAY).astype(np.int64)
        ok = (t_extra < life_end[rep]) & (t_extra < end_ns)
        pay_client.append(pid[rep[ok]]); pay_at.append(t_extra[ok])
        pay_amt.append(np.round(0.5 * check[rep[ok]] * rng.lognormal(0, 0.3, ok.sum()), 2))
    pos = np.full(n, -1)  # position of each payer in pid, by client index
    pos[pid] = np.arange(m)

    # ---- win-back rounds ----------------------------------------------------------
    wb = P["winback"]
    pays_now = pd.DataFrame({"i": np.concatenate(pay_client), "at": np.concatenate(pay_at)})
    last_charge = pays_now.groupby("i")["at"].max().reindex(pid).to_numpy()
    mean_charge = np.concatenate(pay_amt).mean() if m else 0.0
    client_mean = pd.Series(np.concatenate(pay_amt)).groupby(np.concatenate(pay_client)).mean().reindex(pid).to_numpy()

    # payer tickets (times only; attributes later)
    t_client, t_at, t_topic = [], [], []
    c_idx = np.flatnonzero(contacted)
    t_client.append(pid[c_idx]); t_at.append(start[c_idx] + (contact_days[c_idx] * DAY).astype(np.int64))
    t_topic.append(np.full(len(c_idx), ""))
    first_contact = start + (contact_days * DAY).astype(np.int64)
    span_m = np.where(contacted, (life_end - first_contact) / DAY / MONTH_DAYS, 0)
    k_later = rng.poisson(P["later_ticket_rate_per_month"] * np.exp(0.4 * e) * np.maximum(span_m, 0))
    rep = np.repeat(np.arange(m), k_later)
    later_at = first_contact[rep] + (rng.random(len(rep)) * (life_end[rep] - first_contact[rep])).astype(np.int64)
    t_client.append(pid[rep]); t_at.append(later_at); t_topic.append(np.full(len(rep), ""))
    r_idx = np.flatnonzero(asks_refund)
    t_client.append(pid[r_idx]); t_at.append(request_at[r_idx]); t_topic.append(np.full(len(r_idx), "refund_request"))
    tix_pay = pd.DataFrame({"i": np.concatenate(t_client), "at": np.concatenate(t_at)})
    tix_pay = tix_pay[(tix_pay["at"] < end_ns)]
    last_ticket = tix_pay[tix_pay["at"] >= start[pos[tix_pay["i"]]]].groupby("i")["at"].max().reindex(pid).to_numpy()
    last_activity = np.fmax(last_charge.astype(float), np.nan_to_num(last_ticket.astype(float), nan=-np.inf)).astype(np.int64)

    winback_events = []
    for _round in range(wb["rounds"]):
        dormant_at = last_activity + wb["dormancy_days"] * DAY
        due = dormant_at < end_ns
        idx = np.flatnonzero(due)
        big = client_mean[idx] > mean_charge
        has_outreach = rng.random(len(idx)) < wb["outreach_share"]
        channel = np.where(has_outreach, np.where(big, "call", "email"), "none")
        o_at = dormant_at[idx] + (rng.random(len(idx)) * 3 * DAY).astype(np.int64)
        o_ok = has_outreach & (o_at < end_ns)
        outreach.append(pd.DataFrame({"client_id": client_id[pid[idx[o_ok]]], "at": o_at[o_ok], "campaign": "winback",
                                      "channel": channel[o_ok], "reached": channel[o_ok] == "call",
                                      "outcome": "sent"}))
        prob = np.vectorize(wb["comeback_prob"].get)(channel) if len(idx) else np.zeros(0)
        back = rng.random(len(idx)) < prob
        back_at = dormant_at[idx] + (rng.uniform(3, 85, len(idx)) * DAY).astype(np.int64)
        back &= back_at < end_ns
        winback_events.append(pd.DataFrame({"round": _round, "channel": channel, "big": big, "prob": prob,
                                            "dormant_at": dormant_at[idx], "back": back}))
        b = idx[back]
        k_more = rng.poisson(wb["comeback_extra_months_mean"], len(b))
        new_last = back_at[back].copy()
        for j in range(0, int(k_more.max()) + 1 if len(b) else 0):
            at = back_at[back] if j == 0 else _add_months(back_at[back], j)
            ok = (j <= k_more) & (at < end_ns)
            pay_client.append(pid[b[ok]]); pay_at.append(at[ok])
            pay_amt.append(np.round(check[b[ok]] * rng.lognormal(0, 0.15, ok.sum()), 2))
            new_last = np.where(ok, np.maximum(new_last, at), new_last)
        last_activity = last_activity.copy()
        last_activity[b] = new_last
        # clients who did not come back stay gone: push their activity past the window
        gone = idx[~back]
        last_activity[gone] = end_ns + 365 * DAY

    payments = pd.DataFrame({"i": np.concatenate(pay_client), "paid_at": np.concatenate(pay_at),
                             "amount": np.concatenate(pay_amt)})
    # refunds: random partial ones, and the refund demands that were not saved
    plain = ~asks_refund[pos[payments["i"].to_numpy()]]
    rnd = plain & (rng.random(len(payments)) < P["random_refund_share"])
    r1 = payments[rnd].copy()
    r1["paid_at"] = r1["paid_at"] + (rng.uniform(1, 10, len(r1)) * DAY).astype(np.int64)
    r1["amount"] = -np.round(r1["amount"] * rng.uniform(0.2, 1.0, len(r1)), 2)
    lost = np.flatnonzero(asks_refund & ~saved)
    last_amt = payments.sort_values("paid_at").groupby("i")["amount"].last().reindex(pid[lost]).to_numpy()
    r2 = pd.DataFrame({"i": pid[lost], "paid_at": request_at[lost] + (rng.uniform(0.1, 2, len(lost)) * DAY).astype(np.int64),
                       "amount": -last_amt})
    payments = pd.concat([payments, r1, r2], ignore_index=True)
    payments = payments[payments["paid_at"] < end_ns].sort_values(["paid_at", "i"], kind="stable").reset_index(drop=True)
    payments_df = pd.DataFrame({"payment_id": np.char.add("P", np.arange(1, len(payments) + 1).astype(str)),
                                "client_id": client_id[payments["i"].to_numpy()],
                                "paid_at": _ts(payments["paid_at"].to_numpy()),
                                "amount": payments["amount"].to_numpy(),
                                "kind": np.where(payments["amount"].to_numpy() > 0, "charge", "refund")})
    if P["currency"]:
        payments_df["currency"] = P["currency"]

    # retention outreach after refund demands (customer success calls)
    rq = r_idx[request_at[r_idx] + 3600 * 10**9 < end_ns]
    outreach.append(pd.DataFrame({"client_id": client_id[pid[rq]], "at": request_at[rq] + 3600 * 10**9,
                                  "campaign": "retention", "channel": "call", "reached": True,
                                  "outcome": np.where(saved[rq], "kept", "refunded")}))

    # ---- tickets ------------------------------------------------------------------
    np_idx = np.flatnonzero(~pays & (rng.random(n) < P["nonpayer_ticket_share"]))
    k_np = 1 + rng.poisson(P["nonpayer_extra_tickets"], len(np_idx))
    rep = np.repeat(np_idx, k_np)
    np_at = signed[rep] + (rng.random(len(rep)) * 30 * DAY).astype(np.int64)
    client_tix = pd.DataFrame({
        "client": np.concatenate([np.concatenate(t_client), rep]).astype(np.int64),
        "created": np.concatenate([np.concatenate(t_at), np_at]),
        "topic": np.concatenate([np.concatenate(t_topic), np.full(len(rep), "")])})
    n_orphan = int(round(len(client_tix) * P["no_client_ticket_share"]))
    orphan = pd.DataFrame({"client": -1, "created": rng.integers(start_ns, end_ns, n_orphan), "topic": ""})
    tix = pd.concat([client_tix, orphan], ignore_index=True)
    tix["created"] = _clock_time(_stream(seed, 10, 1), tix["created"].to_numpy(),
                                 np.where(tix["client"] >= 0, signed[np.maximum(tix["client"].to_numpy(), 0)], 0),
                                 P["hour_of_day_weights_utc3"])
    tix = tix[tix["created"] < end_ns].sort_values(["created", "client"], kind="stable").reset_index(drop=True)
    tickets_df, events_df, agents_df, support_truth = _ticket_details(rng, _stream(seed, 10), tix,
                                                                      client_id, segment, P)

    outreach_df = pd.concat(outreach, ignore_index=True)
    outreach_df = outreach_df.sort_values(["at", "client_id", "campaign"], kind="stable").reset_index(drop=True)
    outreach_df["at"] = _ts(outreach_df["at"].to_numpy())

    tables = {"clients": clients_df, "payments": payments_df, "tickets": tickets_df,
              "ticket_events": events_df, "agents": agents_df, "outreach": outreach_df}
    # leads and calls from their own stream, so the tables above stay identical for a seed
    first_charge = payments_df[payments_df["amount"] > 0].groupby("client_id")["paid_at"].min()
    tables["leads"], tables["calls"], sales_truth = _leads_and_calls(_stream(seed, 8), n, first_charge, P)
    if P["usage"]["write"]:  # its own stream too: the knobs of usage change no other table
        active_end = np.full(n, -1, dtype=np.int64)
        active_end[pid] = life_end
        contact_at = np.full(n, np.iinfo(np.int64).max)
        contact_at[pid[contacted]] = first_contact[contacted]
        tables["usage"] = _usage(_stream(seed, 9), client_id, signed, engagement, active_end,
                                 contact_at, end_ns, P["usage"])
    wbe = pd.concat(winback_events, ignore_index=True) if winback_events else pd.DataFrame()
    truth = {
        "seed": seed, "clients": n,
        "period": {"start": START.isoformat(), "end_exclusive": END.isoformat()},
        "restructure_date": RESTRUCTURE.strftime("%Y-%m-%d"),
        "profile": profile, "parameters": P,
        "rows": {k: len(v) for k, v in tables.items()},
        "support": support_truth,
        "retention": {
            "true_hazard_ratio_contact": P["true_hazard_ratio_contact"],
            "contact_window_days": 30,
            "payers": int(m),
            "early_contact_share_of_payers": float((contacted & (contact_days < 30)).mean()) if m else None,
            "confounding": P["confounding"],
            "usage": P["usage"],
            "note": "contact multiplies the monthly churn hazard by true_hazard_ratio_contact from the first "
                    "ticket on; engagement (scaled by confounding) and check size raise contact and lower "
                    "churn (confounders); usage measures engagement (weekly events ~ exp(usage.engagement x e)).",
        },
        "onboarding": {"reach_rate": ob["reach_rate"], "paid_rate_reached": ob["paid_rate_reached"],
                       "paid_rate_not_reached": ob["paid_rate_not_reached"],
                       "share_paying_within_3_days": ob["share_paying_within_3_days"],
                       "check_multiplier_reached": ob["check_multiplier_reached"]},
        "refunds": {"save_rate": P["refund_save_rate"], "requests": int(asks_refund.sum()), "saved": int(saved.sum())},
        "sales": sales_truth,
        "winback": {"dormancy_days": wb["dormancy_days"], "comeback_prob": wb["comeback_prob"],
                    "expected_rate": float(wbe["prob"].mean()) if len(wbe) else None,
                    "expected_rate_first_round": float(wbe.loc[wbe["round"] == 0, "prob"].mean()) if len(wbe) else None},
    }
    return tables, truth


def _usage(rng, client_id: np.ndarray, signed: np.ndarray, engagement: np.ndarray, active_end: np.ndarray,
           contact_at: np.ndarray, end_ns: int, U: dict) -> pd.DataFrame:
    """Weekly usage rows while a client is active: from sign-up to the end of a payer's lifetime
    (``active_end``; -1 for a non-payer, who is active for the trial days), cut at the data's end.
    Events ~ Poisson(weekly_events x exp(engagement coef x e) x (1 + contact_lift once contacted));
    weeks with no event write no row."""
    until = np.where(active_end >= 0, active_end, signed + U["trial_days"] * DAY)
    until = np.minimum(until, end_ns)
    week = 7 * DAY
    weeks = np.maximum(np.ceil((until - signed) / week).astype(np.int64), 0)
    who = np.repeat(np.arange(len(signed)), weeks)
    k = np.arange(len(who)) - np.repeat(np.cumsum(weeks) - weeks, weeks)
    at = signed[who] + k * week
    rate = U["weekly_events"] * np.exp(U["engagement"] * engagement[who])
    rate = rate * np.where(at >= contact_at[who], 1.0 + U["contact_lift"], 1.0)
    events = rng.poisson(rate)
    keep = events > 0
    return pd.DataFrame({"client_id": client_id[who[keep]], "at": _ts(at[keep]), "events": events[keep]})


def _clock_time(rng, at: np.ndarray, not_before: np.ndarray, weights_utc3) -> np.ndarray:
    """The same UTC day as ``at`` at a time of day drawn from the hourly weights (given for
    UTC+3 hours), kept as it was where the new time would precede ``not_before`` (a ticket
    before its client signed up)."""
    w = np.roll(np.asarray(weights_utc3, dtype="float64"), -3)   # UTC hour h is UTC+3 hour h + 3
    hour = rng.choice(24, size=len(at), p=w / w.sum())
    moved = (at // DAY) * DAY + hour * 3600 * 10**9 + (rng.random(len(at)) * 3600 * 10**9).astype(np.int64)
    return np.where(moved >= not_before, moved, at)


def _ticket_details(rng, rng_desk, tix: pd.DataFrame, client_id: np.ndarray, segment: np.ndarray, P: dict):
    """Ticket attributes and events. ``rng_desk`` draws what makes the desk realistic (late
    replies and fixes in the slow tail, further agent replies), so the main stream's draws stay."""
    k = len(tix)
    created = tix["created"].to_numpy()
    after = created >= RESTRUCTURE.value
    topic = np.where(tix["topic"] == "", _pick(rng, k, P["topics"]), tix["topic"])
    channel = _pick(rng, k, P["channels"])
    voice = channel == "phone"
    esc = P["escalation"]
    u1, u2 = rng.random(k), rng.random(k)
    # before: two lines; after: text -> L1, voice -> L1.5, escalations up the ladder
    first = np.where(after & voice, "L1.5", "L1")
    final = np.where(~after, np.where(u1 < esc["before_l1_to_l2"], "L2", "L1"),
                     np.where(voice, np.where(u1 < esc["after_voice_l15_to_l2"], "L2", "L1.5"),
                              np.where(u1 < esc["after_l1_to_l15"],
                                       np.where(u2 < esc["after_l15_escalated_to_l2"], "L2", "L1.5"), "L1")))
    via_l15 = after & ~voice & (final == "L2")
    billing = topic == "billing"
    retention = np.isin(topic, ["refund_request", "cancellation"])
    first = np.where(billing, "FIN", first)
    final = np.where(billing, "FIN", np.where(retention, "CS", final))
    via_l15 &= ~billing & ~retention

    period = np.where(after, "after", "before")
    med_f = np.where(after, P["first_response_median_min"]["after"], P["first_response_median_min"]["before"])
    med_r = np.where(after, P["resolution_median_min"]["after"], P["resolution_median_min"]["before"])
    s, rho = P["duration_sigma"], P["duration_log_correlation"]
    z1 = rng.standard_normal(k)
    z2 = rho * z1 + np.sqrt(1 - rho**2) * rng.standard_normal(k)
    frt = med_f * np.exp(s * z1)
    res = np.maximum(med_r * np.exp(s * z2), frt + 1.0)
    # the slowest tails (the top late_reply_share of first-response draws, slow_resolution_share
    # of resolution draws) wait days for a reply or a fix, but get one: nothing is left open for
    # good. Taking them above the median keeps the medians of DOMAIN's restructure figures (and
    # the p90) as drawn. A few tickets are closed without any reply.
    late = z1 > np.quantile(z1, 1 - P["late_reply_share"]) if k else np.zeros(0, bool)
    slow = z2 > np.quantile(z2, 1 - P["slow_resolution_share"]) if k else np.zeros(0, bool)
    frt = np.where(late, frt + rng_desk.exponential(P["late_reply_mean_days"] * 1440, k), frt)
    res = np.maximum(np.where(slow, res + rng_desk.exponential(P["slow_resolution_mean_days"] * 1440, k), res),
                     frt + 1.0)
    no_reply = rng.random(k) < P["closed_without_reply_share"]
    fr_at = np.where(no_reply, np.nan, created + frt * MIN)
    rs_at = created + res * MIN
    end = float(END.value)
    fr_at = np.where(fr_at >= end, np.nan, fr_at)
    rs_at = np.where(rs_at >= end, np.nan, rs_at)
    resolved = ~np.isnan(rs_at)
    sat_p = np.where(after, P["csat_satisfied_rate"]["after"], P["csat_satisfied_rate"]["before"])
    rated = resolved & (rng.random(k) < P["csat_response_rate"])
    satisfied = rng.random(k) < sat_p
    score = np.where(satisfied, rng.choice([4, 5], k, p=[0.35, 0.65]), rng.choice([1, 2, 3], k, p=[0.3, 0.3, 0.4]))
    csat = pd.array(np.where(rated, score, 0), dtype="Int64")
    csat[~rated] = pd.NA
    reopened = resolved & (rng.random(k) < P["reopened_share"])

    agents, pools = _agents(P)
    def pick_agent(tier_of_ticket: np.ndarray) -> np.ndarray:
        """A random agent of the ticket's tier among those working in its period."""
        out = np.empty(k, dtype=object)
        for (tier, per), ids in pools.items():
            sel = (tier_of_ticket == tier) & (period == per)
            out[sel] = np.asarray(ids)[rng.integers(0, len(ids), sel.sum())]
        return out
    agent = pick_agent(final)
    first_agent = np.where(first == final, agent, pick_agent(first))

    cl = tix["client"].to_numpy()
    ticket_id = np.char.add("T", np.arange(1, k + 1).astype(str))
    tickets = pd.DataFrame({
        "ticket_id": ticket_id, "created_at": _ts(created),
        "channel": channel, "first_tier": first,
        "client_id": pd.array(np.where(cl >= 0, client_id[np.maximum(cl, 0)], None), dtype="string"),
        "first_response_at": _ts(fr_at.astype("datetime64[ns]").astype(np.int64)).where(~np.isnan(fr_at)),
        "resolved_at": _ts(rs_at.astype("datetime64[ns]").astype(np.int64)).where(resolved),
        "final_tier": final, "agent_id": agent,
        "priority": _pick(rng, k, P["priorities"]), "topic": topic,
        "csat_score": csat, "reopened": reopened.astype(int),
    })
    tickets["segment"] = np.where(cl >= 0, segment[np.maximum(cl, 0)], None)  # extra column, ignored by the contract

    # ---- ticket events --------------------------------------------------------------
    ev = []
    def add(mask, at, event, tier, who):
        ok = mask & ~np.isnan(at) & (at < end)
        ev.append(pd.DataFrame({"ticket_id": ticket_id[ok], "at": at[ok].astype(np.int64), "event": event,
                                "tier": tier[ok] if isinstance(tier, np.ndarray) else tier,
                                "agent_id": who[ok] if isinstance(who, np.ndarray) else who}))
    allrows = np.ones(k, bool)
    created_f = created.astype(float)
    add(allrows, created_f + 30e9, "assigned", first, first_agent)
    add(allrows, fr_at, "agent_reply", first, first_agent)
    base = np.where(np.isnan(fr_at), created_f, fr_at)
    span = np.where(np.isnan(rs_at), np.nan, rs_at - base)
    mid_agent = np.asarray(pools[("L1.5", "after")])[rng.integers(0, len(pools[("L1.5", "after")]), k)]
    add(via_l15, base + 0.25 * span, "assigned", np.full(k, "L1.5"), mid_agent)
    escalated = first != final
    add(escalated, base + 0.5 * span, "assigned", final, agent)
    client_answers = rng.random(k) < 0.3
    add(client_answers, base + 0.1 * span, "customer_reply", first, None)
    # further agent replies: most client answers get one from the first agent, an escalated
    # ticket one from the agent who takes it over, a reopened ticket one after the reopen
    answered = ~np.isnan(fr_at)
    add(answered & client_answers & (rng_desk.random(k) < P["follow_up_reply_share"]), base + 0.2 * span,
        "agent_reply", first, first_agent)
    add(answered & escalated & (rng_desk.random(k) < P["escalated_reply_share"]), base + 0.6 * span, "agent_reply",
        final, agent)
    add(reopened, base + 0.7 * span, "solved", final, agent)
    add(reopened, base + 0.8 * span, "reopened", final, None)
    add(reopened, base + 0.9 * span, "agent_reply", final, agent)
    add(resolved, rs_at, "solved", final, agent)
    events = pd.concat(ev, ignore_index=True).sort_values(["at", "ticket_id"], kind="stable").reset_index(drop=True)
    events["at"] = _ts(events["at"].to_numpy())

    truth = {
        "restructure_date": RESTRUCTURE.strftime("%Y-%m-%d"),
        "first_response_median_min": P["first_response_median_min"],
        "resolution_median_min": P["resolution_median_min"],
        "csat_satisfied_rate": P["csat_satisfied_rate"],
        "csat_response_rate": P["csat_response_rate"],
        "l2_share_of_line_tickets": {
            "before": esc["before_l1_to_l2"],
            "after": (1 - P["channels"]["phone"]) * esc["after_l1_to_l15"] * esc["after_l15_escalated_to_l2"]
                     + P["channels"]["phone"] * esc["after_voice_l15_to_l2"]},
        "l2_agents": {"before": P["agents"]["L2"], "after": P["agents"]["L2"]},
        "note": "line tickets = tickets whose topic is not billing, refund_request or cancellation; "
                "L2 load change = after / before share - 1 at constant L2 headcount and volume.",
    }
    sh = truth["l2_share_of_line_tickets"]
    truth["l2_load_change"] = sh["after"] / sh["before"] - 1
    return tickets, events, agents, truth


STAGES = ("cold_call", "need_found", "proposal", "meeting", "contract", "account")


def _leads_and_calls(rng, n_clients: int, first_charge: pd.Series, P: dict):
    """Outsourced cold calling by two vendors, then the in-house sales conveyor (DOMAIN §3-4).

    Leads arrive uniformly from the campaign start; each gets 1 + Poisson cold-call attempts by
    its vendor until a decision maker or consent is reached. A lead converts with the vendor's
    rate (generic 2%, specialised 3.7%); a converted lead passes every stage (need found,
    proposal, meeting, contract, account) and becomes one of the paying clients who started
    after it. Other leads stop at a stage drawn from decreasing continuation rates. Calls at the
    later stages are made by in-house sales and account managers.
    """
    S = P["sales"]
    start = pd.Timestamp(S["campaign_start"], tz="UTC").value
    k = int(round(n_clients * S["leads_per_client"]))
    vendor = _pick(rng, k, S["vendors"])
    created = rng.integers(start, END.value - 30 * DAY, size=k)
    conv_p = np.vectorize(S["conversion"].get)(vendor) if k else np.zeros(0)
    converted = rng.random(k) < conv_p
    # a converted lead becomes the next paying client who starts at least 3 days after it (greedy in
    # time order: assigned = max(first candidate, previous assignment + 1), vectorised as a running max)
    pool = first_charge[first_charge >= pd.Timestamp(S["campaign_start"], tz="UTC")].sort_values()
    pool_ns = pd.DatetimeIndex(pool).asi8
    conv_idx = np.flatnonzero(converted)
    conv_idx = conv_idx[np.argsort(created[conv_idx], kind="stable")]
    first_pos = np.searchsorted(pool_ns, created[conv_idx] + 3 * DAY)
    steps = np.arange(len(conv_idx))
    pos = np.maximum.accumulate(first_pos - steps) + steps if len(conv_idx) else first_pos
    linked = pos < len(pool_ns)
    converted[conv_idx[~linked]] = False                       # no client left to become: stays a lead
    conv_idx, pos = conv_idx[linked], pos[linked]
    client = np.full(k, None, dtype=object)
    client[conv_idx] = pool.index.to_numpy()[pos]
    conv_at = np.full(k, np.nan)
    conv_at[conv_idx] = pool_ns[pos]
    # furthest stage: converted -> account; others continue with decreasing rates
    depth = np.zeros(k, int)
    go = ~converted
    for level, name in enumerate(("need_found", "proposal", "meeting"), start=1):
        go &= rng.random(k) < S["reach_beyond_cold_call"][name]
        depth[go] = level
    depth[converted] = len(STAGES) - 1
    # cold calls: attempts until the last one reaches a decision maker (or the attempts run out)
    attempts = 1 + rng.poisson(S["attempts_mean"] - 1, k)
    rep = np.repeat(np.arange(k), attempts)
    nth = np.concatenate([np.arange(a) for a in attempts]) if k else np.zeros(0, int)
    last = nth == attempts[rep] - 1
    status = np.empty(len(rep), dtype=object)
    for v, probs in S["status_probs"].items():
        sel = vendor[rep] == v
        status[sel] = _pick(rng, int(sel.sum()), probs)
    qualified = depth[rep] >= 1
    status[last & qualified] = np.where(rng.random(int((last & qualified).sum())) < 0.5, "consent", "decision_maker")
    status[last & ~qualified & np.isin(status, ["consent"])] = "decision_maker"
    med = np.vectorize(S["duration_median_s"].get)(status) if len(rep) else np.zeros(0)
    duration = np.maximum(3, np.round(med * rng.lognormal(0, 0.5, len(rep)))).astype(int)
    at = created[rep] + (nth * 1.5 * DAY + rng.uniform(0.05, 0.9, len(rep)) * DAY).astype(np.int64)
    result = np.where(np.isin(status, ["decision_maker", "consent"]), "presented", None).astype(object)
    result[last & qualified] = "lead"
    ops = {v: [f"{v[:3].upper()}{i}" for i in range(1, S["operators_per_vendor"] + 1)] for v in S["vendors"]}
    operator = np.empty(len(rep), dtype=object)
    for v, ids in ops.items():
        sel = vendor[rep] == v
        operator[sel] = np.asarray(ids)[rng.integers(0, len(ids), int(sel.sum()))]
    cold = pd.DataFrame({"lead": rep, "started_at": at, "duration_s": duration, "status": status, "result": result,
                         "stage": "cold_call", "vendor": vendor[rep], "operator_id": operator})
    # in-house conveyor calls: one per further stage reached, a few days apart
    parts = [cold]
    t_prev = cold.groupby("lead")["started_at"].max().reindex(np.arange(k)).to_numpy()
    for level, stage in enumerate(STAGES[1:], start=1):
        who = np.flatnonzero(depth >= level)
        t_stage = t_prev[who] + (rng.exponential(S["days_between_stages_mean"], len(who)) * DAY).astype(np.int64)
        if stage in ("contract", "account"):
            t_stage = np.maximum(t_stage, conv_at[who].astype(np.int64) if len(who) else t_stage)
        t_prev[who] = t_stage
        owner = "AM1" if stage == "account" else f"SM{1 + level % 2}"
        parts.append(pd.DataFrame({"lead": who, "started_at": t_stage, "duration_s": np.round(rng.lognormal(6, 0.4, len(who))).astype(int),
                                   "status": "decision_maker", "result": "sale" if stage == "contract" else "presented",
                                   "stage": stage, "vendor": "in-house", "operator_id": owner}))
    calls = pd.concat(parts, ignore_index=True)
    calls = calls[calls["started_at"] < END.value].sort_values(["started_at", "lead"], kind="stable").reset_index(drop=True)
    lead_id = np.char.add("L", np.arange(1, k + 1).astype(str))
    calls_df = pd.DataFrame({"call_id": np.char.add("C", np.arange(1, len(calls) + 1).astype(str)),
                             "lead_id": lead_id[calls["lead"].to_numpy()], "operator_id": calls["operator_id"],
                             "started_at": _ts(calls["started_at"].to_numpy()), "duration_s": calls["duration_s"],
                             "status": calls["status"], "result": calls["result"], "stage": calls["stage"],
                             "vendor": calls["vendor"]})
    qualified_at = cold[cold["result"] == "lead"].groupby("lead")["started_at"].max().reindex(np.arange(k)).to_numpy()
    leads_df = pd.DataFrame({"lead_id": lead_id, "created_at": _ts(created), "source": np.where(vendor == "generic", "vendor_generic", "vendor_specialist"),
                             "client_id": pd.array(client, dtype="string"),
                             "qualified_at": _ts(np.nan_to_num(qualified_at, nan=0).astype(np.int64)).where(~np.isnan(qualified_at)),
                             "converted_at": _ts(np.nan_to_num(conv_at, nan=0).astype(np.int64)).where(~np.isnan(conv_at))})
    truth = {"conversion": S["conversion"], "leads": k, "converted": int(converted.sum()),
             "leads_by_vendor": {v: int((vendor == v).sum()) for v in S["vendors"]},
             "converted_by_vendor": {v: int((converted & (vendor == v)).sum()) for v in S["vendors"]},
             "note": "converted leads are linked to paying clients (client_id); their revenue comes from those "
                     "clients' payments. Rates are per lead of each vendor (calls.vendor of the cold calls)."}
    return leads_df, calls_df, truth


def _agents(P: dict) -> tuple[pd.DataFrame, dict]:
    """Agents before and after the restructure; promoted agents get a second row (new tier)."""
    A = P["agents"]
    rows, pools = [], {}
    rest, start = RESTRUCTURE, START
    l1 = [f"A{i:03d}" for i in range(1, A["L1_before"] + 1)]
    promoted, stay = l1[:A["promoted_to_L15"]], l1[A["promoted_to_L15"]:]
    hired = [f"A{i:03d}" for i in range(101, 101 + A["L1_hired_at_restructure"])]
    l2 = [f"A{i:03d}" for i in range(201, 201 + A["L2"])]
    cs = [f"A{i:03d}" for i in range(301, 301 + A["CS"])]
    fin = [f"A{i:03d}" for i in range(401, 401 + A["FIN"])]
    for a in promoted:
        rows.append((a, "L1", start, rest)); rows.append((a, "L1.5", rest, pd.NaT))
    for a in stay:
        rows.append((a, "L1", start, pd.NaT))
    for a in hired:
        rows.append((a, "L1", rest, pd.NaT))
    for tier, ids in (("L2", l2), ("CS", cs), ("FIN", fin)):
        rows += [(a, tier, start, pd.NaT) for a in ids]
        pools[(tier, "before")] = pools[(tier, "after")] = ids
    pools[("L1", "before")] = l1
    pools[("L1", "after")] = stay + hired
    pools[("L1.5", "after")] = promoted
    pools[("L1.5", "before")] = promoted  # not used: L1.5 did not exist before
    df = pd.DataFrame(rows, columns=["agent_id", "tier", "active_from", "active_to"])
    for c in ("active_from", "active_to"):
        df[c] = pd.to_datetime(df[c], utc=True).astype("datetime64[ns, UTC]")
    return df, pools


CHUNK_CLIENTS = 100_000   # a larger set is built and written this many registrations at a time

# id columns numbered 1, 2, 3 ... within a chunk: (table, column) -> (prefix, zero-padded width)
_NUMBERED = {("clients", "client_id"): ("client", "0", 7), ("payments", "client_id"): ("client", "0", 7),
             ("tickets", "client_id"): ("client", "0", 7), ("outreach", "client_id"): ("client", "0", 7),
             ("usage", "client_id"): ("client", "0", 7), ("leads", "client_id"): ("client", "0", 7),
             ("payments", "payment_id"): ("payment", "P", 0), ("tickets", "ticket_id"): ("ticket", "T", 0),
             ("ticket_events", "ticket_id"): ("ticket", "T", 0), ("leads", "lead_id"): ("lead", "L", 0),
             ("calls", "lead_id"): ("lead", "L", 0), ("calls", "call_id"): ("call", "C", 0)}
_COUNTED_BY = {"client": "clients", "payment": "payments", "ticket": "tickets", "lead": "leads", "call": "calls"}


def _renumber(tables: dict[str, pd.DataFrame], offsets: dict[str, int]) -> None:
    """Shift the numbered ids of one chunk by the counts of the chunks before it (in place), so
    the ids of a set built in chunks are unique and read as those of one build would."""
    for (table, col), (kind, prefix, width) in _NUMBERED.items():
        if table not in tables or not offsets.get(kind):
            continue
        ids = tables[table][col]
        known = ids.notna()
        number = ids[known].astype(str).str.slice(len(prefix)).astype("int64") + offsets[kind]
        text = number.astype(str)
        shifted = (prefix + (text.str.zfill(width) if width else text)).astype(ids.dtype)
        tables[table][col] = ids.where(~known, shifted) if (~known).any() else shifted


class _Appender:
    """Writes the chunks of each table into one file: Parquet row groups (one writer per table,
    the first chunk's schema) or CSV rows after one header."""

    def __init__(self, out: Path, fmt: str):
        self.out, self.fmt, self.writers = out, fmt, {}

    def write(self, name: str, frame: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq
        if self.fmt == "csv":
            path = write_table(frame, self.out / ".chunk", name, "csv")
            target = self.out / f"{name}.csv"
            with open(path, "rb") as src, open(target, "ab") as dst:
                if name in self.writers:
                    src.readline()             # the header once
                dst.write(src.read())
            self.writers[name] = True
            path.unlink()
            return
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if name not in self.writers:
            self.writers[name] = pq.ParquetWriter(self.out / f"{name}.parquet", table.schema)
        self.writers[name].write_table(table.cast(self.writers[name].schema))

    def close(self) -> None:
        for writer in self.writers.values():
            if writer is not True:
                writer.close()
        chunk_dir = self.out / ".chunk"
        if chunk_dir.exists():
            chunk_dir.rmdir()


def generate(out: str | Path, clients: int = 20_000, seed: int = 42, fmt: str = "parquet",
             profile: str = "sample", world: dict | None = None, chunk_clients: int = CHUNK_CLIENTS) -> dict:
    """Write every table to ``out`` in ``fmt`` and ``truth.json`` beside them; return the truth.
    ``world`` overrides the generator's parameters (the knobs in the module docstring).

    Up to ``chunk_clients`` registrations are built at once, as always (the sample is the same
    files for a seed). A larger set is built in chunks of that many, chunk k from the seed
    (seed, k), each written out before the next is built, so memory stays that of one chunk
    (measured in docs/benchmarks.md): ids continue across chunks, the agents' roster is the first
    chunk's, each chunk brings its own leads and calls, and truth.json adds up the row counts and
    keeps each chunk's truth under ``chunks``. The chunks are independent draws of one world."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for suffix in (".csv", ".parquet"):  # a rerun in another format must not leave two files per table
        for old in out.glob(f"*{suffix}"):
            old.unlink()
    if clients <= chunk_clients:
        tables, truth = build_tables(clients, seed, profile, world)
        for name, frame in tables.items():
            write_table(frame, out, name, fmt)
    else:
        writer, offsets, truths = _Appender(out, fmt), {}, []
        try:
            for k, first in enumerate(range(0, clients, chunk_clients)):
                tables, part = build_tables(min(chunk_clients, clients - first), (seed, k), profile, world)
                _renumber(tables, offsets)
                for name, frame in tables.items():
                    if name != "agents" or k == 0:
                        writer.write(name, frame)
                for kind, table in _COUNTED_BY.items():
                    offsets[kind] = offsets.get(kind, 0) + len(tables[table])
                truths.append(part)
                del tables
        finally:
            writer.close()
        truth = {**truths[0], "seed": seed, "clients": clients, "chunk_clients": chunk_clients,
                 "rows": {name: sum(t["rows"].get(name, 0) for t in truths) if name != "agents"
                          else truths[0]["rows"]["agents"] for name in truths[0]["rows"]},
                 "chunks": [{"seed": [seed, k], "clients": t["clients"], "rows": t["rows"],
                             "retention": t["retention"], "refunds": t["refunds"], "winback": t["winback"]}
                            for k, t in enumerate(truths)]}
    truth["format"] = fmt
    (out / "truth.json").write_text(json.dumps(truth, indent=2, sort_keys=True, default=float) + "\n")
    return truth
