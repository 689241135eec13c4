"""Evidently's and the floor's sides of benchmarks/drift.py, and the memory probe every drift child uses.

Standard library at the top; each mode imports what its venv has. Not meant to be run by hand. ``drift.py``
writes the reference and current tables as Parquet files and a spec as JSON, then runs one of:

``python _drift_worker.py floor SPEC.json``
    with keel's interpreter (its numpy, scipy and pyarrow) but without importing keel, so the floor's memory is
    the floor's: reads both files as Arrow tables (untimed), runs once on the first ``warmup_rows`` rows (untimed),
    then times ``repeats`` runs of ``floor_stats`` on the whole tables.

``python _drift_worker.py evidently SPEC.json``
    with the interpreter of Evidently's own venv (``benchmarks/.venv-evidently``): reads both files into pandas
    frames (pyarrow, untimed), runs the data drift report once on the first ``warmup_rows`` rows of each (untimed:
    lazy imports, first-call costs), then ``repeats`` times on the whole frames, each run timed from
    ``Report([DataDriftPreset()])`` to its results as a dictionary (``snapshot.dict()``); every column's drift
    score and method as Evidently reports them (``ValueDrift``) go back for the agreement check. Each timed run
    is stopped after ``timeout_s`` (SIGALRM); the answer then says so.

Each prints one JSON document on stdout (``_worker_io.answer``): the timings, the memory (``Memory``) and the
per-column statistics. ``Memory`` is imported by ``drift.py`` for keel's children, so that every target's memory
is measured the same way.
"""

from __future__ import annotations

import gc
import signal
import sys
import time
from pathlib import Path
from typing import Any

from _worker_io import answer

EVIDENTLY_METHODS = {"Wasserstein distance (normed)": "wasserstein", "Jensen-Shannon distance": "jensenshannon",
                     "K-S p_value": "ks", "chi-square p_value": "chisquare", "Z-test p_value": "z", "PSI": "psi"}


class Memory:
    """Resident memory of this process, by phase, from /proc/self/status (Linux).

    ``VmHWM`` is the kernel's high-water mark of the resident set: what ``getrusage().ru_maxrss`` reports.
    ``mark(phase)`` records the high-water mark since the previous mark, hands memory freed but kept by the
    allocators back to the system (``gc.collect()``, pyarrow's ``release_unused``: Parquet decoding leaves
    hundreds of MB cached in the pool for a while, which would otherwise count as data held), records the
    resident size, then resets the mark (``echo 5 > /proc/self/clear_refs``), so each phase's peak is its own:
    loading the data does not count as the computation's peak. ``peak_mb`` is the largest of all phases: the
    process's lifetime peak. Where the reset is not available every phase peak is cumulative (``hwm_reset``).
    """

    def __init__(self) -> None:
        self.phases: dict[str, dict[str, float]] = {}
        self.resettable = self._reset()

    @staticmethod
    def status(pid: int | str = "self") -> dict[str, float]:
        """``VmRSS`` and ``VmHWM`` of a process in MB (empty when it is gone)."""
        out: dict[str, float] = {}
        try:
            text = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return out
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024.0
        return out

    @staticmethod
    def _reset() -> bool:
        try:
            with open("/proc/self/clear_refs", "w") as out:
                out.write("5")
        except OSError:
            return False
        return True

    def mark(self, phase: str) -> dict[str, float]:
        peak = self.status().get("VmHWM")
        gc.collect()
        if "pyarrow" in sys.modules:
            sys.modules["pyarrow"].default_memory_pool().release_unused()
        now = self.status()
        if peak is None or "VmRSS" not in now:  # no /proc: the lifetime peak, in MB (Linux: ru_maxrss in kB)
            import resource

            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
            now = {"VmRSS": peak}
        self.phases[phase] = {"peak_mb": round(peak, 1), "rss_after_mb": round(now["VmRSS"], 1)}
        self.resettable = self._reset() and self.resettable
        return self.phases[phase]

    def report(self, work: str = "work", before: str = "warmup") -> dict[str, Any]:
        """Peak of the timed phase, what the process held when it started, and the lifetime peak."""
        phases = self.phases
        return {"work_peak_mb": phases[work]["peak_mb"] if work in phases else None,
                "held_mb": phases[before]["rss_after_mb"] if before in phases else None,
                "peak_mb": max(p["peak_mb"] for p in phases.values()), "phases": phases,
                "hwm_reset": self.resettable}


class _Timeout(Exception):
    pass


def _alarm(_signum: int, _frame: Any) -> None:
    raise _Timeout


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in ("evidently", "floor"):
        sys.exit("usage: _drift_worker.py evidently|floor SPEC.json  (run by benchmarks/drift.py)")
    return answer(evidently if argv[1] == "evidently" else floor, argv[2])


# -- the floor ----------------------------------------------------------------------------------------------

DISTANCE_THRESHOLD = 0.1  # Evidently's default for wasserstein and jensenshannon


def floor_stats(reference: Any, current: Any) -> dict[str, dict[str, Any]]:
    """Every column's statistic on the full data with numpy/scipy, one pass over the columns (Arrow tables in).

    Numeric: ``scipy.stats.wasserstein_distance(ref, cur) / max(np.std(ref), 0.001)`` on the finite values;
    strings: ``scipy.spatial.distance.jensenshannon`` of the shares over the union of the categories, counted
    by ``pyarrow.compute.value_counts``. These are the numbers of Evidently's default data drift (reference of
    more than 1,000 rows), on the full data.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    from scipy import stats
    from scipy.spatial import distance

    def finite(col: Any) -> Any:
        x = np.asarray(col.to_numpy(), dtype=np.float64)
        keep = np.isfinite(x)
        return x if keep.all() else x[keep]

    out = {}
    for name in reference.column_names:
        ref, cur = reference.column(name), current.column(name)
        if pa.types.is_string(ref.type) or pa.types.is_large_string(ref.type):
            rc, cc = pc.value_counts(ref.drop_null()), pc.value_counts(cur.drop_null())
            r = dict(zip(rc.field("values").to_pylist(), rc.field("counts").to_pylist(), strict=True))
            c = dict(zip(cc.field("values").to_pylist(), cc.field("counts").to_pylist(), strict=True))
            keys = sorted(r.keys() | c.keys())
            rp = np.array([r.get(key, 0) for key in keys], dtype=np.float64)
            cp = np.array([c.get(key, 0) for key in keys], dtype=np.float64)
            value, method = float(distance.jensenshannon(rp / rp.sum(), cp / cp.sum())), "jensenshannon"
        else:
            u, v = finite(ref), finite(cur)
            value = float(stats.wasserstein_distance(u, v)) / max(float(np.std(u)), 0.001)
            method = "wasserstein"
        out[name] = {"method": method, "statistic": value, "drifted": value >= DISTANCE_THRESHOLD}
    return out


def floor(spec: dict[str, Any]) -> dict[str, Any]:
    memory = Memory()
    import pyarrow.parquet as pq
    import scipy.spatial.distance
    import scipy.stats  # noqa: F401  (imported before the memory mark, as every target's)

    memory.mark("imports")
    started = time.perf_counter()
    reference = pq.read_table(spec["reference"])
    current = pq.read_table(spec["current"])
    load_s = time.perf_counter() - started
    gc.collect()
    memory.mark("load")
    warm = spec["warmup_rows"]
    floor_stats(reference.slice(0, warm), current.slice(0, warm))
    gc.collect()
    memory.mark("warmup")
    times, columns = [], {}
    for _ in range(spec["repeats"]):
        started = time.perf_counter()
        columns = floor_stats(reference, current)
        times.append(time.perf_counter() - started)
        gc.collect()
    memory.mark("work")
    return {"target": "floor", "times_s": times, "load_s": load_s, "columns": columns, "memory": memory.report(),
            "versions": _versions(["numpy", "scipy", "pyarrow"])}


# -- Evidently ----------------------------------------------------------------------------------------------


def evidently(spec: dict[str, Any]) -> dict[str, Any]:
    memory = Memory()
    import evidently as ev
    import pandas as pd
    import pyarrow.parquet as pq
    from evidently import Report
    from evidently.presets import DataDriftPreset

    memory.mark("imports")
    started = time.perf_counter()
    reference = pq.read_table(spec["reference"]).to_pandas()
    current = pq.read_table(spec["current"]).to_pandas()
    load_s = time.perf_counter() - started
    gc.collect()
    memory.mark("load")

    def report(cur: pd.DataFrame, ref: pd.DataFrame) -> dict[str, Any]:
        snapshot = Report([DataDriftPreset()]).run(cur, ref)
        return snapshot.dict()

    warm = spec["warmup_rows"]
    started = time.perf_counter()
    report(current.head(warm), reference.head(warm))
    warmup_s = time.perf_counter() - started
    gc.collect()
    memory.mark("warmup")
    times: list[float] = []
    result: dict[str, Any] | None = None
    timed_out = False
    signal.signal(signal.SIGALRM, _alarm)
    for _ in range(spec["repeats"]):
        signal.setitimer(signal.ITIMER_REAL, float(spec["timeout_s"]))
        started = time.perf_counter()
        try:
            result = report(current, reference)
        except _Timeout:
            timed_out = True
            break
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        times.append(time.perf_counter() - started)
        gc.collect()
    memory.mark("work")
    columns: dict[str, Any] = {}
    drifted_count = None
    for metric in (result or {}).get("metrics", []):
        config = metric.get("config", {})
        kind = config.get("type", "")
        if kind.endswith("ValueDrift"):
            method = config.get("method")
            value = None if metric["value"] is None else float(metric["value"])
            method = EVIDENTLY_METHODS.get(method, method)
            columns[config["column"]] = {"method": method, "statistic": value, "threshold": config.get("threshold"),
                                         "drifted": _drifted(method, value, config.get("threshold"))}
        elif kind.endswith("DriftedColumnsCount"):
            drifted_count = {k: float(v) for k, v in metric["value"].items()} if isinstance(metric["value"], dict) \
                else metric["value"]
    return {"times_s": times, "load_s": load_s, "warmup_s": warmup_s, "timed_out": timed_out,
            "timeout_s": spec["timeout_s"], "memory": memory.report(), "columns": columns,
            "drifted_columns_count": drifted_count,
            "api": "evidently.Report([evidently.presets.DataDriftPreset()]).run(current_df, reference_df).dict()",
            "versions": _versions(["evidently", "pandas", "numpy", "scipy", "pyarrow"]), "evidently": ev.__version__}


def _drifted(method: str, value: float | None, threshold: float | None) -> bool | None:
    """Evidently's verdict: distances drift at or above the threshold, p-values below it (K-S: at or below)."""
    if value is None or threshold is None:
        return None
    if method in ("wasserstein", "jensenshannon", "psi"):
        return bool(value >= threshold)
    return bool(value <= threshold if method == "ks" else value < threshold)


def _versions(names: list[str]) -> dict[str, str | None]:
    from _common import package_versions  # standard library only: importable from any venv

    return package_versions(names)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
