"""The ``browser`` fixture of the web UI's browser tests; what else they share is in browser_helpers.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium driven by Playwright, for one test module (Playwright's sync API holds an event loop
    on this thread while it runs, so it does not outlive the module)."""
    # imported here, not at the top: browser_helpers skips a module when Chromium or Playwright is missing, and
    # test_demo.py, in this folder too, needs neither
    from e2e.browser_helpers import CHROMIUM, sync_api

    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()
