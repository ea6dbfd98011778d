"""report.html in a real browser (Debian's chromium, driven by Playwright): what a QA lead sees.

The page must render its charts from nothing but itself: no request may leave
it (every request is recorded, and any that is not the page itself fails the
test), and the console must stay free of errors. A screenshot is kept as an
artifact under the test's tmp dir and copied to `HARK_ARTIFACTS_DIR` (default
`.artifacts/` in the checkout); its path is printed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from hark_serving.analytics.categories import categorize
from hark_serving.analytics.report import MetadataPattern, build_report, render_html
from hark_serving.analytics.rules import load_rules
from tests.unit.analytics.calls import seg, transcript

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
RULES = load_rules(
    [
        {"name": "long-silence", "alert": True, "all": [{"non_talk": {"min_seconds": 10}}]},
        {"name": "angry-customer", "all": [{"emotion": {"role": "customer", "in": ["ANGRY"]}}]},
        {"name": "apology", "any": [{"keyword": {"phrases": ["sorry"]}}]},
    ]
)


def _report_html(tmp_path: Path) -> Path:
    items = []
    for i, agent in enumerate(["alice", "alice", "bob", "carol"]):
        segs = [
            seg(0, 5, text="Hello, thank you for calling", emotion="HAPPY"),
            seg(
                4,
                12,
                "customer",
                text="My parcel never came",
                emotion=["NEUTRAL", "SAD", "ANGRY", "ANGRY"][i],
            ),
            seg(13 + 10 * (i % 2), 30, text="I am sorry about that", emotion="NEUTRAL"),
            seg(31, 40, "customer", text="Fine", emotion=["HAPPY", "ANGRY", "SAD", "ANGRY"][i]),
        ]
        key = f"2026-11-30/{agent}/call{i}.wav"
        t = categorize(RULES, transcript(segs, 40 + 5 * i, f"file:///calls/{key}"))
        items.append((key, f"../{key}.json", t))
    html = render_html(build_report(items, MetadataPattern.parse("{date}/{agent}/{call_id}.wav")))
    path = tmp_path / "_hark" / "report.html"
    path.parent.mkdir(parents=True)
    path.write_text(html, encoding="utf-8")
    return path


def test_report_html_renders_its_charts_offline_without_console_errors(tmp_path: Path) -> None:
    page_path = _report_html(tmp_path)
    page_url = page_path.as_uri()
    requests: list[str] = []
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("request", lambda r: requests.append(r.url))
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
            page.goto(page_url, wait_until="load")
            page.wait_for_load_state("networkidle")

            assert page.title() == "Hark QA report"
            charts = page.locator("svg.chart")
            assert charts.count() == 5
            titles = page.eval_on_selector_all(
                "svg.chart > title", "els => els.map(e => e.textContent)"
            )
            assert titles == [
                "Emotion over the call: agent",
                "Emotion over the call: customer",
                "Calls per category",
                "Non-talk instances (seconds)",
                "Interruptions per call",
            ]
            # Category bars carry the counts, and the browser lays them out with a width.
            bars = page.locator("svg.bar-chart").first.locator("rect[data-label]")
            counts = {
                bars.nth(i).get_attribute("data-label"): bars.nth(i).get_attribute("data-value")
                for i in range(bars.count())
            }
            assert counts == {"apology": "4", "long-silence": "3", "angry-customer": "3"}
            widths = [bars.nth(i).bounding_box()["width"] for i in range(bars.count())]  # type: ignore[index]
            assert min(widths) > 0
            stacked = page.locator("svg.stacked-chart rect[data-value]")
            assert stacked.count() >= 10
            assert page.locator("svg.stacked-chart").first.bounding_box() is not None
            # The most flagged calls link to their transcripts.
            links = page.locator("table.flagged a")
            assert links.count() == 4
            assert links.first.get_attribute("href", timeout=1000).endswith(".wav.json")  # type: ignore[union-attr]
            assert page.locator("table.agents tbody tr").count() == 3

            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert requests == [page_url], f"requests left the page: {requests}"
    assert problems == []
    artifacts = Path(os.environ.get("HARK_ARTIFACTS_DIR", Path(__file__).parents[3] / ".artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    kept = artifacts / "qa-report.png"
    shutil.copy(shot, kept)
    print(f"screenshot of report.html: {kept}")
