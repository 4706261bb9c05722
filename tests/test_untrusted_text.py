"""Untrusted text (DESIGN §10): values from the data or the config are shown as text, never as
markup, and every page carries a Content-Security-Policy that allows only what it needs."""
from __future__ import annotations

import json
import os
import re
import shutil

import pandas as pd
import pytest

from hypothesis import given, settings, strategies as st
from nbconvert.filters.markdown_mistune import markdown2html_mistune

from analysis.present import page
from analysis.run.cli import main
from analysis.run.reports import REPORTS
from conftest import shown
from hostile import hostile_copy, payload

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def test_md_escapes_markup_and_markdown_in_values_but_not_the_template():
    text = page.md("**{tier}** answered {share:.0%} of {n:,}", tier='<b>L1</b> *x* [a](javascript:b)', share=0.5, n=1200)
    # & < > " ' as entities; Markdown punctuation backslash-escaped; the template's ** untouched
    assert text == r"**&lt;b&gt;L1&lt;/b&gt; \*x\* \[a\]\(javascript\:b\)** answered 50% of 1,200"
    assert page.md("{v}", v="a\nb\r\n# c") == r"a b \# c"          # no value starts a new block
    assert page.md("{v}", v="{x}") == r"\{x\}"                     # braces in a value are text too


@settings(max_examples=400, deadline=None)
@given(value=st.text(st.characters(blacklist_categories=("Cs", "Cc"), max_codepoint=0x2FFF), max_size=40)
       | st.sampled_from([payload("x"), "&amp; &#34; &lt;", "# title", "1. item", "- item", "> quote", "| a | b |",
                          "[^1]", "~~x~~", "$x$ $$y$$", "`code`", "    indented", "\\*", "a\\", "<!-- c -->",
                          "https://example.com", "<https://x.io>", "***", "===", "---"]))
def test_any_value_shows_exactly_as_written_and_adds_no_markup(value):
    # rendered by nbconvert's own Markdown renderer: the value reads as written (line breaks and
    # runs of spaces read as one space, as in any paragraph), inside the template's markup only
    expected = " ".join(value.split())
    for template, before, after, markup in (("Value: {v}.", "Value: ", ".", {"p"}),
                                            ("**{v}** of {v}", "", " of ", {"p", "strong"})):
        if not expected and "**" in template:
            continue   # "****" is a rule: the suite's templates do not embolden what may be empty
        text = page.md(template, v=value)
        seen = " ".join(shown(text).split())
        assert seen == " ".join(f"{before}{expected}{after}{expected if '**' in template else ''}".split())
        tags = set(re.findall(r"</?([a-zA-Z0-9]+)", markdown2html_mistune(str(text))))
        assert tags <= markup, text


def test_md_does_not_escape_markdown_twice():
    line = page.md("- {name}", name="<i>")
    assert page.md("{a}\n{b}", a=line, b="_c_") == "- &lt;i&gt;\n\\_c\\_"
    assert page.join([line, "<x>"]) == "- &lt;i&gt;\n&lt;x&gt;"


def test_html_escapes_values():
    assert page.html("<td>{v}</td>", v="<script>'") == "<td>&lt;script&gt;&#39;</td>"


def test_table_escapes_cells_labels_their_names_and_the_caption():
    frame = pd.DataFrame({"<b>col</b>": ["<script>x</script>"], "n": [1234.5]},
                         index=pd.Index(["<img src=x onerror=y>"], name="<i>tier</i>"))
    frame.columns.name = "<u>what</u>"
    html = page.table(frame, "<em>title</em>").to_html()
    for raw in ("<script>", "<img", "<b>col", "<i>tier", "<u>what", "<em>title"):
        assert raw not in html
    for escaped in ("&lt;script&gt;x&lt;/script&gt;", "&lt;img src=x onerror=y&gt;", "&lt;b&gt;col&lt;/b&gt;",
                    "&lt;i&gt;tier&lt;/i&gt;", "&lt;u&gt;what&lt;/u&gt;", "&lt;em&gt;title&lt;/em&gt;", "1,234.5"):
        assert escaped in html


@pytest.fixture(scope="module")
def hostile_run(small_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("hostile")
    data, config = hostile_copy(small_dir, base / "data")
    out = base / "reports"
    code = main(["run", "--data", str(data), "--config", str(config), "--out", str(out)])
    return code, out


def test_every_report_runs_on_hostile_text(hostile_run):
    code, out = hostile_run
    assert code == 0
    index = (out / "index.html").read_text()
    assert index.count(">ok<") == len(REPORTS)


def test_no_markdown_output_carries_markup_from_the_data(hostile_run):
    _, out = hostile_run
    for report in REPORTS:
        nb = json.loads((out / f"{report.name}.ipynb").read_text())
        for cell in nb["cells"]:
            for output in cell.get("outputs", []):
                markdown = "".join(output.get("data", {}).get("text/markdown", ""))
                html = "".join(output.get("data", {}).get("text/html", ""))
                for text in (markdown, html):
                    assert "<script" not in text and "<img" not in text, report.name
                assert "](javascript" not in markdown, report.name   # a link in Markdown; plain text in HTML


def test_every_page_carries_the_content_security_policy(hostile_run):
    _, out = hostile_run
    for html_file in sorted(out.glob("*.html")):
        text = html_file.read_text()
        assert "Content-Security-Policy" in text and "default-src &#39;none&#39;" in text or \
            "default-src 'none'" in text, html_file.name
        # the one script is the suite's own table script (allowed by its hash), on the reports only
        runner_page = html_file.name in ("index.html", "history.html")
        assert text.count("<script") == (0 if runner_page else 1), html_file.name
        assert runner_page or str(page.table_script_tag()) in text, html_file.name
        assert f"script-src &#39;sha256-{page.TABLE_SCRIPT_HASH}&#39;" in text or \
            f"script-src 'sha256-{page.TABLE_SCRIPT_HASH}'" in text, html_file.name


def _open(pages, bypass_csp: bool):
    """Open each page in headless Chromium; per page: dialogs raised, DOM findings, body text."""
    from playwright.sync_api import sync_playwright
    seen = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        context = browser.new_context(bypass_csp=bypass_csp)
        for path in pages:
            page = context.new_page()
            dialogs, errors = [], []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(path.as_uri(), wait_until="load")
            dom = page.evaluate("""() => ({
                scripts: document.querySelectorAll('script').length,
                handlers: [...document.querySelectorAll('*')].filter(
                    e => [...e.attributes].some(a => a.name.startsWith('on'))).length,
                script_links: document.querySelectorAll('a[href^="javascript:"]').length,
                foreign_images: [...document.images].filter(i => !i.src.startsWith('data:')).length})""")
            seen[path.name] = {"dialogs": dialogs, "errors": errors, "dom": dom, "text": page.inner_text("body")}
            page.close()
        browser.close()
    return seen


def _need_chromium():
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs Debian's chromium package")
        pytest.skip("chromium not installed (apt-get install chromium)")


# pages and the hostile columns whose values they show as text
SHOWN = {"01_support_tiers.html": ["tier L1", "tier name L1", "agents.agent_id"],
         "02_cohort_ltv.html": ["clients.segment"],
         "04_winback_retention.html": ["outreach.channel", "clients.client_id"],
         "06_contact_centre_economics.html": ["calls.vendor"],
         "07_sales_conveyor.html": ["calls.operator_id"],
         "index.html": ["calls.vendor"],
         "history.html": ["calls.vendor"]}


@pytest.mark.browser
def test_in_chromium_no_value_runs_script_and_every_value_shows_literally(hostile_run):
    _need_chromium()
    _, out = hostile_run
    # with the CSP switched off, escaping alone must hold
    seen = _open(sorted(out.glob("*.html")), bypass_csp=True)
    assert len(seen) == len(REPORTS) + 2          # the reports, index.html and history.html
    for name, seen_page in seen.items():
        assert seen_page['dialogs'] == [], name
        scripts = 0 if name in ("index.html", "history.html") else 1      # the suite's table script
        assert seen_page['dom'] == {"scripts": scripts, "handlers": 0, "script_links": 0, "foreign_images": 0}, name
        assert seen_page['errors'] == [], name
    for name, tags in SHOWN.items():
        for tag in tags:
            assert payload(tag) in seen[name]["text"], (name, tag)


@pytest.mark.browser
def test_in_chromium_the_csp_stops_markup_that_escaping_missed(hostile_run, tmp_path):
    _need_chromium()
    _, out = hostile_run
    pages = []
    for name in ("01_support_tiers.html", "index.html"):   # a report (nbconvert template) and a runner page
        text = (out / name).read_text()
        injected = '<script>alert("inline")</script><img src=x onerror=alert("handler")><a href="javascript:alert(1)">x</a>'
        body = text.index("<body") + text[text.index("<body"):].index(">") + 1
        (tmp_path / name).write_text(text[:body] + injected + text[body:])
        pages.append(tmp_path / name)
    seen = _open(pages, bypass_csp=False)
    for name, seen_page in seen.items():
        own = 0 if name == "index.html" else 1                                # the suite's table script
        assert seen_page['dom']["scripts"] == 1 + own and seen_page['dom']["handlers"] == 1   # the markup is there ...
        assert seen_page['dialogs'] == [], name                                    # ... and none of it ran
        assert any("Content Security Policy" in e for e in seen_page['errors']), name
