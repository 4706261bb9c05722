"""The presentation layer (analysis.present.page: labels and formats), the KPI tiles with the change
since the previous run and the history page (analysis.present.kpi), and every page of a run checked in
headless Chromium the way a manager reads it (analysis.tools.pages)."""
from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from analysis.present import kpi, page


def test_labels_say_the_suites_names_in_words_and_leave_data_values_alone():
    assert page.label("ltv_12m") == "LTV 12 months"
    assert page.label("revenue_90d") == "Revenue 90 days"
    assert page.label("sla_achieved_low") == "SLA achieved, 95% CI low"
    assert page.label("first_response_p90_min") == "First response, 90th percentile (min)"
    assert page.label("clients") == "Clients"
    # values from the data keep their spelling (tiers, segments with capitals or spaces)
    assert page.label("L1") == "L1" and page.label("Big accounts") == "Big accounts"
    assert page.category("not_contacted") == "Not contacted early"
    assert page.category("cold_call") == "Cold call"
    assert page.category("smb") == "smb"          # a segment from the data: not a suite category


def test_formats_per_kind():
    assert page.format_percent(0.5892) == "58.9%"
    # not zero but under 0.05%: two significant digits instead of a misleading 0.0%
    assert page.format_percent(0.00031) == "0.031%" and page.format_percent(0.0) == "0.0%"
    assert page.format_money(14466.123, "RUB") == "14,466 RUB" and page.format_money(2.5) == "2.50"
    assert page.format_count(11106.0) == "11,106"
    assert page.format_number(1.928e8) == "192,800,000"       # never 1.928e+08
    assert page.format_p(5.7e-24) == "< 0.001" and page.format_p(0.03456) == "0.0346"
    assert page.p_text(5.7e-24) == "p < 0.001" and page.p_text(0.2) == "p = 0.2"
    assert page.format_time(pd.Timestamp("2025-03-01", tz="UTC")) == "2025-03-01"
    assert page.format_time(pd.Timestamp("2025-03-01 10:30:59", tz="UTC")) == "2025-03-01 10:30"
    for f in (page.format_percent, page.format_money, page.format_count, page.format_number,
              page.format_p, page.format_time):
        assert f(np.nan) == ""


def test_table_formats_each_column_by_its_kind_and_hides_a_plain_index():
    frame = pd.DataFrame({"group": ["contacted", "not_contacted"], "clients": [1222.0, 5.0],
                          "rate": [0.592, 0.1], "rate_low": [0.5, 0.05], "ltv_12m": [14466.123, 2.5],
                          "ci_low": [14000.0, 1.0], "p_value": [5.7e-24, 0.5]})
    html = page.table(frame, "t", currency="RUB").to_html()
    for shown in ("1,222", "59.2%", "50.0%", "14,466 RUB", "14,000 RUB", "2.50 RUB", "&lt; 0.001",
                  "LTV 12 months", "Rate, 95% CI low", "95% CI low"):
        assert shown in html, shown
    for raw in ("ltv_12m", "1222.000", "0.592", "e-24", ">0<"):
        assert raw not in html, raw
    # a count whose name holds a rate word: CSAT responses are a count, as integers or as floats
    assert page.column_kind("csat_responses", pd.Series([678, 6587])) == "count"
    assert page.column_kind("csat_responses", pd.Series([64.0, 149.0])) == "count"
    assert page.column_kind("csat_responses", pd.Series([0, 1])) == "count"
    assert page.column_kind("paid_rate_reached", pd.Series([0.16, 0.07])) == "percent"
    assert page.column_kind("csat", pd.Series([0.86, 0.9])) == "percent"
    # a frame whose rows are the suite's groups: the categories in words
    by_group = page.table(frame.set_index("group"), "t").to_html()
    assert "Contacted early" in by_group and "Not contacted early" in by_group


def test_a_long_table_is_collapsed_behind_its_summary():
    long = pd.DataFrame({"clients": range(30)})
    shown = page.table(long, "Per cohort")
    assert shown.collapsed and shown.interactive
    html = shown.to_html()
    assert html.startswith("<details") and "Per cohort: 30 rows" in html
    short = page.table(long.head(5), "short")
    assert not short.collapsed and not short.interactive and "sr-table" not in short.to_html()
    assert 'class="sr-table"' in html


RUN_1 = {"as_of": "2025-12-01", "sla": {"by_tier": {"L1": {"sla_achieved": 0.55, "first_response_median_min": 30.0}}},
         "churn": {"first_month": {"all": {"rate": 0.20}}}, "ltv": {"by_group": {"all": {"ltv_12m": 1000.0}}}}
RUN_2 = {"as_of": "2026-01-01", "sla": {"by_tier": {"L1": {"sla_achieved": 0.571, "first_response_median_min": 24.0},
                                                    "L2": {"sla_achieved": 0.9}}},
         "churn": {"first_month": {"all": {"rate": 0.21}}}, "ltv": {"by_group": {"all": {"ltv_12m": 1000.0}}}}


def test_kpi_values_expand_a_wildcard_per_tier():
    rows = [(k.path, name, v) for k, name, v in kpi.kpi_values(RUN_2, "01_support_tiers")]
    assert ("sla.by_tier.*.sla_achieved", "First-response SLA achieved, L1", 0.571) in rows
    assert ("sla.by_tier.*.sla_achieved", "First-response SLA achieved, L2", 0.9) in rows
    assert ("sla.by_tier.*.first_response_median_min", "First response median, L1", 24.0) in rows


def test_kpi_tiles_follow_the_ladder_and_name_the_target():
    run = {"sla": {"tiers": ["L2", "L10", "L1"],   # the config's ladder, not alphabetical
                   "by_tier": {"L1": {"sla_achieved": 0.6, "first_response_target_min": 30},
                               "L10": {"sla_achieved": 0.7, "first_response_target_min": None},
                               "L2": {"sla_achieved": 0.9, "first_response_target_min": 120.0},
                               "X": {"sla_achieved": 0.5}}}}   # not in the ladder: after it
    names = [name for k, name, _ in kpi.kpi_values(run, "01_support_tiers") if k.path.endswith("sla_achieved")]
    assert names == ["First-response SLA achieved, L2 (target 120 min)", "First-response SLA achieved, L10",
                     "First-response SLA achieved, L1 (target 30 min)", "First-response SLA achieved, X"]


def test_change_is_in_points_for_rates_relative_otherwise_and_coloured_by_direction():
    sla, churn, ltv, hr = (next(k for k in kpi.KPIS if k.path == p) for p in (
        "sla.by_tier.*.sla_achieved", "churn.first_month.all.rate", "ltv.by_group.all.ltv_12m",
        "churn.support_effect.methods.renewal.hazard_ratio"))
    # 0.571 - 0.55 = +2.1 pp, SLA up is good; churn 0.20 -> 0.21 = +1.0 pp, churn up is bad
    assert kpi.change(sla, 0.571, 0.55) == ("+2.1 pp", "good")
    assert kpi.change(churn, 0.21, 0.20) == ("+1.0 pp", "bad")
    # LTV 1000 -> 1050: +5.0%; no change shown as such; a hazard ratio has no good direction
    assert kpi.change(ltv, 1050.0, 1000.0) == ("+5.0%", "good")
    assert kpi.change(ltv, 1000.0, 1000.0) == ("no change", "neutral")
    assert kpi.change(hr, 0.70, 0.75) == ("-0.05", "neutral")
    assert kpi.change(ltv, 10.0, None) == ("", "neutral") and kpi.change(ltv, 10.0, 0.0) == ("", "neutral")


def test_previous_run_is_the_newest_archived_before_this_as_of(tmp_path):
    for as_of, body in (("2025-12-01", RUN_1), ("2026-01-01", RUN_2)):
        (tmp_path / as_of).mkdir()
        (tmp_path / as_of / "metrics.json").write_text(json.dumps(body))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "metrics.json").write_text("{not json")
    runs = kpi.archived_runs(tmp_path)
    assert [r[0] for r in runs] == ["2025-12-01", "2026-01-01"]
    assert kpi.previous_run(runs, "2026-01-01")[0] == "2025-12-01"
    assert kpi.previous_run(runs, "2025-12-01") is None
    assert kpi.previous_run(runs, "2026-02-01")[0] == "2026-01-01"


def test_tiles_name_the_previous_run_and_escape_data_values():
    hostile = json.loads(json.dumps(RUN_2).replace('"L2"', '"<img src=x onerror=alert(1)>"'))
    html = kpi.tiles_html(hostile, ("2025-12-01", RUN_1), "01_support_tiers")
    assert "+2.1 pp since 2025-12-01" in html and "delta good" in html
    assert "-20.0% since 2025-12-01" in html                      # first response 30 -> 24 min, down is good
    assert "not in the run of 2025-12-01" in html                 # L2 is new
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "first run" in kpi.tiles_html(RUN_2, None, "01_support_tiers")
    assert kpi.tiles_html({"as_of": "2026-01-01"}, None, "01_support_tiers") == ""


def test_history_draws_each_kpi_over_the_runs():
    html = kpi.history_html([("2025-12-01", RUN_1), ("2026-01-01", RUN_2)], currency="RUB")
    # SLA L1, first response L1, first-month churn, LTV 12 months; SLA L2 from the second run
    assert html.count("<section>") == 5
    assert "data:image/png;base64," in html and "1,000 RUB" in html and "2026-01-01" in html


@pytest.mark.browser
def test_every_page_of_a_run_reads_in_a_browser(sample_runs, tmp_path):
    from analysis.tools import pages
    if not os.path.exists(pages.CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs Debian's chromium package")
        pytest.skip("chromium not installed (apt-get install chromium)")
    codes, out, archive = sample_runs   # as of 2025-12-01 with -p contact_window_days=14, then the defaults
    assert codes == (0, 0)
    found = pages.check_run(out, tmp_path / "shots")
    assert set(found) == {p.name for p in out.glob("*.html")} and len(found) == 10
    assert all(problems == [] for problems in found.values()), {k: v for k, v in found.items() if v}
    assert all((tmp_path / "shots" / f"{p.stem}.png").stat().st_size > 10_000 for p in out.glob("*.html"))
    index = (out / "index.html").read_text()
    assert "since 2025-12-01" in index and "history.html" in index
    report = (out / "03_churn_survival.html").read_text()
    assert "<title>Churn and survival</title>" in report and "All reports" in report
    assert "Recorded for metrics.json" not in report and 'href="#First-month-churn"' in report
    # the first run's page says which parameter differed from the default
    first = (archive / "2025-12-01" / "03_churn_survival.html").read_text()
    assert "1 parameter set by the config or -p" in first and "set for this run (notebook default 30)" in first


def test_download_link_carries_the_whole_table_as_csv_and_escapes_its_text():
    import base64
    import re
    frame = pd.DataFrame({"revenue_at_risk_3m": [1200.5, 30.0]}, index=pd.Index(["<b>c1</b>", "c2"], name="client_id"))
    link = str(page.download_link(frame, "early'warning.csv", "<i>Download</i>"))
    data = re.search(r"base64,([A-Za-z0-9+/=]+)'", link).group(1)
    assert base64.b64decode(data).decode() == "client_id,revenue_at_risk_3m\n<b>c1</b>,1200.5\nc2,30.0\n"
    assert "<i>" not in link and "&lt;i&gt;Download&lt;/i&gt;" in link and "early&#39;warning.csv" in link
    assert "(2 rows, CSV)" in link
    # a text a spreadsheet would run is written as text; numbers and negative numbers are not touched
    risky = pd.DataFrame({"note": ["=HYPERLINK(\"http://x\")", "-5", "@SUM(A1)", "ok"]},
                         index=pd.Index(["+cmd", "c2", "c3", "c4"], name="client_id"))
    data = re.search(r"base64,([A-Za-z0-9+/=]+)'", str(page.download_link(risky, "r.csv", "r"))).group(1)
    assert base64.b64decode(data).decode() == ("client_id,note\n'+cmd,\"'=HYPERLINK(\"\"http://x\"\")\"\n"
                                               "c2,-5\nc3,'@SUM(A1)\nc4,ok\n")


@pytest.mark.browser
def test_long_tables_sort_filter_and_save_as_csv_in_chromium(tmp_path):
    """The suite's table script under the reports' policy: the only script that runs; a heading
    sorts numbers as numbers (a second click reverses, empty cells last), the filter hides rows,
    the CSV holds the rows shown with spreadsheet formulas written as text; data values stay text."""
    from playwright.sync_api import sync_playwright
    from analysis.tools import pages
    if not os.path.exists(pages.CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs Debian's chromium package")
        pytest.skip("chromium not installed (apt-get install chromium)")
    frame = pd.DataFrame({"client_id": [f"c{i}" for i in range(12)],
                          "revenue_at_risk_3m": [900.0, 12000.0, 50.5, None, 3000.0, 7.0, 800.0, 1200.0, 10.0, 2.0,
                                                 99999.0, 450.0],
                          "segment": ["smb"] * 10 + ["<img src=x onerror=alert(1)>", "=HYPERLINK(1)"]})
    shown = page.table(frame.set_index("client_id"), "Early <b>warning</b>", currency="RUB")
    assert shown.interactive and not shown.collapsed
    page_html = (f"<!doctype html><html><head><meta http-equiv='Content-Security-Policy' "
                 f"content=\"{page.CONTENT_SECURITY_POLICY}\"></head><body>{page.table_script_tag()}"
                 f"<script>alert('not allowed')</script>{shown.to_html()}</body></html>")
    path = tmp_path / "t.html"
    path.write_text(page_html, encoding="utf-8")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=pages.CHROMIUM, headless=True, args=["--no-sandbox"])
        tab = browser.new_context(accept_downloads=True).new_page()
        dialogs, errors = [], []
        tab.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        tab.on("pageerror", lambda e: errors.append(str(e)))
        tab.goto(path.as_uri(), wait_until="load")
        def column(i):
            return tab.evaluate(f"() => [...document.querySelector('table.sr-table').tBodies[0].rows]"
                                 f".filter(r => r.style.display !== 'none').map(r => r.cells[{i}].textContent.trim())")
        assert tab.locator(".sr-count").inner_text() == "12 rows; click a column heading to sort"
        heading = tab.locator("th.sr-sortable", has_text="Revenue at risk, 3 months")
        heading.click()
        assert column(1)[:4] == ["2.00 RUB", "7.00 RUB", "10.00 RUB", "50.50 RUB"] and column(1)[-1] == ""
        heading.click()
        assert column(1)[:3] == ["99,999 RUB", "12,000 RUB", "3,000 RUB"] and column(1)[-1] == ""
        tab.locator(".sr-tools input").fill("onerror")
        assert column(0) == ["c10"] and tab.locator(".sr-count").inner_text() == "1 of 12 rows match"
        tab.locator(".sr-tools input").fill("c1")       # c1, c10, c11
        with tab.expect_download() as download:
            tab.locator(".sr-tools button").click()
        assert download.value.suggested_filename == "Early_b_warning_b.csv"
        csv = open(download.value.path(), encoding="utf-8-sig", newline="").read()
        # rows in the order shown (revenue at risk, highest first), only those the filter kept
        assert csv == ("Client ID,\"Revenue at risk, 3 months\",Segment\r\n"
                       "c10,\"99,999 RUB\",<img src=x onerror=alert(1)>\r\n"
                       "c1,\"12,000 RUB\",smb\r\nc11,450 RUB,'=HYPERLINK(1)\r\n"), csv
        assert dialogs == [] and errors == []
        assert tab.evaluate("() => document.images.length") == 0       # the data's <img> stayed text
        browser.close()

