"""The pages in a real browser (Playwright driving Debian's Chromium): submit, watch, open the best.

Screenshots are taken on every run; with EVOFORGE_UPDATE_SCREENSHOTS=1 they are copied to
docs/screenshots/ for the README (so that a plain test run leaves the work tree clean). Skipped with a
reason when /usr/bin/chromium or the playwright package is absent (``.ci/run`` installs both).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from web_helpers import ADDSEL, Server

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (apt install chromium)"
)


def test_submit_watch_and_open_the_best_candidate(
    start_server: Callable[..., Server], tmp_path: Path
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    server = start_server(worker=True)
    shots = tmp_path / "shots"
    shots.mkdir()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(server.url + "/")
        page.fill("#source", ADDSEL)
        page.fill("input[name=budget]", "3")
        page.select_option("select[name=proposer]", "offline")
        page.screenshot(path=str(shots / "web-submit.png"), full_page=True)
        page.click("#submit-button")
        page.wait_for_url("**/jobs/*")
        page.wait_for_selector("#job-status:text('succeeded')", timeout=240_000)
        page.wait_for_selector("#best-link", timeout=30_000)  # the page reloads itself when the job ends
        assert page.locator("#best-chart svg.chart").count() == 1
        assert page.locator("#pareto-chart svg.chart circle").count() >= 2
        assert page.locator("#leaderboard tbody tr").count() >= 1
        page.screenshot(path=str(shots / "web-job.png"), full_page=True)

        page.click("#best-link")
        page.wait_for_selector("#diff-original")
        assert page.locator("#diff-original .diff-add").count() >= 1
        assert page.locator("#diff-original .diff-del").count() >= 1
        assert page.locator("#stages tbody tr").count() >= 5
        assert page.locator("#source .tok-kw").count() >= 3
        assert page.inner_text("#assurance") != "none"
        page.screenshot(path=str(shots / "web-candidate.png"), full_page=True)

        # a design that does not load fails its job (the worker loads it), and the job page says
        # why — a message, not a stack trace, and no script of the design's runs
        page.goto(server.url + "/")
        page.fill("#source", "module broken(input a; endmodule <script>window.hacked=1</script>")
        page.click("#submit-button")
        page.wait_for_url("**/jobs/*")
        page.wait_for_selector("#job-status:text('failed')", timeout=120_000)
        page.wait_for_selector("#job-error", timeout=30_000)
        assert "syntax error" in page.inner_text("#job-error")
        assert page.evaluate("window.hacked === undefined")
        assert "Traceback" not in page.content()
        browser.close()
    assert {s.name for s in shots.iterdir()} == {"web-submit.png", "web-job.png", "web-candidate.png"}
    if os.environ.get("EVOFORGE_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for shot in shots.iterdir():
            shutil.copy(shot, SCREENSHOTS / shot.name)
