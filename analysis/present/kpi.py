"""The few numbers a manager watches, with their change since the previous run (KPI tiles) and
their line over every archived run (the history page).

A KPI is a value of metrics.json (DESIGN §5) named by a dotted path; ``*`` stands for every key
at that level (one tile per support tier, per vendor). Each KPI says how it is shown and which
direction is good: a change is coloured green when it goes that way, red when it goes the other,
grey when neither direction is better (an estimate such as a hazard ratio, a volume).

The change since the previous run: rates in percentage points ("+2.1 pp"), ratios as a
difference ("+0.05"), everything else relative ("+4.0%", none when the previous value is 0).
The previous run is the newest archived run with an earlier as-of date (``previous_run``).
"""
from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import markupsafe
import numpy as np
import pandas as pd

from analysis.present import page

__all__ = ["Kpi", "KPIS", "kpi_values", "change", "archived_runs", "previous_run", "tiles_html", "history_html",
           "TILE_STYLE"]


@dataclass(frozen=True)
class Kpi:
    report: str     # the report that records it
    path: str       # dotted path in metrics.json; "*" = every key at that level
    label: str      # "{key}" is the key "*" stood for (a tier, a vendor)
    kind: str       # percent, money, count, ratio, minutes, months
    better: str | None = None  # "up", "down" or None (neither)
    index: bool = True         # also on the index page (the rest only on the report's own page)
    order: str | None = None   # dotted path of a list that orders the "*" keys (else sorted)
    note: str | None = None    # appended to the label, formatted with the value's siblings
                               # (left out when one it names is missing or null)


KPIS: tuple[Kpi, ...] = (
    Kpi("00_data_quality", "data.payments.used", "Payments used", "count", index=False),
    Kpi("00_data_quality", "data.tickets.used", "Tickets used", "count", index=False),
    Kpi("01_support_tiers", "sla.by_tier.*.sla_achieved", "First-response SLA achieved, {key}", "percent", "up",
        order="sla.tiers", note="target {first_response_target_min:,.0f} min"),
    Kpi("01_support_tiers", "sla.by_tier.*.first_response_median_min", "First response median, {key}", "minutes",
        "down", index=False, order="sla.tiers"),
    Kpi("01_support_tiers", "sla.by_tier.*.csat", "CSAT, {key}", "percent", "up", index=False, order="sla.tiers"),
    Kpi("02_cohort_ltv", "ltv.by_group.all.ltv_12m", "LTV at 12 months, all clients", "money", "up"),
    Kpi("02_cohort_ltv", "ltv.ratio_adjusted.ratio", "LTV ratio, early contact vs not, adjusted", "ratio",
        index=False),
    Kpi("03_churn_survival", "churn.first_month.all.rate", "First-month churn, all clients", "percent", "down"),
    Kpi("03_churn_survival", "churn.support_effect.methods.renewal.hazard_ratio",
        "Hazard ratio of churn for support contact, adjusted", "ratio"),
    Kpi("04_winback_retention", "winback.rate", "Dormant clients won back", "percent", "up"),
    Kpi("04_winback_retention", "winback.retention_saves.save_rate", "Refund requests saved", "percent", "up",
        index=False),
    Kpi("05_onboarding_revenue", "onboarding.reach_rate", "New registrations reached", "percent", "up", index=False),
    Kpi("05_onboarding_revenue", "onboarding.paid_rate_reached", "Reached registrations who paid", "percent", "up"),
    Kpi("06_contact_centre_economics", "contact_centre.vendors.*.conversion", "Lead conversion, {key}", "percent", "up"),
    Kpi("07_sales_conveyor", "conveyor.meeting_conversion", "Leads reaching a meeting", "percent", "up"),
)


def _lookup(metrics: Any, parts: list[str], order: list | None = None,
            found: str = "", parent: Any = None) -> list[tuple[str, Any, Any]]:
    """(key "*" stood for, value, the dict holding the value) for each match of ``parts``; the
    keys of a "*" in ``order``'s order (those it does not name after them, sorted)."""
    if not parts:
        return [(found, metrics, parent)]
    if not isinstance(metrics, dict):
        return []
    head, rest = parts[0], parts[1:]
    if head == "*":
        ranked = [k for k in (order or []) if isinstance(k, str) and k in metrics]
        keys = ranked + sorted(k for k in metrics if k not in ranked)
        return [hit for key in keys for hit in _lookup(metrics[key], rest, order, key, metrics[key])]
    return _lookup(metrics[head], rest, order, found, metrics) if head in metrics else []


def _label(k: Kpi, key: str, siblings: Any) -> str:
    name = k.label.format(key=key)
    if k.note and isinstance(siblings, dict):
        try:
            name += f" ({k.note.format(**siblings)})"
        except (KeyError, TypeError, ValueError):   # a sibling missing or null: no note
            pass
    return name


def kpi_values(metrics: dict, report: str | None = None, kpis: tuple[Kpi, ...] = KPIS) -> list[tuple[Kpi, str, float]]:
    """(kpi, label, value) for every KPI of ``report`` (None: the KPIs of the index) present in
    ``metrics`` with a number; a wildcard gives one row per key (``sla.by_tier.*.sla_achieved``:
    one per tier, in the order of ``sla.tiers``, the config's ladder)."""
    out = []
    for k in kpis:
        if (report is not None and k.report != report) or (report is None and not k.index):
            continue
        found = _lookup(metrics, k.order.split(".")) if k.order else []
        order = found[0][1] if found and isinstance(found[0][1], list) else None
        for key, value, siblings in _lookup(metrics, k.path.split("."), order):
            if isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value):
                out.append((k, _label(k, key, siblings), float(value)))
    return out


def show_value(kind: str, value: float, currency: str | None = None) -> str:
    """A KPI's value for a tile."""
    if kind == "percent":
        return page.format_percent(value)
    if kind == "money":
        return page.format_money(value, currency)
    if kind == "count":
        return page.format_count(value)
    if kind == "ratio":
        return f"{value:.2f}"
    if kind == "minutes":
        return f"{value:,.1f} min"
    if kind == "months":
        return f"{value:,.1f} months"
    return page.format_number(value)


def change(kpi: Kpi, now: float, before: float | None) -> tuple[str, str]:
    """(text, tone) of the change from ``before`` to ``now``: "+2.1 pp" for rates, "+0.05" for
    ratios, "+4.0%" otherwise; tone "good", "bad" or "neutral" by ``kpi.better``; ("", "neutral")
    without a previous value (or a relative change from 0)."""
    if before is None or not np.isfinite(before):
        return "", "neutral"
    delta = now - before
    if kpi.kind == "percent":
        text, shown = f"{delta * 100:+.1f} pp", round(delta * 100, 1)
    elif kpi.kind == "ratio":
        text, shown = f"{delta:+.2f}", round(delta, 2)
    elif before == 0:
        return "", "neutral"
    else:
        text, shown = f"{delta / abs(before):+.1%}", round(delta / abs(before) * 100, 1)
    if shown == 0:
        return "no change", "neutral"
    if kpi.better is None:
        tone = "neutral"
    else:
        tone = "good" if (delta > 0) == (kpi.better == "up") else "bad"
    return text, tone


def archived_runs(archive: Path | None, extra: list[Path] = ()) -> list[tuple[str, dict]]:
    """(as_of, metrics) of every run archived under ``archive`` (``<as-of>/metrics.json``) and of
    the metrics.json files in ``extra`` (e.g. the run OUT holds now), one per as-of date (the
    archive's copy first), oldest first. Unreadable files are left out."""
    files = sorted(Path(archive).glob("*/metrics.json")) if archive and Path(archive).is_dir() else []
    runs: dict[str, dict] = {}
    for path in [*files, *extra]:
        try:
            metrics = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        as_of = metrics.get("as_of") if isinstance(metrics, dict) else None
        if isinstance(as_of, str) and as_of not in runs:
            runs[as_of] = metrics
    return sorted(runs.items())


def previous_run(runs: list[tuple[str, dict]], as_of: str) -> tuple[str, dict] | None:
    """The newest run with an as-of date before ``as_of`` (None: this is the first)."""
    earlier = [r for r in runs if r[0] < as_of]
    return earlier[-1] if earlier else None


TILE_STYLE = (".kpis{display:flex;flex-wrap:wrap;gap:.6rem;margin:.6rem 0 1rem}"
              ".kpi{border:1px solid #ddd;border-radius:6px;padding:.5rem .8rem;min-width:11rem;max-width:16rem;"
              "background:#fff;font-family:sans-serif}"
              ".kpi .name{font-size:12px;color:#555}.kpi .value{font-size:22px;font-weight:600;margin:.1rem 0}"
              ".kpi .delta{font-size:12px}.kpi .good{color:#1a7f37}.kpi .bad{color:#c62828}.kpi .neutral{color:#666}")


def tiles_html(metrics: dict, previous: tuple[str, dict] | None, report: str | None = None,
               currency: str | None = None) -> str:
    """The KPI tiles of ``report`` (or of every report) with the change since ``previous`` (its
    as-of date named), every text HTML-escaped. Empty when no KPI is in ``metrics``."""
    rows = kpi_values(metrics, report)
    if not rows:
        return ""
    before = {(k.path, name): v for k, name, v in kpi_values(previous[1], report)} if previous else {}
    tiles = []
    for k, name, value in rows:
        text, tone = change(k, value, before.get((k.path, name)))
        if previous is None:
            delta = "first run: no earlier run to compare with"
        elif not text:
            delta = f"not in the run of {previous[0]}"
        else:
            delta = f"{text} since {previous[0]}"
        tiles.append(page.html("<div class='kpi'><div class='name'>{name}</div><div class='value'>{value}</div>"
                                  "<div class='delta {tone}'>{delta}</div></div>", name=name,
                                  value=show_value(k.kind, value, currency), tone=tone, delta=delta))
    return str(page.html("<div class='kpis'>{tiles}</div>", tiles=markupsafe.Markup("").join(tiles)))


def history_html(runs: list[tuple[str, dict]], currency: str | None = None) -> str:
    """The body of the history page: for each KPI of every report, its value in every run (a
    line over the as-of dates, a PNG inline) and the values as a table. Text HTML-escaped."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter
    series: dict[tuple[str, str], dict[str, float]] = {}
    kinds: dict[tuple[str, str], Kpi] = {}
    reports = list(dict.fromkeys(k.report for k in KPIS))
    for as_of, metrics in runs:
        for k, name, value in (row for r in reports for row in kpi_values(metrics, r)):
            series.setdefault((k.report, name), {})[as_of] = value
            kinds[(k.report, name)] = k
    if not series:
        return str(page.html("<p>No archived run holds a KPI yet.</p>"))
    parts = []
    for (report, name), values in series.items():
        k = kinds[(report, name)]
        s = pd.Series(values).sort_index()
        fig = Figure(figsize=(6, 2.2), dpi=80)   # no pyplot: nothing global in the runner
        ax = fig.subplots()
        ax.plot(pd.to_datetime(s.index), s.to_numpy(), marker="o")
        if k.kind == "percent":
            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_title(name, fontsize=10)
        ax.tick_params(labelsize=8)
        fig.autofmt_xdate()
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        img = base64.b64encode(buf.getvalue()).decode()
        cells = markupsafe.Markup("").join(page.html("<td>{d}<br>{v}</td>", d=d, v=show_value(k.kind, v, currency))
                                           for d, v in s.items())
        parts.append(page.html("<section><h2>{name}</h2><p class='from'>from {report}</p>"
                                  "<img alt='{name} over the archived runs' src='data:image/png;base64,{img}'>"
                                  "<table><tr>{cells}</tr></table></section>", name=name, report=report, img=img,
                                  cells=cells))
    return str(markupsafe.Markup("").join(parts))
