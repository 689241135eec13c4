"""Benchmark for issue 3, "Experiment tracking": keel's runs against MLflow and a raw sqlite3 floor.

Measured side by side in one run, on the same seeded data (every side logs the very same values):

1. log_metric loop  10,000 ``log_metric`` calls in one run, until the values are stored: keel's loop plus
                    ``ws.runs.flush()``; ``mlflow.log_metric`` (a transaction a call); floor: sqlite3,
                    one INSERT per point inside one transaction, committed at the end (the raw floor of a
                    buffered design)
2. batches          the same values, keel as ``run.log_metrics`` of 100 keys x 100 steps then a flush;
                    MLflow ``MlflowClient.log_batch`` with 1,000 metrics a call; floor: one executemany in
                    one transaction
3. run creation     500 runs x 10 params x 10 metrics, one after the other: keel start / log_params /
                    log_metrics / end; MLflow start_run / log_params / log_metrics / end_run; floor: one
                    transaction per run inserting the run row, its 10 params and 10 metrics
4. search           over those 500 runs, ``metrics.m0 < 0.75 and params.p0 = '3'`` sorted by m1 descending,
                    top 100 (125 or so match): ``ws.runs.list`` vs ``MlflowClient.search_runs`` vs one SQL
                    query with the equivalent joins, returning the same runs (the columns keel returns) with
                    params, tags and metrics; keel's and the floor's metric values are checked to be exactly
                    the logged ones (SQLite's JSON functions would round them to 15 digits)

MLflow runs in its own venv (``benchmarks/.venv-mlflow``, created on first use, a few minutes) with a
SQLite backend, in a subprocess (``_mlflow_worker.py``) that hands its timings back as JSON. The floor
uses keel's own schema (created by keel's migrations) and keel's SQLite settings (WAL, synchronous =
NORMAL), through the plain ``sqlite3`` module. The issue's fifth item, 300 model versions, is measured by
``benchmarks/registry.py``.

Targets (issue 3): a log_metric loop at least 100x MLflow's throughput, run creation within 2x the
one-transaction-per-run floor, search within 1.5x the floor. A missed target is printed as FAIL; the
exit code is 0 either way (this is a measurement).

    .venv/bin/python benchmarks/tracking.py                          # full size (about 1.5 minutes)
    .venv/bin/python benchmarks/tracking.py --runs 50 --points 1000  # smoke check
    .venv/bin/python benchmarks/tracking.py --profile                # where keel's time goes
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import keel
from _common import (
    BENCH_DIR,
    RESULTS_DIR,
    keel_dependency_versions,
    machine_info,
    peer_venv,
    summarize,
    write_results,
)
from _profiling import Breakdown, report_profile
from keel.storage.db import Database
from keel.tracking.environment import capture_environment

MLFLOW_REQUIREMENTS = ["mlflow>=3"]
LOOP_SPEEDUP_TARGET = 100.0  # keel's log_metric loop throughput / MLflow's, at least
RUNS_FLOOR_TARGET = 2.0  # keel's run creation / the floor's, at most
SEARCH_FLOOR_TARGET = 1.5  # keel's search / the floor's, at most
BATCH_KEYS = 100  # keel's log_metrics: 100 keys a call, points / 100 steps
LOG_BATCH_SIZE = 1_000  # MLflow's log_batch: metrics a call
SEARCH = {
    "keel_filter": "metrics.m0 < 0.75 and params.p0 = '3'", "keel_sort": "-metrics.m1",
    "mlflow_filter": "metrics.m0 < 0.75 and params.p0 = '3'", "mlflow_order_by": "metrics.m1 DESC",
    "sort_metric": "m1", "limit": 100,
}  # fmt: skip
ISSUE_REFERENCE = {  # issue 3, "measured here for MLflow 3.17 with SQLite"
    "loop_values_per_s": 298, "batch_values_per_s": 14_630, "runs_500_s": 10.1, "search_s": 0.344,
    "search_floor_s": 0.026, "registry_versions_per_s": 267,
}  # fmt: skip
TS_FORMAT = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores keel's UTC datetimes in SQLite


# -- data ----------------------------------------------------------------------------------------------

@dataclass
class Data:
    loop_values: list[float]
    batch_keys: list[str]
    batch_values: list[list[float]]  # [step][key]: the loop's values, reshaped
    grid: list[dict[str, dict[str, Any]]]  # per run: {"params": {...}, "metrics": {...}}

    @property
    def batch_points(self) -> int:
        return len(self.batch_keys) * len(self.batch_values)

    def expected_search(self) -> list[float]:
        """The sort metric of the runs the search must return, in order (computed in Python)."""
        hits = [g["metrics"] for g in self.grid if g["metrics"]["m0"] < 0.75 and g["params"]["p0"] == "3"]
        return sorted((m["m1"] for m in hits), reverse=True)[: SEARCH["limit"]]


def make_data(points: int, n_runs: int, seed: int) -> Data:
    rng = np.random.default_rng(seed)
    loop = (2.0 * np.exp(-np.arange(points) / max(points / 5, 1)) + rng.normal(0, 0.05, points)).tolist()
    keys = min(BATCH_KEYS, points)
    steps = max(1, points // keys)
    batch = [loop[s * keys:(s + 1) * keys] for s in range(steps)]
    optimizers = ["adam", "sgd", "rmsprop", "adagrad"]
    grid = []
    for _ in range(n_runs):
        params = {
            "p0": str(int(rng.integers(1, 4))), "p1": str(int(rng.integers(2, 13))),
            "p2": str(float(rng.choice([0.001, 0.003, 0.01, 0.03, 0.1]))), "p3": str(rng.choice(optimizers)),
            "p4": str(int(rng.choice([16, 32, 64, 128, 256]))), "p5": str(round(float(rng.uniform(0, 0.5)), 3)),
            "p6": str(bool(rng.random() < 0.5)), "p7": str(int(rng.integers(10, 1000))),
            "p8": f"features-v{int(rng.integers(1, 6))}", "p9": str(int(rng.integers(0, 2**31))),
        }  # fmt: skip
        metrics = {f"m{i}": float(v) for i, v in enumerate(rng.random(10))}
        grid.append({"params": params, "metrics": metrics})
    return Data(loop, [f"k{i:02d}" for i in range(keys)], batch, grid)


# -- keel ----------------------------------------------------------------------------------------------

def keel_warm_up(ws: keel.Workspace) -> None:
    """Every code path once, in its own experiment, so first-call costs stay out of the timings."""
    with ws.runs.start("warm-up") as run:
        for step in range(20):
            run.log_metric("warm", step * 0.5, step=step)
        run.log_params({"a": 1, "b": "x"})
        run.log_metrics({"m": 0.5, "n": 0.25}, step=0)
    ws.runs.flush()
    ws.runs.list(experiment="warm-up", filter="metrics.m < 1 and params.a = '1'", sort="-metrics.n", limit=10)


def keel_side(ws: keel.Workspace, data: Data) -> dict[str, float]:
    """One repeat of measurements 1-3 in a fresh workspace; counts checked outside the timings."""
    out: dict[str, float] = {}
    with ws.runs.start("loop") as run:
        gc.collect()
        start = time.perf_counter()
        for step, value in enumerate(data.loop_values):
            run.log_metric("loss", value, step=step)
        calls = time.perf_counter()
        ws.runs.flush()
        out["loop"], out["loop_calls"] = time.perf_counter() - start, calls - start
    expect(len(ws.runs.metric_history(run.id, "loss")), len(data.loop_values), "keel loop points")

    with ws.runs.start("batch") as run:
        gc.collect()
        start = time.perf_counter()
        for step, row in enumerate(data.batch_values):
            run.log_metrics(dict(zip(data.batch_keys, row, strict=True)), step=step)
        ws.runs.flush()
        out["batch"] = time.perf_counter() - start
    stored = sum(len(ws.runs.metric_history(run.id, k)) for k in data.batch_keys)
    expect(stored, data.batch_points, "keel batch points")

    gc.collect()
    start = time.perf_counter()
    for item in data.grid:
        with ws.runs.start("grid") as run:
            run.log_params(item["params"])
            run.log_metrics(item["metrics"])
    out["runs"] = time.perf_counter() - start
    expect(len(ws.runs.list(experiment="grid", limit=len(data.grid) + 10)), len(data.grid), "keel runs")
    return out


def keel_search(ws: keel.Workspace) -> list[Any]:
    return ws.runs.list(experiment="grid", filter=SEARCH["keel_filter"], sort=SEARCH["keel_sort"],
                        limit=SEARCH["limit"])


# -- the floor: sqlite3 on keel's schema ---------------------------------------------------------------

class Floor:
    """The same rows keel stores, written with plain ``sqlite3`` into a database keel's migrations made."""

    def __init__(self, path: Path, environment: dict[str, Any], user: str) -> None:
        db = Database(f"sqlite:///{path}")
        db.migrate()  # exactly keel's tables and indexes
        db.dispose()
        self.conn = sqlite3.connect(path, isolation_level=None)
        for pragma in ("journal_mode = WAL", "synchronous = NORMAL", "foreign_keys = ON", "busy_timeout = 30000"):
            self.conn.execute(f"PRAGMA {pragma}")
        self.environment = json.dumps(environment)  # keel captures and stores it with every run
        self.user = user

    def new_run(self, experiment: str) -> str:
        run_id = uuid.uuid4().hex
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.execute("INSERT INTO runs (id, experiment, status, created_by, started_at, environment) "
                          "VALUES (?, ?, 'running', ?, ?, ?)",
                          (run_id, experiment, self.user, _now(), self.environment))
        self.conn.execute("COMMIT")
        return run_id

    def loop(self, run_id: str, values: list[float]) -> None:
        """One INSERT per point inside one transaction (plus the latest value, as keel keeps it)."""
        cur, now = self.conn.cursor(), _now()
        cur.execute("BEGIN IMMEDIATE")
        for seq, value in enumerate(values):
            cur.execute("INSERT INTO run_metrics (run_id, key, seq, step, value, logged_at) VALUES (?, ?, ?, ?, ?, ?)",
                        (run_id, "loss", seq, seq, value, now))
        cur.execute(_UPSERT_LATEST, (run_id, "loss", len(values) - 1, len(values) - 1, values[-1]))
        cur.execute("COMMIT")

    def batch(self, run_id: str, keys: list[str], values: list[list[float]]) -> None:
        """One executemany inside one transaction."""
        now = _now()
        rows = [(run_id, key, step, step, value, now)
                for step, row in enumerate(values) for key, value in zip(keys, row, strict=True)]
        last = len(values) - 1
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.executemany("INSERT INTO run_metrics (run_id, key, seq, step, value, logged_at) "
                              "VALUES (?, ?, ?, ?, ?, ?)", rows)
        latest = [(run_id, k, last, last, v) for k, v in zip(keys, values[-1], strict=True)]
        self.conn.executemany(_UPSERT_LATEST, latest)
        self.conn.execute("COMMIT")

    def runs(self, grid: list[dict[str, dict[str, Any]]], experiment: str = "grid") -> None:
        """One transaction per run: the finished run row, its params, its metric points and latest values."""
        conn = self.conn
        for item in grid:
            run_id, now = uuid.uuid4().hex, _now()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO runs (id, experiment, status, created_by, started_at, ended_at, environment) "
                         "VALUES (?, ?, 'finished', ?, ?, ?, ?)", (run_id, experiment, self.user, now, now,
                                                                    self.environment))
            conn.executemany("INSERT INTO run_params (run_id, key, value) VALUES (?, ?, ?)",
                             [(run_id, k, v) for k, v in item["params"].items()])
            metrics = item["metrics"].items()
            conn.executemany("INSERT INTO run_metrics (run_id, key, seq, step, value, logged_at) "
                             "VALUES (?, ?, 0, NULL, ?, ?)", [(run_id, k, v, now) for k, v in metrics])
            conn.executemany("INSERT INTO run_latest_metrics (run_id, key, seq, step, value) VALUES (?, ?, 0, NULL, ?)",
                             [(run_id, k, v) for k, v in metrics])
            conn.execute("COMMIT")

    def search(self, ids_only: bool = False) -> list[tuple]:
        """One query: the matching runs in order, each with its run row, params, tags and latest metrics."""
        args = {"experiment": "grid", "limit": SEARCH["limit"]}
        cur = self.conn.cursor()
        cur.execute("BEGIN")
        rows = cur.execute(_SEARCH_IDS if ids_only else _SEARCH_FULL, args).fetchall()
        cur.execute("COMMIT")
        return rows

    def count(self, sql: str, *args: Any) -> int:
        return self.conn.execute(sql, args).fetchone()[0]

    def close(self) -> None:
        self.conn.close()


def _now() -> str:
    return datetime.now(UTC).strftime(TS_FORMAT)


_UPSERT_LATEST = ("INSERT INTO run_latest_metrics (run_id, key, seq, step, value) VALUES (?, ?, ?, ?, ?) "
                  "ON CONFLICT (run_id, key) DO UPDATE SET seq = excluded.seq, step = excluded.step, "
                  "value = excluded.value WHERE run_latest_metrics.seq < excluded.seq")
_HITS = """
    SELECT r.id AS id, s.value AS sort_value, r.started_at AS started_at
    FROM runs AS r
    JOIN run_latest_metrics AS f0 ON f0.run_id = r.id AND f0.key = 'm0' AND f0.value < 0.75
    JOIN run_params AS f1 ON f1.run_id = r.id AND f1.key = 'p0' AND f1.value = '3'
    LEFT JOIN run_latest_metrics AS s ON s.run_id = r.id AND s.key = 'm1'
    WHERE r.experiment = :experiment
    ORDER BY s.value IS NULL, s.value DESC, r.started_at DESC, r.id
    LIMIT :limit"""
_SEARCH_IDS = _HITS
# The same columns keel returns (not the environment), params and tags as JSON objects, and the latest metrics
# exactly: SQLite's JSON functions print doubles with 15 significant digits (json_group_object(key, value)
# returns other numbers than the stored ones), so each value is printed with 18, which read back exactly here
# (checked by floor_check). This data has no NULL or infinite metric, so unlike keel no case for them.
_SEARCH_FULL = f"""
    WITH hits AS ({_HITS})
    SELECT r.id, r.experiment, r.name, r.parent_id, r.status, r.error, r.created_by, r.started_at, r.ended_at,
           h.sort_value,
           (SELECT json_group_object(key, value) FROM run_params WHERE run_id = r.id),
           (SELECT json_group_object(key, value) FROM run_tags WHERE run_id = r.id),
           (SELECT '{{' || group_concat(json_quote(key) || ':' || printf('%!.18g', value), ',') || '}}'
            FROM run_latest_metrics WHERE run_id = r.id)
    FROM hits AS h JOIN runs AS r ON r.id = h.id
    ORDER BY h.sort_value IS NULL, h.sort_value DESC, h.started_at DESC, h.id"""


def floor_warm_up(floor: Floor) -> None:
    run_id = floor.new_run("warm-up")
    floor.loop(run_id, [0.5] * 20)
    floor.runs([{"params": {"a": "1"}, "metrics": {"m": 0.5}}], experiment="warm-up")
    floor.search()


def floor_side(floor: Floor, data: Data) -> dict[str, float]:
    out: dict[str, float] = {}
    run_id = floor.new_run("loop")
    out["loop"] = timed(lambda: floor.loop(run_id, data.loop_values))
    expect(floor.count("SELECT count(*) FROM run_metrics WHERE run_id = ?", run_id), len(data.loop_values),
           "floor loop points")
    run_id = floor.new_run("batch")
    out["batch"] = timed(lambda: floor.batch(run_id, data.batch_keys, data.batch_values))
    expect(floor.count("SELECT count(*) FROM run_metrics WHERE run_id = ?", run_id), data.batch_points,
           "floor batch points")
    out["runs"] = timed(lambda: floor.runs(data.grid))
    expect(floor.count("SELECT count(*) FROM runs WHERE experiment = 'grid'"), len(data.grid), "floor runs")
    return out


# -- MLflow --------------------------------------------------------------------------------------------

def mlflow_side(data: Data, workdir: Path, repeats: int, search_repeats: int) -> dict[str, Any]:
    """Run ``_mlflow_worker.py`` with MLflow's interpreter; its JSON answer."""
    print("MLflow venv (benchmarks/.venv-mlflow; created on first use, a few minutes) ...", flush=True)
    python = peer_venv("mlflow", MLFLOW_REQUIREMENTS)
    folder = workdir / "mlflow"
    folder.mkdir()
    spec = folder / "spec.json"
    spec.write_text(json.dumps({
        "workdir": str(folder), "repeats": repeats, "log_batch_size": LOG_BATCH_SIZE,
        "loop_values": data.loop_values, "batch_keys": data.batch_keys, "batch_values": data.batch_values,
        "runs": data.grid, "search": {**SEARCH, "repeats": search_repeats},
    }), encoding="utf-8")
    print(f"MLflow side x{repeats} (its log_metric loop takes ~{len(data.loop_values) / 300:.0f} s a repeat) ...",
          flush=True)
    proc = subprocess.run([str(python), str(BENCH_DIR / "_mlflow_worker.py"), str(spec)], cwd=folder,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-5000:])
        raise RuntimeError(f"the MLflow worker failed with exit code {proc.returncode}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["sqlite"] = subprocess.run([str(python), "-c", "import sqlite3; print(sqlite3.sqlite_version)"],
                                      capture_output=True, text=True, check=True).stdout.strip()
    checks = result["checks"]
    expect(checks["loop_points"], len(data.loop_values), "MLflow loop points")
    expect(checks["batch_points"], data.batch_points, "MLflow batch points")
    expect(checks["runs"], len(data.grid), "MLflow runs")
    return result


# -- helpers -------------------------------------------------------------------------------------------

def timed(fn: Any) -> float:
    gc.collect()
    return clocked(fn)


def clocked(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def expect(got: int, wanted: int, what: str) -> None:
    if got != wanted:
        raise AssertionError(f"{what}: {got} stored, expected {wanted}")


def same_order(got: list[float | None], wanted: list[float], what: str) -> None:
    if len(got) != len(wanted) or any(g is None or abs(g - w) > 1e-12 for g, w in zip(got, wanted, strict=True)):
        raise AssertionError(f"{what}: the search returned other runs or another order "
                             f"({len(got)} runs, expected {len(wanted)})")


def exact_values(data: Data, found: list[tuple[dict[str, str], dict[str, float]]], what: str) -> None:
    """Every returned run's params and metrics are the logged ones, exactly (floats compared with ==)."""
    logged = {g["params"]["p9"]: g for g in data.grid}  # p9 is a random 31-bit integer
    if len(logged) != len(data.grid):
        raise AssertionError("params.p9 is not unique with this seed; pick another --seed")
    wrong = [params["p9"] for params, metrics in found
             if params != logged[params["p9"]]["params"] or metrics != logged[params["p9"]]["metrics"]]
    if wrong:
        raise AssertionError(f"{what}: {len(wrong)} runs came back with other params or metric values")


# -- the benchmark -------------------------------------------------------------------------------------

def run(args: argparse.Namespace) -> int:
    info = machine_info()
    load = info["load_average_1m"]
    if load is not None and load > (info["cpu_count"] or 1) / 2:
        print(f"warning: 1-minute load average is {load:.1f} on {info['cpu_count']} cores; other work will "
              "inflate and scatter the timings", flush=True)
    data = make_data(args.points, args.runs, args.seed)
    expected = data.expected_search()
    workdir = Path(tempfile.mkdtemp(prefix="keel-bench-tracking-", dir=args.workdir))
    samples: dict[str, dict[str, list[float]]] = {"keel": {}, "floor": {}}
    try:
        environment = None
        kept: dict[str, Any] = {}
        for r in range(args.repeats):
            print(f"keel and the sqlite3 floor, repeat {r + 1}/{args.repeats} ...", flush=True)
            ws = keel.init(workdir / f"keel-{r}")
            keel_warm_up(ws)
            for key, value in keel_side(ws, data).items():
                samples["keel"].setdefault(key, []).append(value)
            environment = environment or capture_environment(ws.root)
            floor = Floor(workdir / f"floor-{r}.db", environment, ws.settings.user)
            floor_warm_up(floor)
            for key, value in floor_side(floor, data).items():
                samples["floor"].setdefault(key, []).append(value)
            if r == args.repeats - 1:
                kept = {"ws": ws, "floor": floor}
            else:
                ws.close()
                floor.close()

        print(f"search x{args.search_repeats} ...", flush=True)
        ws, floor = kept["ws"], kept["floor"]
        for _ in range(2):
            found = keel_search(ws)
            rows = floor.search()
            floor.search(ids_only=True)
        same_order([run.metrics.get("m1") for run in found], expected, "keel search")
        same_order([row[-4] for row in rows], expected, "floor search")
        exact_values(data, [(run.params, run.metrics) for run in found], "keel search")
        exact_values(data, [(json.loads(row[-3]), json.loads(row[-1])) for row in rows], "floor search")
        samples["keel"]["search"], samples["floor"]["search"], samples["floor"]["search_floor_ids"] = [], [], []
        gc.collect()  # once: a collection before every millisecond-long sample would time cold caches
        for _ in range(args.search_repeats):  # interleaved
            samples["keel"]["search"].append(clocked(lambda: keel_search(ws)))
            samples["floor"]["search"].append(clocked(floor.search))
            samples["floor"]["search_floor_ids"].append(clocked(lambda: floor.search(ids_only=True)))
        matches = sum(1 for g in data.grid if g["metrics"]["m0"] < 0.75 and g["params"]["p0"] == "3")
        ws.close()
        floor.close()

        mlflow = mlflow_side(data, workdir, args.mlflow_repeats, args.search_repeats)
        same_order(mlflow["search_m1"], expected, "MLflow search")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    timing = {side: {k: summarize(v) for k, v in s.items()} for side, s in samples.items()}
    timing["mlflow"] = {k: summarize(v) for k, v in mlflow["samples"].items() if v}
    report = build_report(timing, data, args, matches)
    print_report(report, info, mlflow)
    end_load = machine_info()["load_average_1m"]
    path = write_results("tracking", {
        "params": {"points": args.points, "batch_keys": len(data.batch_keys), "batch_steps": len(data.batch_values),
                   "log_batch_size": LOG_BATCH_SIZE, "runs": args.runs, "params_per_run": 10, "metrics_per_run": 10,
                   "repeats": args.repeats, "mlflow_repeats": args.mlflow_repeats,
                   "search_repeats": args.search_repeats, "seed": args.seed, "search": SEARCH,
                   "search_matches": matches, "floor_sqlite_settings": "WAL, synchronous=NORMAL (keel's)"},
        "versions": {**keel_dependency_versions(), "sqlite": sqlite3.sqlite_version, "mlflow": mlflow["mlflow"],
                     "mlflow_venv": {"sqlalchemy": mlflow["sqlalchemy"], "python": mlflow["python"],
                                     "sqlite": mlflow["sqlite"]}},
        "table": report["rows"], "targets": report["verdicts"], "issue_reference_mlflow_3_17": ISSUE_REFERENCE,
        "not_measured": {"registry_300_versions": "measured by benchmarks/registry.py"},
        "timings": timing, "mlflow_checks": mlflow["checks"], "load_average_1m_at_end": end_load,
    }, machine=info)
    print(f"results: {path}")
    return 0


def build_report(t: dict[str, dict[str, Any]], data: Data, args: argparse.Namespace, matches: int) -> dict[str, Any]:
    def med(side: str, key: str) -> float | None:
        entry = t[side].get(key)
        return None if entry is None else entry["median"]

    n, nb = len(data.loop_values), data.batch_points
    rows = [
        {"operation": f"{n:,} log_metric calls in a loop, until stored", "units": n, "unit": "values",
         "keel": med("keel", "loop"), "mlflow": med("mlflow", "loop"), "floor": med("floor", "loop")},
        {"operation": "  the same, MLflow with async logging (synchronous=False + flush) ¹", "units": n,
         "unit": "values", "keel": med("keel", "loop"), "mlflow": med("mlflow", "loop_async"),
         "floor": med("floor", "loop")},
        {"operation": f"the same values in batches ({len(data.batch_keys)} keys x {len(data.batch_values)} steps) ²",
         "units": nb, "unit": "values", "keel": med("keel", "batch"), "mlflow": med("mlflow", "batch"),
         "floor": med("floor", "batch")},
        {"operation": f"{args.runs:,} runs x 10 params x 10 metrics, created", "units": args.runs, "unit": "runs",
         "keel": med("keel", "runs"), "mlflow": med("mlflow", "runs"), "floor": med("floor", "runs")},
        {"operation": f"search: filter + sort, top {SEARCH['limit']} of {args.runs:,} ({matches} match) ³",
         "units": None, "unit": None, "keel": med("keel", "search"), "mlflow": med("mlflow", "search"),
         "floor": med("floor", "search")},
    ]
    for row in rows:
        k, m, f = row["keel"], row["mlflow"], row["floor"]
        row["mlflow_over_keel"] = None if not (k and m) else m / k
        row["keel_over_floor"] = None if not (k and f) else k / f
    loop, runs_, search = rows[0], rows[3], rows[4]
    verdicts = []
    if loop["mlflow_over_keel"] is not None:
        verdicts.append({
            "name": "log_metric loop", "pass": loop["mlflow_over_keel"] >= LOOP_SPEEDUP_TARGET,
            "detail": f"keel {n / loop['keel']:,.0f} values/s = {loop['mlflow_over_keel']:,.0f}x MLflow's "
                      f"{n / loop['mlflow']:,.0f} values/s (target ≥ {LOOP_SPEEDUP_TARGET:.0f}x); "
                      f"{t['keel']['loop_calls']['median'] / n * 1e6:.1f} µs a call in the loop "
                      "(the buffer's inline flush at every 5,000 points included)"})
    verdicts.append({
        "name": "run creation", "pass": runs_["keel_over_floor"] <= RUNS_FLOOR_TARGET,
        "detail": f"keel/floor = {runs_['keel_over_floor']:.2f}x (target ≤ {RUNS_FLOOR_TARGET:.0f}x): keel "
                  f"{runs_['keel'] / args.runs * 1000:.2f} ms a run, floor {runs_['floor'] / args.runs * 1000:.2f} ms "
                  "(one transaction per run)"})
    verdicts.append({
        "name": "search", "pass": search["keel_over_floor"] <= SEARCH_FLOOR_TARGET,
        "detail": f"keel/floor = {search['keel_over_floor']:.2f}x (target ≤ {SEARCH_FLOOR_TARGET}x): keel "
                  f"{search['keel'] * 1000:.1f} ms, floor {search['floor'] * 1000:.1f} ms (median of "
                  f"{args.search_repeats}); floor returning ids only {med('floor', 'search_floor_ids') * 1000:.2f} ms"})
    return {"rows": rows, "verdicts": verdicts}


def fmt(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    return f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1000:.1f} ms"


def cell(seconds: float | None, units: int | None, unit: str | None) -> str:
    if seconds is None or not units:
        return fmt(seconds)
    return f"{fmt(seconds)} ({units / seconds:,.0f} {'/s' if unit == 'values' else unit + '/s'})"


def times(ratio: float | None) -> str:
    if ratio is None:
        return "—"
    return f"{ratio:,.0f}x" if ratio >= 100 else f"{ratio:.2f}x"


def print_report(report: dict[str, Any], info: dict[str, Any], mlflow: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 150))
    title = (f"keel tracking benchmark — {info['cpu_count']} cores, Python {info['python']}, "
             f"keel {keel_dependency_versions()['keel']}, MLflow {mlflow['mlflow']} (SQLite)")
    table = Table(title=title, title_justify="left")
    for name, justify in (("operation", "left"), ("keel", "right"), ("MLflow", "right"), ("sqlite3 floor", "right"),
                          ("MLflow ÷ keel", "right"), ("keel ÷ floor", "right")):
        table.add_column(name, justify=justify)
    for row in report["rows"]:
        table.add_row(row["operation"], cell(row["keel"], row["units"], row["unit"]),
                      cell(row["mlflow"], row["units"], row["unit"]), cell(row["floor"], row["units"], row["unit"]),
                      times(row["mlflow_over_keel"]), times(row["keel_over_floor"]))
    console.print(table)
    notes = [
        "Medians: keel and floor over --repeats, MLflow over --mlflow-repeats; the search over --search-repeats.",
        "¹ information only (the issue's reference is MLflow's default, synchronous logging).",
        f"² keel: run.log_metrics of {BATCH_KEYS} keys a step, then ws.runs.flush(); MLflow: MlflowClient.log_batch, "
        f"{LOG_BATCH_SIZE:,} metrics a call; floor: one executemany in one transaction.",
        "³ keel: ws.runs.list (RunInfo objects with params, tags, metrics); MLflow: MlflowClient.search_runs (Run "
        "objects); floor: one SQL query returning the same runs with their params, tags and latest metrics as JSON "
        "text (not decoded), metric values exact.",
        "not measured here: 300 model versions (issue 3) — benchmarks/registry.py measures the registry.",
    ]
    for note in notes:
        console.print(note, highlight=False)
    ref = ISSUE_REFERENCE
    loop, batch = report["rows"][0], report["rows"][2]
    runs_, search = report["rows"][3], report["rows"][4]
    console.print(
        f"MLflow here vs the issue's MLflow 3.17 reference: loop {loop['units'] / loop['mlflow']:,.0f} values/s "
        f"(issue {ref['loop_values_per_s']}), log_batch {batch['units'] / batch['mlflow']:,.0f} values/s "
        f"(issue {ref['batch_values_per_s']:,}), {runs_['units']} runs {fmt(runs_['mlflow'])} (issue "
        f"{ref['runs_500_s']} s for 500), search {fmt(search['mlflow'])} (issue {ref['search_s'] * 1000:.0f} ms), "
        f"floor search {fmt(search['floor'])} (issue {ref['search_floor_s'] * 1000:.0f} ms), registry: see "
        f"benchmarks/registry.py (issue {ref['registry_versions_per_s']} versions/s)", highlight=False)
    for v in report["verdicts"]:
        console.print(f"[{'green' if v['pass'] else 'red'}]{'PASS' if v['pass'] else 'FAIL'}[/] {v['name']}: "
                      f"{v['detail']}", highlight=False)
    console.print("[yellow]SKIP[/] 300 model versions: measured by benchmarks/registry.py", highlight=False)


# -- profiling -----------------------------------------------------------------------------------------

def profile(args: argparse.Namespace) -> int:
    """Where keel's time goes in the three measured operations: a wall-clock breakdown, then cProfile.

    The breakdown wraps every keel function with a timer (``_profiling.Breakdown``); it is not thread-safe,
    so the metric buffer's background flush is slowed to once an hour for the profile (the operations
    flush explicitly anyway). Profiles are saved as ``results/tracking-*.prof``.
    """
    data = make_data(args.points, args.runs, args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="keel-bench-tracking-prof-", dir=args.workdir))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    found: dict[str, Any] = {"machine": machine_info()}

    def operations(ws: keel.Workspace) -> dict[str, Any]:
        def loop() -> None:
            with ws.runs.start("loop") as run:
                for step, value in enumerate(data.loop_values):
                    run.log_metric("loss", value, step=step)
                ws.runs.flush()

        def runs() -> None:
            for item in data.grid:
                with ws.runs.start("grid") as run:
                    run.log_params(item["params"])
                    run.log_metrics(item["metrics"])

        def search() -> None:
            for _ in range(args.search_repeats):
                keel_search(ws)

        return {"loop": (loop, 1), "runs": (runs, len(data.grid)), "search": (search, args.search_repeats)}

    try:
        timer = Breakdown()
        ws = keel.init(workdir / "breakdown")
        ws.runs._buffer._interval = 3600.0  # see the docstring
        keel_warm_up(ws)
        timer.install()
        try:
            for name, (fn, ops) in operations(ws).items():
                timer.reset()
                gc.collect()
                fn()
                found[f"{name}_breakdown"] = timer.report(f"keel {name}", ops, top=25)
        finally:
            timer.uninstall()
        ws.close()

        ws = keel.init(workdir / "cprofile")
        ws.runs._buffer._interval = 3600.0
        keel_warm_up(ws)
        for name, (fn, ops) in operations(ws).items():
            gc.collect()
            prof = cProfile.Profile()
            prof.enable()
            fn()
            prof.disable()
            report_profile(prof, name, ops, RESULTS_DIR / f"tracking-{name}.prof")
        ws.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    path = RESULTS_DIR / "tracking-profile.json"
    path.write_text(json.dumps(found, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"\nbreakdown: {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=10_000, help="metric values logged in 1 and 2 (default 10,000)")
    parser.add_argument("--runs", type=int, default=500, help="runs created in 3 and searched in 4 (default 500)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of 1-3 for keel and the floor, each in a "
                        "fresh database, median reported (default 3)")
    parser.add_argument("--mlflow-repeats", type=int, default=1, help="the same for MLflow (default 1: its loop "
                        "alone takes ~35 s)")
    parser.add_argument("--search-repeats", type=int, default=20, help="timed searches per side (default 20)")
    parser.add_argument("--seed", type=int, default=3, help="seed of the generated values (default 3)")
    parser.add_argument("--workdir", default=None, help="where temporary databases go (default: the system temp dir)")
    parser.add_argument("--profile", action="store_true",
                        help="instead of the benchmark, break down where keel's time goes in 1, 3 and 4")
    args = parser.parse_args(argv)
    if min(args.points, args.runs, args.repeats, args.mlflow_repeats, args.search_repeats) < 1:
        parser.error("--points, --runs, --repeats, --mlflow-repeats and --search-repeats must be positive")
    return profile(args) if args.profile else run(args)


if __name__ == "__main__":
    sys.exit(main())
