"""Loaders (CSV/Parquet, encodings, offsets), as-of rules and row accounting."""
from __future__ import annotations

import codecs

import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from analysis import DataError, InputError, load_dataset
from analysis.data.dataset import default_as_of, parse_as_of
from conftest import base_tables, write_dir


def only_problem(tmp_path) -> str:
    with pytest.raises(DataError) as err:
        load_dataset(tmp_path / "d")
    assert len(err.value.problems) == 1
    return err.value.problems[0].render()


def test_utf8_bom_is_accepted_and_ids_keep_leading_zeros(tmp_path):
    d = write_dir(tmp_path / "d", {"clients": base_tables()["clients"]})
    raw = (d / "clients.csv").read_bytes()
    (d / "clients.csv").write_bytes(codecs.BOM_UTF8 + raw)
    ds = load_dataset(d)
    assert list(ds.clients.columns[:2]) == ["client_id", "signed_up_at"]
    assert ds.clients["client_id"].tolist() == ["007", "008"]


def test_utf16_is_refused_naming_the_file(tmp_path):
    d = tmp_path / "d"; d.mkdir()
    (d / "clients.csv").write_bytes("client_id,signed_up_at\n1,2026-01-01\n".encode("utf-16"))
    assert only_problem(tmp_path) == "  - clients.csv, column (file): encoding UTF-16 is not accepted; save the file as UTF-8 (0 rows)"


def test_cp1251_is_refused(tmp_path):
    d = tmp_path / "d"; d.mkdir()
    (d / "clients.csv").write_bytes("client_id,signed_up_at,segment\n1,2026-01-01,Малый\n".encode("cp1251"))
    assert "not UTF-8" in only_problem(tmp_path)


def test_zero_byte_file_and_blank_first_line_are_errors(tmp_path):
    d = tmp_path / "d"; d.mkdir()
    (d / "clients.csv").write_bytes(b"")
    assert "the file is empty (0 bytes)" in only_problem(tmp_path)
    (d / "clients.csv").write_text("\nclient_id,signed_up_at\n")
    assert "the first line is blank" in only_problem(tmp_path)


def test_header_only_file_is_an_empty_table(tmp_path):
    d = tmp_path / "d"; d.mkdir()
    (d / "clients.csv").write_text("client_id,signed_up_at\n")
    ds = load_dataset(d, as_of="2026-01-01")
    assert len(ds.clients) == 0 and ds.accounting["clients"] == {
        "file": "clients.csv", "read": 0, "used": 0, "set_aside": 0, "set_aside_by_reason": {}}


def test_two_files_for_one_table_is_an_error(tmp_path):
    d = write_dir(tmp_path / "d", {"clients": base_tables()["clients"]})
    base_tables()["clients"].to_parquet(d / "clients.parquet")
    assert "one table given by several files" in only_problem(tmp_path)


def test_offsets_and_naive_timestamps_become_utc(tmp_path):
    ds = load_dataset(write_dir(tmp_path / "d", base_tables()))
    # 2026-01-03T00:00:00+03:00 = 2026-01-02 21:00 UTC; "2026-01-05 12:00" is naive -> UTC
    assert ds.payments["paid_at"].tolist() == [pd.Timestamp("2026-01-02 21:00", tz="UTC"),
                                               pd.Timestamp("2026-01-05 12:00", tz="UTC")]


def test_parquet_datetimes_naive_and_aware(tmp_path):
    t = base_tables()
    t["clients"]["signed_up_at"] = [pd.Timestamp("2026-01-01 10:00"), pd.Timestamp("2026-01-02")]
    t["payments"]["paid_at"] = pd.to_datetime(["2026-01-03 00:00+03:00", "2026-01-05 12:00+00:00"], utc=True).tz_convert("Europe/Moscow")
    t["payments"]["amount"] = [100.0, -20.5]
    ds = load_dataset(write_dir(tmp_path / "d", t, fmt="parquet"))
    assert ds.clients["signed_up_at"].iloc[0] == pd.Timestamp("2026-01-01 10:00", tz="UTC")
    assert ds.payments["paid_at"].iloc[0] == pd.Timestamp("2026-01-02 21:00", tz="UTC")


def test_default_as_of_is_day_after_last_event(tmp_path):
    ds = load_dataset(write_dir(tmp_path / "d", base_tables()))
    # the latest event is tickets.created_at 2026-01-06 09:00 -> as-of 2026-01-07 00:00 UTC
    assert ds.as_of == pd.Timestamp("2026-01-07", tz="UTC") and ds.as_of_source == "data"


def test_rows_at_or_after_as_of_are_set_aside_and_counted(tmp_path):
    # as-of 2026-01-05: payment p2 (2026-01-05 12:00) and ticket t2 (01-06) are after it
    ds = load_dataset(write_dir(tmp_path / "d", base_tables()), as_of="2026-01-05")
    assert ds.accounting["payments"]["set_aside_by_reason"] == {"timed at or after as-of": 1}
    assert ds.accounting["tickets"]["read"] == 2 and ds.accounting["tickets"]["used"] == 1
    assert ds.payments["payment_id"].tolist() == ["p1"]


def test_response_after_as_of_counts_as_not_yet_happened(tmp_path):
    t = base_tables()
    t["tickets"].loc[0, ["first_response_at", "resolved_at"]] = ["2026-01-04T23:00:00Z", "2026-01-05T01:00:00Z"]
    ds = load_dataset(write_dir(tmp_path / "d", t), as_of="2026-01-05")
    row = ds.tickets.iloc[0]
    assert row["first_response_at"] == pd.Timestamp("2026-01-04 23:00", tz="UTC")
    assert pd.isna(row["resolved_at"]) and pd.isna(row["csat_score"])
    assert ds.accounting["tickets"]["not_yet_happened_at_as_of"] == {"first_response_at": 0, "resolved_at": 1, "csat_score": 1}


def test_as_of_parsing():
    assert parse_as_of("2026-03-10") == pd.Timestamp("2026-03-10", tz="UTC")
    with pytest.raises(InputError, match="--as-of must be a date"):
        parse_as_of("tomorrow")


def test_no_timestamps_needs_explicit_as_of():
    with pytest.raises(InputError, match="cannot infer the as-of date"):
        default_as_of((None, None))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=40), min_size=0, max_size=30), st.integers(0, 45))
def test_rows_read_equal_used_plus_set_aside(tmp_path_factory, day_offsets, cut):
    d = tmp_path_factory.mktemp("acc")
    clients = pd.DataFrame({"client_id": ["c"], "signed_up_at": ["2026-01-01"]})
    pays = pd.DataFrame({"payment_id": [f"p{i}" for i in range(len(day_offsets))], "client_id": "c",
                         "paid_at": [str(pd.Timestamp("2026-01-01") + pd.Timedelta(days=o)) for o in day_offsets],
                         "amount": "10"})
    write_dir(d, {"clients": clients, "payments": pays})
    as_of = pd.Timestamp("2026-01-01") + pd.Timedelta(days=cut)
    ds = load_dataset(d, as_of=as_of.strftime("%Y-%m-%d"))
    a = ds.accounting["payments"]
    assert a["read"] == a["used"] + a["set_aside"] == len(day_offsets)
    assert a["used"] == sum(o < cut for o in day_offsets)
