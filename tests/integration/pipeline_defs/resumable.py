"""A run that a killed scheduler leaves half done: ``first`` counts its executions in ``FOLDER/first``; ``second``
counts its starts in ``FOLDER/second``, then waits (up to a minute) for the file ``FOLDER/go``."""

from __future__ import annotations

import time
from pathlib import Path

from keel.pipelines import Pipeline, step


def _count(path: Path) -> int:
    n = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(n))
    return n


@step
def first(folder: str = "") -> int:
    return _count(Path(folder) / "first")


@step
def second(first: int, folder: str = "") -> dict:
    _count(Path(folder) / "second")
    deadline = time.monotonic() + 60
    while not (Path(folder) / "go").exists():
        if time.monotonic() > deadline:
            raise TimeoutError("nobody said go")
        time.sleep(0.05)
    return {"first": first}


resumable = Pipeline("resumable", [first, second])
