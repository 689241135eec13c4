"""Release gates in a real browser (issue 6): Playwright drives Debian's Chromium (/usr/bin/chromium; nothing is
downloaded) against a real uvicorn server, like test_ui_browser.py.

An approver logs in, opens the model version that failed its gates, opens the report from the version page,
reads the evidence and the plots (slice bars, directional curve, latency histograms), overrides with a reason,
and finds the override on the version page and ``gates.override`` in the audit log. Screenshots go to
``tests/e2e/artifacts/ui/gates/`` (or ``$KEEL_UI_SCREENSHOTS/gates``); the browser's console must stay clean,
so a plot that broke the pages' Content-Security-Policy would fail the test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from e2e.browser_helpers import SCREENSHOTS, log_in, new_page, serve  # tests/ is on sys.path (tests/conftest.py)
from server.gates_ui_fixture import GatesWorkspace, build_gates_workspace

pytestmark = pytest.mark.slow
SHOTS = SCREENSHOTS / "gates"
REASON = "x1 anti-monotone only above the range we sell; fix in the next release"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, GatesWorkspace]]:
    """The gates workspace served over HTTP on a free loopback port (auth on)."""
    built = build_gates_workspace(tmp_path_factory.mktemp("gates-browser") / "ws")
    with built.ws, serve(built.ws) as base:
        yield base, built


def test_an_approver_reads_a_failed_report_overrides_it_and_finds_it_audited(served, browser) -> None:
    base, built = served
    report = built.failed
    page, problems, shot = new_page(browser, SHOTS)
    log_in(page, base, "/models/toy/versions/2", built.tokens["approver"])
    gates = page.locator("#gates")
    assert "promotion is blocked" in gates.inner_text()
    row = gates.locator(f"tr[data-report='{report.id}']")
    assert row.locator(".badge.status-failed").count() == 1
    shot("01-version-blocked")

    # the report: a row per test, the failing directional test's plot and its violating rows
    row.locator(f"a[href='/gates/{report.id}']").click()
    page.wait_for_url(f"{base}/gates/{report.id}")
    assert "failed" in page.inner_text("h1")
    assert page.locator("table.gate-tests tr[data-test]").count() == len(report.results)
    directional = page.locator("section.gate-test[data-test='directional']")
    assert directional.get_attribute("data-status") == "failed"
    assert directional.locator("table.evidence tr").count() > 1
    assert "output (x1 + 1)" in directional.locator("table.evidence").inner_text()
    for test in ("slice", "directional", "budget"):  # each plot is drawn, with a size, under the page's CSP
        box = page.locator(f"section.gate-test[data-test='{test}'] svg.gate-plot").bounding_box()
        assert box and box["width"] > 200 and box["height"] > 80, test
    assert page.locator("section.gate-test[data-test='slice'] svg g.bar.failed").count() >= 1
    shot("02-report-failed")

    # override with a reason
    page.fill("#override-form textarea[name='reason']", REASON)
    page.click("#override-form button[type='submit']")
    page.wait_for_url(f"{base}/gates/{report.id}?done=overridden")
    assert "Overridden" in page.inner_text(".notice")
    assert page.inner_text("#override-done .override-reason") == REASON
    assert page.locator("#override-form").count() == 0
    shot("03-report-overridden")

    # the version page shows who overrode it and why; promotion is no longer blocked
    page.click(".crumbs a:has-text('v2')")
    page.wait_for_url(f"{base}/models/toy/versions/2")
    cell = page.locator(f"#gates tr[data-report='{report.id}'] td.override-cell").inner_text()
    assert cell.startswith("approver-user (approver)") and REASON in cell
    assert "may be released" in page.inner_text("#gates")
    shot("04-version-overridden")

    # the audit log has the override: who, why, which report
    page.click("header nav a:has-text('Audit')")
    rows = page.locator("table.audit tr").all_inner_texts()
    entry = next(r for r in rows if "gates.override" in r)
    assert "approver-user" in entry and REASON in entry and report.ref in entry
    shot("05-audit")
    assert built.ws.gates.report(report.id).override["by"] == "approver-user"
    assert problems == [], problems
    print(f"\nscreenshots: {SHOTS}")
