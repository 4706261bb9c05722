"""Every validation rule, each with a failing example and the exact message it produces."""
from __future__ import annotations

import pandas as pd
import pytest

from analysis import DataError, load_dataset
from conftest import base_tables, write_dir


def problems(tmp_path, tables, fmt="csv"):
    with pytest.raises(DataError) as err:
        load_dataset(write_dir(tmp_path / "d", tables, fmt))
    return [p.render() for p in err.value.problems], str(err.value)


def test_base_tables_are_valid(tmp_path):
    ds = load_dataset(write_dir(tmp_path / "d", base_tables()))
    assert ds.accounting["payments"]["read"] == 2 and ds.clients["client_id"].tolist() == ["007", "008"]


def test_missing_required_column(tmp_path):
    t = base_tables(); t["payments"] = t["payments"].drop(columns="amount")
    found, _ = problems(tmp_path, t)
    assert found == ["  - payments.csv, column amount: required column is missing (2 rows)\n"
                     "      e.g. columns found: payment_id, client_id, paid_at"]


def test_unparseable_timestamp_names_file_column_and_line(tmp_path):
    t = base_tables(); t["clients"].loc[1, "signed_up_at"] = "02/01/2026 morning"
    found, _ = problems(tmp_path, t)
    assert found == ["  - clients.csv, column signed_up_at: not an ISO 8601 timestamp (1 row)\n"
                     "      e.g. line 3: client_id='008', signed_up_at='02/01/2026 morning'"]


def test_empty_required_value(tmp_path):
    t = base_tables(); t["tickets"].loc[0, "channel"] = None
    found, _ = problems(tmp_path, t)
    assert found == ["  - tickets.csv, column channel: required value is empty (1 row)\n"
                     "      e.g. line 2: ticket_id='t1', channel=<empty>"]


def test_duplicate_ids(tmp_path):
    t = base_tables(); t["payments"].loc[1, "payment_id"] = "p1"
    found, _ = problems(tmp_path, t)
    assert found == ["  - payments.csv, column payment_id: payment_id must be unique; duplicated values (2 rows)\n"
                     "      e.g. line 2: payment_id='p1'\n      e.g. line 3: payment_id='p1'"]


def test_zero_amount_and_text_amount(tmp_path):
    t = base_tables(); t["payments"]["amount"] = ["0", "ten"]
    found, _ = problems(tmp_path, t)
    assert found == [
        "  - payments.csv, column amount: not a number (1 row)\n      e.g. line 3: payment_id='p2', amount='ten'",
        "  - payments.csv, column amount: amount != 0 (a charge is > 0, a refund < 0) (1 row)\n"
        "      e.g. line 2: payment_id='p1', amount='0'"]


def test_reference_to_unknown_client(tmp_path):
    t = base_tables(); t["payments"].loc[0, "client_id"] = "7"  # "7" is not "007": IDs are text
    found, _ = problems(tmp_path, t)
    assert found == ["  - payments.csv, column client_id: reference to clients.client_id: value not found there (1 row)\n"
                     "      e.g. line 2: payment_id='p1', client_id='7'"]


def test_ticket_client_reference(tmp_path):
    t = base_tables(); t["tickets"].loc[0, "client_id"] = "999"
    found, _ = problems(tmp_path, t)
    assert found == ["  - tickets.csv, column client_id: reference to clients.client_id: value not found there (1 row)\n"
                     "      e.g. line 2: ticket_id='t1', client_id='999'"]


def test_unknown_tier_names_the_values(tmp_path):
    t = base_tables(); t["tickets"]["first_tier"] = ["L3", "Level 1"]
    found, _ = problems(tmp_path, t)
    assert found == ["  - tickets.csv, column first_tier: tier not in the config (unknown values: L3, Level 1; "
                     "config has L1, L1.5, L2, CS, FIN) (2 rows)\n"
                     "      e.g. line 2: ticket_id='t1', first_tier='L3'\n"
                     "      e.g. line 3: ticket_id='t2', first_tier='Level 1'"]


def test_channel_allowed_values(tmp_path):
    t = base_tables(); t["tickets"].loc[1, "channel"] = "pigeon"
    found, _ = problems(tmp_path, t)
    assert found[0].startswith("  - tickets.csv, column channel: allowed values: chat, email, messenger, web, form, "
                               "sms, social, phone, voice, call; found pigeon (1 row)")


def test_csat_scale(tmp_path):
    t = base_tables(); t["tickets"]["csat_score"] = ["6", "meh"]
    found, _ = problems(tmp_path, t)
    assert found == ["  - tickets.csv, column csat_score: csat_score must be an integer 1-5 or good/bad (2 rows)\n"
                     "      e.g. line 2: ticket_id='t1', csat_score='6'\n"
                     "      e.g. line 3: ticket_id='t2', csat_score='meh'"]


@pytest.mark.parametrize("raw, score, satisfied", [("5", "5", True), ("5.0", "5", True), ("3", "3", False),
                                                   ("GOOD", "good", True), (" bad ", "bad", False)])
def test_csat_accepted_forms(tmp_path, raw, score, satisfied):
    t = base_tables(); t["tickets"].loc[0, "csat_score"] = raw
    tk = load_dataset(write_dir(tmp_path / "d", t)).tickets
    assert tk.loc[0, "csat_score"] == score and bool(tk.loc[0, "csat_satisfied"]) is satisfied


def test_resolved_before_created(tmp_path):
    t = base_tables(); t["tickets"].loc[0, "resolved_at"] = "2026-01-04T08:59:59Z"
    found, _ = problems(tmp_path, t)
    assert found == ["  - tickets.csv, column resolved_at: resolved_at >= created_at (1 row)\n"
                     "      e.g. line 2: ticket_id='t1', created_at='2026-01-04T09:00:00Z', resolved_at='2026-01-04T08:59:59Z'"]


def test_ticket_events_rules(tmp_path):
    t = base_tables()
    t["ticket_events"] = pd.DataFrame({"ticket_id": ["t1", "t9"], "at": ["2026-01-04T09:00:00Z"] * 2,
                                       "event": ["assigned", "escalated"], "tier": ["L1", "L1"]})
    found, _ = problems(tmp_path, t)
    assert found == [
        "  - ticket_events.csv, column event: allowed values: assigned, agent_reply, customer_reply, solved, "
        "reopened; found escalated (1 row)\n      e.g. line 3: ticket_id='t9', event='escalated'",
        "  - ticket_events.csv, column ticket_id: reference to tickets.ticket_id: value not found there (1 row)\n"
        "      e.g. line 3: ticket_id='t9'"]


def test_outreach_flags_and_campaigns(tmp_path):
    t = base_tables()
    t["outreach"] = pd.DataFrame({"client_id": ["007", "008"], "at": ["2026-01-02", "2026-01-03"],
                                  "campaign": ["onboarding", "Winback"], "channel": ["call", "email"],
                                  "reached": ["TRUE", "maybe"]})
    found, _ = problems(tmp_path, t)
    assert found == [
        "  - outreach.csv, column reached: must be true/false (any case) or 1/0 (1 row)\n"
        "      e.g. line 3: client_id='008', reached='maybe'",
        "  - outreach.csv, column campaign: allowed values: onboarding, winback, retention; found Winback (1 row)\n"
        "      e.g. line 3: client_id='008', campaign='Winback'"]


def test_all_problems_collected_in_one_pass(tmp_path):
    t = base_tables()
    t["clients"].loc[0, "signed_up_at"] = "yesterday"
    t["payments"].loc[0, "amount"] = "0"
    t["tickets"].loc[0, "first_tier"] = "L9"
    found, message = problems(tmp_path, t)
    assert len(found) == 3
    assert message.splitlines()[0].endswith(": 3 problem(s)")


def test_parquet_is_validated_the_same_way(tmp_path):
    t = base_tables(); t["payments"]["amount"] = [100.0, 0.0]
    found, _ = problems(tmp_path, t, fmt="parquet")
    assert found == ["  - payments.parquet, column amount: amount != 0 (a charge is > 0, a refund < 0) (1 row)\n"
                     "      e.g. row 2: payment_id='p2', amount=0.0"]


from hypothesis import given, strategies as st  # noqa: E402

from analysis.data.contract import _as_csat  # noqa: E402


@given(st.lists(st.one_of(st.integers(-3, 9).map(str), st.integers(1, 5).map(lambda i: f"{i}.0"),
                          st.sampled_from(["good", "Bad", "GOOD", "ok", ""])), max_size=40))
def test_csat_normalisation_properties(values):
    score, satisfied = _as_csat(pd.Series(values, dtype="string").replace("", pd.NA))
    # rated exactly when the value is on a scale; satisfied only among the rated; 4-5/good satisfied
    assert (score.notna() == satisfied.notna()).all()
    for raw, s, ok in zip(values, score, satisfied):
        if raw.lower() in ("good", "bad") or raw.removesuffix(".0") in {"1", "2", "3", "4", "5"}:
            assert bool(ok) == (raw.lower() == "good" or raw.removesuffix(".0") in {"4", "5"})
        else:
            assert pd.isna(s)


def test_usage_table_is_validated_and_seen_at_as_of(tmp_path):
    # usage (DESIGN §2): client_id in clients, events a whole number >= 0, rows at/after as-of set aside
    t = base_tables()
    t["usage"] = pd.DataFrame({"client_id": ["007", "008", "007"], "at": ["2026-01-03", "2026-01-04", "2026-01-07"],
                               "events": ["12", "0", "5.0"], "feature": ["search", None, "export"]})
    ds = load_dataset(write_dir(tmp_path / "ok", t), as_of="2026-01-05")
    assert ds.usage["events"].tolist() == [12, 0] and ds.accounting["usage"] == {
        **ds.accounting["usage"], "read": 3, "used": 2, "set_aside": 1}
    # the as-of date is inferred from the contract's event columns (DESIGN §3), which usage is not
    # among: the latest of them is the ticket created 2026-01-06 09:00 -> as-of 2026-01-07, and the
    # usage row of 2026-01-07 is after it
    assert load_dataset(write_dir(tmp_path / "ok2", t)).as_of_date == "2026-01-07"
    t["usage"] = pd.DataFrame({"client_id": ["007", "999", "008"], "at": ["2026-01-03"] * 3, "events": ["two", "1", "-1"]})
    found, _ = problems(tmp_path, t)
    assert found == ["  - usage.csv, column events: must be a whole number >= 0 (2 rows)\n"
                     "      e.g. line 2: client_id='007', events='two'\n"
                     "      e.g. line 4: client_id='008', events='-1'",
                     "  - usage.csv, column client_id: reference to clients.client_id: value not found there (1 row)\n"
                     "      e.g. line 3: client_id='999'"]
