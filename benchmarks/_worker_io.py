"""How a peer's worker script (run in the peer's own venv) answers: one JSON document on stdout.

The peer's own prints go to stderr while it runs, so they never mix with the answer. Standard library
only: the peers' venvs do not have keel.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def answer(run: Callable[[dict[str, Any]], dict[str, Any]], spec_path: str) -> int:
    """Read the spec, call ``run`` with stdout redirected to stderr, print its result as JSON."""
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    real_stdout, sys.stdout = sys.stdout, sys.stderr
    try:
        result = run(spec)
    finally:
        sys.stdout = real_stdout
    real_stdout.write(json.dumps(result) + "\n")
    real_stdout.flush()
    return 0
