"""Payments in several currencies, converted to the reporting currency at the payment date.

Rules (data/README.md):
- no ``currency`` column, or one currency throughout (and no other reporting currency set):
  amounts are used as they are;
- an empty currency is the reporting currency; codes are compared upper-cased and trimmed;
- otherwise ``reporting_currency`` must be set in the config and an ``fx_rates`` table
  (date, currency, rate = reporting-currency units per unit of the currency) must give, for each
  payment in another currency, a rate dated on or before its paid_at: the latest such rate is used
  (DuckDB's ASOF join, backward). The converted amount replaces ``amount``; the original is
  kept in ``amount_original``. A missing table, a missing rate or two rates for one currency and
  date are validation problems naming the rows.

The payments stay in the load's DuckDB (``analysis.data.validate``); the small rates table is read
into pandas for its duplicate check. A converted amount is rounded to 10 decimals (DuckDB's
``round``; numpy's, used before, rounds an exact tie at the 11th decimal to even instead).
"""
from __future__ import annotations

import ibis.expr.types as ir
import pandas as pd

from analysis.data.engine import utc_frame
from analysis.data.io import Problem, RawTable

__all__ = ["convert_payments"]


def _examples(frame: pd.DataFrame, raw: RawTable, cols: list[str]) -> list[str]:
    out = []
    for _, row in frame.head(5).iterrows():
        out.append(f"{raw.row_label(row['_row'])}: " + ", ".join(f"{c}={row[c]!r}" for c in cols))
    return out


def convert_payments(con, payments: ir.Table, fx_rates: ir.Table | None, reporting_currency: str | None,
                     raw: dict[str, RawTable]) -> tuple[ir.Table, list[Problem], bool]:
    """Payments with ``amount`` in the reporting currency (and ``amount_original``), the problems
    found, and whether any amount was converted. ``payments`` and ``fx_rates`` are the typed tables
    in ``con`` (with their source positions ``_row``); ``raw`` names the files and rows."""
    if "currency" not in payments.columns:
        return payments, [], False
    pay_file, pay_raw = raw["payments"].where, raw["payments"]
    coded = payments.mutate(_code=payments.currency.strip().upper())
    home = reporting_currency.strip().upper() if reporting_currency else None
    if home is None:
        present = sorted(con.execute(coded.filter(coded._code.notnull()).select("_code").distinct())["_code"])
        if len(present) <= 1:
            return payments, [], False
        return payments, [Problem(pay_file, "currency",
                                  f"payments in {len(present)} currencies "
                                  f"({', '.join(present[:10])}): set reporting_currency in the config and give an "
                                  "fx_rates table", int(con.execute(payments.count())))], False
    foreign = coded.filter(coded._code.notnull() & (coded._code != home))
    n_foreign = int(con.execute(foreign.count()))
    if not n_foreign:
        return payments, [], False
    first = lambda t: utc_frame(con.execute(t.order_by("_row").limit(5)))  # noqa: E731
    if fx_rates is None:
        others = sorted(con.execute(foreign.select("_code").distinct().order_by("_code").limit(10))["_code"])
        return payments, [Problem(pay_file, "currency",
                                  f"amounts in {', '.join(others[:10])} need an fx_rates table (date, currency, rate) "
                                  f"to convert them to {home}", n_foreign,
                                  _examples(first(foreign), pay_raw, ["payment_id", "currency", "paid_at"]))], False
    rates = utc_frame(con.execute(fx_rates.select("_row", "date", "currency", "rate").order_by("_row")))
    rates["currency"] = rates["currency"].astype("string").str.strip().str.upper()
    twice = rates.duplicated(["currency", "date"], keep=False)
    if twice.any():
        return payments, [Problem(raw["fx_rates"].where, "rate", "two rates for one currency and date", int(twice.sum()),
                                  _examples(rates[twice], raw["fx_rates"], ["currency", "date", "rate"]))], False
    fx = fx_rates.select(_fx_code=fx_rates.currency.strip().upper(), _fx_date=fx_rates.date, _rate=fx_rates.rate)
    joined = coded.asof_join(fx, on=coded.paid_at >= fx._fx_date, predicates=coded._code == fx._fx_code)
    is_foreign = joined._code.notnull() & (joined._code != home)
    missing = joined.filter(is_foreign & joined._rate.isnull())
    n_missing = int(con.execute(missing.count()))
    if n_missing:
        return payments, [Problem(pay_file, "currency", f"no fx rate dated on or before the payment (in {raw['fx_rates'].where})",
                                  n_missing, _examples(first(missing), pay_raw, ["payment_id", "currency", "paid_at"]))], False
    converted = joined.mutate(amount=is_foreign.ifelse((joined.amount * joined._rate).round(10), joined.amount),
                              amount_original=joined.amount)
    return converted.select(*payments.columns, "amount_original").order_by("_row"), [], True
