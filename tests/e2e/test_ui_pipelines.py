"""Pipelines and retraining in a real browser: Playwright drives Debian's Chromium (/usr/bin/chromium; nothing is
downloaded) against a real uvicorn server, like test_ui_traces_incidents.py.

An approver opens the pipelines from the nav, a failed run, and reads its graph: each step a node coloured by its
status (the failed one red, the one after it skipped), laid out left to right by depth; the failed step's log is
open, its printed markup shown as text. Then the retraining page from the nav, the pending retrain's review (why,
window, gates, comparison), and approves it through the form: the page comes back saying approved, with the
decision and its canary. Screenshots go to ``tests/e2e/artifacts/ui/pipelines/`` (or
``$KEEL_UI_SCREENSHOTS/pipelines``); the browser's console must stay clean, so a style or a script that broke the
pages' Content-Security-Policy would fail the test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from e2e.browser_helpers import SCREENSHOTS, log_in, new_page, serve  # tests/ is on sys.path (tests/conftest.py)
from server.test_ui_pipelines import PipelinesWorkspace, build_pipelines_workspace
from server.ui_pipeline_defs import MARKUP_LOG

pytestmark = pytest.mark.slow
SHOTS = SCREENSHOTS / "pipelines"
REASON = "better on validation; the new rows are clean"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, PipelinesWorkspace]]:
    built = build_pipelines_workspace(tmp_path_factory.mktemp("pipelines-browser") / "ws", bad=False)
    with built.ws, serve(built.ws) as base:
        yield base, built


def test_an_approver_reads_a_run_graph_and_approves_a_retrain(served, browser) -> None:
    base, built = served
    page, problems, shot = new_page(browser, SHOTS)
    log_in(page, base, "/", built.tokens["approver"])

    page.click("header nav a:has-text('Pipelines')")
    page.wait_for_url(f"{base}/pipelines")
    assert page.locator("table.pipelines tr[data-pipeline]").count() == 3
    run_row = page.locator(f"table.pipeline-runs tr[data-run='{built.failed}']")
    assert run_row.get_attribute("data-status") == "failed"
    shot("01-pipelines")

    run_row.locator(f"a[href='/pipelines/runs/{built.failed}']").click()
    page.wait_for_url(f"{base}/pipelines/runs/{built.failed}")
    graph = page.locator("#graph svg.dag")
    statuses = {n.get_attribute("data-step"): n.get_attribute("data-status")
                for n in graph.locator("a.dag-node").all()}
    assert statuses == {"load": "succeeded", "summarize": "succeeded", "side": "succeeded", "explode": "failed",
                        "after": "skipped"}
    boxes = {step: graph.locator(f"a.dag-node[data-step='{step}'] rect").bounding_box() for step in statuses}
    assert all(b and b["width"] > 100 and b["height"] > 30 for b in boxes.values())
    assert boxes["load"]["x"] < boxes["summarize"]["x"] == boxes["side"]["x"] < boxes["explode"]["x"] \
        < boxes["after"]["x"]  # left to right by depth
    explode = graph.locator("a.dag-node[data-step='explode']")
    assert "failed" in explode.locator("text.dag-detail").text_content()
    fill = explode.locator("rect").evaluate("e => getComputedStyle(e).fill")
    assert fill == "rgb(253, 236, 234)"  # the failed step is red
    assert "skipped" in graph.locator("a.dag-node[data-step='after'] text.dag-detail").text_content()
    assert page.locator("#steps tr[data-step='after'] .badge").inner_text() == "skipped"
    assert page.locator("#log-explode").get_attribute("open") is not None  # the failure's log is open
    page.locator("#log-summarize summary").click()
    assert MARKUP_LOG in page.locator("#log-summarize pre.log").inner_text()  # shown as text, never run
    shot("02-run-graph")

    explode.click()  # a node leads to its step's row
    page.wait_for_url(f"{base}/pipelines/runs/{built.failed}#step-explode")
    assert "boom: <b>explode</b> refused" in page.locator("#step-explode td.error").inner_text()

    page.click("header nav a:has-text('Retraining')")
    page.wait_for_url(f"{base}/retraining")
    retrain = page.locator(f"table.retrains tr[data-retrain='{built.good}']")
    assert retrain.get_attribute("data-status") == "pending_review"
    shot("03-retraining")

    retrain.locator("td.num a").click()
    page.wait_for_url(f"{base}/retraining/{built.good}")
    assert page.locator("h1 .retrain-status").inner_text() == "pending_review"
    assert "manual()" in page.locator("#trigger").inner_text()
    assert page.locator("#window td.window-rows").inner_text() == "800"
    assert page.locator("#how svg.dag a.dag-node[data-status='succeeded']").count() == 4
    assert page.locator("#gates a.gate-report-link").count() == 1
    assert page.locator("#comparison tr[data-metric]").count() > 1
    assert "—" not in page.locator("#comparison td.serving-value").all_inner_texts()
    assert "start a canary on deployment price" in page.locator("#on-approve").inner_text()
    shot("04-review")

    page.fill("#approve-form textarea[name='reason']", REASON)
    page.click("#approve-form button[type='submit']")
    page.wait_for_url(f"{base}/retraining/{built.good}?done=approved")
    assert page.locator("h1 .retrain-status").inner_text() == "approved"
    assert "Approved:" in page.locator(".decision-done").inner_text()
    decision = page.locator("#decision-done")
    assert decision.locator(".decision-verdict").inner_text() == "approved"
    assert decision.locator(".decision-by").inner_text() == "approver-user"
    assert decision.locator(".decision-reason").inner_text() == REASON
    assert page.locator("#approve-form").count() == 0
    shot("05-approved")
    assert built.ws.retraining.get(built.good).status == "approved"
    assert problems == [], problems
    print(f"\nscreenshots: {SHOTS}")
