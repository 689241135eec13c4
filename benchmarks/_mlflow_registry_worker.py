"""MLflow's side of the registry benchmark (benchmarks/registry.py); runs in MLflow's own venv.

Reads SPEC.json (the seeded training data, the number of versions, the work folder), trains the same
LinearRegression, and times two ways of making registered versions, each in a fresh SQLite backend:

- packaged: ``mlflow.sklearn.log_model(model, registered_model_name=...)`` — serialise, write the
  artifacts, register: what keel's ``ws.models.register`` does;
- metadata: ``MlflowClient.create_model_version(name, source, run_id)`` pointing at one logged model —
  registry rows only (the issue's "267 versions/s").

Prints one JSON document on stdout; everything MLflow prints goes to stderr.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from _worker_io import answer


def main(spec_path: str) -> int:
    return answer(run, spec_path)


def run(spec: dict[str, Any]) -> dict[str, Any]:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow
    import pandas as pd
    from mlflow.tracking import MlflowClient
    from sklearn.linear_model import LinearRegression

    workdir = Path(spec["workdir"])
    x = pd.DataFrame(spec["x"])
    model = LinearRegression().fit(x, spec["y"])
    example = x.head(5)
    out: dict[str, Any] = {"mlflow": mlflow.__version__, "packaged": [], "metadata": [], "checks": {}}
    for repeat in range(int(spec["repeats"])):
        uri = f"sqlite:///{workdir / f'mlflow-registry-{repeat}.db'}"
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        client = MlflowClient(uri, uri)
        experiment = client.create_experiment(f"registry-{repeat}", artifact_location=str(workdir / f"art-{repeat}"))
        with mlflow.start_run(experiment_id=experiment):
            warm = mlflow.sklearn.log_model(model, name="warm", registered_model_name="warm", input_example=example)
            start = time.perf_counter()
            for _ in range(int(spec["packaged_versions"])):
                mlflow.sklearn.log_model(model, name="model", registered_model_name="price", input_example=example)
            out["packaged"].append(time.perf_counter() - start)
            run_id = mlflow.active_run().info.run_id
        client.create_registered_model("price-meta")
        start = time.perf_counter()
        for _ in range(int(spec["versions"])):
            client.create_model_version("price-meta", warm.model_uri, run_id=run_id)
        out["metadata"].append(time.perf_counter() - start)
        versions = sorted(int(v.version) for v in client.search_model_versions("name='price'", max_results=10_000))
        meta = sorted(int(v.version) for v in client.search_model_versions("name='price-meta'", max_results=10_000))
        out["checks"][str(repeat)] = {"packaged": versions == list(range(1, int(spec["packaged_versions"]) + 1)),
                                      "metadata": meta == list(range(1, int(spec["versions"]) + 1))}
    return out


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
