"""The feature pages in a real browser (issue 5): Playwright drives Debian's Chromium (/usr/bin/chromium; nothing
is downloaded) against a real uvicorn server, like test_ui_browser.py.

A reviewer logs in, opens Features from the navigation, then a view: each feature with its type, owner,
freshness and consumers, the consumer model linked to its version page, the unused feature flagged as a
removal candidate. Screenshots go to ``tests/e2e/artifacts/ui/features/`` (or ``$KEEL_UI_SCREENSHOTS/features``);
the browser's console must stay clean.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import keel
from e2e.browser_helpers import SCREENSHOTS, log_in, new_page, serve  # tests/ is on sys.path (tests/conftest.py)
from keel.users import ROLES
from server.test_features_api import VIEW, Features, add_driver_features

pytestmark = pytest.mark.slow
SHOTS = SCREENSHOTS / "features"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str], Features]]:
    """A workspace with a feature view, a training set, a model trained on it and online values, served over
    HTTP on a free loopback port (auth on)."""
    ws = keel.init(tmp_path_factory.mktemp("features-browser") / "ws", user="admin-user")
    tokens = {}
    for role in ROLES:
        ws.users.add(f"{role}-user", role)
        tokens[role] = ws.tokens.create(f"{role}-user").token
    scenario = add_driver_features(ws)
    ws.features.materialize()
    with ws, serve(ws) as base:
        yield base, tokens, scenario


def test_log_in_open_the_features_and_a_view_and_follow_its_consumer_model(served, browser) -> None:
    base, tokens, scenario = served
    page, problems, shot = new_page(browser, SHOTS)
    log_in(page, base, "/features", tokens["viewer"])
    assert page.inner_text(".who .user") == "viewer-user"
    assert page.locator("header nav a.active").inner_text() == "Features"

    # the list: the view with its version, entities, feature count, owner and freshness; the training set
    row = page.locator("table.features tr", has=page.locator(f"a[href='/features/{VIEW}']"))
    cells = row.locator("td").all_inner_texts()
    assert cells[1:6] == ["v1", "batch", "driver", "3", "rides-team"]
    assert cells[6].startswith("until ")
    assert "drivers_training@0" in page.locator("table.training-sets").inner_text()
    shot("01-features")

    # the view: a feature table with data types and consumers, the unused feature flagged
    page.click(f"table.features a[href='/features/{VIEW}']")
    page.wait_for_url(f"{base}/features/{VIEW}")
    features = page.locator("table.feature-table tr.feature")
    assert [features.nth(i).get_attribute("data-feature") for i in range(features.count())] == [
        "trips_today", "rating", "acc_rate"]
    trips = page.locator("tr.feature[data-feature='trips_today'] td").all_inner_texts()
    assert trips[1] == "int64" and trips[3] == "rides-team" and trips[4].startswith("online until ")
    assert page.locator("tr.feature[data-feature='trips_today'] td.models").inner_text() == "eta/1"
    assert page.locator("tr.feature.removal").get_attribute("data-feature") == "acc_rate"
    assert "removal candidate" in page.locator("tr.feature.removal").inner_text()
    assert "1 of 3 features nobody reads" in page.inner_text("main")
    assert page.locator(f"a[href='/data/{VIEW}/versions/0']").count() >= 1  # the source table version
    shot("02-feature-view")

    # the consumer model links to its version page
    page.click("tr.feature[data-feature='trips_today'] td.models a")
    page.wait_for_url(f"{base}/models/eta/versions/1")
    assert "eta v1" in page.inner_text("h1")
    assert scenario.training_set.ref in page.inner_text("main")  # trained on the training set
    shot("03-consumer-model")
    assert problems == [], problems
    print(f"\nscreenshots: {SHOTS}")
