"""Budget test: what the model costs to ship and to run. More features mean more memory and more latency.

Latency is the median of ``repeats`` calls through the model's signature check, as serving calls it: one
row, then a batch of 1,000 (rows of the data, repeated if it has fewer). CPU time counts every thread.
Peak memory to load is measured in a fresh Python process (``keel.gates.load_probe``), so what this process
has loaded already does not hide it.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from keel.errors import StorageError
from keel.gates.context import GateContext
from keel.gates.model import GateOutcome
from keel.gates.spec import BudgetTest

__all__ = ["measure_load_mb", "run_budget"]

BATCH = 1_000


def run_budget(ctx: GateContext, test: BudgetTest) -> GateOutcome:
    measured: list[tuple[str, float, float | None, str]] = [
        ("package_mb", ctx.package_size / 2**20, test.max_package_mb, "MiB"),
        ("features", float(len(ctx.features)), test.max_features, "columns"),
    ]
    if test.max_load_mb is not None:
        measured.append(("load_mb", ctx.measure_load(), test.max_load_mb, "MiB peak"))
    single, batch, cpu, samples = _latency(ctx, test.repeats)
    measured += [("single_ms", single, test.max_single_ms, "ms, median"),
                 ("batch_ms", batch, test.max_batch_ms, f"ms per {BATCH} rows, median"),
                 ("cpu_ms_per_1000", cpu, test.max_cpu_ms_per_1000, f"CPU ms per {BATCH} predictions")]
    rows = [{"measure": name, "value": round(value, 4), "limit": limit, "unit": unit,
             "status": "—" if limit is None else "passed" if value <= limit else "failed"}
            for name, value, limit, unit in measured]
    over = [r for r in rows if r["status"] == "failed"]
    first = over[0] if over else next(r for r in rows if r["limit"] is not None)
    return GateOutcome(not over, value=first["value"], threshold=first["limit"], evidence=rows,
                       details={"measures": {r["measure"]: r["value"] for r in rows}, "repeats": test.repeats,
                                "latency_ms": samples},
                       message=("over budget: " + ", ".join(f"{r['measure']} {r['value']:g} > {r['limit']:g}"
                                                            for r in over)) if over else
                       "within budget: " + ", ".join(f"{r['measure']} {r['value']:g} <= {r['limit']:g}"
                                                     for r in rows if r["limit"] is not None))


def _latency(ctx: GateContext, repeats: int) -> tuple[float, float, float, dict[str, list[float]]]:
    frame = ctx.frame
    one = frame.iloc[:1]
    batch = frame.iloc[np.resize(np.arange(len(frame)), BATCH)] if len(frame) else frame
    ctx.predict(one)  # warm: first calls build caches
    ctx.predict(batch)
    singles = [_clock(ctx, one) for _ in range(repeats)]
    cpu_start = time.process_time()
    batches = [_clock(ctx, batch) for _ in range(repeats)]
    cpu_ms = (time.process_time() - cpu_start) * 1e3 / repeats * BATCH / max(len(batch), 1)
    samples = {"single": [s * 1e3 for s in singles], "batch": [b * 1e3 for b in batches]}
    return statistics.median(singles) * 1e3, statistics.median(batches) * 1e3, cpu_ms, samples


def _clock(ctx: GateContext, frame: pd.DataFrame) -> float:
    start = time.perf_counter()
    ctx.predict(frame)
    return time.perf_counter() - start


def measure_load_mb(folder: Path, trusted: bool) -> float:
    """Peak resident memory a fresh process gains loading the package in ``folder`` (MiB)."""
    done = subprocess.run([sys.executable, "-m", "keel.gates.load_probe", str(folder), "1" if trusted else "0"],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONHASHSEED": "0"})
    if done.returncode != 0:
        raise StorageError(f"measuring the memory to load the model failed: {done.stderr.strip()[-500:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return float(result["peak_mb"])
