"""Data-quality views for the 00_data_quality report: accounting, coverage, nulls, duplicates,
orphans and distributions. Descriptive counts only; every function is pure."""
from __future__ import annotations

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from analysis.data import ids
from analysis.present import page
from analysis.data.contract import TABLES, TIMESTAMP_COLUMNS
from analysis.data.dataset import Dataset
from analysis.data.engine import Engine, instant
from analysis.support.durations import calendar_minutes

__all__ = ["flags", "never_paid_table", "stale_open_table", "second_reply_table", "TICKET_CHECKS", "flags_text", "accounting_table", "coverage_table", "null_table", "duplicate_table", "orphan_table",
           "amount_summary", "duration_minutes", "duration_summary", "quality_metrics", "headline"]


def accounting_table(ds: Dataset) -> pd.DataFrame:
    """Rows read = used + set aside, per table, with the reasons rows were set aside."""
    rows = []
    for name, a in ds.accounting.items():
        reasons = "; ".join(f"{r}: {n:,}" for r, n in a["set_aside_by_reason"].items()) or "-"
        rows.append({"table": name, "file": a["file"], "rows read": a["read"], "rows used": a["used"],
                     "rows set aside": a["set_aside"], "why set aside": reasons})
    return pd.DataFrame(rows, columns=["table", "file", "rows read", "rows used", "rows set aside",
                                       "why set aside"]).set_index("table")


def coverage_table(ds: Dataset) -> pd.DataFrame:
    """First and last value and fill count of every timestamp column, on the rows used."""
    rows = []
    for name, frame in ds.tables.items():
        for col in TIMESTAMP_COLUMNS[name]:
            if col in frame.columns:
                s = frame[col]
                rows.append({"table": name, "column": col, "first": s.min(), "last": s.max(),
                             "filled": int(s.notna().sum()), "rows": len(s)})
    return pd.DataFrame(rows, columns=["table", "column", "first", "last", "filled", "rows"]).set_index(["table", "column"])


def null_table(ds: Dataset) -> pd.DataFrame:
    """Empty values per contract column present: count and share of the table's rows."""
    rows = []
    for name, frame in ds.tables.items():
        for col in TABLES[name]:
            if col.name in frame.columns:
                n = int(frame[col.name].isna().sum())
                rows.append({"table": name, "column": col.name, "required": col.required, "empty": n,
                             "share empty": n / len(frame) if len(frame) else None})
    return pd.DataFrame(rows, columns=["table", "column", "required", "empty", "share empty"]).set_index(["table", "column"])


def _repeated(values: np.ndarray) -> np.ndarray:
    """Boolean mask: the int64 value occurs more than once (by sorting: at tens of millions of
    rows a sort is faster than a hash table)."""
    order = np.argsort(values, kind="stable")
    v = values[order]
    same = v[1:] == v[:-1]
    hit = np.r_[same, False] | np.r_[False, same]
    out = np.empty(len(values), dtype=bool)
    out[order] = hit
    return out


def _as_int64(s: pd.Series) -> np.ndarray | None:
    """A plain numeric or timestamp column as int64 values equal exactly where the column's
    values are equal (NaN with NaN, NaT with NaT, 0.0 with -0.0); None for other types."""
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return ids.ns(s)
    if s.dtype == "float64":
        v = s.to_numpy() + 0.0  # -0.0 -> 0.0
        return np.where(np.isnan(v), np.nan, v).view("int64")
    if s.dtype == "int64":
        return s.to_numpy()
    return None


def identical_rows(frame: pd.DataFrame) -> int:
    """Rows equal in every column to an earlier row: ``frame.duplicated().sum()`` (empty values
    equal each other). Two identical rows share every value, so the full comparison runs only
    on the rows whose number and timestamp values repeat, not on every row."""
    rows = np.arange(len(frame))
    for col in frame.columns:
        values = _as_int64(frame[col])
        if values is not None and len(rows) > 1:
            rows = rows[_repeated(values[rows])]
    return int(frame.take(rows).duplicated().sum()) if len(rows) > 1 else 0


def duplicate_table(ds: Dataset) -> pd.DataFrame:
    """Fully identical rows per table. A table with a unique ID column (checked by validation)
    cannot hold two identical rows, so only the others are hashed: 0 there by construction."""
    def identical(name: str, frame: pd.DataFrame) -> int:
        if any(c.unique and c.name in frame.columns for c in TABLES[name]):
            return 0
        return identical_rows(frame)
    rows = [{"table": n, "rows": len(f), "identical rows (beyond the first)": identical(n, f)}
            for n, f in ds.tables.items()]
    return pd.DataFrame(rows, columns=["table", "rows", "identical rows (beyond the first)"]).set_index("table")


def orphan_table(ds: Dataset) -> pd.DataFrame:
    """Rows that stand alone: tickets with no client, clients who never paid or never wrote,
    payments before sign-up, tickets with no events (when ticket_events is given)."""
    rows = []
    def add(check, n, of):
        rows.append({"check": check, "rows": int(n), "of": int(of), "share": n / of if of else None})
    t, c, p, e = ds.tickets, ds.clients, ds.payments, ds.ticket_events
    if t is not None and "client_id" in t.columns:
        add("tickets with no client (client_id empty)", t["client_id"].isna().sum(), len(t))
    if c is not None and p is not None:
        pos = ids.codes(p["client_id"], c["client_id"])  # the payer's row in clients
        if (pos >= 0).all() and c["client_id"].notna().all():  # every payer is a client (validated data)
            charged = np.bincount(pos[p["amount"].to_numpy() > 0], minlength=len(c)) > 0
            add("clients with no charge before as-of", (~charged).sum(), len(c))
            paid = ids.ns(p["paid_at"])
            first_pay = np.full(len(c), np.iinfo("int64").max)
            np.minimum.at(first_pay, pos, paid)
            payer = np.bincount(pos, minlength=len(c)) > 0
            early = first_pay[payer] < ids.ns(c["signed_up_at"])[payer]
            add("clients whose first payment precedes sign-up", early.sum(), int(payer.sum()))
        else:
            charged = p.loc[p["amount"] > 0, "client_id"].unique()
            add("clients with no charge before as-of", (~ids.isin(c["client_id"], charged)).sum(), len(c))
            first_pay = p.groupby("client_id")["paid_at"].min()
            signed = c.set_index("client_id")["signed_up_at"].reindex(first_pay.index)
            add("clients whose first payment precedes sign-up", (first_pay < signed).sum(), len(first_pay))
    if c is not None and t is not None and "client_id" in t.columns:
        # ids unique by the contract: each key marked from the referencing rows' kept positions
        add("clients who never wrote to support", (~ids.present(c["client_id"], t["client_id"])).sum(), len(c))
    if t is not None and e is not None:
        add("tickets with no events", (~ids.present(t["ticket_id"], e["ticket_id"])).sum(), len(t))
    return pd.DataFrame(rows, columns=["check", "rows", "of", "share"]).set_index("check")


def amount_summary(payments: pd.DataFrame) -> pd.DataFrame:
    """Distribution of charges and refunds (count, sum, percentiles) in the reporting currency."""
    kind = pd.Series("charge", index=payments.index).where(payments["amount"] > 0, "refund")
    out = payments["amount"].groupby(kind).describe(percentiles=[0.1, 0.5, 0.9])
    out["sum"] = payments["amount"].groupby(kind).sum()
    return out.reindex(["charge", "refund"]).rename_axis("payment")


def duration_minutes(tickets: pd.DataFrame) -> pd.DataFrame:
    """Calendar minutes from creation to first response and to resolution, per ticket."""
    out = pd.DataFrame(index=tickets.index)
    for col, label in (("first_response_at", "first response"), ("resolved_at", "resolution")):
        if col in tickets.columns:
            out[label] = calendar_minutes(tickets["created_at"], tickets[col])
    return out


def duration_summary(tickets: pd.DataFrame) -> pd.DataFrame:
    """n, median, p90, mean of the calendar durations (minutes), and how many have none yet."""
    d = duration_minutes(tickets)
    rows = []
    for col in d.columns:
        s = d[col].dropna()
        rows.append({"duration": col, "n": len(s), "none yet": int(d[col].isna().sum()),
                     "median_min": s.median() if len(s) else None,
                     "p90_min": s.quantile(0.9) if len(s) else None,
                     "mean_min": s.mean() if len(s) else None})
    return pd.DataFrame(rows, columns=["duration", "n", "none yet", "median_min", "p90_min", "mean_min"])


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


def quality_metrics(ds: Dataset, duplicates: pd.DataFrame | None = None, orphans: pd.DataFrame | None = None) -> dict:
    """The data-quality keys of metrics.json (`quality.*`); pass the report's ``duplicate_table``
    and ``orphan_table`` when they are already computed (they are the slow part at scale)."""
    orphans = orphan_table(ds) if orphans is None else orphans
    duplicates = duplicate_table(ds) if duplicates is None else duplicates
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
