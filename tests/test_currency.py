"""Payments in several currencies: converted at the payment date, or a clear error."""
from __future__ import annotations

import pandas as pd
import pytest

from analysis import DataError, load_dataset
from conftest import write_dir

CLIENTS = pd.DataFrame({"client_id": ["c1"], "signed_up_at": ["2026-01-01"]})


def payments(*rows):
    return pd.DataFrame(rows, columns=["payment_id", "client_id", "paid_at", "amount", "currency"])


def config(tmp_path, currency: str | None) -> str:
    text = "tiers: [{id: L1}]\n" + (f"reporting_currency: {currency}\n" if currency else "")
    (tmp_path / "c.yaml").write_text(text)
    return str(tmp_path / "c.yaml")


def test_converts_at_the_latest_rate_on_or_before_the_payment(tmp_path):
    pay = payments(("p1", "c1", "2026-01-05T12:00Z", "10", "usd"),     # rate of Jan 1: 10 x 90 = 900
                   ("p2", "c1", "2026-01-10T00:00Z", "10", "USD"),     # rate of Jan 10 (same day): 10 x 100
                   ("p3", "c1", "2026-01-11T00:00Z", "-5", "USD"),     # refund at 100: -500
                   ("p4", "c1", "2026-01-06T00:00Z", "700", "RUB"),    # reporting currency: as is
                   ("p5", "c1", "2026-01-07T00:00Z", "300", None))     # empty = reporting currency
    fx = pd.DataFrame({"date": ["2026-01-01", "2026-01-10"], "currency": ["USD", "USD"], "rate": ["90", "100"]})
    d = write_dir(tmp_path / "d", {"clients": CLIENTS, "payments": pay, "fx_rates": fx})
    ds = load_dataset(d, config(tmp_path, "RUB"), "2026-02-01")
    got = ds.payments.set_index("payment_id")
    assert got["amount"].to_dict() == {"p1": 900.0, "p2": 1000.0, "p3": -500.0, "p4": 700.0, "p5": 300.0}
    assert got.loc["p1", "amount_original"] == 10.0


def test_several_currencies_without_rates_is_an_error_naming_them(tmp_path):
    pay = payments(("p1", "c1", "2026-01-05", "10", "USD"), ("p2", "c1", "2026-01-06", "700", "RUB"))
    d = write_dir(tmp_path / "d", {"clients": CLIENTS, "payments": pay})
    with pytest.raises(DataError) as err:
        load_dataset(d, config(tmp_path, None))
    assert "payments.csv, column currency: payments in 2 currencies (RUB, USD): set reporting_currency" in str(err.value)
    with pytest.raises(DataError) as err:
        load_dataset(d, config(tmp_path, "RUB"))
    text = str(err.value)
    assert "amounts in USD need an fx_rates table (date, currency, rate) to convert them to RUB (1 row)" in text
    assert "line 2: payment_id='p1'" in text


def test_payment_before_any_rate_is_reported(tmp_path):
    pay = payments(("p1", "c1", "2025-12-31", "10", "USD"), ("p2", "c1", "2026-01-02", "10", "USD"))
    fx = pd.DataFrame({"date": ["2026-01-01"], "currency": ["USD"], "rate": ["90"]})
    d = write_dir(tmp_path / "d", {"clients": CLIENTS, "payments": pay, "fx_rates": fx})
    with pytest.raises(DataError) as err:
        load_dataset(d, config(tmp_path, "RUB"))
    assert "no fx rate dated on or before the payment (in fx_rates.csv) (1 row)" in str(err.value)


def test_bad_rate_and_duplicate_rate_are_refused(tmp_path):
    pay = payments(("p1", "c1", "2026-01-05", "10", "USD"))
    fx = pd.DataFrame({"date": ["2026-01-01", "2026-01-02"], "currency": ["USD", "USD"], "rate": ["0", "90"]})
    d = write_dir(tmp_path / "d", {"clients": CLIENTS, "payments": pay, "fx_rates": fx})
    with pytest.raises(DataError) as err:
        load_dataset(d, config(tmp_path, "RUB"))
    assert "fx_rates.csv, column rate: rate > 0" in str(err.value)
    fx = pd.DataFrame({"date": ["2026-01-01", "2026-01-01"], "currency": ["USD", "usd"], "rate": ["90", "91"]})
    d = write_dir(tmp_path / "e", {"clients": CLIENTS, "payments": pay, "fx_rates": fx})
    with pytest.raises(DataError) as err:
        load_dataset(d, config(tmp_path, "RUB"))
    assert "two rates for one currency and date (2 rows)" in str(err.value)


def test_one_currency_needs_nothing(tmp_path):
    pay = payments(("p1", "c1", "2026-01-05", "10", "EUR"), ("p2", "c1", "2026-01-06", "20", "EUR"))
    d = write_dir(tmp_path / "d", {"clients": CLIENTS, "payments": pay})
    assert load_dataset(d, config(tmp_path, None)).payments["amount"].tolist() == [10.0, 20.0]
