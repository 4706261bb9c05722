"""Every valid input runs (DESIGN §2: no table is required, an empty table is valid): each report
ends ok, or skipped with its reason, on data sets of degenerate shapes.

- a property-based test draws small valid data sets of many shapes (each table absent, empty or
  a few rows; one to three tiers; one day to a year of data; nothing resolved, no ratings, no
  outreach, no payer, refunds only, ...) and runs every report's own code on them in-process;
- fixed degenerate sets run through every notebook's code in-process, and two of them through
  the runner itself (papermill, kernels, HTML), the way a scheduled run meets them.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from analysis.run.cli import main
from analysis.data.dataset import load_dataset, save_snapshot
from analysis.run.reports import REPORTS
from conftest import ROOT
from degenerate import DEGENERATE, degenerate_sets, write_set
from notebook_code import run_code

DAY0 = pd.Timestamp("2025-01-06", tz="UTC")
# small parameters so that a drawn data set runs every report in about a second
FAST = {"bootstrap_reps": 20, "model_max_clients": 20_000}


def _config(path: Path, tiers: list[str]) -> Path:
    path.write_text(yaml.safe_dump({"tiers": [{"id": t, "name": f"{t} line", "first_response_target_min": 30,
                                               "resolution_target_min": 240} for t in tiers]}))
    return path


@st.composite
def data_sets(draw) -> tuple[dict[str, pd.DataFrame], list[str], str | None]:
    """(tables as CSV text, tier ids, as-of or None): a valid data set of a drawn shape."""
    tiers = draw(st.sampled_from([["L1"], ["L1", "L2"], ["L1", "L2", "FIN"]]))
    span = draw(st.sampled_from([0, 1, 45, 400]))          # days of data: one day ... over a year
    minutes = st.integers(0, max(span * 1440, 600))

    def at(offset: int) -> str:
        return (DAY0 + pd.Timedelta(minutes=offset)).isoformat()

    def state(name: str) -> str:
        return draw(st.sampled_from(["absent", "empty", "rows", "rows"]), label=name)

    tables: dict[str, pd.DataFrame] = {}
    client_ids = [f"c{i}" for i in range(draw(st.integers(1, 6)))]
    if (s := state("clients")) != "absent":
        rows = [] if s == "empty" else [{"client_id": c, "signed_up_at": at(draw(minutes)),
                                          "segment": draw(st.sampled_from(["small", "big", None]))} for c in client_ids]
        tables["clients"] = pd.DataFrame(rows, columns=["client_id", "signed_up_at", "segment"])
    known = client_ids if tables.get("clients") is not None and len(tables["clients"]) else []
    if (s := state("payments")) != "absent":
        amounts = draw(st.sampled_from([[100.0, 250.0], [-40.0], [100.0, -40.0], [30.0]]))   # refunds only too
        rows = [] if s == "empty" or not known else [
            {"payment_id": f"p{i}", "client_id": draw(st.sampled_from(known)), "paid_at": at(draw(minutes)),
             "amount": draw(st.sampled_from(amounts))} for i in range(draw(st.integers(1, 12)))]
        tables["payments"] = pd.DataFrame(rows, columns=["payment_id", "client_id", "paid_at", "amount"])
    agents = ["a1", "a2"]
    if draw(st.booleans()):
        tables["agents"] = pd.DataFrame({"agent_id": agents, "tier": [tiers[0], tiers[-1]]})
    if (s := state("tickets")) != "absent":
        resolving = draw(st.sampled_from(["none", "some", "all"]))
        rated = draw(st.booleans())
        rows = []
        for i in range(0 if s == "empty" else draw(st.integers(1, 8))):
            created = draw(minutes)
            answer = draw(st.one_of(st.none(), st.integers(0, 3000)))
            solved = None if resolving == "none" or (resolving == "some" and draw(st.booleans())) else \
                (answer or 0) + draw(st.integers(0, 5000))
            rows.append({"ticket_id": f"t{i}", "created_at": at(created),
                         "channel": draw(st.sampled_from(["chat", "phone", "email"])),
                         "first_tier": draw(st.sampled_from(tiers)),
                         "client_id": draw(st.sampled_from(known + [None])) if known else None,
                         "first_response_at": None if answer is None else at(created + answer),
                         "resolved_at": None if solved is None else at(created + solved),
                         "final_tier": draw(st.sampled_from(tiers + [None])),
                         "agent_id": draw(st.sampled_from(agents + [None])) if "agents" in tables else None,
                         "topic": draw(st.sampled_from(["refund_request", "billing", None])),
                         "csat_score": draw(st.sampled_from(["5", "3", "1", "good"])) if rated and solved is not None else None,
                         "reopened": draw(st.sampled_from([0, 1]))})
        tables["tickets"] = pd.DataFrame(rows, columns=["ticket_id", "created_at", "channel", "first_tier", "client_id",
                                                        "first_response_at", "resolved_at", "final_tier", "agent_id",
                                                        "topic", "csat_score", "reopened"])
        if draw(st.booleans()):
            events = []
            for r in rows:
                start = pd.Timestamp(r["created_at"])
                for kind in draw(st.lists(st.sampled_from(["assigned", "agent_reply", "customer_reply", "solved",
                                                           "reopened"]), max_size=4)):
                    start += pd.Timedelta(minutes=draw(st.integers(0, 600)))
                    events.append({"ticket_id": r["ticket_id"], "at": start.isoformat(), "event": kind,
                                   "tier": draw(st.sampled_from(tiers)),
                                   "agent_id": draw(st.sampled_from(agents)) if "agents" in tables else None})
            tables["ticket_events"] = pd.DataFrame(events, columns=["ticket_id", "at", "event", "tier", "agent_id"])
    if (s := state("outreach")) != "absent":
        rows = [] if s == "empty" or not known else [
            {"client_id": draw(st.sampled_from(known)), "at": at(draw(minutes)),
             "campaign": draw(st.sampled_from(["onboarding", "winback", "retention"])),
             "channel": draw(st.sampled_from(["email", "call"])),
             "reached": draw(st.sampled_from(["true", "false", None]))} for _ in range(draw(st.integers(1, 5)))]
        tables["outreach"] = pd.DataFrame(rows, columns=["client_id", "at", "campaign", "channel", "reached"])
    if (s := state("usage")) != "absent":
        rows = [] if s == "empty" or not known else [
            {"client_id": draw(st.sampled_from(known)), "at": at(draw(minutes)), "events": draw(st.integers(0, 50))}
            for _ in range(draw(st.integers(1, 6)))]
        tables["usage"] = pd.DataFrame(rows, columns=["client_id", "at", "events"])
    if (s := state("leads")) != "absent":
        leads = [] if s == "empty" else [{"lead_id": f"l{i}", "created_at": at(draw(minutes)), "source": "web",
                                          "client_id": draw(st.sampled_from(client_ids + [None]))}
                                         for i in range(draw(st.integers(1, 4)))]
        tables["leads"] = pd.DataFrame(leads, columns=["lead_id", "created_at", "source", "client_id"])
        calls = [] if not leads or not draw(st.booleans()) else [
            {"call_id": f"k{i}", "lead_id": draw(st.sampled_from([lead["lead_id"] for lead in leads])),
             "operator_id": draw(st.sampled_from(["o1", "o2"])), "started_at": at(draw(minutes)),
             "duration_s": draw(st.integers(0, 400)),
             "status": draw(st.sampled_from(["no_answer", "secretary", "decision_maker", "consent"])),
             "result": draw(st.sampled_from(["presented", "lead", "sale", None])),
             "stage": draw(st.sampled_from(["cold_call", "need_found", "meeting", "contract", None])),
             "vendor": draw(st.sampled_from(["generic", "specialist", "in-house", None]))}
            for i in range(draw(st.integers(1, 8)))]
        tables["calls"] = pd.DataFrame(calls, columns=["call_id", "lead_id", "operator_id", "started_at", "duration_s",
                                                       "status", "result", "stage", "vendor"])
    as_of = draw(st.sampled_from([None, (DAY0 + pd.Timedelta(days=span // 2 + 1)).strftime("%Y-%m-%d")]))
    return tables, tiers, as_of


def _has_timestamps(tables: dict[str, pd.DataFrame]) -> bool:
    # drawn agents carry no dates, and usage does not fix the as-of date (DESIGN §3)
    return any(len(t) for name, t in tables.items() if name not in ("agents", "usage"))


def run_every_report(data: Path, config: Path, as_of: str | None, work: Path) -> dict[str, str]:
    """Each report's code in-process on the data, as the runner would run it: the data
    validated once and saved as the run's snapshot, which every report is given (its
    ``snapshot`` parameter); skipped when a table it needs is absent. Returns report -> 'ok' or
    'skipped'; a failure raises."""
    ds = load_dataset(data, config, as_of)
    present = set(ds.tables)
    snapshot = save_snapshot(ds, work / "snapshot")
    statuses = {}
    for report in REPORTS:
        if report.missing(present):
            statuses[report.name] = "skipped"
            continue
        params = {"data_dir": str(data), "config_path": str(config), "as_of": as_of or "",
                  "metrics_path": str(work / f"{report.name}.json"), "snapshot": str(snapshot)}
        run_code(report, {**params, **FAST})
        fragment = json.loads((work / f"{report.name}.json").read_text())
        assert isinstance(fragment["headline"], str) and fragment["headline"], report.name
        statuses[report.name] = "ok"
    return statuses


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(drawn=data_sets())
def test_every_report_runs_on_any_small_valid_data_set(drawn):
    tables, tiers, as_of = drawn
    if not _has_timestamps(tables) and as_of is None:
        as_of = "2025-03-01"   # no timestamp: the as-of date cannot be inferred and must be given
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = write_set(tables, tmp / "data")
        statuses = run_every_report(data, _config(tmp / "config.yaml", tiers), as_of, tmp)
    assert statuses["00_data_quality"] == "ok"
    assert (statuses["01_support_tiers"] == "ok") == ("tickets" in tables)


@pytest.fixture(scope="module")
def fixed_sets(small_dir, tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("degenerate")
    return {name: write_set(tables, base / name) for name, tables in degenerate_sets(small_dir).items()}


def _as_of(name: str) -> str | None:
    return "2026-01-01" if name == "every_table_empty" else None


# the sets the runner itself runs below (every report, then the HTML export and the index): the
# one where every report meets empty tables and the one where every report has a single day of
# rows; the others run in-process, each report's code as the runner would give it (a runner run of
# a set costs about three times its in-process run: kernels, imports, the HTML export)
RUNNER_SETS = ("every_table_empty", "one_day")


@pytest.mark.parametrize("name", [n for n in DEGENERATE if n not in RUNNER_SETS])
def test_every_report_runs_on_a_fixed_degenerate_set(name, fixed_sets, tmp_path):
    statuses = run_every_report(fixed_sets[name], ROOT / "config" / "default.yaml", _as_of(name), tmp_path)
    assert set(statuses.values()) <= {"ok", "skipped"}


@pytest.mark.parametrize("name", RUNNER_SETS)
def test_the_runner_ends_ok_on_a_degenerate_set(name, fixed_sets, tmp_path):
    # the default config: its before/after ranges lie outside most of these sets
    args = ["run", "--data", str(fixed_sets[name]), "--out", str(tmp_path / "o")]
    assert main(args + (["--as-of", _as_of(name)] if _as_of(name) else [])) == 0
    index = (tmp_path / "o" / "index.html").read_text()
    assert "class='failed'" not in index
    assert index.count(">ok<") + index.count(">skipped<") == len(REPORTS)
