"""Putting values on a page (DESIGN §10): the one way a report or index.html shows a value.

Every string from the data or the config (ids, segments, channels, vendors, tier names, topics,
parameters) is untrusted: it is shown as text, never as markup. The templates here are the
suite's own text; only the values put into them are escaped, by the escaping of the target:

- ``md(template, **values)``: Markdown (headlines, sentences, notes). Each value is formatted
  with its format spec, then its Markdown punctuation backslash-escaped (CommonMark: any ASCII
  punctuation may be) and & < > written as entities, line breaks as spaces, the ends trimmed, so
  no value can open a tag, a link, an emphasis, a heading or a list. The result is an ``Md``
  string: putting it into another template, or joining ``Md`` strings, does not escape it twice.
- ``show(template, **values)``: displays ``md(...)`` in the notebook.
- ``html(template, **values)``: HTML (index.html, skip pages), values HTML-escaped.
- ``table(frame, title)``: a ``Table`` (a pandas Styler) whose cells, row and column labels,
  their names and the caption are HTML-escaped; long ones sortable, searchable and saved as CSV
  by the suite's one script (``TABLE_SCRIPT``), which reads and writes only text.

Example: ``md("**{tier}** answered {share:.0%}", tier="<b>L1</b>", share=0.5)`` gives
``**&lt;b&gt;L1&lt;/b&gt;** answered 50%``, which shows as **<b>L1</b>** answered 50%.
"""
from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from typing import Any, Iterable

import markupsafe
import pandas as pd

__all__ = ["Md", "md", "join", "show", "html", "table", "Table", "TABLE_SCRIPT", "table_script_tag", "csv_safe", "escape_md", "label", "category", "LABELS", "CATEGORY_LABELS", "column_kind",
           "format_percent", "format_money", "format_count", "format_number", "format_p", "p_text", "format_time", "download_link", "CONTENT_SECURITY_POLICY"]

# the suite's one script: sorting, filtering and CSV download of long tables (``table``); a
# constant text shipped with the package, allowed by the policy below through its SHA-256 hash
TABLE_SCRIPT = (Path(__file__).parent / "templates" / "tables.js").read_text(encoding="utf-8")
TABLE_SCRIPT_HASH = base64.b64encode(hashlib.sha256(TABLE_SCRIPT.encode("utf-8")).digest()).decode("ascii")

# what a report page needs and nothing more: its inline styles, its base64 figures and the one
# script above (by hash: no other inline script, no script file, no handler attribute runs); no
# fetch, no form, no base URL (the reports, index.html and the skip pages carry it)
CONTENT_SECURITY_POLICY = (f"default-src 'none'; script-src 'sha256-{TABLE_SCRIPT_HASH}'; img-src data:; "
                           "style-src 'unsafe-inline'; font-src data:; base-uri 'none'; form-action 'none'")


def table_script_tag() -> markupsafe.Markup:
    """The ``<script>`` element of TABLE_SCRIPT, byte for byte what the policy's hash allows."""
    return markupsafe.Markup(f"<script>{TABLE_SCRIPT}</script>")

# the ASCII punctuation that means something in Markdown (CommonMark, GFM tables and
# strikethrough, footnotes, math's $); & < > become entities instead, after this escaping, so
# that the entities' own # and ; stay as they are
_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_{}\[\]()#+\-.!|~^$:=])")
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029]+")
_ENTITIES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def escape_md(value: Any) -> str:
    """``value`` as Markdown text that shows exactly as written (see the module docstring)."""
    text = _MARKDOWN_PUNCTUATION.sub(r"\\\1", _LINE_BREAKS.sub(" ", str(value)).strip())
    return text.translate(_ENTITIES)


class Md(markupsafe.Markup):
    """Markdown source that is safe to show: the suite's own markup with escaped values."""

    __slots__ = ()

    @classmethod
    def escape(cls, s: Any) -> "Md":  # markupsafe calls this for every value put into an Md
        if hasattr(s, "__html__"):
            return cls(s.__html__())
        return cls(escape_md(s))


def md(template: str, /, **values: Any) -> Md:
    """Markdown from the suite's ``template`` with ``values`` put in as text (``str.format`` syntax,
    format specs applied before escaping: ``{rate:.1%}``)."""
    return Md(template).format(**values)


def join(lines: Iterable[Any], sep: str = "\n") -> Md:
    """Lines joined into one Markdown block; a line that is not already ``Md`` is escaped."""
    return Md(sep).join(lines)


def show(template: str, /, **values: Any) -> None:
    """Display ``md(template, **values)`` in the notebook (a Markdown output)."""
    from IPython.display import Markdown, display
    display(Markdown(str(md(template, **values))))


def html(template: str, /, **values: Any) -> markupsafe.Markup:
    """HTML from the suite's ``template`` with ``values`` HTML-escaped."""
    return markupsafe.Markup(template).format(**values)


def _escaped_names(index: pd.Index) -> list:
    return [None if n is None else str(markupsafe.escape(label(n))) for n in index.names]


# ---- labels: the suite's own names as a reader says them ------------------------------------
# column names, index names and the suite's own category values (groups, horizons, stages); a
# value from the data (a tier, a segment, a vendor) is never relabelled, only escaped
LABELS = {
    "ci_low": "95% CI low", "ci_high": "95% CI high", "p_value": "p-value", "n": "n",
    "hazard_ratio": "Hazard ratio", "e_value": "E-value", "e_value_ci": "E-value of the CI",
    "sla_achieved": "SLA achieved", "csat": "CSAT", "csat_responses": "CSAT responses",
    "first_response_median_min": "First response, median (min)",
    "first_response_p90_min": "First response, 90th percentile (min)",
    "resolution_median_min": "Resolution, median (min)", "escalation_rate": "Escalation rate",
    "rmst_months": "RMST (months)", "median_lifetime_months": "Median lifetime (months)",
    "survival_at_horizon": "Still paying at the horizon", "won_back": "Won back",
    "dormancy_events": "Dormancy events", "revenue_at_risk_3m": "Revenue at risk, 3 months",
    "roi": "ROI (x cost)", "cpa": "CPA", "arpa": "ARPA", "ltv": "LTV",
    "baseline_3m": "Usual revenue, 3 months", "recent_3m": "Last 3 months' revenue", "drop": "Drop",
    "last_activity": "Last activity", "calls_per_hour": "Calls per hour", "agents_needed": "Agents needed", "asa_s": "Expected answer time (s)",
    "service_level": "Answered within target", "change_95_ci": "Change, 95% CI",
}
# the suite's own category values (groups, stages, pricing models, methods, model terms)
CATEGORY_LABELS = {
    "all": "All", "contacted": "Contacted early", "not_contacted": "Not contacted early",
    "registrations": "Registrations", "reached": "Reached by onboarding", "not_reached": "Not reached",
    "paid": "Paid (a first charge)", "paid_among_reached": "Paid, among the reached",
    "paid_among_not_reached": "Paid, among the not reached",
    "ever_contacted": "Ever contacted (biased split)", "never_contacted": "Never contacted (biased split)",
    "cold_call": "Cold call", "need_found": "Need found", "proposal": "Proposal", "meeting": "Meeting",
    "contract": "Contract", "account": "Account",
    "per_minute": "Per minute", "per_hour": "Per hour", "per_status_minute": "Per minute, priced by call status",
    "per_result_call": "Per call with a result", "per_lead": "Per confirmed lead", "per_client": "Per converted client",
    "revenue_share": "Share of revenue",
    "log_check": "First charge (log, standardised)", "engagement": "Early product usage", "exposed": "Support contact",
    "naive": "Naive: ever vs never contacted (biased)", "unadjusted": "Early contact, unadjusted",
    "adjusted": "Early contact, adjusted", "renewal": "Contact before each renewal, adjusted",
}
_ACRONYMS = {"ltv": "LTV", "sla": "SLA", "csat": "CSAT", "ci": "CI", "rmst": "RMST", "hr": "HR", "cpa": "CPA",
             "roi": "ROI", "arpa": "ARPA", "id": "ID", "km": "KM", "fin": "FIN", "cs": "CS", "mrr": "MRR",
             "p90": "90th percentile", "p50": "median", "pct": "%", "min": "(min)", "s": "(s)"}
_HORIZON = re.compile(r"^(ltv|revenue)_(\d+)([md])(_.*)?$")
_SNAKE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)+$")


def label(name: Any) -> str:
    """A column or category name of the suite as a reader says it: ``LABELS``, else the horizon
    form (``ltv_12m`` -> "LTV 12 months"), else snake_case words with the suite's acronyms
    (``first_charge_median`` -> "First charge median"), a lower-case phrase with its first
    letter capitalised ("rows read" -> "Rows read"). Anything else (a value from the data, a name
    with capitals) is returned as it is."""
    if not isinstance(name, str):
        return name
    if name in LABELS:
        return LABELS[name]
    end = re.search(r"_(low|high)$", name)
    if end and name[:end.start()]:
        return f"{label(name[:end.start()])}, 95% CI {end.group(1)}"
    m = _HORIZON.match(name)
    if m:
        k, unit = int(m.group(2)), "month" if m.group(3) == "m" else "day"
        rest = f" {label(m.group(4)[1:]).lower()}" if m.group(4) else ""
        return f"{_ACRONYMS.get(m.group(1), m.group(1).capitalize())} {k} {unit}{'s' if k != 1 else ''}{rest}"
    if re.fullmatch(r"[a-z]+", name):
        return _ACRONYMS.get(name, name.capitalize())
    if not _SNAKE.match(name):
        # a phrase of the suite's in lower case ("rows read") starts with a capital
        return name[0].upper() + name[1:] if " " in name and name[0].islower() else name
    words = [_ACRONYMS.get(w, w) for w in name.split("_")]
    text = " ".join(words)
    return text[0].upper() + text[1:]


def category(value: Any) -> Any:
    """A value shown as a category (a group, a horizon, a stage, a method): the suite's own
    categories in words (``CATEGORY_LABELS``, horizons such as ``ltv_12m``), any other value
    (from the data) as it is."""
    if isinstance(value, str) and value in CATEGORY_LABELS:
        return CATEGORY_LABELS[value]
    if isinstance(value, str) and _HORIZON.match(value):
        return label(value)
    return value


def _relabel(index: pd.Index) -> pd.Index:
    """Index values that are the suite's own categories relabelled (``category``)."""
    if isinstance(index, pd.MultiIndex):
        return index.set_levels([lv.map(category) for lv in index.levels], verify_integrity=False)
    return index.map(category)


# ---- numbers: one format per kind ---------------------------------------------------------------
_PERCENT = re.compile(r"(^|_)(rate|share|coverage|conversion|sla_achieved|csat|survival|reach_rate|occupancy|"
                      r"probability|one_touch|false_positive|service_level)")
_MONEY = re.compile(r"(^|_)(ltv|revenue|amount|cost|cpa|arpa|price|mrr|charge|check|payments|value|"
                    r"break_even_price|kept)($|_)")
_COUNT = re.compile(r"(^|_)(clients|events|tickets|eligible|n|count|leads|calls|requests|saved|won_back|"
                    r"contacted|reached|paid|registrations|agents|churned|responses|operators|converted|"
                    r"conversions|rows|read|used|set_aside|units|decisions|runs|at_risk|agents_needed)$")
_RATIO = re.compile(r"(^|_)(hazard_ratio|ratio|e_value|e_value_ci|roi|multiple)$")
_SUFFIX = re.compile(r"_(low|high|ci_low|ci_high|lo|hi)$")


def format_percent(v: float) -> str:
    """0.5892 -> '58.9%' (one decimal); a value that is not 0 but would show as 0.0% keeps two
    significant digits (0.00031 -> '0.031%'); empty for a missing value."""
    if pd.isna(v):
        return ""
    if v != 0 and abs(v) < 0.0005:
        return f"{v * 100:.2g}%"
    return f"{v:.1%}"


def format_money(v: float, currency: str | None = None) -> str:
    """12345.678 -> '12,346 RUB' (whole units from 100 up, else two decimals; the code when known)."""
    if pd.isna(v):
        return ""
    text = f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.2f}"
    return f"{text} {currency}" if currency else text


def format_count(v: float) -> str:
    """11106.0 -> '11,106'; a fraction keeps one decimal (an average count)."""
    if pd.isna(v):
        return ""
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.1f}"


def format_number(v: float) -> str:
    """A measure without a kind: thousands separators, two decimals below 100, none from 1,000 up,
    never scientific notation (1.928e+08 -> '192,800,000')."""
    if pd.isna(v):
        return ""
    a = abs(v)
    return f"{v:,.0f}" if a >= 1000 else f"{v:,.1f}" if a >= 100 else f"{v:,.2f}"


def format_p(v) -> str:
    """A p-value for a reader: three significant digits, '< 0.001' below that (the exact value,
    with three significant digits, stays in metrics.json); text is kept as it is."""
    if isinstance(v, str):
        return v
    if pd.isna(v):
        return ""
    return "< 0.001" if v < 0.001 else f"{v:.3g}"


def p_text(v) -> str:
    """'p < 0.001' or 'p = 0.034' for a sentence (``format_p``)."""
    shown = format_p(v)
    return f"p {shown}" if shown.startswith("<") else f"p = {shown}"


def format_time(v) -> str:
    """A timestamp as 'YYYY-MM-DD HH:MM' (UTC, no '+00:00'); a midnight as the date alone."""
    if pd.isna(v):
        return ""
    t = pd.Timestamp(v)
    t = t.tz_convert("UTC") if t.tzinfo is not None else t
    return t.strftime("%Y-%m-%d") if (t.hour, t.minute, t.second) == (0, 0, 0) else t.strftime("%Y-%m-%d %H:%M")


def column_kind(name: Any, values: pd.Series, before: str | None = None) -> str:
    """How a column is shown: 'percent', 'money', 'count', 'ratio', 'p', 'time', 'text' or
    'number', from its dtype and its name (an interval end such as ``rate_low`` or ``ci_high``
    takes the kind of its estimate: the named column or ``before``, the column to its left). A
    count name wins over a rate word inside it (``csat_responses`` is a count). A 'percent'
    column with values above 1 is a count when its name says so, else a number (already in
    points)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return "time"
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return "text"
    key = str(name).lower()
    m = _SUFFIX.search(key)
    if m and key not in ("e_value_ci",):
        base = key[:m.start()]
        key = base if base and base != "ci" else (before or "")
    if key == "p_value":
        return "p"
    if _RATIO.search(key):
        return "ratio"
    if _COUNT.search(key) and pd.api.types.is_integer_dtype(values):   # csat_responses: a count, not CSAT
        return "count"
    if _PERCENT.search(key):
        finite = values.dropna()
        if not len(finite) or finite.abs().max() <= 1.0 + 1e-9:
            return "percent"
        return "count" if _COUNT.search(key) else "number"
    if _COUNT.search(key) or pd.api.types.is_integer_dtype(values):
        return "count"
    if _MONEY.search(key):
        return "money"
    return "number"


def _formatter(kind: str, currency: str | None):
    """The cell formatter of a kind (None for text), its output HTML-escaped (pandas escapes a text
    value before a formatter sees it, so text is passed through as it comes)."""
    f = {"percent": format_percent, "money": lambda v: format_money(v, currency), "count": format_count,
         "ratio": lambda v: "" if pd.isna(v) else f"{v:,.2f}", "p": format_p, "time": format_time,
         "number": format_number}.get(kind)
    if f is None:
        return None
    return lambda v: v if isinstance(v, str) else str(markupsafe.escape(f(v)))


INTERACTIVE_ROWS = 10   # from this many rows a table can be sorted, filtered and saved as CSV
COLLAPSED_ROWS = 25     # above this many rows it is closed behind a summary line


def table(frame: pd.DataFrame, title: str, currency: str | None = None, kinds: dict | None = None,
          collapsed: bool | None = None, interactive: bool | None = None) -> "Table":
    """A table for a report (the one way a report shows a table):

    - its title as caption; columns, index names and the suite's own categories in words
      (``label``); a plain 0, 1, 2 row index is not shown;
    - each column formatted by its kind (``column_kind``, or ``kinds[column]``): percent with one
      decimal, money with thousands separators and the reporting ``currency`` code, whole counts,
      ratios with two decimals, p-values with three significant digits, times without '+00:00',
      never scientific notation; empty cells blank (nothing to measure);
    - every text (cells, labels, their names, the caption) HTML-escaped (DESIGN §10);
    - ``interactive`` (default: INTERACTIVE_ROWS rows or more): a filter box, a CSV download of
      the rows shown and column headings that sort (TABLE_SCRIPT); its row labels are repeated on
      every row instead of spanning rows, so that a row sorts and filters whole;
    - ``collapsed`` (default: more than COLLAPSED_ROWS rows) puts it behind a summary line that
      opens it.
    """
    shown = frame.copy(deep=False)
    kinds = dict(kinds or {})
    multi = isinstance(frame.columns, pd.MultiIndex)

    def name_of(col):      # a column's name for its kind: levels joined ("revenue_90d_count")
        return "_".join(map(str, col)) if multi else col

    def label_of(col):
        return tuple(label(x) for x in col) if multi else label(col)

    before, fmt, text = None, {}, []
    for col in shown.columns:
        kind = kinds.get(col) or column_kind(name_of(col), shown[col], before)
        if kind == "text":
            text.append(label_of(col))
        elif not str(name_of(col)).lower().endswith(("_low", "_high")):
            before = str(name_of(col)).lower()
        f = _formatter(kind, currency)
        if f is not None:
            fmt[label_of(col)] = f
    plain_index = isinstance(shown.index, pd.RangeIndex) and shown.index.name is None
    shown.index = _relabel(shown.index).set_names(_escaped_names(shown.index))
    shown.columns = (pd.MultiIndex.from_tuples([label_of(c) for c in shown.columns]) if multi
                     else pd.Index([label(c) for c in shown.columns]))
    shown.columns = shown.columns.set_names(_escaped_names(frame.columns))
    uuid = hashlib.sha1(title.encode()).hexdigest()[:8]  # stable ids: the same report gives the same HTML
    styler = (shown.style.set_uuid(uuid).set_caption(str(markupsafe.escape(title)))
              .format(precision=2, na_rep="", thousands=",", escape="html")
              .format(fmt, na_rep="", escape="html")
              .format_index(escape="html", axis=0).format_index(escape="html", axis=1))
    if plain_index:
        styler = styler.hide(axis="index")
    if text and shown.index.is_unique and shown.columns.is_unique:   # pandas styles only unique labels
        styler = styler.set_properties(subset=text, **{"text-align": "left"})
    styler = styler.set_table_styles([{"selector": "caption", "props": "caption-side: top; font-weight: bold; "
                                                                      "font-size: 1.05em; text-align: left;"}])
    if collapsed is None:
        collapsed = len(frame) > COLLAPSED_ROWS
    if interactive is None:
        interactive = len(frame) >= INTERACTIVE_ROWS
    return Table(styler, title, len(frame), collapsed, interactive)


_FORMULA_START = re.compile(r"^[=+\-@\t\r]")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def csv_safe(value: Any) -> Any:
    """A text a spreadsheet would run as a formula (it starts with = + - @, a tab or a carriage
    return and is not a number) with a leading apostrophe, which shows it as text (OWASP: CSV
    injection); anything else unchanged."""
    if isinstance(value, str) and _FORMULA_START.match(value) and not _NUMBER.match(value):
        return "'" + value
    return value


def download_link(frame: pd.DataFrame, filename: str, text: str) -> markupsafe.Markup:
    """A link that saves ``frame`` as a CSV file (UTF-8, the index as the first column) without a
    server or a script: the file is inside the link (a base64 ``data:`` address, which the
    pages' Content-Security-Policy does not restrict for a download). The file name and the text
    are escaped; the data cannot reach the markup (base64); a text value that a spreadsheet would
    run as a formula is written as text (``csv_safe``). Display it with IPython's ``HTML``."""
    safe = frame.copy()
    for col in safe.columns:
        if safe[col].dtype == object or pd.api.types.is_string_dtype(safe[col]):
            safe[col] = safe[col].map(csv_safe)
    safe.index = safe.index.map(csv_safe)
    csv = safe.to_csv(index=True, date_format="%Y-%m-%d %H:%M:%S").encode("utf-8")
    return html("<p><a download='{name}' href='data:text/csv;base64,{data}'>{text}</a> ({rows:,} rows, CSV)</p>",
                name=filename, data=base64.b64encode(csv).decode("ascii"), text=text, rows=len(frame))


class Table:
    """A report's table: the Styler of ``table``, shown as HTML; ``interactive`` marks it for
    TABLE_SCRIPT (class ``sr-table``, row labels on every row); ``collapsed`` puts it behind a
    one-line summary that opens it (HTML ``details``, no script)."""

    def __init__(self, styler, title: str, rows: int, collapsed: bool = False, interactive: bool = False):
        self.styler, self.title, self.rows = styler, title, rows
        self.collapsed, self.interactive = collapsed, interactive

    def to_html(self) -> str:
        if self.interactive:
            body = self.styler.to_html(table_attributes='class="sr-table"', sparse_index=False)
        else:
            body = self.styler.to_html()
        if not self.collapsed:
            # a long open table scrolls in its own box, its filter and download above it
            return f"<div class='sr-scroll'>{body}</div>" if self.interactive and self.rows > COLLAPSED_ROWS else body
        return str(html("<details class='long-table'><summary>{title}: {rows:,} rows (click to open)</summary>"
                        "{table}</details>", title=self.title, rows=self.rows, table=markupsafe.Markup(body)))

    def _repr_html_(self) -> str:
        return self.to_html()
