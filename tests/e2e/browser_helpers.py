"""What the web UI's browser tests share: a real uvicorn server in a thread, a page that records the console's
problems and takes screenshots, and the login form. The ``browser`` fixture is in conftest.py.

Playwright drives Debian's Chromium (/usr/bin/chromium, installed by ``apt-get install chromium``; nothing is
downloaded). A test module that imports this one is skipped when either is missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import uvicorn

from keel.server.app import create_app

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

    import keel

CHROMIUM = "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium (CI installs it)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")

# each test module saves its screenshots in a subfolder of its own; read at import, since tests/conftest.py
# takes KEEL_* settings out of the environment of every test
SCREENSHOTS = Path(os.environ.get("KEEL_UI_SCREENSHOTS") or Path(__file__).with_name("artifacts") / "ui")


@contextmanager
def serve(ws: keel.Workspace) -> Iterator[str]:
    """``create_app(ws)`` under uvicorn in a thread of this process, on a free loopback port; yields its base URL
    once the server has started, and stops it on exit (closing ``ws`` is the caller's)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(ws), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def new_page(browser: Browser, shots: Path) -> tuple[Page, list[str], Callable[[str], None]]:
    """A 1360x900 page; the list its console errors and warnings and its page errors go to; and ``shot(name)``,
    which waits for the network to settle and saves a full-page screenshot as ``shots/<name>.png``. The folder
    ``shots`` is emptied first: it holds this test's screenshots only."""
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    page = browser.new_page(viewport={"width": 1360, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(str(e)))

    def shot(name: str) -> None:
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(shots / f"{name}.png"), full_page=True)

    return page, problems, shot


def log_in(page: Page, base: str, path: str, token: str, on_form: Callable[[], None] | None = None) -> None:
    """Open ``path`` anonymously, which lands on the login form (``on_form()`` is called there), log in with
    ``token`` and arrive back at ``path``."""
    page.goto(base + path)
    assert page.url.startswith(f"{base}/login?next=")
    if on_form:
        on_form()
    page.fill("#token", token)
    page.click("button:has-text('Log in')")
    page.wait_for_url(base + path)
