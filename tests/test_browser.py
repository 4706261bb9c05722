"""index.html and a report, opened in headless Chromium: figures render, no console errors."""
from __future__ import annotations

import os
import shutil

import pytest


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.browser


@pytest.fixture
def report_dir(sample_runs):
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs Debian's chromium package")
        pytest.skip("chromium not installed (apt-get install chromium)")
    codes, out, _ = sample_runs
    assert codes == (0, 0)
    return out


def open_page(path):
    from playwright.sync_api import sync_playwright
    errors, shots = [], {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                           "--no-first-run", "--disable-component-update", "--disable-sync"])
        page = browser.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(path.as_uri(), wait_until="load")
        shots["images"] = page.eval_on_selector_all(
            "img", "els => els.map(e => [e.complete && e.naturalWidth > 0, e.naturalWidth, e.src.slice(0, 22)])")
        shots["text"] = page.inner_text("body")
        shots["links"] = page.eval_on_selector_all("a", "els => els.map(e => e.getAttribute('href'))")
        browser.close()
    return errors, shots


def test_index_renders_and_links_the_report(report_dir):
    errors, page = open_page(report_dir / "index.html")
    assert errors == []
    assert "00_data_quality.html" in page["links"] and "Data as of 2026-01-01" in page["text"]


def test_report_renders_figures_and_hides_code(report_dir):
    errors, page = open_page(report_dir / "00_data_quality.html")
    assert errors == []
    figures = [i for i in page["images"] if i[2] == "data:image/png;base64,"]
    assert len(figures) >= 3 and all(ok and width > 100 for ok, width, _ in figures)
    assert "load_dataset(" not in page["text"]          # code hidden
    assert "Rows read, used and set aside" in page["text"]
