"""The yardstick: each benchmarked metric written once in DuckDB SQL on the contract's Parquet
files, beside the package call that computes it (``FAMILIES``).

These are not a second implementation of the suite: ``analysis/`` holds the formulas. They
exist so that the benchmark can say how far the package is from a columnar SQL engine doing
the same work on the same files, and so that ``tests/test_benchmarks.py`` can check on the
sample that both give the same numbers (which keeps the SQL honest).

Each family has
- ``package(ds)``: the metric from the loaded dataset with the package's functions (the
  dataset is loaded and validated beforehand; that is the separate "load" stage);
- ``sql(con, as_of, config)``: the same numbers from views over the raw files, with the as-of
  cut done in SQL the way the loader does it (rows timed at or after as-of left out, responses
  and resolutions not yet happened blanked).
Both return a long frame with the same key columns and a ``value`` column, sorted by the keys.

Defaults follow the sample config: calendar clock (no business hours), one reporting currency,
first-month grace 14 days, dormancy and win-back windows 90 days.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import duckdb
import pandas as pd

from analysis.retention import churn, cohorts, onboarding, winback
from analysis.sales import contact_centre, conveyor
from analysis.support import overview
from analysis.data.config import Config
from analysis.data.dataset import Dataset

GRACE_DAYS = 14
DORMANCY_DAYS = 90
WINBACK_DAYS = 90

__all__ = ["Family", "FAMILIES", "connect", "GRACE_DAYS", "DORMANCY_DAYS", "WINBACK_DAYS"]


def connect(data_dir: str | Path, as_of: pd.Timestamp, threads: int = 2) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with one view per Parquet table, already cut at as-of."""
    data_dir = Path(data_dir)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET threads = {int(threads)}")
    at = f"TIMESTAMPTZ '{as_of.isoformat()}'"
    cut = {"payments": "paid_at", "tickets": "created_at", "ticket_events": "at", "outreach": "at",
           "leads": "created_at", "calls": "started_at"}
    for path in sorted(data_dir.glob("*.parquet")):
        name = path.stem
        # nanosecond timestamps have no calendar arithmetic in DuckDB: read them as microseconds
        # (the generator and the importers write whole seconds, so nothing is lost)
        cols = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall()
        select = ", ".join(f'"{c}"::TIMESTAMPTZ AS "{c}"' if t.startswith("TIMESTAMP") else f'"{c}"' for c, t, *_ in cols)
        src = f"(SELECT {select} FROM read_parquet('{path}'))"
        if name == "tickets":
            body = (f"SELECT * REPLACE (CASE WHEN first_response_at < {at} THEN first_response_at END AS first_response_at,"
                    f" CASE WHEN resolved_at < {at} THEN resolved_at END AS resolved_at,"
                    f" CASE WHEN resolved_at < {at} THEN csat_score END AS csat_score)"
                    f" FROM {src} WHERE created_at < {at}")
        elif name == "leads":
            body = (f"SELECT * REPLACE (CASE WHEN qualified_at < {at} THEN qualified_at END AS qualified_at,"
                    f" CASE WHEN converted_at < {at} THEN converted_at END AS converted_at)"
                    f" FROM {src} WHERE created_at < {at}")
        elif name in cut:
            body = f'SELECT * FROM {src} WHERE "{cut[name]}" < {at}'
        else:
            body = f"SELECT * FROM {src}"
        con.execute(f"CREATE VIEW {name} AS {body}")
    return con


def _long(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Wide -> long (keys..., measure, value) with float values, sorted."""
    out = frame.melt(id_vars=keys, var_name="measure", value_name="value")
    out["value"] = out["value"].astype("float64")
    return out.sort_values(keys + ["measure"], kind="stable").reset_index(drop=True)


def _sql_long(con, query: str, keys: list[str], params: dict | None = None) -> pd.DataFrame:
    return _long(con.execute(query, params or {}).df(), keys)


# --------------------------------------------------------------------------- support tiers
def support_package(ds: Dataset) -> pd.DataFrame:
    s = overview.tier_summary(ds.engine(), ds.config, ds.as_of)
    cols = ["tickets", "first_response_n", "first_response_median_min", "first_response_p90_min",
            "first_response_mean_min", "sla_achieved_count", "sla_breached", "sla_active", "resolved",
            "resolution_median_min", "resolution_p90_min", "resolution_mean_min", "csat_responses"]
    frame = s[cols].rename_axis("tier").reset_index()
    frame["tier"] = frame["tier"].astype(str)
    return _long(frame, ["tier"])


def support_sql(con, as_of: pd.Timestamp, config: Config) -> pd.DataFrame:
    tiers = ", ".join(f"('{t.id}', {t.first_response_target_min or 'NULL'})" for t in config.tiers)
    q = f"""
    WITH target(tier, fr_target) AS (VALUES {tiers}),
    t AS (
      SELECT first_tier AS entry, coalesce(final_tier, first_tier) AS final,
             (epoch_ns(first_response_at) - epoch_ns(created_at)) / 6e10 AS fr,
             (epoch_ns(resolved_at) - epoch_ns(created_at)) / 6e10 AS res,
             (epoch_ns($as_of::TIMESTAMPTZ) - epoch_ns(created_at)) / 6e10 AS elapsed,
             csat_score
      FROM tickets),
    e AS (
      SELECT entry AS tier, count(*) AS tickets, count(fr) AS first_response_n,
             quantile_cont(fr, 0.5) AS first_response_median_min, quantile_cont(fr, 0.9) AS first_response_p90_min,
             avg(fr) AS first_response_mean_min,
             count(*) FILTER (WHERE fr <= fr_target) AS sla_achieved_count,
             count(*) FILTER (WHERE fr > fr_target OR (fr IS NULL AND elapsed > fr_target)) AS sla_breached,
             count(*) FILTER (WHERE fr IS NULL AND elapsed <= fr_target) AS sla_active
      FROM t JOIN target ON t.entry = target.tier GROUP BY entry),
    f AS (
      SELECT final AS tier, count(res) AS resolved, quantile_cont(res, 0.5) AS resolution_median_min,
             quantile_cont(res, 0.9) AS resolution_p90_min, avg(res) AS resolution_mean_min,
             count(csat_score) FILTER (WHERE res IS NOT NULL) AS csat_responses
      FROM t GROUP BY final)
    SELECT target.tier, coalesce(e.tickets, 0) AS tickets, coalesce(first_response_n, 0) AS first_response_n,
           first_response_median_min, first_response_p90_min, first_response_mean_min,
           coalesce(sla_achieved_count, 0) AS sla_achieved_count, coalesce(sla_breached, 0) AS sla_breached,
           coalesce(sla_active, 0) AS sla_active, coalesce(resolved, 0) AS resolved,
           resolution_median_min, resolution_p90_min, resolution_mean_min, coalesce(csat_responses, 0) AS csat_responses
    FROM target LEFT JOIN e USING (tier) LEFT JOIN f USING (tier)"""
    return _sql_long(con, q, ["tier"], {"as_of": as_of.isoformat()})


# --------------------------------------------------------------------------- cohort LTV
def ltv_package(ds: Dataset) -> pd.DataFrame:
    eng = ds.engine()
    starts = cohorts.client_starts(eng)
    matrix, sizes = cohorts.ltv_matrix(eng, starts, ds.as_of)
    cells = matrix.stack().rename("value").rename_axis(["cohort", "age"]).reset_index()
    cells["measure"] = "ltv"
    size = sizes.rename("value").rename_axis("cohort").reset_index().assign(age=0, measure="clients")
    out = pd.concat([cells, size], ignore_index=True)[["cohort", "age", "measure", "value"]]
    out["age"] = out["age"].astype("int64")
    out["value"] = out["value"].astype("float64")
    return out.sort_values(["cohort", "age", "measure"], kind="stable").reset_index(drop=True)


_STARTS = """
    starts AS (SELECT client_id, min(paid_at) AS start FROM payments WHERE amount > 0 GROUP BY client_id)"""


def ltv_sql(con, as_of: pd.Timestamp, config: Config) -> pd.DataFrame:
    q = f"""
    WITH {_STARTS},
    s AS (SELECT client_id, start, strftime(start, '%Y-%m') AS cohort FROM starts),
    size AS (SELECT cohort, count(*) AS clients, max(start) AS last_start FROM s GROUP BY cohort),
    p AS (SELECT s.cohort, s.start, pay.paid_at, pay.amount,
                 (year(pay.paid_at) - year(s.start)) * 12 + month(pay.paid_at) - month(s.start) AS m0
          FROM payments pay JOIN s USING (client_id)),
    aged AS (SELECT cohort, amount, m0 - CASE WHEN start + to_months(m0) > paid_at THEN 1 ELSE 0 END AS age FROM p),
    top AS (SELECT greatest(1, (year($as_of::TIMESTAMPTZ) - year(min(start))) * 12 + month($as_of::TIMESTAMPTZ) - month(min(start))
                   - CASE WHEN min(start) + to_months((year($as_of::TIMESTAMPTZ) - year(min(start))) * 12
                                                      + month($as_of::TIMESTAMPTZ) - month(min(start))) > $as_of::TIMESTAMPTZ
                          THEN 1 ELSE 0 END) AS top FROM s),
    sums AS (SELECT cohort, age, sum(amount) AS amount FROM aged WHERE age >= 0 GROUP BY cohort, age),
    grid AS (SELECT size.cohort, k.age, size.clients, size.last_start
             FROM size, top, range(1, top.top + 1) AS k(age)),
    cum AS (SELECT grid.*, sum(coalesce(sums.amount, 0)) OVER (PARTITION BY grid.cohort ORDER BY grid.age) AS total
            FROM grid LEFT JOIN sums ON sums.cohort = grid.cohort AND sums.age = grid.age - 1)
    SELECT cohort, age, 'ltv' AS measure, total / clients AS value
    FROM cum WHERE last_start + to_months(age) <= $as_of::TIMESTAMPTZ
    UNION ALL
    SELECT cohort, 0, 'clients', clients FROM size"""
    out = con.execute(q, {"as_of": as_of.isoformat()}).df()
    out["age"] = out["age"].astype("int64")
    out["value"] = out["value"].astype("float64")
    return out.sort_values(["cohort", "age", "measure"], kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------- churn
def churn_package(ds: Dataset) -> pd.DataFrame:
    eng = ds.engine()
    status = churn.first_month_status(eng, ds.as_of, GRACE_DAYS)
    first = churn.first_month_churn(status)
    life = churn.lifetimes(eng, ds.as_of, GRACE_DAYS)
    row = {"eligible": first["clients"].iloc[0], "first_month_churned": first["churned"].iloc[0],
           "payers": len(life), "churned": life["churned"].sum(), "duration_days_sum": life["duration_days"].sum()}
    return _long(pd.DataFrame([row]).assign(scope="all"), ["scope"])


def churn_sql(con, as_of: pd.Timestamp, config: Config) -> pd.DataFrame:
    q = f"""
    WITH {_STARTS},
    d AS (SELECT client_id, start, start + to_months(1) + INTERVAL {GRACE_DAYS} DAY AS deadline FROM starts),
    renewed AS (SELECT DISTINCT d.client_id FROM d JOIN payments p USING (client_id)
                WHERE p.amount > 0 AND p.paid_at > d.start AND p.paid_at <= d.deadline),
    last AS (SELECT client_id, max(paid_at) + to_months(1) + INTERVAL {GRACE_DAYS} DAY AS churn_at
             FROM payments WHERE amount > 0 GROUP BY client_id),
    life AS (SELECT s.client_id, l.churn_at <= $as_of::TIMESTAMPTZ AS churned,
                    floor((epoch_ns(CASE WHEN l.churn_at <= $as_of::TIMESTAMPTZ THEN l.churn_at ELSE $as_of::TIMESTAMPTZ END)
                           - epoch_ns(s.start)) / 3.6e12) / 24.0 AS duration_days
             FROM starts s JOIN last l USING (client_id))
    SELECT 'all' AS scope,
           (SELECT count(*) FROM d WHERE deadline <= $as_of::TIMESTAMPTZ) AS eligible,
           (SELECT count(*) FROM d WHERE deadline <= $as_of::TIMESTAMPTZ
                                     AND client_id NOT IN (SELECT client_id FROM renewed)) AS first_month_churned,
           (SELECT count(*) FROM life) AS payers,
           (SELECT count(*) FILTER (WHERE churned) FROM life) AS churned,
           (SELECT sum(duration_days) FROM life) AS duration_days_sum"""
    return _sql_long(con, q, ["scope"], {"as_of": as_of.isoformat()})


# --------------------------------------------------------------------------- win-back
def winback_package(ds: Dataset) -> pd.DataFrame:
    outcomes = winback.winback_outcomes(ds.engine(), ds.as_of, DORMANCY_DAYS, WINBACK_DAYS)
    rates = winback.winback_rates(outcomes, ["channel"])[["events", "won_back"]]
    return _long(rates.rename_axis("channel").reset_index(), ["channel"])


def winback_sql(con, as_of: pd.Timestamp, config: Config) -> pd.DataFrame:
    q = f"""
    WITH {_STARTS},
    act AS (SELECT DISTINCT a.client_id, a."at" FROM (
              SELECT client_id, paid_at AS "at" FROM payments WHERE amount > 0
              UNION ALL SELECT client_id, created_at FROM tickets WHERE client_id IS NOT NULL) a
            JOIN starts s USING (client_id) WHERE a."at" >= s.start),
    seq AS (SELECT client_id, "at", lead("at") OVER (PARTITION BY client_id ORDER BY "at") AS nxt FROM act),
    ev AS (SELECT row_number() OVER () AS event, client_id, "at" + INTERVAL {DORMANCY_DAYS} DAY AS d FROM seq
           WHERE (nxt IS NULL OR nxt >= "at" + INTERVAL {DORMANCY_DAYS} DAY)
             AND "at" + INTERVAL {DORMANCY_DAYS} DAY <= $as_of::TIMESTAMPTZ),
    counted AS (SELECT * FROM ev WHERE d + INTERVAL {WINBACK_DAYS} DAY <= $as_of::TIMESTAMPTZ),
    won AS (SELECT DISTINCT c.event FROM counted c JOIN payments p USING (client_id)
            WHERE p.amount > 0 AND p.paid_at >= c.d AND p.paid_at < c.d + INTERVAL {WINBACK_DAYS} DAY),
    ch AS (SELECT c.event, arg_min(o.channel, (o."at", o.channel)) AS channel
           FROM counted c JOIN outreach o USING (client_id)
           WHERE o.campaign = 'winback' AND o."at" >= c.d AND o."at" < c.d + INTERVAL {WINBACK_DAYS} DAY
           GROUP BY c.event)
    SELECT coalesce(ch.channel, 'none') AS channel, count(*) AS events, count(won.event) AS won_back
    FROM counted c LEFT JOIN ch USING (event) LEFT JOIN won USING (event)
    GROUP BY ALL"""
    return _sql_long(con, q, ["channel"], {"as_of": as_of.isoformat()})


# --------------------------------------------------------------------------- onboarding
def onboarding_package(ds: Dataset) -> pd.DataFrame:
    f = onboarding.funnel(onboarding.funnel_flags(ds.engine(), ds.as_of))
    return _long(f[["clients", "of"]].rename_axis("step").reset_index(), ["step"])


def onboarding_sql(con, as_of: pd.Timestamp, config: Config) -> pd.DataFrame:
    q = """
    WITH reg AS (SELECT client_id FROM clients WHERE signed_up_at < $as_of::TIMESTAMPTZ),
    f AS (SELECT r.client_id,
                 r.client_id IN (SELECT client_id FROM outreach WHERE campaign = 'onboarding' AND coalesce(reached, false)) AS reached,
                 r.client_id IN (SELECT client_id FROM payments WHERE amount > 0) AS paid
          FROM reg r),
    n AS (SELECT count(*) AS n, count(*) FILTER (WHERE reached) AS reached, count(*) FILTER (WHERE paid) AS paid,
                 count(*) FILTER (WHERE paid AND reached) AS paid_r, count(*) FILTER (WHERE paid AND NOT reached) AS paid_nr
          FROM f)
    SELECT 'registrations' AS step, n AS clients, n AS "of" FROM n
    UNION ALL SELECT 'reached', reached, n FROM n
    UNION ALL SELECT 'paid', paid, n FROM n
    UNION ALL SELECT 'paid_among_reached', paid_r, reached FROM n
    UNION ALL SELECT 'paid_among_not_reached', paid_nr, n - reached FROM n"""
    return _sql_long(con, q, ["step"], {"as_of": as_of.isoformat()})


# --------------------------------------------------------------------------- sales conveyor
def conveyor_package(ds: Dataset) -> pd.DataFrame:
    f = conveyor.stage_funnel(conveyor.stage_times(ds.engine()))
    return _long(f[["leads", "median_days_from_previous"]].rename_axis("stage").reset_index(), ["stage"])


def conveyor_sql(con, as_of: pd.Timestamp, config: Config) -> pd.DataFrame:
    stages = ", ".join(f"('{s}', {i})" for i, s in enumerate(conveyor.STAGES))
    q = f"""
    WITH st(stage, i) AS (VALUES {stages}),
    firsts AS (SELECT c.lead_id, st.i, min(c.started_at) AS "at" FROM calls c JOIN st USING (stage) GROUP BY ALL),
    depth AS (SELECT lead_id, max(i) AS depth FROM firsts GROUP BY lead_id),
    gaps AS (SELECT b.i, median((epoch_ns(b."at") - epoch_ns(a."at")) / 8.64e13) AS days
             FROM firsts b JOIN firsts a ON a.lead_id = b.lead_id AND a.i = b.i - 1 GROUP BY b.i)
    SELECT st.stage, (SELECT count(*) FROM depth WHERE depth.depth >= st.i) AS leads,
           gaps.days AS median_days_from_previous
    FROM st LEFT JOIN gaps USING (i)"""
    return _sql_long(con, q, ["stage"])


# --------------------------------------------------------------------------- contact-centre units
def units_package(ds: Dataset) -> pd.DataFrame:
    outcomes = contact_centre.lead_outcomes(ds.engine())
    prices = contact_centre.prices_from(12.0, 600.0, {"no_answer": 4.0, "secretary": 8.0, "decision_maker": 14.0,
                                                      "consent": 20.0}, 60.0, 400.0, 3000.0, 0.10)
    costs = contact_centre.model_costs(ds.engine(), outcomes, prices)
    units = costs["units"].unstack("model")[["per_minute", "per_hour", "per_result_call", "per_lead", "per_client"]]
    return _long(units.rename_axis("vendor").reset_index(), ["vendor"])


def units_sql(con, as_of: pd.Timestamp, config: Config) -> pd.DataFrame:
    q = """
    WITH c AS (SELECT * FROM calls WHERE coalesce(vendor, 'in-house') <> 'in-house'),
    u AS (SELECT vendor, sum(ceil(duration_s / 60) * 60 / 60.0) AS per_minute, sum(duration_s / 3600) AS per_hour,
                 count(result) AS per_result_call FROM c GROUP BY vendor),
    lv AS (SELECT lead_id, arg_min(vendor, started_at) AS vendor FROM c GROUP BY lead_id),
    o AS (SELECT lv.vendor,
                 count(*) FILTER (WHERE l.lead_id IN (SELECT lead_id FROM calls WHERE result IN ('lead', 'sale'))
                                  OR l.qualified_at IS NOT NULL) AS per_lead,
                 count(l.converted_at) AS per_client
          FROM leads l JOIN lv USING (lead_id) GROUP BY lv.vendor)
    SELECT vendor, per_minute, per_hour, per_result_call, coalesce(per_lead, 0) AS per_lead,
           coalesce(per_client, 0) AS per_client
    FROM u LEFT JOIN o USING (vendor)"""
    return _sql_long(con, q, ["vendor"])


@dataclass(frozen=True)
class Family:
    name: str
    report: str   # the notebook it belongs to
    needs: tuple[str, ...]
    package: Callable[[Dataset], pd.DataFrame]
    sql: Callable[..., pd.DataFrame]


FAMILIES = (
    Family("support_tiers", "01_support_tiers", ("tickets",), support_package, support_sql),
    Family("cohort_ltv", "02_cohort_ltv", ("clients", "payments"), ltv_package, ltv_sql),
    Family("churn", "03_churn_survival", ("clients", "payments"), churn_package, churn_sql),
    Family("winback", "04_winback_retention", ("clients", "payments", "tickets", "outreach"), winback_package, winback_sql),
    Family("onboarding", "05_onboarding_revenue", ("clients", "payments", "outreach"), onboarding_package, onboarding_sql),
    Family("contact_centre_units", "06_contact_centre_economics", ("leads", "calls"), units_package, units_sql),
    Family("conveyor", "07_sales_conveyor", ("calls",), conveyor_package, conveyor_sql),
)
