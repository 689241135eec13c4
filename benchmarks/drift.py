"""Benchmark for issue 8, "Monitoring": keel's data drift vs Evidently's data drift report vs a numpy/scipy floor.

Data, generated here (seeded, no downloads): a reference and a current table of the same schema, mixed types, in
a fixed 20-column pattern: 70% float columns (normal, lognormal, exponential, uniform, Student t, beta, a bimodal
mixture; every sixth one with 2-3% NaN), 15% integer columns (Poisson, uniform 0-999: numeric for keel and
Evidently alike, more than 10 distinct values) and 15% string categories with 5-50 levels. Some columns of the
current are shifted: about a fifth strongly (location by 0.3 sd, scale x1.5, Poisson rate x1.3, +60 on 0-999,
categories' shares moved), another fifth slightly (below the drift thresholds). Sizes: reference = current =
100k x 50 and 1M x 100 (``--quick``: 20k x 20). ``drift.py`` writes them as Parquet; every target reads them.

Targets, each in a child process of its own (so each one's memory is its own), side by side in one run:

1. floor       numpy/scipy on the full reference and current columns, one pass, no framework: numeric columns
               ``scipy.stats.wasserstein_distance(ref, cur) / max(np.std(ref), 0.001)`` on the finite values,
               categorical columns ``scipy.spatial.distance.jensenshannon`` of the shares over the union of the
               categories (counts by ``pyarrow.compute.value_counts``): the least work that computes the numbers
               Evidently's default data drift computes, on the full data.
2. keel        ``keel.monitoring.drift.dataset_drift(sketch, current)``: what a monitor runs every window. The
               sketch of the reference (``build_sketch(reference, max_sample=20_000)``, as the monitoring service
               stores it, ``keel.monitoring.reference.MAX_SAMPLE``) is built beforehand in its own child and stored
               as keel stores baselines (gzip'd JSON); the window's child loads it and the current table (Arrow,
               as the monitor reads windows) and times ``dataset_drift`` only. The build (its time and memory) is
               a row of its own ("keel, sketch build (one-off)"). On the smallest size keel also runs with an
               exact sketch (``max_sample`` = the reference's rows) to check that its statistics are the floor's.
               A diagnostic row runs the same window child with ``OPENBLAS_NUM_THREADS=1``: keel's Wasserstein ends
               in ``np.dot`` over reference + current values, which OpenBLAS splits over threads above 10,000 values.
3. Evidently   ``Report([DataDriftPreset()]).run(current_df, reference_df)`` then ``snapshot.dict()`` (Evidently
               0.7's API, the default preset), on pandas frames read from the same Parquet files, in Evidently's own
               venv (``benchmarks/.venv-evidently``: evidently, pandas<3, pyarrow; never in keel's venv), run by
               ``_drift_worker.py``. Each run is stopped after ``--evidently-timeout`` seconds (default 900).

Timing: each child loads its data (untimed), runs once on the first 2,000 rows (untimed warm-up), then times
``--repeats`` runs (default 3 on 100k rows or fewer, 1 on 1M) and the median is reported; the targets run one
after the other, not interleaved. Memory: each child's resident set from /proc/self/status, by phase
(``_drift_worker.Memory``): ``VmHWM`` (the high-water mark ``ru_maxrss`` reports) is reset
(``/proc/self/clear_refs``) after the data is loaded and the warm-up ran, so "peak MB" is the high-water mark
during the timed runs, data held included; "held MB" is what the process held when they started (interpreter,
imports, data, sketch; measured after ``gc.collect()`` and pyarrow's ``release_unused``, so memory cached by the
Parquet reader does not count); "process peak" is the lifetime high-water mark (loading included). The parent
also samples each child's ``VmHWM``, for children that get killed.

Agreement: keel's per-column statistic against the floor's, and Evidently's (``ValueDrift`` scores) against the
floor's: the largest absolute difference per method, and whether the same columns drift. keel's Wasserstein uses a
20k-value sample of the reference, so it is not the full-data number at 1M rows; the exact-sketch run shows that
the difference is the sample's, not the method's.

Targets (issue 8): keel's per-window time <= 1.5x the floor's at each size; keel's per-window memory does not grow
with the reference's size: the same current window (100k x 100; ``--quick``: 2k x 20) against the sketch of a 100k
and of a 1M reference (``--quick``: 2k and 20k) — peak and process peak within 10%. Printed PASS/FAIL; the exit
code is 0 either way (a measurement). Results: benchmarks/results/drift.json.

    .venv/bin/python benchmarks/drift.py              # full run: 100k x 50 and 1M x 100 (about 25 minutes on
                                                      # 2 cores, 15 of them Evidently's 1M run up to its timeout)
    .venv/bin/python benchmarks/drift.py --quick      # smoke check: 20k x 20 (about 1.5 minutes)
    .venv/bin/python benchmarks/drift.py --profile    # also cProfile one dataset_drift on the largest size
"""

from __future__ import annotations

import argparse
import gc
import gzip
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import keel
from _common import (
    BENCH_DIR,
    RESULTS_DIR,
    fresh_dir,
    keel_dependency_versions,
    machine_info,
    peer_venv,
    write_results,
)
from _drift_worker import Memory
from _worker_io import answer
from keel.monitoring.reference import MAX_SAMPLE

EVIDENTLY_REQUIREMENTS = ["evidently", "pandas<3", "pyarrow"]
TIME_TARGET = 1.5  # keel's per-window seconds over the floor's, at most
GROWTH_TOLERANCE = 0.10  # keel's per-window peak with the large reference over the small one's, at most 1 + this
FULL_SIZES = [(100_000, 50), (1_000_000, 100)]
QUICK_SIZES = [(20_000, 20)]
WARMUP_ROWS = 2_000
ONE_BLAS_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # diagnostic row ²
PATTERN = "FFIFFSFFFIFFSFFFIFSF"  # 14 float, 3 integer, 3 string columns in every 20
FLOAT_DISTS = ("normal", "lognormal", "exponential", "uniform", "student_t", "beta", "mixture")
ISSUE_REFERENCE = {"evidently_over_floor_time": "15-17x", "evidently_over_floor_memory": "2x",
                   "evidently_356k_x_100_minutes": 23, "evidently_10m_rows": "out of memory"}


# -- data ---------------------------------------------------------------------------------------------------

def schema(cols: int, seed: int) -> list[dict[str, Any]]:
    """Column specs; column i depends on (seed, i) only, so a narrower table is a prefix of a wider one."""
    specs, counters = [], {"F": 0, "I": 0, "S": 0}
    for i in range(cols):
        kind = PATTERN[i % len(PATTERN)]
        k = counters[kind]
        counters[kind] += 1
        rng = np.random.default_rng([seed, i, 2])
        if kind == "F":
            shift = ("scale" if k % 10 == 6 else "location") if k % 5 == 1 else "slight" if k % 5 == 3 else None
            spec = {"name": f"f{i:03d}", "kind": "float", "dist": FLOAT_DISTS[k % len(FLOAT_DISTS)], "k": k,
                    "shift": shift, "missing": k % 6 == 2}
            probe = draw_float(spec, rng, 20_000)
            spec.update(mean=float(probe.mean()), sd=float(probe.std()))
        elif kind == "I":
            shift = "strong" if k % 4 == 1 else "slight" if k % 4 == 3 else None
            spec = {"name": f"i{i:03d}", "kind": "int", "dist": "poisson" if k % 2 == 0 else "uniform_int",
                    "lam": 8.0 + 4 * (k % 5), "shift": shift}
        else:
            levels = 5 + (k * 17) % 46
            p = rng.dirichlet(np.full(levels, 2.0)) * 0.8 + 0.2 / levels
            shift = "strong" if k % 3 == 1 else "slight" if k % 3 == 2 else None
            q = p
            if shift == "strong":
                q = 0.4 * p + 0.6 * np.roll(p, levels // 2)
            elif shift == "slight":
                q = 0.95 * p + 0.05 / levels
            spec = {"name": f"s{i:03d}", "kind": "string", "levels": [f"v{j:02d}" for j in range(levels)],
                    "p": (p / p.sum()).tolist(), "q": (q / q.sum()).tolist(), "shift": shift}
        specs.append(spec)
    return specs


def draw_float(spec: dict[str, Any], rng: np.random.Generator, n: int) -> np.ndarray:
    dist, k = spec["dist"], spec["k"]
    if dist == "normal":
        return rng.normal(10.0 * (k % 5) - 20.0, 1.0 + k % 3, n)
    if dist == "lognormal":
        return rng.lognormal(0.0, 0.6, n)
    if dist == "exponential":
        return rng.exponential(2.0, n)
    if dist == "uniform":
        return rng.uniform(-5.0, 5.0, n)
    if dist == "student_t":
        return rng.standard_t(4, n) * 2.0
    if dist == "beta":
        return rng.beta(2.0, 5.0, n)
    return np.where(rng.random(n) < 0.7, rng.normal(0.0, 1.0, n), rng.normal(4.0, 0.5, n))


def make_column(spec: dict[str, Any], rows: int, seed: int, index: int, current: bool) -> pa.Array:
    rng = np.random.default_rng([seed, index, 1 if current else 0])
    shift = spec["shift"] if current else None
    if spec["kind"] == "float":
        x = draw_float(spec, rng, rows)
        if shift == "location":
            x = x + 0.3 * spec["sd"]
        elif shift == "scale":
            x = spec["mean"] + (x - spec["mean"]) * 1.5
        elif shift == "slight":
            x = x + 0.03 * spec["sd"]
        if spec["missing"]:
            x[rng.random(rows) < (0.03 if current else 0.02)] = np.nan  # NaN, not null: as a float column has it
        return pa.array(x)
    if spec["kind"] == "int":
        factor = {"strong": 1.3, "slight": 1.02}.get(shift, 1.0)
        if spec["dist"] == "poisson":
            return pa.array(rng.poisson(spec["lam"] * factor, rows).astype(np.int64))
        offset = {"strong": 60, "slight": 5}.get(shift, 0)
        return pa.array(rng.integers(0, 1000, rows, dtype=np.int64) + offset)
    index_values = rng.choice(len(spec["levels"]), size=rows, p=spec["q"] if current else spec["p"])
    return pa.DictionaryArray.from_arrays(pa.array(index_values.astype(np.int32)),
                                          pa.array(spec["levels"])).cast(pa.string())


def make_table(rows: int, cols: int, seed: int, current: bool) -> pa.Table:
    specs = schema(cols, seed)
    return pa.table({s["name"]: make_column(s, rows, seed, i, current) for i, s in enumerate(specs)})


def write_data(work: Path, sizes: list[tuple[int, int]], growth: dict[str, int], seed: int) -> dict[str, Any]:
    """Parquet files of every size, and the growth check's smaller reference and current (prefixes of the largest)."""
    files: dict[str, Any] = {}
    for rows, cols in sizes:
        for side in ("reference", "current"):
            started = time.perf_counter()
            table = make_table(rows, cols, seed, current=side == "current")
            path = work / f"{side}-{rows}x{cols}.parquet"
            pq.write_table(table, path)
            files[(side, rows, cols)] = path
            print(f"  {side} {rows:,} x {cols}: {time.perf_counter() - started:.1f} s, "
                  f"{path.stat().st_size / 2**20:,.0f} MB Parquet", flush=True)
            if (rows, cols) == (growth["large"], growth["cols"]):
                small = work / f"{side}-{growth['small']}x{cols}.parquet"
                pq.write_table(table.slice(0, growth["small"]), small)
                files[(side, growth["small"], cols)] = small
            del table
            gc.collect()
    return files


# -- keel's children (this file, keel's venv); the floor and Evidently are in _drift_worker.py -------------

def child(spec: dict[str, Any]) -> dict[str, Any]:
    """One keel target in its own process (``drift.py --child SPEC.json``): ``keel-build`` (the sketch of a
    reference, stored as keel stores baselines), ``keel-window`` (``dataset_drift`` of a current table against a
    stored sketch) or ``keel-profile`` (one such call under cProfile). Answers one JSON document."""
    memory = Memory()
    target = spec["target"]
    from keel.monitoring.drift import dataset_drift
    from keel.monitoring.sketch import ReferenceSketch, build_sketch

    memory.mark("imports")
    out: dict[str, Any] = {"target": target}
    started = time.perf_counter()
    if target == "keel-build":
        import orjson

        reference = pq.read_table(spec["reference"])
        out["load_s"] = time.perf_counter() - started
        gc.collect()
        memory.mark("load")
        build_sketch(reference.slice(0, spec["warmup_rows"]), max_sample=spec["max_sample"])
        gc.collect()
        memory.mark("warmup")
        started = time.perf_counter()
        sketch = build_sketch(reference, max_sample=spec["max_sample"])
        out["times_s"] = [time.perf_counter() - started]
        memory.mark("work")
        started = time.perf_counter()
        blob = gzip.compress(orjson.dumps(sketch.to_dict()), compresslevel=5)  # as keel's Baseline.to_bytes
        Path(spec["sketch"]).write_bytes(blob)
        out["store_s"] = time.perf_counter() - started
        out["sketch_bytes"] = len(blob)
        out["kinds"] = {name: col.kind for name, col in sketch.columns.items()}
        out["sample_values"] = int(sum(col.sample.size for col in sketch.columns.values()))
        memory.mark("store")
        out["memory"] = memory.report()
        return out
    import orjson

    sketch = ReferenceSketch.from_dict(orjson.loads(gzip.decompress(Path(spec["sketch"]).read_bytes())))
    out["sketch_load_s"] = time.perf_counter() - started
    started = time.perf_counter()
    current = pq.read_table(spec["current"])
    out["load_s"] = time.perf_counter() - started

    def run(cur: pa.Table) -> dict[str, dict[str, Any]]:
        result = dataset_drift(sketch, cur)
        return {name: {"method": col.method, "statistic": col.statistic, "drifted": col.drifted}
                for name, col in result.columns.items()}

    gc.collect()
    memory.mark("load")
    run(current.slice(0, spec["warmup_rows"]))
    gc.collect()
    memory.mark("warmup")
    if target == "keel-profile":
        return profile(spec, lambda: run(current))
    times, columns = [], {}
    for _ in range(spec["repeats"]):
        started = time.perf_counter()
        columns = run(current)
        times.append(time.perf_counter() - started)
        gc.collect()
    memory.mark("work")
    out.update(times_s=times, columns=columns, memory=memory.report())
    return out


def profile(spec: dict[str, Any], call: Any) -> dict[str, Any]:
    """cProfile of one ``dataset_drift`` call: the top functions by own and by cumulative time."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    started = time.perf_counter()
    prof.runcall(call)
    wall = time.perf_counter() - started
    prof.dump_stats(spec["prof"])
    st = pstats.Stats(prof)
    rows = []
    for (file, line, func), (_cc, calls, own, cum, _callers) in st.stats.items():  # type: ignore[attr-defined]
        where = f"{Path(file).parent.name}/{Path(file).name}:{line}" if line else file
        rows.append({"function": f"{func} ({where})", "calls": calls, "own_s": own, "cumulative_s": cum})
    top_own = sorted(rows, key=lambda r: -r["own_s"])[:15]
    top_cum = sorted(rows, key=lambda r: -r["cumulative_s"])[:25]
    return {"target": "keel-profile", "profiled_s": wall, "top_own": top_own, "top_cumulative": top_cum,
            "prof": spec["prof"]}


# -- running the children -----------------------------------------------------------------------------------

def run_child(command: list[str], spec: dict[str, Any], work: Path, label: str, timeout: float,
              env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one child with its spec; its answer, or an ``error`` (timed out, killed, failed) with the highest
    resident memory the parent saw it use."""
    spec_path = work / f"{label}.json"
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    out_path, err_path = work / f"{label}.out", work / f"{label}.err"
    seen = {"peak_mb": 0.0}
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen([*command, str(spec_path)], stdout=out, stderr=err, start_new_session=True,
                                env={**os.environ, **(env or {})})
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.25):
                status = Memory.status(proc.pid)
                seen["peak_mb"] = max(seen["peak_mb"], status.get("VmHWM", 0.0), status.get("VmRSS", 0.0))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.perf_counter()
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return {"error": f"timed out after {timeout:.0f} s", "seen_peak_mb": seen["peak_mb"],
                    "wall_s": time.perf_counter() - started}
        finally:
            done.set()
            sampler.join()
    if code != 0:
        tail = err_path.read_text(errors="replace")[-2500:]
        why = ("killed by SIGKILL (likely out of memory)" if code in (-9, 137) else f"exited with {code}")
        return {"error": why, "stderr_tail": tail, "seen_peak_mb": seen["peak_mb"],
                "wall_s": time.perf_counter() - started}
    result = json.loads(out_path.read_text(encoding="utf-8"))
    result["seen_peak_mb"] = seen["peak_mb"]
    result["wall_s"] = time.perf_counter() - started
    return result


def keel_child(work: Path, label: str, spec: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, Any]:
    """A keel target (this file, ``--child``) or, for ``target: floor``, the floor (``_drift_worker.py floor``,
    keel's interpreter without keel imported)."""
    print(f"  {label} ...", flush=True)
    command = ([sys.executable, str(BENCH_DIR / "_drift_worker.py"), "floor"] if spec["target"] == "floor"
               else [sys.executable, __file__, "--child"])
    res = run_child(command, spec, work, label, 3600, env)
    _progress(label, res)
    return res


def _progress(label: str, res: dict[str, Any]) -> None:
    if "error" in res:
        print(f"    {label}: {res['error']}", flush=True)
    elif res.get("times_s"):
        print(f"    {label}: {', '.join(f'{t:.2f}' for t in res['times_s'])} s", flush=True)


def run_sizes(args: argparse.Namespace, sizes: list[tuple[int, int]], growth: dict[str, int], files: dict,
              work: Path, evidently_python: Path | None) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for n, (rows, cols) in enumerate(sizes):
        key = f"{rows}x{cols}"
        repeats = args.repeats or (3 if rows <= 100_000 else 1)
        ref, cur = str(files[("reference", rows, cols)]), str(files[("current", rows, cols)])
        sketch = str(work / f"sketch-{key}.json.gz")
        common = {"warmup_rows": WARMUP_ROWS, "repeats": repeats}
        print(f"{rows:,} x {cols} ({repeats} timed run{'s' if repeats > 1 else ''} a target):", flush=True)
        res: dict[str, Any] = {"rows": rows, "cols": cols, "repeats": repeats}
        res["floor"] = keel_child(work, f"floor-{key}", {**common, "target": "floor", "reference": ref,
                                                         "current": cur})
        res["keel_build"] = keel_child(work, f"keel-build-{key}", {**common, "target": "keel-build",
                                                                   "reference": ref, "sketch": sketch,
                                                                   "max_sample": MAX_SAMPLE})
        res["keel"] = keel_child(work, f"keel-window-{key}", {**common, "target": "keel-window", "current": cur,
                                                              "sketch": sketch})
        res["keel_blas1"] = keel_child(work, f"keel-window-{key}-blas1", {
            **common, "target": "keel-window", "current": cur, "sketch": sketch}, env=ONE_BLAS_THREAD)
        if n == 0:  # exactness: a sketch that keeps every reference value
            exact = str(work / f"sketch-{key}-exact.json.gz")
            res["keel_exact_build"] = keel_child(work, f"keel-build-{key}-exact", {
                **common, "target": "keel-build", "reference": ref, "sketch": exact,
                "max_sample": max(rows, MAX_SAMPLE)})
            res["keel_exact"] = keel_child(work, f"keel-window-{key}-exact", {
                **common, "target": "keel-window", "current": cur, "sketch": exact})
        if evidently_python is not None:
            print(f"  evidently-{key} (each run stopped after {args.evidently_timeout:g} s) ...", flush=True)
            spec = {**common, "reference": ref, "current": cur, "timeout_s": args.evidently_timeout}
            res["evidently"] = run_child([str(evidently_python), str(BENCH_DIR / "_drift_worker.py"), "evidently"],
                                         spec, work, f"evidently-{key}", args.evidently_timeout * repeats + 900)
            if res["evidently"].get("timed_out") and not res["evidently"].get("times_s"):
                res["evidently"]["error"] = f"timed out after {args.evidently_timeout:g} s"
            _progress(f"evidently-{key}", res["evidently"])
        results[key] = res
    # memory growth: the same current window against the sketches of a small and a large reference
    small, large, cols = growth["small"], growth["large"], growth["cols"]
    print(f"memory growth: current {small:,} x {cols} against the sketch of {small:,} and of {large:,} reference "
          "rows:", flush=True)
    cur = str(files[("current", small, cols)])
    repeats = args.repeats or 3
    small_sketch = str(work / f"sketch-{small}x{cols}.json.gz")
    out: dict[str, Any] = {"small": small, "large": large, "cols": cols, "current_rows": small}
    out["build_small"] = keel_child(work, f"keel-build-{small}x{cols}", {
        "target": "keel-build", "reference": str(files[("reference", small, cols)]), "sketch": small_sketch,
        "max_sample": MAX_SAMPLE, "warmup_rows": min(WARMUP_ROWS, small), "repeats": 1})
    for which, path in (("small", small_sketch), ("large", str(work / f"sketch-{large}x{cols}.json.gz"))):
        out[f"window_{which}"] = keel_child(work, f"keel-window-growth-{which}", {
            "target": "keel-window", "current": cur, "sketch": path, "warmup_rows": min(WARMUP_ROWS, small),
            "repeats": repeats})
    results["growth"] = out
    if args.profile:
        rows, cols = sizes[-1]
        key = f"{rows}x{cols}"
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        results["profile"] = keel_child(work, f"keel-profile-{key}", {
            "target": "keel-profile", "current": str(files[("current", rows, cols)]),
            "sketch": str(work / f"sketch-{key}.json.gz"), "warmup_rows": WARMUP_ROWS, "repeats": 1,
            "prof": str(RESULTS_DIR / "drift-window.prof")})
        results["profile"]["size"] = key
    return results


# -- report -------------------------------------------------------------------------------------------------

def _median(res: dict[str, Any]) -> float | None:
    times = res.get("times_s") or []
    return statistics.median(times) if times and "error" not in res else None


def _mem(res: dict[str, Any], key: str) -> float | None:
    return (res.get("memory") or {}).get(key)


def agreement(ours: dict[str, Any], floor: dict[str, Any]) -> dict[str, Any]:
    """Largest |difference| of the statistic per method, and the columns whose method or verdict differ."""
    diffs: dict[str, float] = {}
    every: dict[str, list[float]] = {}
    methods, verdicts, missing = [], [], []
    for name, base in floor.items():
        got = ours.get(name)
        if got is None or got.get("statistic") is None:
            missing.append(name)
            continue
        if got["method"] != base["method"]:
            methods.append(name)
            continue
        d = abs(float(got["statistic"]) - base["statistic"])
        diffs[base["method"]] = max(diffs.get(base["method"], 0.0), d)
        every.setdefault(base["method"], []).append(d)
        if bool(got["drifted"]) != bool(base["drifted"]):
            verdicts.append(name)
    return {"max_abs_diff": diffs, "mean_abs_diff": {m: statistics.fmean(d) for m, d in every.items()},
            "columns_compared": {m: len(d) for m, d in every.items()}, "method_differs": methods,
            "verdict_differs": verdicts, "missing": missing}


def build_report(results: dict[str, Any], sizes: list[tuple[int, int]]) -> dict[str, Any]:
    rows, verdicts, notes, agree = [], [], [], {}
    labels = [("floor", "floor: numpy/scipy on the full data"), ("keel", "keel, per window (dataset_drift)"),
              ("keel_blas1", "keel, per window, 1 BLAS thread ²"),
              ("keel_exact", "keel, per window, exact sketch ¹"), ("keel_build", "keel, sketch build (one-off)"),
              ("keel_exact_build", "keel, exact sketch build ¹"), ("evidently", "Evidently DataDriftPreset report")]
    for rows_n, cols in sizes:
        key = f"{rows_n}x{cols}"
        res = results[key]
        floor = res["floor"]
        f_t, f_m = _median(floor), _mem(floor, "work_peak_mb")
        for target, label in labels:
            r = res.get(target)
            if r is None:
                continue
            t, m = _median(r), _mem(r, "work_peak_mb")
            columns = r.get("columns") or {}
            drifted = sum(bool(c.get("drifted")) for c in columns.values()) if columns else None
            # a run stopped at the timeout: its time and the peak it reached so far are lower bounds
            lower = bool(r.get("timed_out")) and t is None
            if lower:
                t = float(r["timeout_s"])
            rows.append({"size": key, "target": target, "label": label, "seconds": t, "n": len(r.get("times_s") or []),
                         "time_over_floor": t / f_t if t and f_t else None, "peak_mb": m,
                         "memory_over_floor": m / f_m if m and f_m else None, "held_mb": _mem(r, "held_mb"),
                         "process_peak_mb": _mem(r, "peak_mb") or r.get("seen_peak_mb"),
                         "drifted": drifted, "columns": len(columns) if columns else None, "error": r.get("error"),
                         "lower_bound": lower, "samples_s": r.get("times_s")})
        k_t = _median(res["keel"])
        ratio = k_t / f_t if k_t and f_t else None
        verdicts.append({"name": f"{rows_n:,} x {cols}: keel per window <= {TIME_TARGET}x the floor's time",
                         "pass": ratio is not None and ratio <= TIME_TARGET,
                         "detail": f"keel {k_t:.3f} s vs floor {f_t:.3f} s: {ratio:.2f}x" if ratio else
                         f"no measurement ({res['keel'].get('error') or floor.get('error')})"})
        a = {"keel_vs_floor": agreement(res["keel"].get("columns") or {}, floor.get("columns") or {})}
        if "keel_exact" in res:
            a["keel_exact_vs_floor"] = agreement(res["keel_exact"].get("columns") or {}, floor.get("columns") or {})
        if res.get("evidently", {}).get("columns"):
            a["evidently_vs_floor"] = agreement(res["evidently"]["columns"], floor.get("columns") or {})
            a["keel_vs_evidently"] = agreement(res["keel"].get("columns") or {}, res["evidently"]["columns"])
        agree[key] = a
        b = res["keel_build"]
        if "error" not in b:
            notes.append(f"{key}: keel's sketch of the reference ({rows_n:,} rows, max_sample {MAX_SAMPLE:,}): "
                         f"built in {b['times_s'][0]:.2f} s, stored in {b['store_s']:.2f} s as "
                         f"{b['sketch_bytes'] / 2**20:.1f} MB gzip'd JSON ({b['sample_values']:,} sample values); "
                         f"the window's child loads it in {res['keel'].get('sketch_load_s', float('nan')):.2f} s "
                         "(untimed)")
        ev = res.get("evidently")
        if ev is not None:
            e_t, e_m = _median(ev), _mem(ev, "work_peak_mb")
            if e_t and f_t and e_m and f_m:
                notes.append(f"{key}: Evidently over the floor: {e_t / f_t:.1f}x the time, {e_m / f_m:.1f}x the peak "
                             f"memory (the issue measured {ISSUE_REFERENCE['evidently_over_floor_time']} and "
                             f"{ISSUE_REFERENCE['evidently_over_floor_memory']}); keel per window is "
                             f"{e_t / k_t:.0f}x faster than Evidently" if k_t else "")
            elif "error" in ev:
                peak = _mem(ev, "peak_mb") or ev.get("seen_peak_mb") or 0.0
                more = (f" (more than {ev['timeout_s'] / f_t:.1f}x the floor's time)" if ev.get("timed_out") and f_t
                        else "")
                notes.append(f"{key}: Evidently {ev['error']}{more}; its highest resident memory: {peak:,.0f} MB"
                             + (f", {peak / f_m:.1f}x the floor's peak" if f_m else ""))
    g = results["growth"]
    s, lg = g["window_small"], g["window_large"]
    ps, pl = _mem(s, "work_peak_mb"), _mem(lg, "work_peak_mb")
    qs, ql = _mem(s, "peak_mb"), _mem(lg, "peak_mb")
    ok = None not in (ps, pl, qs, ql) and pl <= ps * (1 + GROWTH_TOLERANCE) and ql <= qs * (1 + GROWTH_TOLERANCE)
    detail = (f"current {g['current_rows']:,} x {g['cols']}: peak {ps:,.0f} MB with a {g['small']:,}-row reference, "
              f"{pl:,.0f} MB with {g['large']:,} rows ({(pl / ps - 1):+.1%}); process peak {qs:,.0f} vs {ql:,.0f} MB "
              f"({(ql / qs - 1):+.1%}); per window {_median(s):.3f} vs {_median(lg):.3f} s"
              if ok is not None and None not in (ps, pl, qs, ql) else
              f"no measurement ({s.get('error') or lg.get('error')})")
    verdicts.append({"name": f"keel's per-window memory does not grow with the reference size (within "
                             f"{GROWTH_TOLERANCE:.0%})", "pass": bool(ok), "detail": detail})
    return {"rows": rows, "verdicts": verdicts, "notes": notes, "agreement": agree}


def _fmt(x: float | None, spec: str, suffix: str = "") -> str:
    return "—" if x is None else f"{x:{spec}}{suffix}"


def print_report(report: dict[str, Any], results: dict[str, Any], evidently: dict[str, Any] | None,
                 args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 150))
    ev = f"Evidently {evidently['evidently']}" if evidently else "Evidently not run"
    table = Table(title=f"keel drift benchmark — reference = current rows x columns, mixed types; keel "
                        f"{keel.__version__}, {ev}; median seconds, peak resident MB of each target's process",
                  title_justify="left")
    for col, justify in (("size", "left"), ("target", "left"), ("seconds", "right"), ("÷ floor", "right"),
                         ("peak MB", "right"), ("÷ floor", "right"), ("held MB", "right"),
                         ("process peak MB", "right"), ("drifted", "right")):
        table.add_column(col, justify=justify)
    last = None
    for row in report["rows"]:
        if last is not None and row["size"] != last:
            table.add_section()
        rows_n, cols = row["size"].split("x")
        size = f"{int(rows_n):,} x {cols}" if row["size"] != last else ""
        floor = row["target"] == "floor"
        if row["lower_bound"]:  # stopped at the timeout: at least this long, at least this much memory
            over, peak, mem = row["time_over_floor"], row["peak_mb"], row["memory_over_floor"]
            table.add_row(size, row["label"], f"[red]> {row['seconds']:g} (timed out)[/]",
                          "—" if over is None else f"> {over:.1f}x", "—" if peak is None else f"≥ {peak:,.0f}",
                          "—" if mem is None else f"≥ {mem:.2f}x", _fmt(row["held_mb"], ",.0f"),
                          _fmt(row["process_peak_mb"], ",.0f"), "—")
        elif row["error"]:
            table.add_row(size, row["label"], f"[red]{row['error']}[/]", "", "", "", "", _fmt(row["process_peak_mb"],
                          ",.0f", " seen"), "")
        else:
            n = f" ({row['n']})" if row["n"] > 1 else ""
            table.add_row(size, row["label"], _fmt(row["seconds"], ".3f") + n,
                          "—" if floor else _fmt(row["time_over_floor"], ".2f", "x"), _fmt(row["peak_mb"], ",.0f"),
                          "—" if floor else _fmt(row["memory_over_floor"], ".2f", "x"), _fmt(row["held_mb"], ",.0f"),
                          _fmt(row["process_peak_mb"], ",.0f"),
                          f"{row['drifted']}/{row['columns']}" if row["columns"] else "—")
        last = row["size"]
    console.print(table)
    console.print("peak MB: the process's resident high-water mark (VmHWM, what ru_maxrss reports) during the timed "
                  "runs, the data it holds included; held MB: resident when they started (interpreter, imports, data, "
                  "sketch); process peak: the lifetime high-water mark, loading included. Every target reads the same "
                  "Parquet files (untimed): keel and the floor as Arrow tables, Evidently as pandas frames. keel's "
                  "window process never reads the reference, only its stored sketch. "
                  "¹ max_sample = the reference's rows: every value kept, so keel's statistics are the full data's. "
                  "² the same window child with OPENBLAS_NUM_THREADS=1 (OMP_, MKL_ too), a diagnostic: every other "
                  "row runs in the environment as it is "
                  f"(OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}).",
                  highlight=False)
    for note in report["notes"]:
        if note:
            console.print(note, highlight=False)
    for key, a in report["agreement"].items():
        for pair, res in a.items():
            diffs = ", ".join(f"{m} {d:.2e} (mean {res['mean_abs_diff'][m]:.1e}, {res['columns_compared'][m]} columns)"
                              for m, d in sorted(res["max_abs_diff"].items())) or "nothing compared"
            extra = "".join(f"; {what.replace('_', ' ')}: {', '.join(res[what])}"
                            for what in ("method_differs", "verdict_differs", "missing") if res[what])
            console.print(f"agreement {key}, {pair.replace('_', ' ')}: max |Δ statistic|: {diffs}"
                          f"{extra or '; same drifted columns'}", highlight=False)
    prof = results.get("profile")
    if prof and "error" not in prof:
        console.print(f"profile of one dataset_drift on {prof['size']} ({prof['profiled_s']:.2f} s under cProfile; "
                      f"{prof['prof']}), top by own time:", highlight=False)
        for r in prof["top_own"][:12]:
            console.print(f"  {r['own_s']:7.3f} s own  {r['cumulative_s']:7.3f} s cum  {r['calls']:>7}  "
                          f"{r['function']}", highlight=False)
        mine = [r for r in prof["top_cumulative"] if "monitoring/" in r["function"]]
        console.print("  keel's functions by cumulative time: " + ", ".join(
            f"{r['function'].split(' (')[0]} {r['cumulative_s']:.2f} s" for r in mine), highlight=False)
    for v in report["verdicts"]:
        console.print(f"[{'green' if v['pass'] else 'red'}]{'PASS' if v['pass'] else 'FAIL'}[/] {v['name']}: "
                      f"{v['detail']}", highlight=False)


# -- main ---------------------------------------------------------------------------------------------------

def run(args: argparse.Namespace) -> int:
    info = machine_info()
    load = info["load_average_1m"]
    if load is not None and load > (info["cpu_count"] or 1) / 2:
        print(f"warning: 1-minute load average is {load:.1f} on {info['cpu_count']} cores; other work will "
              "inflate and scatter the timings", flush=True)
    evidently_python = None
    if not args.skip_evidently:
        print(f"Evidently's venv ({', '.join(EVIDENTLY_REQUIREMENTS)}) ...", flush=True)
        evidently_python = peer_venv("evidently", EVIDENTLY_REQUIREMENTS)
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    rows, cols = sizes[-1]
    growth = {"small": rows // 10 if args.quick else sizes[0][0], "large": rows, "cols": cols}
    started = time.perf_counter()
    with fresh_dir("keel-bench-drift-", base=args.workdir) as work:
        print("generating the data ...", flush=True)
        files = write_data(work, sizes, growth, args.seed)
        results = run_sizes(args, sizes, growth, files, work, evidently_python)
    evidently = next((r["evidently"] for k, r in results.items() if k not in ("growth", "profile")
                      and r.get("evidently", {}).get("evidently")), None)
    report = build_report(results, sizes)
    print_report(report, results, evidently, args)
    payload = {
        "params": {"sizes": [f"{r}x{c}" for r, c in sizes], "seed": args.seed, "repeats": args.repeats,
                   "max_sample": MAX_SAMPLE, "warmup_rows": WARMUP_ROWS, "evidently_timeout_s": args.evidently_timeout,
                   "growth": growth, "pattern": PATTERN, "schema": schema(cols, args.seed),
                   "memory": "VmHWM of each child from /proc/self/status, reset after loading (clear_refs 5): "
                             "peak during the timed runs; lifetime peak alongside",
                   "wall_s": round(time.perf_counter() - started, 1)},
        "versions": {**keel_dependency_versions(), "evidently_venv": (evidently or {}).get("versions"),
                     "evidently_api": (evidently or {}).get("api")},
        "table": report["rows"], "targets": report["verdicts"], "notes": report["notes"],
        "agreement": report["agreement"], "criteria": {"keel_over_floor_time": TIME_TARGET,
                                                       "memory_growth": GROWTH_TOLERANCE},
        "issue_reference": ISSUE_REFERENCE, "results": results,
        "load_average_1m_at_end": machine_info()["load_average_1m"],
    }
    print(f"results: {write_results('drift', payload, machine=info)} (wall {payload['params']['wall_s']:.0f} s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke check: 20k x 20 only")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs a target (default 3 on 100k rows or "
                                                                  "fewer, 1 on 1M)")
    parser.add_argument("--evidently-timeout", type=float, default=900.0,
                        help="seconds one Evidently report may take before it is stopped (default 900)")
    parser.add_argument("--skip-evidently", action="store_true", help="leave Evidently out")
    parser.add_argument("--profile", action="store_true", help="also cProfile one dataset_drift on the largest size "
                                                               "(results/drift-window.prof)")
    parser.add_argument("--seed", type=int, default=8, help="seed of the generated data (default 8)")
    parser.add_argument("--workdir", default=None, help="where the Parquet files and sketches go (default: the "
                                                        "system temp dir, removed afterwards)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return answer(child, args.child)
    if (args.repeats is not None and args.repeats < 1) or args.evidently_timeout <= 0:
        parser.error("--repeats and --evidently-timeout must be positive")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
