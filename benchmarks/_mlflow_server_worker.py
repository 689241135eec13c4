"""MLflow's side of benchmarks/server.py: a client of a running ``mlflow server``, in MLflow's own venv.

Not meant to be run by hand: ``server.py`` starts ``mlflow server`` (SQLite backend, artifacts proxied by
the server) on a free loopback port, writes the seeded data and settings to SPEC.json, and runs
``python _mlflow_server_worker.py SPEC.json`` with MLflow's interpreter. This script measures, over HTTP:

- loop      ``mlflow.log_metric`` x N in one run (each call a request; stored when it returns)
- batch     ``MlflowClient.log_batch`` with 1,000 metrics a call (the issue's reference)
- runs      500 runs: create_run, one log_batch of 10 params and 10 metrics, set_terminated
- search    ``search_runs`` with the same filter and order as keel's, and all 500 runs
- registry  ``create_model_version`` x N (registry rows only), and ``mlflow.sklearn.log_model`` with
            ``registered_model_name`` x M (a packaged version, what keel's register does)
- artifacts ``log_artifact`` of the big file through the server, ``download_artifacts`` back

Prints one JSON document on stdout; everything MLflow prints goes to stderr.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _worker_io import answer


def main(spec_path: str) -> int:
    return answer(run, spec_path)


def clocked(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(spec: dict[str, Any]) -> dict[str, Any]:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow
    import pandas as pd
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient
    from sklearn.linear_model import LinearRegression

    mlflow.set_tracking_uri(spec["url"])
    client = MlflowClient(spec["url"])
    out: dict[str, Any] = {"mlflow": mlflow.__version__, "samples": {}, "checks": {}}
    repeats = int(spec["repeats"])

    # -- log_metric loop and log_batch ----------------------------------------------------------------
    experiment = client.create_experiment("loop")
    loop_values = spec["loop_values"]
    out["samples"]["loop"], out["samples"]["batch"] = [], []
    for _ in range(repeats):
        with mlflow.start_run(experiment_id=experiment) as active:
            mlflow.log_metric("warm", 0.0)
            out["samples"]["loop"].append(clocked(lambda: [mlflow.log_metric("loss", v, step=i)
                                                           for i, v in enumerate(loop_values)]))
            run_id = active.info.run_id
        out["checks"]["loop_stored"] = len(client.get_metric_history(run_id, "loss"))
        run_id = client.create_run(experiment).info.run_id
        now = int(time.time() * 1000)
        points = [Metric("loss", v, now, i) for i, v in enumerate(spec["batch_values"])]
        out["samples"]["batch"].append(clocked(lambda run_id=run_id, points=points: [
            client.log_batch(run_id, metrics=points[i:i + 1000]) for i in range(0, len(points), 1000)]))

    # -- 500 runs, then search ------------------------------------------------------------------------
    grid_experiment = client.create_experiment("grid")

    def create_runs() -> None:
        for item in spec["runs"]:
            run_id = client.create_run(grid_experiment).info.run_id
            stamp = int(time.time() * 1000)
            client.log_batch(run_id, params=[Param(k, v) for k, v in item["params"].items()],
                             metrics=[Metric(k, v, stamp, 0) for k, v in item["metrics"].items()])
            client.set_terminated(run_id)

    out["runs_s"] = clocked(create_runs)
    search = spec["search"]
    out["samples"]["search"], out["samples"]["search_all"] = [], []
    for _ in range(int(spec["search_repeats"])):
        found: list[Any] = []
        out["samples"]["search"].append(clocked(lambda found=found: found.append(client.search_runs(
            [grid_experiment], filter_string=search["mlflow_filter"], order_by=[search["mlflow_order"]],
            max_results=search["limit"]))))
        out["samples"]["search_all"].append(clocked(lambda found=found: found.append(client.search_runs(
            [grid_experiment], max_results=len(spec["runs"])))))
    out["checks"]["search_sort_values"] = [r.data.metrics.get(search["sort_metric"]) for r in found[-2]]
    out["checks"]["search_all"] = len(found[-1])

    # -- registry --------------------------------------------------------------------------------------
    x = pd.DataFrame(spec["x"])
    model = LinearRegression().fit(x, spec["y"])
    with mlflow.start_run(experiment_id=grid_experiment) as active:
        logged = mlflow.sklearn.log_model(model, name="model", input_example=x.head(5))
        source, run_id, model_id = logged.model_uri, active.info.run_id, logged.model_id
    client.create_registered_model("price-meta")
    out["registry_metadata_s"] = clocked(lambda: [client.create_model_version("price-meta", source, run_id,
                                                                              model_id=model_id)
                                                  for _ in range(int(spec["versions"]))])
    out["checks"]["registry_metadata_versions"] = len(client.search_model_versions("name='price-meta'",
                                                                                     max_results=10_000))
    with mlflow.start_run(experiment_id=grid_experiment):
        mlflow.sklearn.log_model(model, name="warm", registered_model_name="warm", input_example=x.head(5))
        out["registry_packaged_s"] = clocked(lambda: [
            mlflow.sklearn.log_model(model, name="model", registered_model_name="price", input_example=x.head(5))
            for _ in range(int(spec["packaged_versions"]))])
    out["checks"]["registry_packaged_versions"] = len(client.search_model_versions("name='price'"))

    # -- artifacts --------------------------------------------------------------------------------------
    big = Path(spec["artifact"])
    out["samples"]["upload"], out["samples"]["download"] = [], []
    for _ in range(repeats):
        run_id = client.create_run(grid_experiment).info.run_id
        os.sync()
        out["samples"]["upload"].append(clocked(lambda run_id=run_id: client.log_artifact(run_id, str(big))))
        with tempfile.TemporaryDirectory(dir=spec["workdir"]) as tmp:
            os.sync()
            out["samples"]["download"].append(clocked(lambda run_id=run_id, tmp=tmp: client.download_artifacts(
                run_id, big.name, tmp)))
            out["checks"]["download_size"] = (Path(tmp) / big.name).stat().st_size
    return out


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
