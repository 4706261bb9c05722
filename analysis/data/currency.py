"""Payments in several currencies, converted to the reporting currency at the payment date.

Rules (data/README.md):
- no ``currency`` column, or one currency throughout (and no other reporting currency set):
  amounts are used as they are;
- an empty currency is the reporting currency; codes are compared upper-cased and trimmed;
- otherwise ``reporting_currency`` must be set in the config and an ``fx_rates`` table
  (date, currency, rate = reporting-currency units per unit of the currency) must give, for each
  payment in another currency, a rate dated on or before its paid_at: the latest such rate is used
  (pandas ``merge_asof``, backward). The converted amount replaces ``amount``; the original is
  kept in ``amount_original``. A missing table, a missing rate or two rates for one currency and
  date are validation problems naming the rows.
"""
from __future__ import annotations

import pandas as pd

from analysis.data.io import Problem

__all__ = ["convert_payments"]


def _examples(frame: pd.DataFrame, label, cols: list[str]) -> list[str]:
    out = []
    for i, row in frame.head(5).iterrows():
        out.append(f"{label(i)}: " + ", ".join(f"{c}={row[c]!r}" for c in cols))
    return out


def convert_payments(payments: pd.DataFrame, fx_rates: pd.DataFrame | None, reporting_currency: str | None,
                     files: dict[str, str], labels: dict) -> tuple[pd.DataFrame, list[Problem]]:
    """Return payments with ``amount`` in the reporting currency, and the problems found.

    ``files`` maps table -> file name and ``labels`` table -> row-label function, for messages.
    """
    if "currency" not in payments.columns:
        return payments, []
    pay_file, label = files["payments"], labels["payments"]
    code = payments["currency"].astype("string").str.strip().str.upper()
    home = reporting_currency.strip().upper() if reporting_currency else None
    present = sorted(code.dropna().unique())
    if home is None:
        if len(present) <= 1:
            return payments, []
        return payments, [Problem(pay_file, "currency",
                                  f"payments in {len(present)} currencies ({', '.join(present[:10])}): set "
                                  "reporting_currency in the config and give an fx_rates table", len(payments))]
    foreign = code.notna() & (code != home)
    if not foreign.any():
        return payments, []
    if fx_rates is None:
        others = sorted(code[foreign].unique())
        return payments, [Problem(pay_file, "currency",
                                  f"amounts in {', '.join(others[:10])} need an fx_rates table (date, currency, rate) "
                                  f"to convert them to {home}", int(foreign.sum()),
                                  _examples(payments[foreign], label, ["payment_id", "currency", "paid_at"]))]
    rates = fx_rates.assign(currency=fx_rates["currency"].astype("string").str.strip().str.upper())
    twice = rates.duplicated(["currency", "date"], keep=False)
    if twice.any():
        return payments, [Problem(files["fx_rates"], "rate", "two rates for one currency and date", int(twice.sum()),
                                  _examples(rates[twice], labels["fx_rates"], ["currency", "date", "rate"]))]
    need = pd.DataFrame({"row": payments.index[foreign], "currency": code[foreign].astype(str).to_numpy(),
                         "paid_at": payments.loc[foreign, "paid_at"].to_numpy()}).sort_values("paid_at", kind="stable")
    table = rates[["date", "currency", "rate"]].astype({"currency": str}).sort_values("date", kind="stable")
    matched = pd.merge_asof(need, table, left_on="paid_at", right_on="date", by="currency", direction="backward")
    matched = matched.set_index("row").reindex(payments.index[foreign])
    missing = matched["rate"].isna()
    if missing.any():
        rows = payments.loc[missing[missing].index]
        return payments, [Problem(pay_file, "currency", f"no fx rate dated on or before the payment (in {files['fx_rates']})",
                                  int(missing.sum()), _examples(rows, label, ["payment_id", "currency", "paid_at"]))]
    out = payments.copy()
    out["amount_original"] = out["amount"]
    out.loc[foreign, "amount"] = (out.loc[foreign, "amount"] * matched["rate"]).round(10)
    return out, []
