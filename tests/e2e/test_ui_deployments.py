"""Deployments in a real browser (issue 7): Playwright drives Debian's Chromium (/usr/bin/chromium; nothing is
downloaded) against a real uvicorn server, like test_ui_gates.py.

A viewer logs in, opens the deployments from the nav, clicks through to a canary the controller rolled back and
reads why (in the routing card and in the history, newest first), sees the split bar drawn, then opens an A/B
test and reads its target and live split and each arm's numbers, and a canary whose split is off (the sample
ratio warning). Screenshots go to ``tests/e2e/artifacts/ui/deployments/`` (or ``$KEEL_UI_SCREENSHOTS/deployments``);
the browser's console must stay clean, so a bar that broke the pages' Content-Security-Policy would fail the test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from e2e.browser_helpers import SCREENSHOTS, log_in, new_page, serve  # tests/ is on sys.path (tests/conftest.py)
from server.deployments_ui_fixture import DeploymentsWorkspace, build_deployments_workspace

pytestmark = pytest.mark.slow
SHOTS = SCREENSHOTS / "deployments"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, DeploymentsWorkspace]]:
    """The deployments workspace served over HTTP on a free loopback port (auth on)."""
    built = build_deployments_workspace(tmp_path_factory.mktemp("deployments-browser") / "ws")
    with built.ws, serve(built.ws) as base:
        yield base, built


def _bar_widths(page, row: str) -> dict[str, float]:
    """Each arm's drawn width (in screen pixels) in one row of the split bar."""
    widths = {}
    for segment in page.locator(f"svg.split-bar g.split-row[data-row='{row}'] g.split-segment").all():
        box = segment.locator("rect").bounding_box()
        assert box and box["height"] > 10
        widths[segment.get_attribute("data-arm")] = box["width"]
    return widths


def test_a_viewer_follows_a_canary_rollback_and_reads_the_live_split(served, browser) -> None:
    base, built = served
    page, problems, shot = new_page(browser, SHOTS)
    log_in(page, base, "/", built.tokens["viewer"])

    # the list, from the nav
    page.click("header nav a:has-text('Deployments')")
    page.wait_for_url(f"{base}/deployments")
    rows = page.locator("table.deployments tr[data-deployment]")
    assert rows.count() == len(built.ws.deployments.list())
    price = page.locator("tr[data-deployment='price-api']")
    assert "rollback by admin-user" in price.locator("td.last-change").inner_text()
    assert page.locator("tr[data-deployment='odd-api'] .badge.state-paused").count() == 1
    shot("01-list")

    # a rolled-back canary: why, in the routing card and the history (newest first)
    price.locator("a[href='/deployments/price-api']").click()
    page.wait_for_url(f"{base}/deployments/price-api")
    assert page.inner_text("h1").startswith("price-api")
    rolled = page.locator("#routing .rolled-back").inner_text()
    assert "toy/2" in rolled and built.rollback_reason in rolled
    box = page.locator("#routing svg.split-bar").bounding_box()
    assert box and box["width"] > 300 and box["height"] > 40
    assert set(_bar_widths(page, "target")) == {"primary"} and set(_bar_widths(page, "live")) == {"primary"}
    versions = page.locator("#history tr[data-version]")
    assert [versions.nth(i).get_attribute("data-action") for i in range(versions.count())] == [
        "rollback", "canary", "create"]
    assert built.rollback_reason in versions.first.locator("td.reason").inner_text()
    shot("02-rolled-back")

    # an A/B test: the live split drawn beside the target, and each arm's numbers
    page.click(".crumbs a:has-text('Deployments')")
    page.click("tr[data-deployment='ab-api'] a[href='/deployments/ab-api']")
    page.wait_for_url(f"{base}/deployments/ab-api")
    target, live = _bar_widths(page, "target"), _bar_widths(page, "live")
    assert target["a"] / (target["a"] + target["b"]) == pytest.approx(0.7, abs=0.01)
    assert live["a"] / (live["a"] + live["b"]) == pytest.approx(0.7, abs=0.01)
    arm_b = page.locator("#live table.live-arms tr[data-arm='b']")
    assert arm_b.locator("td.requests").inner_text() == "60" and arm_b.locator("td.share").inner_text() == "30%"
    assert "mae" in arm_b.locator("td.metric").inner_text() and arm_b.locator(".significant").count() == 1
    assert page.locator("#live .srm-ok").count() == 1
    shot("03-ab-test")

    # a canary whose traffic is not the split it sets: the sample ratio warning
    page.goto(f"{base}/deployments/canary-api")
    assert "Sample ratio mismatch" in page.locator("#live .srm-warning").inner_text()
    assert page.locator("#routing ol.steps li.current").inner_text() == "10%"
    shot("04-canary-srm")
    assert problems == [], problems
    print(f"\nscreenshots: {SHOTS}")
