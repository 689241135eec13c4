"""MLflow's side of benchmarks/tracking.py; runs inside MLflow's own venv (benchmarks/.venv-mlflow).

Not meant to be run by hand: ``tracking.py`` writes the data (seeded, the same values keel and the
sqlite3 floor log) and the settings to a JSON file, runs ``python _mlflow_worker.py SPEC.json`` with
MLflow's interpreter and reads one JSON document from this script's stdout. Everything MLflow prints
goes to stderr. MLflow uses a SQLite backend (``sqlite:///<workdir>/mlflow-<n>.db``, a fresh file per
repeat, created and migrated before any timing) and keeps artifacts under ``<workdir>/artifacts``.

Only the standard library and MLflow are imported, so the script runs with any MLflow 3.x.
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from _worker_io import answer


def main(spec_path: str) -> int:
    return answer(run, spec_path)


def run(spec: dict[str, Any]) -> dict[str, Any]:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no network here; keep its thread out
    import mlflow
    import sqlalchemy
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    workdir = Path(spec["workdir"])
    loop_values: list[float] = spec["loop_values"]
    batch_keys: list[str] = spec["batch_keys"]
    batch_values: list[list[float]] = spec["batch_values"]  # [step][key]
    grid: list[dict[str, Any]] = spec["runs"]  # [{"params": {...}, "metrics": {...}}]
    search = spec["search"]
    per_call = int(spec["log_batch_size"])
    repeats = int(spec["repeats"])
    out: dict[str, Any] = {
        "mlflow": mlflow.__version__, "sqlalchemy": sqlalchemy.__version__, "python": platform.python_version(),
        "samples": {"loop": [], "loop_async": [], "batch": [], "runs": []}, "checks": {},
    }

    def clocked(fn) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    def timed(fn) -> float:
        gc.collect()
        return clocked(fn)

    for r in range(repeats):
        uri = f"sqlite:///{workdir / f'mlflow-{r}.db'}"
        mlflow.set_tracking_uri(uri)
        client = MlflowClient(tracking_uri=uri)  # creates and migrates the database: not timed

        def experiment(name: str, client: MlflowClient = client, repeat: int = r) -> str:
            location = workdir / "artifacts" / str(repeat) / name
            return client.create_experiment(name, artifact_location=location.as_uri())

        warm_up(mlflow, client, experiment("warm-up"), Metric)

        # 1. log_metric in a loop: every call is its own transaction, stored when it returns
        with mlflow.start_run(experiment_id=experiment("loop")) as active:
            run_id = active.info.run_id

            def loop() -> None:
                for step, value in enumerate(loop_values):
                    mlflow.log_metric("loss", value, step=step)

            out["samples"]["loop"].append(timed(loop))
        out["checks"]["loop_points"] = len(client.get_metric_history(run_id, "loss"))

        # 1b. the same loop with MLflow's own asynchronous logging, until flushed (information only)
        if spec.get("async_loop", True):
            with mlflow.start_run(experiment_id=experiment("loop-async")) as active:
                run_id = active.info.run_id

                def loop_async() -> None:
                    for step, value in enumerate(loop_values):
                        mlflow.log_metric("loss", value, step=step, synchronous=False)
                    mlflow.flush_async_logging()

                out["samples"]["loop_async"].append(timed(loop_async))
            out["checks"]["loop_async_points"] = len(client.get_metric_history(run_id, "loss"))

        # 2. the same values with log_batch, `per_call` metrics a call
        run_id = client.create_run(experiment("batch")).info.run_id

        def batch(run_id: str = run_id, client: MlflowClient = client) -> None:
            pending: list[Metric] = []
            for step, row in enumerate(batch_values):
                now = int(time.time() * 1000)
                for key, value in zip(batch_keys, row, strict=True):
                    pending.append(Metric(key, value, now, step))
                    if len(pending) == per_call:
                        client.log_batch(run_id, metrics=pending)
                        pending = []
            if pending:
                client.log_batch(run_id, metrics=pending)

        out["samples"]["batch"].append(timed(batch))
        client.set_terminated(run_id)
        out["checks"]["batch_points"] = sum(len(client.get_metric_history(run_id, k)) for k in batch_keys)

        # 3. runs: start, 10 params, 10 metrics, end, one after the other
        grid_id = experiment("grid")

        def create_runs(grid_id: str = grid_id) -> None:
            for item in grid:
                mlflow.start_run(experiment_id=grid_id)
                mlflow.log_params(item["params"])
                mlflow.log_metrics(item["metrics"])
                mlflow.end_run()

        out["samples"]["runs"].append(timed(create_runs))
        out["checks"]["runs"] = len(client.search_runs([grid_id], max_results=50_000))

    # 4. filtered, sorted search over the last repeat's runs (the client API: Run objects, like keel's list)
    def client_search() -> list[Any]:
        return client.search_runs([grid_id], filter_string=search["mlflow_filter"],
                                  order_by=[search["mlflow_order_by"]], max_results=search["limit"])

    def frame_search() -> Any:
        return mlflow.search_runs(experiment_ids=[grid_id], filter_string=search["mlflow_filter"],
                                  order_by=[search["mlflow_order_by"]], max_results=search["limit"])

    for _ in range(2):
        found = client_search()
        frame_search()
    out["search_m1"] = [run.data.metrics.get(search["sort_metric"]) for run in found]
    out["search_matches"] = len(client.search_runs([grid_id], filter_string=search["mlflow_filter"],
                                                   max_results=50_000))
    gc.collect()  # once: a collection before every millisecond-long sample would time cold caches
    out["samples"]["search"] = [clocked(client_search) for _ in range(search["repeats"])]
    out["samples"]["search_dataframe"] = [clocked(frame_search) for _ in range(max(1, search["repeats"] // 4))]
    out["search_median_s"] = statistics.median(out["samples"]["search"])
    return out


def warm_up(mlflow: Any, client: Any, experiment_id: str, metric_cls: Any) -> None:
    """Every code path once, in its own experiment, so first-call costs stay out of the timings."""
    with mlflow.start_run(experiment_id=experiment_id) as active:
        for step in range(20):
            mlflow.log_metric("warm", step * 0.5, step=step)
        mlflow.log_metric("warm_async", 1.0, step=0, synchronous=False)
        mlflow.flush_async_logging()
        mlflow.log_params({"a": 1, "b": "x"})
        mlflow.log_metrics({"m": 0.5, "n": 0.25})
        now = int(time.time() * 1000)
        client.log_batch(active.info.run_id, metrics=[metric_cls(f"k{i}", i * 0.1, now, 0) for i in range(20)])
    client.search_runs([experiment_id], filter_string="metrics.m < 1 and params.a = '1'", order_by=["metrics.n DESC"],
                       max_results=10)
    mlflow.search_runs(experiment_ids=[experiment_id], max_results=10)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: _mlflow_worker.py SPEC.json  (run by benchmarks/tracking.py)")
    sys.exit(main(sys.argv[1]))
