"""Monitors in a real browser (issue 8): Playwright drives Debian's Chromium (/usr/bin/chromium; nothing is
downloaded) against a real uvicorn server, like test_ui_deployments.py.

A viewer opens the monitors from the nav, sees the latest window was empty ("no data") and the alert it fired,
opens the monitor, steps back to the report of the shifted window and reads the drifted column with its
distributions drawn, the drift over time, the slice heat map with the new slice value, and the alerts.
Screenshots go to ``tests/e2e/artifacts/ui/monitors/`` (or ``$KEEL_UI_SCREENSHOTS/monitors``); the browser's
console must stay clean, so a plot or a style that broke the pages' Content-Security-Policy would fail the test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from e2e.browser_helpers import SCREENSHOTS, log_in, new_page, serve  # tests/ is on sys.path (tests/conftest.py)
from server.test_ui_monitors import ODD, MonitorsWorkspace, build_monitors_workspace

pytestmark = pytest.mark.slow
SHOTS = SCREENSHOTS / "monitors"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, MonitorsWorkspace]]:
    built = build_monitors_workspace(tmp_path_factory.mktemp("monitors-browser") / "ws")
    with built.ws, serve(built.ws) as base:
        yield base, built


def test_a_viewer_reads_a_monitors_drift_slices_and_alerts(served, browser) -> None:
    base, built = served
    page, problems, shot = new_page(browser, SHOTS)
    log_in(page, base, "/", built.tokens["viewer"])

    page.click("header nav a:has-text('Monitors')")
    page.wait_for_url(f"{base}/monitors")
    row = page.locator("tr[data-monitor='price-drift']")
    assert row.locator(".badge.verdict").inner_text() == "no data"
    assert row.locator(".firing-rule").inner_text() == "rows < 1"
    shot("01-list")

    row.locator("a[href='/monitors/price-drift']").click()
    page.wait_for_url(f"{base}/monitors/price-drift")
    assert "no data" in page.locator("#features").inner_text()
    shot("02-no-data")

    page.click("#reports tr[data-report='1'] a")
    page.wait_for_url(f"{base}/monitors/price-drift?report=1")
    assert page.locator("h1 .badge.verdict").inner_text() == "drift"
    drifted = page.locator("#features tr.column.drifted[data-column='x1']")
    box = drifted.locator("svg.distribution").bounding_box()
    assert box and box["width"] > 250 and box["height"] > 80  # drawn, not blocked
    assert page.locator("#drift-over-time svg.drift").count() == 4  # x1, x2, cat and the prediction
    heat = page.locator("#slices svg.heat-map")
    assert heat.locator("g.cell.drifted[data-column='x1']").count() == 3  # in every known slice value
    assert heat.locator("g.cell.new-value").count() == 1 and ODD in (heat.text_content() or "")
    assert "firing" in page.locator("#alerts table.events").inner_text()
    shot("03-drifted-report")
    assert problems == [], problems
    print(f"\nscreenshots: {SHOTS}")
