"""Traces and incidents in a real browser (issue 8): Playwright drives Debian's Chromium (/usr/bin/chromium; nothing
is downloaded) against a real uvicorn server, like test_ui_monitors.py.

A viewer traces a request from the monitors page's form and reads why a fallback answered it, which version did,
what that version was trained on and the request's row; then opens the incidents from the nav, the incident with
its notes and stored timeline, and the same range read live. Screenshots go to
``tests/e2e/artifacts/ui/traces-incidents/`` (or ``$KEEL_UI_SCREENSHOTS/traces-incidents``); the browser's console
must stay clean, so a style or a script that broke the pages' Content-Security-Policy would fail the test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from e2e.browser_helpers import SCREENSHOTS, log_in, new_page, serve  # tests/ is on sys.path (tests/conftest.py)
from server.test_ui_traces_incidents import REASON, TracesWorkspace, build_traces_workspace

pytestmark = pytest.mark.slow
SHOTS = SCREENSHOTS / "traces-incidents"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, TracesWorkspace]]:
    built = build_traces_workspace(tmp_path_factory.mktemp("traces-browser") / "ws")
    with built.ws, serve(built.ws) as base:
        yield base, built


def test_a_viewer_traces_a_fallback_and_reads_the_incident(served, browser) -> None:
    base, built = served
    page, problems, shot = new_page(browser, SHOTS)
    log_in(page, base, "/monitors", built.tokens["viewer"])

    page.fill("form.trace-lookup input[name='request_id']", "req-fallback")
    page.click("form.trace-lookup button")
    page.wait_for_url(f"{base}/traces/req-fallback")
    answer = page.locator("#answer")
    assert page.locator("h1 .fallback-badge").is_visible()
    assert answer.locator("td.served-by").inner_text() == built.good
    assert answer.locator("td.chosen").inner_text() == built.raw
    assert REASON in answer.locator(".fallback-reason").inner_text()
    assert "split:toy" in page.locator("#model td.trained-on").inner_text()
    row = page.locator("#request tr[data-row='0']").inner_text()
    assert "1.125" in row and "2.75" in row
    assert "[12.5]" in page.locator("#feedback").inner_text()
    shot("01-trace")

    page.click("header nav a:has-text('Incidents')")
    page.wait_for_url(f"{base}/incidents")
    incident = page.locator(f"tr[data-incident='{built.incident}']")
    assert incident.locator(".severity").inner_text() == "high"
    shot("02-incidents")

    incident.locator("td.title a").click()
    page.wait_for_url(f"{base}/incidents/{built.incident}")
    assert page.locator("h1 .incident-title").inner_text() == "prices fell back to toy/1"
    notes = page.locator("#notes .note-text").all_inner_texts()
    assert notes == ["paged at 14:02 <b>bold</b>", "root cause: the primary cannot handle x2 above 1.5"]
    timeline = page.locator("#timeline table.timeline")
    assert timeline.locator("tr.event-deployment").count() == 1
    alert = timeline.locator("tr.event-alert")
    assert "firing: rows < 1" in alert.inner_text()
    color = alert.locator("td").first.evaluate("e => getComputedStyle(e).backgroundColor")
    assert color != "rgba(0, 0, 0, 0)"  # the stylesheet loaded and marks the alert
    shot("03-incident")

    page.click("a.live-timeline")
    page.wait_for_url(f"{base}/incidents/timeline?**")
    assert page.locator("#timeline tr.event-deployment").count() == 1
    assert "answered by a fallback" in page.locator(".timeline-summary").inner_text()
    shot("04-live-timeline")
    assert problems == [], problems
    print(f"\nscreenshots: {SHOTS}")
