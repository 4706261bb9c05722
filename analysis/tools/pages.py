"""Reports as a reader sees them: open each page of a run in headless Chromium at a laptop's
width, check what a manager would trip over, and keep a full-page screenshot for people to look
at (``make screenshots``; the browser tests run the same checks).

Checks per page (``check_page``):
- the page's title is set (not nbconvert's "Notebook");
- nothing scrolls sideways at ``WIDTH`` px (the document is no wider than the window);
- no column header of a table is a raw identifier (snake_case such as ``ltv_12m`` or
  ``not_contacted``): the presentation layer (``analysis.present.page``) labels them;
- no console error and no uncaught page error.

    .venv/bin/python -m analysis.tools.pages reports/latest [--out reports/screenshots]
"""
from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

__all__ = ["WIDTH", "RAW_IDENTIFIER", "check_page", "check_run", "main"]

WIDTH = 1400
RAW_IDENTIFIER = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)+$")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
         "--disable-component-update", "--disable-sync"]

_HEADERS = """() => Array.from(document.querySelectorAll('table thead th'))
    .map(th => th.innerText.trim()).filter(t => t.length > 0)"""
_WIDTHS = "() => [document.documentElement.scrollWidth, window.innerWidth]"


def check_page(page, path: Path, screenshot: Path | None = None) -> list[str]:
    """The problems of one page (an open Playwright page is navigated to ``path``); with
    ``screenshot``, a full-page PNG is written there."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"console error: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.goto(path.resolve().as_uri(), wait_until="load")
    problems = list(errors)
    title = page.title().strip()
    if not title or title == "Notebook":
        problems.append(f"title is {title!r}")
    scroll, window = page.evaluate(_WIDTHS)
    if scroll > window:
        problems.append(f"scrolls sideways: {scroll} px wide in a {window} px window")
    raw = sorted({h for h in page.evaluate(_HEADERS) if RAW_IDENTIFIER.match(h)})
    if raw:
        problems.append(f"raw identifiers in table headers: {', '.join(raw[:10])}")
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot), full_page=True)
    return problems


def check_run(report_dir: Path, shots: Path | None = None, width: int = WIDTH) -> dict[str, list[str]]:
    """``check_page`` for index.html, history.html and every report page of a run's directory:
    {file name: problems}."""
    from playwright.sync_api import sync_playwright
    pages = sorted(p for p in Path(report_dir).glob("*.html"))
    out = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=_ARGS)
        try:
            for path in pages:
                page = browser.new_page(viewport={"width": width, "height": 900})
                out[path.name] = check_page(page, path, shots / f"{path.stem}.png" if shots else None)
                page.close()
        finally:
            browser.close()
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Check a run's pages in headless Chromium and take screenshots.")
    p.add_argument("reports", type=Path, help="a run's output directory (e.g. reports/latest)")
    p.add_argument("--out", type=Path, default=None, help="where the PNGs go (default: REPORTS/../screenshots)")
    args = p.parse_args(argv)
    if not (args.reports / "index.html").exists():
        print(f"error: no index.html in {args.reports}: run the reports first (make reports)", file=sys.stderr)
        return 2
    shots = args.out or args.reports.resolve().parent / "screenshots"
    found = check_run(args.reports, shots)
    bad = 0
    for name, problems in found.items():
        print(f"{name}: {'ok' if not problems else '; '.join(problems)}")
        bad += bool(problems)
    print(f"screenshots in {shots}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
