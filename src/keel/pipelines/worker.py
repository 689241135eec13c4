"""A step in its own process: ``python -m keel.pipelines.worker PAYLOAD RESULT``.

The runner starts one per step (keel.pipelines.runner): a fresh interpreter imports nothing of the caller's
``__main__`` (a script without an ``if __name__ == "__main__"`` guard works), a crash or a leak ends with the step,
and the runner can run steps side by side. The payload (JSON) names the workspace opener, its settings, the step and
its inputs; the outcome is written as JSON to RESULT.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import orjson

from keel.pipelines.execute import StepOutcome, run_step_in_worker


def main(payload_path: str, result_path: str) -> int:
    payload = orjson.loads(Path(payload_path).read_bytes())
    for entry in reversed(payload.get("sys_path", [])):  # the caller's import path: its modules import here too
        if entry not in sys.path:
            sys.path.insert(0, entry)
    module, _, name = payload["opener"].partition(":")
    opener = getattr(importlib.import_module(module), name)
    outcome: StepOutcome = run_step_in_worker(opener, payload["settings"], payload["spec"], payload["pipeline"],
                                              payload["run"], payload["kwargs"])
    Path(result_path).write_bytes(orjson.dumps({"ok": outcome.ok, "value": outcome.value, "logs": outcome.logs,
                                                "error": outcome.error, "seconds": outcome.seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
