"""Data-quality views for the 00_data_quality report: accounting, coverage, nulls, duplicates,
orphans and distributions. Descriptive counts only; every function is pure."""
from __future__ import annotations

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from analysis.present import page
from analysis.data.contract import TABLES, TIMESTAMP_COLUMNS
from analysis.data.dataset import Dataset
from analysis.data.engine import Engine, as_count, instant, memtable
from analysis.stats import duration_aggregates
from analysis.support.durations import minutes_between

__all__ = ["flags", "never_paid_table", "stale_open_table", "second_reply_table", "TICKET_CHECKS", "flags_text", "accounting_table", "coverage_table", "null_table", "duplicate_table", "orphan_table",
           "amount_summary", "duration_summary", "histogram_counts", "charge_amounts", "duration_columns", "identical_rows", "row_fingerprint",
           "quality_metrics", "headline"]


def accounting_table(ds: Dataset) -> pd.DataFrame:
    """Rows read = used + set aside, per table, with the reasons rows were set aside."""
    rows = []
    for name, a in ds.accounting.items():
        reasons = "; ".join(f"{r}: {n:,}" for r, n in a["set_aside_by_reason"].items()) or "-"
        rows.append({"table": name, "file": a["file"], "rows read": a["read"], "rows used": a["used"],
                     "rows set aside": a["set_aside"], "why set aside": reasons})
    return pd.DataFrame(rows, columns=["table", "file", "rows read", "rows used", "rows set aside",
                                       "why set aside"]).set_index("table")


def _tables(eng: Engine):
    """The contract's tables the engine holds, in the contract's order."""
    return [(name, eng.table(name)) for name in TABLES if eng.has(name)]


def coverage_table(eng: Engine) -> pd.DataFrame:
    """First and last value and fill count of every timestamp column, on the rows used (one
    aggregate per table in the engine)."""
    rows = []
    for name, t in _tables(eng):
        cols = [c for c in TIMESTAMP_COLUMNS[name] if c in t.columns]
        if not cols:
            continue
        got = eng.frame(t.aggregate(rows=t.count(), **{f"first{i}": t[c].min() for i, c in enumerate(cols)},
                                    **{f"last{i}": t[c].max() for i, c in enumerate(cols)},
                                    **{f"filled{i}": t[c].count() for i, c in enumerate(cols)})).iloc[0]
        for i, c in enumerate(cols):
            rows.append({"table": name, "column": c, "first": got[f"first{i}"], "last": got[f"last{i}"],
                         "filled": int(got[f"filled{i}"]), "rows": int(got["rows"])})
    return pd.DataFrame(rows, columns=["table", "column", "first", "last", "filled", "rows"]).set_index(["table", "column"])


def null_table(eng: Engine) -> pd.DataFrame:
    """Empty values per contract column present: count and share of the table's rows."""
    rows = []
    for name, t in _tables(eng):
        cols = [c for c in TABLES[name] if c.name in t.columns]
        got = eng.frame(t.aggregate(rows=t.count(), **{f"empty{i}": t[c.name].isnull().sum()
                                                        for i, c in enumerate(cols)})).iloc[0]
        n = int(got["rows"])
        for i, c in enumerate(cols):
            empty = as_count(got[f"empty{i}"])
            rows.append({"table": name, "column": c.name, "required": c.required, "empty": empty,
                         "share empty": empty / n if n else None})
    return pd.DataFrame(rows, columns=["table", "column", "required", "empty", "share empty"]).set_index(["table", "column"])


def row_fingerprint(t: ir.Table) -> ir.IntegerValue:
    """One hash per row of ``t``: every column written as text (an empty value as the control
    character U+001E), joined by U+001F and hashed by the backend (DuckDB and PostgreSQL: 64 bits,
    Spark: 32). Equal rows have equal fingerprints; unequal rows may share one (DuckDB gave 23
    such pairs among the 21M ticket events of 1M clients), so a fingerprint only picks candidates
    for an exact comparison."""
    return ibis.literal("\x1f").join([t[c].cast("string").fill_null("\x1e") for c in t.columns]).hash()


def identical_rows(eng: Engine, t: ir.Table) -> int:
    """Rows equal in every column to an earlier row (pandas' ``duplicated().sum()``): the sum,
    over groups of identical rows, of their size less one; grouping takes empty values (and
    NaN) as equal, as pandas does.

    Two queries, so that the grouping by every column sees only candidates: the first groups
    the rows by ``row_fingerprint`` and brings back the fingerprints that repeat; the second
    groups by every column only the rows that carry one of them. Identical rows share a
    fingerprint, so none is missed and the count is exact whatever collides; a table with no
    repeated fingerprint has no identical rows and needs no second query. At 1M clients (21M
    ticket events, text ids) DuckDB groups by all five columns in 3.1 GB and by the fingerprint
    in 1.3 GB; one query with a semi-join reads the table twice and DuckDB holds it whole (3.4 GB).
    """
    marked = t.mutate(_fingerprint=row_fingerprint(t))
    repeated = eng.backend.to_pyarrow(marked.group_by("_fingerprint").aggregate(_rows=ibis._.count())
                                      .filter(ibis._._rows > 1).select("_fingerprint"))
    if not repeated.num_rows:
        return 0
    candidates = marked.semi_join(memtable(repeated), "_fingerprint").drop("_fingerprint")
    groups = candidates.group_by(list(candidates.columns)).aggregate(_n=ibis._.count())
    return as_count(eng.backend.execute((groups._n - 1).sum()))


def duplicate_table(eng: Engine) -> pd.DataFrame:
    """Fully identical rows per table. A table with a unique ID column (checked by validation)
    cannot hold two identical rows: 0 there by construction, only the others are counted."""
    rows = []
    for name, t in _tables(eng):
        n = int(eng.backend.execute(t.count()))
        unique = any(c.unique and c.name in t.columns for c in TABLES[name])
        rows.append({"table": name, "rows": n,
                     "identical rows (beyond the first)": 0 if unique else identical_rows(eng, t)})
    return pd.DataFrame(rows, columns=["table", "rows", "identical rows (beyond the first)"]).set_index("table")


def orphan_table(eng: Engine) -> pd.DataFrame:
    """Rows that stand alone: tickets with no client, clients who never paid or never wrote,
    first payments before sign-up, tickets with no events (when ticket_events is given). Each
    a count in the engine (anti-joins on the ids)."""
    rows = []
    run = lambda expr: as_count(eng.backend.execute(expr))  # noqa: E731
    def add(check, n, of):
        rows.append({"check": check, "rows": int(n), "of": int(of), "share": n / of if of else None})
    t, c, p, e = (eng.table(n) for n in ("tickets", "clients", "payments", "ticket_events"))
    if t is not None and "client_id" in t.columns:
        add("tickets with no client (client_id empty)", run(t.client_id.isnull().sum()), run(t.count()))
    if c is not None and p is not None:
        clients = run(c.count())
        charged = p.filter(p.amount > 0).select(payer="client_id").distinct()
        add("clients with no charge before as-of", run(c.anti_join(charged, c.client_id == charged.payer).count()), clients)
        first = p.group_by(payer=p.client_id).aggregate(first_paid=p.paid_at.min())
        joined = first.left_join(c.select("client_id", "signed_up_at"), first.payer == c.client_id)
        add("clients whose first payment precedes sign-up",
            run((joined.first_paid < joined.signed_up_at).sum()), run(first.count()))
    if c is not None and t is not None and "client_id" in t.columns:
        wrote = t.filter(t.client_id.notnull()).select(writer="client_id").distinct()
        add("clients who never wrote to support", run(c.anti_join(wrote, c.client_id == wrote.writer).count()),
            run(c.count()))
    if t is not None and e is not None:
        seen = e.select(event_ticket="ticket_id").distinct()
        add("tickets with no events", run(t.anti_join(seen, t.ticket_id == seen.event_ticket).count()), run(t.count()))
    return pd.DataFrame(rows, columns=["check", "rows", "of", "share"]).set_index("check")


def _describe(values: ir.FloatingColumn) -> dict:
    """count, mean, std (n - 1), min, 10%, 50%, 90% (linear interpolation), max of a column."""
    return {"count": values.count(), "mean": values.mean(), "std": values.std(how="sample"), "min": values.min(),
            "10%": values.quantile(0.1), "50%": values.quantile(0.5), "90%": values.quantile(0.9),
            "max": values.max()}


def amount_summary(eng: Engine) -> pd.DataFrame:
    """Distribution of charges and refunds (pandas' ``describe`` with the 10th, 50th and 90th
    percentiles, min and max as lowest and highest, and the sum) in the reporting currency,
    aggregated in the engine. A kind with no payment is a row of empty values."""
    p = eng.table("payments")
    kinds = p.mutate(payment=(p.amount > 0).ifelse("charge", "refund"))
    out = eng.frame(kinds.group_by("payment").aggregate(**_describe(kinds.amount), sum=kinds.amount.sum()))
    out = out.set_index("payment").astype("float64").reindex(["charge", "refund"])
    # "lowest"/"highest": a column named "min" reads as minutes in the reports' tables
    return out[["count", "mean", "std", "min", "10%", "50%", "90%", "max", "sum"]].rename(
        columns={"min": "lowest", "max": "highest"})


_DURATIONS = (("first_response_at", "first response", "first_response_min"),
              ("resolved_at", "resolution", "resolution_min"))


def _ticket_minutes(eng: Engine) -> ir.Table:
    """Calendar minutes from creation to first response and to resolution, one row per ticket,
    computed once per engine (``Engine.derived``): the summary and both histograms scan it."""
    def build(e: Engine) -> ir.Table:
        t = e.table("tickets")
        return t.select(**{name: minutes_between(t.created_at, t[col]) for col, _, name in _DURATIONS
                           if col in t.columns})
    return eng.derived("ticket_minutes", build)


def duration_summary(eng: Engine) -> pd.DataFrame:
    """n, median, p90, mean of the calendar minutes from creation to first response and to
    resolution, and how many have none yet (aggregated in the engine)."""
    m = _ticket_minutes(eng)
    rows = []
    for _, label, name in _DURATIONS:
        if name not in m.columns:
            continue
        v = m[name]
        got = eng.frame(m.aggregate(none=v.isnull().sum(), **duration_aggregates(v))).iloc[0]
        n = int(got["n"])
        rows.append({"duration": label, "n": n, "none yet": as_count(got["none"]),
                     "median_min": got["median_min"] if n else None, "p90_min": got["p90_min"] if n else None,
                     "mean_min": got["mean_min"] if n else None})
    return pd.DataFrame(rows, columns=["duration", "n", "none yet", "median_min", "p90_min", "mean_min"])


def histogram_counts(eng: Engine, values: ir.FloatingColumn, bins: int = 50, log: bool = False) -> pd.DataFrame:
    """A histogram counted in the engine: ``bins`` edges from the smallest to the largest value
    (geometric with ``log``, which keeps values > 0 only; numpy's ``geomspace`` and ``linspace``),
    each value in the bin [left, right), the largest in the last; nulls left out. Columns left,
    right, rows; empty when there is no value. One value or equal values: one bin."""
    kept = values.as_table().rename(v=values.get_name())
    kept = kept.filter(kept.v.notnull() & (kept.v > 0)) if log else kept.filter(kept.v.notnull())
    span = eng.frame(kept.aggregate(low=kept.v.min(), high=kept.v.max(), n=kept.count())).iloc[0]
    if not int(span["n"]):
        return pd.DataFrame({"left": [], "right": [], "rows": []})
    low, high = float(span["low"]), float(span["high"])
    if low == high:
        return pd.DataFrame({"left": [low], "right": [high], "rows": [int(span["n"])]})
    edges = np.geomspace(low, high, bins) if log else np.linspace(low, high, bins + 1)
    scale = (kept.v.ln() - np.log(low)) / (np.log(high) - np.log(low)) if log else (kept.v - low) / (high - low)
    k = len(edges) - 1
    index = ibis.least((scale * k).floor().cast("int64"), k - 1)
    counts = eng.frame(kept.group_by(b=index).aggregate(rows=ibis._.count())).set_index("b")["rows"]
    counts = counts.reindex(range(k), fill_value=0).to_numpy()
    return pd.DataFrame({"left": edges[:-1], "right": edges[1:], "rows": counts})


def charge_amounts(eng: Engine) -> ir.FloatingColumn:
    """The charges' amounts (payments > 0), for ``histogram_counts``."""
    p = eng.table("payments")
    return p.filter(p.amount > 0).amount


def duration_columns(eng: Engine) -> dict[str, ir.FloatingColumn]:
    """Calendar minutes from creation to first response and to resolution, by label, for
    ``histogram_counts``."""
    m = _ticket_minutes(eng)
    return {label: m[name] for _, label, name in _DURATIONS if name in m.columns}


# thresholds of the data-quality flags (``flags``): amber from the first, red from the second
NEVER_PAID_SHARE = (0.8, 0.97)
STALE_OPEN_SHARE = (0.02, 0.10)
STALE_OPEN_DAYS = 30
SECOND_REPLY_SHARE = 0.02


TICKET_CHECKS = ("tickets that never close", "second agent replies")


def never_paid_table(clients: ir.Table, payments: ir.Table) -> ir.Table:
    """One row: clients (in the clients table) and paid (those with a charge, amount > 0)."""
    payers = payments.filter(payments.amount > 0).client_id
    return clients.aggregate(clients=clients.count(), paid=_count(clients.client_id.isin(payers)))


def stale_open_table(tickets: ir.Table, as_of: pd.Timestamp) -> ir.Table:
    """One row: old (tickets created STALE_OPEN_DAYS or more days before as-of) and stale (those
    of them still without a resolution at as-of)."""
    old = tickets.created_at <= instant(as_of - pd.Timedelta(days=STALE_OPEN_DAYS))
    return tickets.aggregate(old=_count(old), stale=_count(old & tickets.resolved_at.isnull()))


def second_reply_table(tickets: ir.Table, events: ir.Table) -> ir.Table:
    """One row: resolved (resolved tickets with at least one event) and second (those of them
    with two or more agent_reply events). Events of tickets not in tickets are not counted."""
    per = events.group_by("ticket_id").aggregate(replies=_count(events.event == "agent_reply"))
    j = tickets.filter(tickets.resolved_at.notnull()).select("ticket_id").join(per, "ticket_id")
    return j.aggregate(resolved=j.count(), second=_count(j.replies >= 2))


def _count(condition: ir.BooleanValue) -> ir.IntegerScalar:
    """How many rows meet ``condition`` (null counts as not), as an integer on every backend."""
    return ibis.ifelse(condition.fill_null(False), 1, 0).sum().fill_null(0).cast("int64")


def flags(eng: Engine, as_of: pd.Timestamp, checks: tuple[str, ...] | None = None) -> pd.DataFrame:
    """What should worry an analyst before reading the other reports, one row per finding:
    ``level`` (red: a report's figure is not meaningful as computed; amber: read it with care),
    ``check`` and ``finding`` in words. The counts come from the engine (``never_paid_table``,
    ``stale_open_table``, ``second_reply_table``). Checks:

    - clients who never paid (a positive charge): amber from 80%, red from 97% of clients
      (LTV, churn and the support effect cover only the payers);
    - tickets still open STALE_OPEN_DAYS days after they were created: amber from 2%, red from
      10% of those tickets (the backlog only grows unless the export closes them);
    - resolved tickets with events but almost no second agent reply (under 2% with two or more):
      red, the one-touch rate is then 'one reply' by construction.
    ``checks`` runs only the named checks (``TICKET_CHECKS``: the two 01's figures depend on).
    An empty frame when nothing is found."""
    def wanted(check: str) -> bool:
        return checks is None or check in checks

    rows = []
    if wanted("clients who never paid") and eng.has("clients", "payments"):
        n = eng.frame(never_paid_table(eng.table("clients"), eng.table("payments"))).iloc[0]
        share = 1 - n["paid"] / n["clients"] if n["clients"] else 0.0
        if share >= NEVER_PAID_SHARE[0]:
            rows.append({"level": "red" if share >= NEVER_PAID_SHARE[1] else "amber", "check": "clients who never paid",
                         "finding": f"{share:.1%} of {int(n['clients']):,} clients have no charge: LTV, churn and the "
                                    f"support effect cover only the {int(n['paid']):,} who paid"})
    tickets = eng.table("tickets")
    if wanted("tickets that never close") and tickets is not None and "resolved_at" in tickets.columns:
        n = eng.frame(stale_open_table(tickets, as_of)).iloc[0]
        share = n["stale"] / n["old"] if n["old"] else 0.0
        if share >= STALE_OPEN_SHARE[0]:
            rows.append({"level": "red" if share >= STALE_OPEN_SHARE[1] else "amber", "check": "tickets that never close",
                         "finding": f"{int(n['stale']):,} tickets ({share:.1%} of those created over {STALE_OPEN_DAYS} "
                                    "days ago) are still open: the backlog can only grow; check whether the export "
                                    "closes tickets"})
    events = eng.table("ticket_events")
    if (wanted("second agent replies") and tickets is not None and events is not None and "event" in events.columns
            and "resolved_at" in tickets.columns):
        n = eng.frame(second_reply_table(tickets, events)).iloc[0]
        if n["resolved"]:
            second = n["second"] / n["resolved"]
            if second < SECOND_REPLY_SHARE:
                rows.append({"level": "red", "check": "second agent replies",
                             "finding": f"only {second:.1%} of {int(n['resolved']):,} resolved tickets with events have "
                                        "a second agent reply: the one-touch rate is near 100% by construction, not "
                                        "a measure of first-contact resolution"})
    return pd.DataFrame(rows, columns=["level", "check", "finding"])


def flags_text(found: pd.DataFrame) -> page.Md:
    """The flags as a list for the top of a report ('No data-quality flag.' when none)."""
    if not len(found):
        return page.md("No data-quality flag: no check found a reason to doubt a report's figures.")
    marks = {"red": "RED", "amber": "AMBER"}
    return page.join(page.md("- **{mark}** {check}: {finding}.", mark=marks[r["level"]], check=r["check"],
                                   finding=r["finding"]) for r in found.to_dict("records"))


def quality_metrics(ds: Dataset, duplicates: pd.DataFrame, orphans: pd.DataFrame) -> dict:
    """The data-quality keys of metrics.json (`quality.*`) from the report's ``duplicate_table``
    and ``orphan_table``."""
    return {"quality": {
        "tables": sorted(ds.tables),
        "data_first": ds.data_range[0], "data_last": ds.data_range[1],
        "identical_rows": duplicates["identical rows (beyond the first)"].to_dict(),
        "orphans": orphans["rows"].to_dict(),
    }}


def headline(ds: Dataset) -> str:
    """One sentence for index.html: how much data, which period, how much was set aside."""
    read = sum(a["read"] for a in ds.accounting.values())
    aside = sum(a["set_aside"] for a in ds.accounting.values())
    first, last = ds.data_range
    period = f"{first:%Y-%m-%d} to {last:%Y-%m-%d}" if first is not None else "no dated rows"
    return (f"{len(ds.tables)} tables, {read:,} rows read, {aside:,} set aside "
            f"(after as-of {ds.as_of_date}); data from {period}.")


def headline_block(ds: Dataset) -> page.Md:
    """Markdown block at the top of the report: as-of, source, period, rows, what was set aside."""
    lines = [page.md("**As-of {as_of}**: the data is seen as it was at 00:00 UTC that day; source {source}.",
                        as_of=ds.as_of_date, source=ds.source),
             "", page.md("- {headline}", headline=headline(ds))]
    missing = [t for t in TABLES if t not in ds.tables]
    if missing:
        lines.append(page.md("- Tables not given (reports that need them are skipped): {tables}.",
                                tables=", ".join(missing)))
    for name, a in ds.accounting.items():
        for reason, count in a["set_aside_by_reason"].items():
            lines.append(page.md("- {name}: {count:,} of {read:,} rows set aside ({reason}).",
                                    name=name, count=count, read=a["read"], reason=reason))
    return page.join(lines)


def not_yet_happened_text(ds: Dataset) -> page.Md:
    """Sentence on ticket responses and resolutions dated at/after as-of (blanked, not dropped)."""
    masked = ds.accounting.get("tickets", {}).get("not_yet_happened_at_as_of", {})
    if not masked or not any(masked.values()):
        return page.md("No ticket response, resolution or rating is dated at or after the as-of date.")
    parts = ", ".join(f"{n:,} {col}" for col, n in masked.items() if n)
    return page.md("Values dated at or after as-of are treated as not yet happened (the ticket is kept, the "
                      "value blanked): {parts}.", parts=parts)
