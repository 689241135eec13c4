"""Shared by the worker scripts: announce readiness, then wait until the test says go."""

from __future__ import annotations

import time
from pathlib import Path


def wait_for_start(ready: str, start: str, timeout: float = 60.0) -> None:
    """Touch ``ready`` (imports are done), then spin until ``start`` exists, so workers begin together."""
    Path(ready).touch()
    deadline = time.monotonic() + timeout
    while not Path(start).exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"start file {start} never appeared")
        time.sleep(0.0005)
