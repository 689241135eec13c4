"""Benchmark for issue 3, "Model registry": 300 registered versions, keel against MLflow and a raw floor.

Measured side by side in one run, on the same seeded LinearRegression (10 features, 200 rows):

1. keel         ``ws.models.register(model, "price", run=..., input_example=...)`` x N: a package (skops model,
                requirements, example, manifest with sha256 of every file) written durably, then one
                transaction that takes the next version number and records it with its lineage and audit row
2. MLflow       ``mlflow.sklearn.log_model(model, registered_model_name="price", input_example=...)`` (serialise,
                write the artifacts, register: the same work), in MLflow's own venv, SQLite; 30 versions by
                default, scaled to N (each takes seconds: MLflow infers the requirements in a subprocess)
3. MLflow meta  ``MlflowClient.create_model_version`` x N pointing at one logged model: registry rows only,
                no package (what the issue's "267 versions/s" measures); shown for reference
4. floor        plain Python doing the least a durable packaged version needs: ``skops.io.dumps``, sha256,
                the same four files written and fsynced, one sqlite3 transaction (counter + version row)

Every side's versions are checked to be exactly 1..N. keel is printed as a ratio to MLflow (packaged)
and to the floor. The issue sets no target for the registry; a ratio > 1 against MLflow means keel is
faster.

    .venv/bin/python benchmarks/registry.py                    # 300 versions, 3 repeats (about 2 minutes)
    .venv/bin/python benchmarks/registry.py --versions 30      # smoke check
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import io
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import keel
from _common import BENCH_DIR, keel_dependency_versions, machine_info, peer_venv, summarize, write_results
from keel.storage.db import Database
from keel.tracking.environment import capture_environment, requirements_text

MLFLOW_REQUIREMENTS = ["mlflow>=3"]
ISSUE_MLFLOW_METADATA_PER_S = 267


def make_data(seed: int = 0, rows: int = 200, features: int = 10) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.normal(size=(rows, features)), columns=[f"f{i}" for i in range(features)])
    return x, x.to_numpy() @ rng.normal(size=features) + rng.normal(0, 0.1, rows)


def keel_side(root: Path, model: Any, x: pd.DataFrame, n: int) -> float:
    ws = keel.init(root)
    try:
        with ws.runs.start("registry") as run:
            run.log_model(model, "warm-up", input_example=x.head(5))
        gc.collect()
        start = time.perf_counter()
        for _ in range(n):
            ws.models.register(model, "price", run=run.id, input_example=x.head(5))
        elapsed = time.perf_counter() - start
        versions = [v.version for v in ws.models.versions("price")]
        if versions != list(range(1, n + 1)):
            raise SystemExit(f"keel: versions {versions[:5]}... are not 1..{n}")
        return elapsed
    finally:
        ws.close()


class Floor:
    """The least a durable, packaged, numbered version costs, in plain Python and sqlite3."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        path = folder / "floor.db"
        db = Database(f"sqlite:///{path}")
        db.migrate()  # keel's own tables
        db.dispose()
        self.conn = sqlite3.connect(path, isolation_level=None)
        for pragma in ("journal_mode = WAL", "synchronous = NORMAL", "busy_timeout = 30000"):
            self.conn.execute(f"PRAGMA {pragma}")
        self.conn.execute("INSERT INTO registered_models VALUES ('price', 0, '2026-01-01 00:00:00', 'bench')")
        self.requirements = requirements_text(capture_environment()).encode()

    def register(self, model: Any, example: pd.DataFrame, index: int) -> None:
        import skops.io as sio

        files = {"model.skops": sio.dumps(model), "requirements.txt": self.requirements}
        buffer = io.BytesIO()
        example.to_parquet(buffer, index=False)
        files["input_example.parquet"] = buffer.getvalue()
        hashes = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
        files["keel-model.yaml"] = json.dumps(hashes).encode()
        package = self.folder / f"p{index}"
        package.mkdir()
        for name, data in files.items():
            fd = os.open(package / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.execute("UPDATE registered_models SET latest_version = latest_version + 1 WHERE name = 'price'")
        version = self.conn.execute("SELECT latest_version FROM registered_models WHERE name = 'price'").fetchone()[0]
        self.conn.execute(
            "INSERT INTO model_versions (model, version, flavor, model_class, package_key, manifest_sha256, signature, "
            "size, created_at, created_by) VALUES ('price', ?, 'sklearn', 'LinearRegression', ?, ?, '{}', ?, "
            "'2026-01-01 00:00:00', 'bench')",
            (version, str(package), hashlib.sha256(files["keel-model.yaml"]).hexdigest(),
             sum(len(d) for d in files.values())))
        self.conn.execute("COMMIT")


def floor_side(folder: Path, model: Any, x: pd.DataFrame, n: int) -> float:
    floor = Floor(folder)
    floor.register(model, x.head(5), -1)  # warm-up (imports, first write)
    floor.conn.execute("UPDATE registered_models SET latest_version = 0")
    floor.conn.execute("DELETE FROM model_versions")
    gc.collect()
    start = time.perf_counter()
    for i in range(n):
        floor.register(model, x.head(5), i)
    elapsed = time.perf_counter() - start
    found = [r[0] for r in floor.conn.execute("SELECT version FROM model_versions ORDER BY version")]
    if found != list(range(1, n + 1)):
        raise SystemExit("floor: versions are not 1..n")
    floor.conn.close()
    return elapsed


def mlflow_side(folder: Path, x: pd.DataFrame, y: np.ndarray, n: int, packaged: int, repeats: int) -> dict[str, Any]:
    print("MLflow venv (benchmarks/.venv-mlflow; created on first use, a few minutes) ...", flush=True)
    python = peer_venv("mlflow", MLFLOW_REQUIREMENTS)
    folder.mkdir()
    spec = folder / "spec.json"
    spec.write_text(json.dumps({"workdir": str(folder), "x": x.to_dict(orient="list"), "y": y.tolist(),
                                "versions": n, "packaged_versions": packaged, "repeats": repeats}), encoding="utf-8")
    print(f"MLflow side x{repeats} ...", flush=True)
    proc = subprocess.run([str(python), str(BENCH_DIR / "_mlflow_registry_worker.py"), str(spec)], cwd=folder,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"MLflow side failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if not all(c["packaged"] and c["metadata"] for c in result["checks"].values()):
        raise SystemExit(f"MLflow's versions are not 1..n: {result['checks']}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--versions", type=int, default=300)
    parser.add_argument("--mlflow-packaged", type=int, default=30,
                        help="versions MLflow packages with log_model (~2.5 s each: it infers the requirements "
                             "by loading the model in a subprocess); its time is scaled to --versions")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    info = machine_info()
    x, y = make_data()
    from sklearn.linear_model import LinearRegression

    model = LinearRegression().fit(x, y)
    packaged = min(args.mlflow_packaged, args.versions)
    samples: dict[str, list[float]] = {"keel": [], "floor": []}
    with tempfile.TemporaryDirectory(prefix="keel-bench-registry-") as tmp:
        work = Path(tmp)
        mlflow = mlflow_side(work / "mlflow", x, y, args.versions, packaged, args.repeats)
        for r in range(args.repeats):
            print(f"keel and the floor, repeat {r + 1}/{args.repeats} ...", flush=True)
            samples["keel"].append(keel_side(work / f"keel-{r}", model, x, args.versions))
            (work / f"floor-{r}").mkdir()
            samples["floor"].append(floor_side(work / f"floor-{r}", model, x, args.versions))
    keel_s, floor_s = summarize(samples["keel"])["median"], summarize(samples["floor"])["median"]
    mlflow_s = summarize(mlflow["packaged"])["median"] * args.versions / packaged
    meta_s = summarize(mlflow["metadata"])["median"]
    rows = [("keel register (packaged)", keel_s), ("MLflow log_model + register (packaged)", mlflow_s),
            ("MLflow create_model_version (rows only)", meta_s), ("floor (dumps, 4 fsynced files, 1 txn)", floor_s)]
    print(f"\n{args.versions} registered versions, median of {args.repeats} (MLflow {mlflow['mlflow']}, SQLite; "
          f"load {info['load_average_1m']} on {info['cpu_count']} cores)")
    print(f"{'':42} {'total':>9} {'per version':>12} {'versions/s':>11}")
    for name, seconds in rows:
        print(f"{name:42} {seconds:8.2f}s {seconds / args.versions * 1000:10.2f}ms {args.versions / seconds:11.1f}")
    print(f"\nkeel vs MLflow (packaged): {mlflow_s / keel_s:.2f}x faster; keel / floor: {keel_s / floor_s:.2f}x; "
          f"the issue measured MLflow's rows-only path at {ISSUE_MLFLOW_METADATA_PER_S}/s, here "
          f"{args.versions / meta_s:.0f}/s")
    path = write_results("registry", {
        "versions": args.versions, "repeats": args.repeats, "mlflow_packaged_versions": packaged,
        "seconds": {"keel": samples["keel"], "floor": samples["floor"], "mlflow_packaged": mlflow["packaged"],
                    "mlflow_metadata": mlflow["metadata"]},
        "median_s": {"keel": keel_s, "floor": floor_s, "mlflow_packaged_scaled": mlflow_s, "mlflow_metadata": meta_s},
        "ratios": {"mlflow_packaged_over_keel": mlflow_s / keel_s, "keel_over_floor": keel_s / floor_s},
        "versions_mlflow": mlflow["mlflow"], "keel_dependencies": keel_dependency_versions(),
    }, info)
    print(f"results: {path}")


if __name__ == "__main__":
    main()
