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
- ``table(frame, title)``: a pandas Styler whose cells, row and column labels, their names and
  the caption are HTML-escaped.

Example: ``md("**{tier}** answered {share:.0%}", tier="<b>L1</b>", share=0.5)`` gives
``**&lt;b&gt;L1&lt;/b&gt;** answered 50%``, which shows as **<b>L1</b>** answered 50%.
"""
from __future__ import annotations

import hashlib
import re
from typing import Any, Iterable

import markupsafe
import pandas as pd

__all__ = ["Md", "md", "join", "show", "html", "table", "escape_md", "CONTENT_SECURITY_POLICY"]

# what a report page needs and nothing more: its inline styles and its base64 figures; no script,
# no fetch, no form, no base URL (the reports, index.html and the skip pages carry it)
CONTENT_SECURITY_POLICY = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src data:; "
                           "base-uri 'none'; form-action 'none'")

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
    return [None if n is None else str(markupsafe.escape(n)) for n in index.names]


def table(frame: pd.DataFrame, title: str, precision: int = 3):
    """A table for a report: its title as caption, numbers to ``precision`` decimals with
    thousands separators, empty cells blank (nothing to measure), and every text (cells, row
    and column labels, their names, the caption) HTML-escaped."""
    shown = frame.copy(deep=False)
    shown.index = shown.index.set_names(_escaped_names(shown.index))
    shown.columns = shown.columns.set_names(_escaped_names(shown.columns))
    uuid = hashlib.sha1(title.encode()).hexdigest()[:8]  # stable ids: the same report gives the same HTML
    styler = (shown.style.set_uuid(uuid).set_caption(str(markupsafe.escape(title)))
              .format(precision=precision, na_rep="", thousands=",", escape="html")
              .format_index(escape="html", axis=0).format_index(escape="html", axis=1))
    return styler.set_table_styles([{"selector": "caption", "props": "caption-side: top; font-weight: bold; "
                                                                      "font-size: 1.05em; text-align: left;"}])
