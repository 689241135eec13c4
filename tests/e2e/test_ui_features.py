"""The feature pages in a real browser (issue 5): Playwright drives Debian's Chromium (/usr/bin/chromium; nothing
is downloaded) against a real uvicorn server, like test_ui_browser.py.

A reviewer logs in, opens Features from the navigation, then a view: each feature with its type, owner,
freshness and consumers, the consumer model linked to its version page, the unused feature flagged as a
removal candidate. Screenshots go to ``tests/e2e/artifacts/ui/features/`` (or ``$KEEL_UI_SCREENSHOTS/features``);
the browser's console must stay clean.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

import keel
from keel.server.app import create_app
from keel.users import ROLES
from server.test_features_api import VIEW, Features, add_driver_features  # tests/ is on sys.path

CHROMIUM = "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium (CI installs it)", allow_module_level=True)
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")

pytestmark = pytest.mark.slow
SHOTS = Path(os.environ.get("KEEL_UI_SCREENSHOTS") or Path(__file__).with_name("artifacts") / "ui") / "features"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(ws), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", tokens, scenario
    server.should_exit = True
    thread.join(10)
    ws.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def test_log_in_open_the_features_and_a_view_and_follow_its_consumer_model(served, browser) -> None:
    base, tokens, scenario = served
    if SHOTS.exists():
        shutil.rmtree(SHOTS)
    SHOTS.mkdir(parents=True)
    page = browser.new_page(viewport={"width": 1360, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(str(e)))

    def shot(name: str) -> None:
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

    page.goto(f"{base}/features")
    assert page.url.startswith(f"{base}/login?next=")
    page.fill("#token", tokens["viewer"])
    page.click("button:has-text('Log in')")
    page.wait_for_url(f"{base}/features")
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
