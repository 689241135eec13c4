"""The web UI in a real browser: Playwright drives Debian's Chromium (/usr/bin/chromium, installed by
``apt-get install chromium``; nothing is downloaded by the test) against a real uvicorn server.

The scenario is a reviewer's afternoon: log in with a token, open a run, compare two runs, approve and
promote a model version, and find the change in the audit log. A screenshot of each page is saved under
``tests/e2e/artifacts/ui/browser/`` (or ``$KEEL_UI_SCREENSHOTS/browser``). The browser's console must stay clean:
a Content-Security-Policy violation or a script error fails the test. The server, the page and the login are
browser_helpers.py's, the ``browser`` fixture is conftest.py's.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from e2e.browser_helpers import SCREENSHOTS, log_in, new_page, serve  # tests/ is on sys.path (tests/conftest.py)
from server.ui_fixture import UIWorkspace, build_ui_workspace

pytestmark = pytest.mark.slow
SHOTS = SCREENSHOTS / "browser"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, UIWorkspace]]:
    """A real server on a free loopback port, in a thread of this process (auth on)."""
    built = build_ui_workspace(tmp_path_factory.mktemp("browser") / "ws")
    with built.ws, serve(built.ws) as base:
        yield base, built


def test_log_in_open_a_run_compare_approve_promote_and_see_the_audit(served, browser) -> None:
    base, built = served
    page, problems, shot = new_page(browser, SHOTS)

    # an anonymous visit lands on the login page; a token logs in and goes back where it was going
    log_in(page, base, "/runs", built.tokens["approver"], on_form=lambda: shot("01-login"))
    assert page.inner_text(".who .user") == "approver-user"
    cookie = next(c for c in page.context.cookies() if c["name"] == "keel_token")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie").find("keel_token") == -1  # no script can read the session
    shot("02-runs")

    # a run: its step charts are drawn by the vendored uPlot, its image is shown inline
    page.click(f"a[href='/runs/{built.runs['ridge']}']")
    page.wait_for_selector("[data-chart='metric'][data-drawn='1'] canvas")
    assert page.locator("[data-chart='metric'][data-drawn='1']").count() == 2  # loss and lr
    image = page.locator("img[alt='curves/loss.png']")
    image.scroll_into_view_if_needed()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    shot("03-run")

    # compare the two runs from the list
    page.goto(f"{base}/runs")
    for run_id in built.runs.values():
        page.check(f"input[name='ids'][value='{run_id}']")
    page.click("#compare-button")
    page.wait_for_url(f"{base}/runs/compare?*")
    assert "model" in page.locator("tr.diff th").all_inner_texts()
    assert page.locator("svg.parallel g.run-line").count() == 2
    page.wait_for_selector("[data-chart='overlay'][data-drawn='1'] canvas")
    shot("04-compare")

    # approve version 2 for production, then promote it
    page.goto(f"{base}/models/price")
    shot("05-model")
    page.click("a[href='/models/price/versions/2']")
    page.fill("#approve-form textarea[name='reason']", "beats the dummy baseline on validation rmse")
    page.click("#approve-form button[type='submit']")
    page.wait_for_url("**/models/price/versions/2?done=approved")
    assert "Approved." in page.inner_text(".notice")
    page.select_option("#promote-form select[name='environment']", "production")
    page.fill("#promote-form textarea[name='reason']", "approved above")
    page.click("#promote-form button[type='submit']")
    page.wait_for_url("**/models/price/versions/2?done=promoted-production")
    assert "production" in page.inner_text("h1")
    shot("06-version")

    # the audit log names who did it, and why
    page.click("header nav a:has-text('Audit')")
    rows = page.locator("table.audit tr").all_inner_texts()
    promote = next(r for r in rows if "model.promote" in r and "model:price/2" in r)
    approve = next(r for r in rows if "model.approve" in r and "model:price/2" in r)
    assert "approver-user" in promote and "approved above" in promote
    assert "approver-user" in approve and "beats the dummy baseline" in approve
    shot("07-audit")
    assert built.ws.models.get("price").aliases["production"] == 2

    # the other pages, for the record
    for name, path in (("08-data", "/data/listings"), ("09-profile", "/data/listings/versions/0"),
                       ("10-lineage", "/lineage?ref=price@production")):
        page.goto(base + path)
        shot(name)
    assert page.locator("svg.lineage a.node").count() >= 5

    page.click("button:has-text('Log out')")
    page.wait_for_url(f"{base}/login?reason=logged-out")
    page.goto(f"{base}/models")
    assert page.url.startswith(f"{base}/login")
    assert problems == [], problems
    print(f"\nscreenshots: {SHOTS}")


def test_a_viewer_sees_the_forms_disabled(served, browser) -> None:
    base, built = served
    page = browser.new_page()
    page.goto(f"{base}/login?next=/models/price/versions/1")
    page.fill("#token", built.tokens["viewer"])
    page.click("button:has-text('Log in')")
    page.wait_for_url(f"{base}/models/price/versions/1")
    assert page.locator("#approve-form button").is_disabled()  # inside a disabled fieldset
    assert page.locator("#promote-form button").is_disabled()
    assert page.locator("#approve-form textarea").is_disabled()
    assert "needs the approver role" in page.inner_text(".actions")
