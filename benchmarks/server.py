"""Benchmark for issue 4, "The keel server": the remote SDK against `mlflow server` and a plain HTTP floor.

One run starts three servers on free loopback ports — ``keel server`` (its own process, one worker,
SQLite), ``mlflow server`` (MLflow's venv, SQLite backend, artifacts proxied, its default workers) and a
floor: a raw ASGI app under the same uvicorn that streams a request body to a file and a file back — and
measures, on the same seeded data:

1. log_metric loop  10,000 ``run.log_metric`` calls through ``keel.open(url)``, until stored (the loop,
                    then ``ws.runs.flush()``: one batch request the server acknowledges once written);
                    MLflow: ``mlflow.log_metric`` (a request a call) x ``--mlflow-points``, as values/s.
                    MLflow's ``log_batch`` (1,000 a call) is shown for reference
2. search           500 runs (10 params, 10 metrics), ``metrics.m0 < 0.75 and params.p0 = '3'`` sorted by
                    m1 descending, top 100, and all 500: keel remote vs the same ``ws.runs.list`` embedded
                    (the same workspace opened in this process) vs MLflow ``search_runs``
3. registry         300 versions: keel ``ws.models.register`` (packaged here, uploaded, verified and
                    numbered by the server) vs MLflow ``create_model_version`` (rows only, the issue's
                    14 versions/s) and ``mlflow.sklearn.log_model(registered_model_name=)`` (packaged)
4. artifacts        a 100 MiB file up (``run.log_artifact``) and down (``ws.runs.download_artifact``, its
                    sha256 checked on the way) vs the floor's PUT and GET of the same file with httpx in
                    1 MiB chunks; keel stores artifacts durably (fsync), so the floor's PUT fsyncs too
                    (the floor without fsync is shown as well); MLflow's ``log_artifact`` /
                    ``download_artifacts`` through its server for reference

Targets (issue 4): the remote log_metric loop at least 1,000x MLflow's values/s; search within 2x of the
embedded keel search; artifact upload and download each within 1.5x of the floor. Printed PASS/FAIL; the
exit code is 0 either way (a measurement). Results: benchmarks/results/server.json.

    .venv/bin/python benchmarks/server.py                       # full size (about 3 minutes)
    .venv/bin/python benchmarks/server.py --runs 50 --versions 20 --artifact-mib 10 --mlflow-points 20
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import httpx
import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression

import keel
from _common import BENCH_DIR, fresh_dir, keel_dependency_versions, machine_info, peer_venv, summarize, write_results

MLFLOW_REQUIREMENTS = ["mlflow>=3"]
LOOP_TARGET = 1000.0  # keel remote loop values/s over MLflow's, at least
SEARCH_TARGET = 2.0  # keel remote search / embedded, at most
ARTIFACT_TARGET = 1.5  # keel transfer / the floor's, at most
SEARCH = {"keel_filter": "metrics.m0 < 0.75 and params.p0 = '3'", "keel_sort": "-metrics.m1",
          "mlflow_filter": "metrics.m0 < 0.75 and params.p0 = '3'", "mlflow_order": "metrics.m1 DESC",
          "sort_metric": "m1", "limit": 100}
ISSUE_MLFLOW = {"loop_values_per_s": 18, "batch_values_per_s": 4818, "search_500_s": 1.1, "registry_per_s": 14}
CHUNK = 1024 * 1024


# -- processes --------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def process(command: list[str], health: str, log: Path, env: dict[str, str] | None = None) -> Iterator[None]:
    """Run a server until the block ends; wait until ``health`` answers 200 first."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        try:
            deadline = time.monotonic() + 120
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"{command[0]} exited ({proc.returncode}); see {log}")
                try:
                    if httpx.get(health, timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit(f"{command[0]} did not answer {health} in 120 s; see {log}")
                time.sleep(0.2)
            yield
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def floor_app(folder: Path) -> Any:
    """The least a durable file copy over HTTP does, under the same uvicorn keel runs on: PUT streams the
    body into a new file, fsyncs it (unless ``?fsync=0``) and renames it into place — what keel's artifact
    store does, minus keel's bookkeeping; GET streams the file back 1 MiB at a time."""
    target = folder / "floor.bin"

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] == "PUT":
            fd, tmp = tempfile.mkstemp(dir=folder)
            with os.fdopen(fd, "wb") as out:
                while True:
                    message = await receive()
                    out.write(message.get("body", b""))
                    if not message.get("more_body"):
                        break
                if b"fsync=0" not in scope.get("query_string", b""):
                    out.flush()
                    os.fsync(out.fileno())
            os.replace(tmp, target)
            await send({"type": "http.response.start", "status": 201, "headers": [(b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        if scope["path"] == "/health" or not target.exists():
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        size = target.stat().st_size
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(size).encode()),
                                (b"content-type", b"application/octet-stream")]})
        with open(target, "rb") as src:
            while chunk := src.read(CHUNK):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return app


def serve_floor(port: int, folder: str) -> None:
    import uvicorn

    uvicorn.run(floor_app(Path(folder)), host="127.0.0.1", port=port, log_level="warning", lifespan="off")


def floor_upload(client: httpx.Client, url: str, path: Path, fsync: bool = True) -> None:
    def chunks() -> Iterator[bytes]:
        with open(path, "rb") as src:
            while chunk := src.read(CHUNK):
                yield chunk

    response = client.put(f"{url}/file" + ("" if fsync else "?fsync=0"), content=chunks(),
                          headers={"Content-Length": str(path.stat().st_size)})
    response.raise_for_status()


def floor_download(client: httpx.Client, url: str, dest: Path) -> None:
    with client.stream("GET", f"{url}/file") as response, open(dest, "wb") as out:
        response.raise_for_status()
        for chunk in response.iter_raw(CHUNK):
            out.write(chunk)


# -- data -------------------------------------------------------------------------------------------------

def make_data(args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(42)
    runs = [{"params": {f"p{j}": str(int(v)) for j, v in enumerate(rng.integers(0, 5, 10))},
             "metrics": {f"m{j}": float(v) for j, v in enumerate(rng.random(10))}} for _ in range(args.runs)]
    x = pd.DataFrame(rng.normal(size=(200, 10)), columns=[f"f{i}" for i in range(10)])
    y = x.to_numpy() @ rng.normal(size=10) + rng.normal(0, 0.1, 200)
    loop = (2.0 * np.exp(-np.arange(args.points) / max(args.points / 5, 1)) + rng.normal(0, 0.05, args.points))
    return {"loop": loop.tolist(), "runs": runs, "x": x, "y": y}


def expected_search(data: dict[str, Any]) -> list[float]:
    hits = [r["metrics"]["m1"] for r in data["runs"] if r["metrics"]["m0"] < 0.75 and r["params"]["p0"] == "3"]
    return sorted(hits, reverse=True)[:SEARCH["limit"]]


# -- keel --------------------------------------------------------------------------------------------------

def clocked(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def keel_side(url: str, token: str, root: Path, data: dict[str, Any], big: Path, floor_url: str,
              args: argparse.Namespace, work: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"samples": {}, "checks": {}}
    samples = out["samples"]
    ws = keel.open(url, token=token)
    embedded = keel.open(root)
    try:
        with ws.runs.start("warm-up") as run:  # the server's code paths, warm
            for step in range(100):
                run.log_metric("m", float(step), step=step)
        samples["loop"] = []
        for _ in range(args.repeats):
            with ws.runs.start("loop") as run:
                def loop(run: Any = run) -> None:
                    for step, value in enumerate(data["loop"]):
                        run.log_metric("loss", value, step=step)
                    ws.runs.flush()  # returns once the server has stored the batch
                samples["loop"].append(clocked(loop))
            out["checks"]["loop_stored"] = len(ws.runs.metric_history(run.id, "loss"))

        def create_runs() -> None:
            for item in data["runs"]:
                with ws.runs.start("grid") as run:
                    run.log_params(item["params"])
                    run.log_metrics(item["metrics"])

        out["runs_s"] = clocked(create_runs)
        query = {"experiment": "grid", "filter": SEARCH["keel_filter"], "sort": SEARCH["keel_sort"],
                 "limit": SEARCH["limit"]}
        everything = {"experiment": "grid", "limit": len(data["runs"])}
        for _ in range(3):
            ws.runs.list(**query), embedded.runs.list(**query), ws.runs.list(**everything)
        remote_hits, embedded_hits = ws.runs.list(**query), embedded.runs.list(**query)
        if remote_hits != embedded_hits:
            raise SystemExit("keel: the remote search returned other runs than the embedded one")
        out["checks"]["search_sort_values"] = [r.metrics["m1"] for r in remote_hits]
        out["checks"]["search_all"] = len(ws.runs.list(**everything))
        for key in ("search_remote", "search_embedded", "search_all_remote", "search_all_embedded"):
            samples[key] = []
        for _ in range(args.search_repeats):  # interleaved, so load drifts hit both alike
            samples["search_remote"].append(clocked(lambda: ws.runs.list(**query)))
            samples["search_embedded"].append(clocked(lambda: embedded.runs.list(**query)))
            samples["search_all_remote"].append(clocked(lambda: ws.runs.list(**everything)))
            samples["search_all_embedded"].append(clocked(lambda: embedded.runs.list(**everything)))

        model = LinearRegression().fit(data["x"], data["y"])
        example = data["x"].head(5)
        with ws.runs.start("registry") as run:
            ws.models.register(model, "warm-up", run=run.id, input_example=example)
            out["registry_s"] = clocked(lambda: [ws.models.register(model, "price", run=run.id, input_example=example)
                                                 for _ in range(args.versions)])
        out["checks"]["registry_versions"] = [v.version for v in ws.models.versions("price")] == \
            list(range(1, args.versions + 1))

        with httpx.Client(timeout=120) as plain:
            holder = ws.runs.start("artifacts")  # the run the big file is logged to (again and again)
            transfers = {
                "upload": lambda i: holder.log_artifact(big),
                "download": lambda i: ws.runs.download_artifact(holder.id, big.name, work / f"keel-{i}.bin"),
                "floor_upload": lambda i: floor_upload(plain, floor_url, big),
                "floor_upload_nofsync": lambda i: floor_upload(plain, floor_url, big, fsync=False),
                "floor_download": lambda i: floor_download(plain, floor_url, work / f"floor-{i}.bin"),
            }
            holder.log_artifact(big)
            floor_upload(plain, floor_url, big)
            for key in transfers:
                samples[key] = []
            for repeat in range(args.repeats):
                order = list(transfers) if repeat % 2 == 0 else list(reversed(transfers))  # no side always first
                for key in order:
                    os.sync()  # each transfer starts with no other write still being flushed to disk
                    samples[key].append(clocked(lambda key=key, repeat=repeat: transfers[key](repeat)))
                for side in ("keel", "floor"):
                    received = work / f"{side}-{repeat}.bin"
                    out["checks"][f"{side}_download_size"] = received.stat().st_size
                    received.unlink()
            holder.end()
    finally:
        ws.close()
        embedded.close()
    return out


# -- MLflow ------------------------------------------------------------------------------------------------

def mlflow_side(python: Path, url: str, data: dict[str, Any], big: Path, args: argparse.Namespace,
                work: Path) -> dict[str, Any]:
    spec = {"url": url, "workdir": str(work), "repeats": args.repeats, "search_repeats": args.search_repeats,
            "loop_values": data["loop"][:args.mlflow_points], "batch_values": data["loop"], "runs": data["runs"],
            "search": SEARCH, "x": data["x"].to_dict(orient="list"), "y": data["y"].tolist(),
            "versions": args.versions, "packaged_versions": args.mlflow_packaged, "artifact": str(big)}
    path = work / "mlflow-spec.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    done = subprocess.run([str(python), str(BENCH_DIR / "_mlflow_server_worker.py"), str(path)],
                          capture_output=True, text=True, env={**os.environ, "MLFLOW_TRACKING_URI": url})
    if done.returncode != 0:
        raise SystemExit(f"MLflow worker failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- report ------------------------------------------------------------------------------------------------

def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(keel_out: dict[str, Any], ml: dict[str, Any], data: dict[str, Any], args: argparse.Namespace,
           machine: dict[str, Any]) -> dict[str, Any]:
    k, m = keel_out["samples"], ml["samples"]
    stats = {f"keel_{name}": summarize(v) for name, v in k.items()}
    stats.update({f"mlflow_{name}": summarize(v) for name, v in m.items()})
    expected = expected_search(data)
    checks = {
        "keel loop stored": keel_out["checks"]["loop_stored"] == args.points,
        "mlflow loop stored": ml["checks"]["loop_stored"] == args.mlflow_points,
        "keel search order": keel_out["checks"]["search_sort_values"] == expected,
        "mlflow search order": ml["checks"]["search_sort_values"] == expected,
        "search all": keel_out["checks"]["search_all"] == ml["checks"]["search_all"] == args.runs,
        "keel versions 1..N": keel_out["checks"]["registry_versions"],
        "mlflow versions": ml["checks"]["registry_metadata_versions"] == args.versions,
        "downloads whole": keel_out["checks"]["keel_download_size"] == ml["checks"]["download_size"]
        == keel_out["checks"]["floor_download_size"] == args.artifact_mib * CHUNK,
    }
    med = {name: s["median"] for name, s in stats.items()}
    keel_loop = args.points / med["keel_loop"]
    mlflow_loop = args.mlflow_points / med["mlflow_loop"]
    mlflow_batch = args.points / med["mlflow_batch"]
    keel_registry = args.versions / keel_out["registry_s"]
    targets = {
        "loop": keel_loop / mlflow_loop,
        "search": med["keel_search_remote"] / med["keel_search_embedded"],
        "search_all": med["keel_search_all_remote"] / med["keel_search_all_embedded"],
        "upload": med["keel_upload"] / med["keel_floor_upload"],
        "download": med["keel_download"] / med["keel_floor_download"],
    }
    mib = args.artifact_mib
    rows = [
        ("log_metric loop, values/s (until stored)", f"{keel_loop:,.0f}", f"{mlflow_loop:,.1f}", "-",
         f"{targets['loop']:,.0f}x MLflow"),
        ("  MLflow log_batch (1,000 a call), values/s", "-", f"{mlflow_batch:,.0f}", "-", "reference"),
        (f"create {args.runs} runs (10 params, 10 metrics)", f"{keel_out['runs_s']:.2f} s", f"{ml['runs_s']:.2f} s",
         "-", f"{ml['runs_s'] / keel_out['runs_s']:.1f}x faster"),
        (f"search top {SEARCH['limit']} of {args.runs} (median)", f"{med['keel_search_remote'] * 1e3:.1f} ms",
         f"{med['mlflow_search'] * 1e3:.1f} ms", f"embedded {med['keel_search_embedded'] * 1e3:.1f} ms",
         f"{targets['search']:.2f}x embedded"),
        (f"list all {args.runs} runs (median)", f"{med['keel_search_all_remote'] * 1e3:.1f} ms",
         f"{med['mlflow_search_all'] * 1e3:.1f} ms", f"embedded {med['keel_search_all_embedded'] * 1e3:.1f} ms",
         f"{targets['search_all']:.2f}x embedded"),
        (f"register {args.versions} packaged versions, /s", f"{keel_registry:.1f}",
         f"{args.mlflow_packaged / ml['registry_packaged_s']:.2f}", "-", "MLflow: sklearn.log_model"),
        (f"  MLflow create_model_version x {args.versions}, /s", "-",
         f"{args.versions / ml['registry_metadata_s']:.1f}", "-", "rows only, no package"),
        (f"upload {mib} MiB (median)", f"{med['keel_upload'] * 1e3:.0f} ms", f"{med['mlflow_upload'] * 1e3:.0f} ms",
         f"{med['keel_floor_upload'] * 1e3:.0f} ms ({med['keel_floor_upload_nofsync'] * 1e3:.0f} no fsync)",
         f"{targets['upload']:.2f}x floor"),
        (f"download {mib} MiB (median)", f"{med['keel_download'] * 1e3:.0f} ms",
         f"{med['mlflow_download'] * 1e3:.0f} ms", f"{med['keel_floor_download'] * 1e3:.0f} ms",
         f"{targets['download']:.2f}x floor"),
    ]
    widths = [max(len(str(r[i])) for r in [("", "keel", "MLflow", "floor / embedded", "ratio"), *rows])
              for i in range(5)]
    for row in [("", "keel", "MLflow", "floor / embedded", "ratio"), *rows]:
        cells = [str(c).ljust(w) if i == 0 else str(c).rjust(w)
                 for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        print("  ".join(cells))
    print()
    passed = {
        f"remote log_metric loop >= {LOOP_TARGET:,.0f}x MLflow's": targets["loop"] >= LOOP_TARGET,
        f"search within {SEARCH_TARGET}x embedded": targets["search"] <= SEARCH_TARGET,
        f"list of all runs within {SEARCH_TARGET}x embedded": targets["search_all"] <= SEARCH_TARGET,
        f"artifact upload within {ARTIFACT_TARGET}x the floor": targets["upload"] <= ARTIFACT_TARGET,
        f"artifact download within {ARTIFACT_TARGET}x the floor": targets["download"] <= ARTIFACT_TARGET,
    }
    for name, ok in passed.items():
        print(f"{verdict(ok)}  {name}")
    for name, ok in checks.items():
        if not ok:
            print(f"CHECK FAILED  {name}")
    payload = {
        "settings": vars(args), "versions": {"keel": keel_dependency_versions(), "mlflow": ml["mlflow"]},
        "issue_mlflow": ISSUE_MLFLOW, "stats": stats, "keel_runs_s": keel_out["runs_s"],
        "mlflow_runs_s": ml["runs_s"], "keel_registry_s": keel_out["registry_s"],
        "mlflow_registry_metadata_s": ml["registry_metadata_s"],
        "mlflow_registry_packaged_s": ml["registry_packaged_s"],
        "rates": {"keel_loop_values_per_s": keel_loop, "mlflow_loop_values_per_s": mlflow_loop,
                  "mlflow_batch_values_per_s": mlflow_batch, "keel_registry_per_s": keel_registry},
        "ratios": targets, "targets": {k: bool(v) for k, v in passed.items()}, "checks": checks,
    }
    print(f"\nresults: {write_results('server', payload, machine)}")
    return payload


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=10_000, help="keel log_metric loop length")
    parser.add_argument("--mlflow-points", type=int, default=200, help="MLflow log_metric loop length (52 ms a call)")
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--versions", type=int, default=300)
    parser.add_argument("--mlflow-packaged", type=int, default=10, help="MLflow sklearn.log_model versions")
    parser.add_argument("--artifact-mib", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--search-repeats", type=int, default=20)
    parser.add_argument("--serve-floor", nargs=2, metavar=("PORT", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_floor:
        serve_floor(int(args.serve_floor[0]), args.serve_floor[1])
        return
    machine = machine_info()
    python = peer_venv("mlflow", MLFLOW_REQUIREMENTS)
    mlflow_bin = python.parent / "mlflow"
    data = make_data(args)
    with fresh_dir("keel-bench-server-") as work:
        big = work / "artifact.bin"
        with open(big, "wb") as out:  # random, so nothing on the way can compress it
            rng = np.random.default_rng(7)
            for _ in range(args.artifact_mib):
                out.write(rng.bytes(CHUNK))
        root = work / "keel"
        ws = keel.init(root, user="bench")
        ws.users.add("bench", "admin")
        token = ws.tokens.create("bench").token
        ws.close()
        keel_port, mlflow_port, floor_port = free_port(), free_port(), free_port()
        keel_url, mlflow_url = f"http://127.0.0.1:{keel_port}", f"http://127.0.0.1:{mlflow_port}"
        floor_url = f"http://127.0.0.1:{floor_port}"
        (work / "floor").mkdir()
        keel_cmd = [str(Path(sys.executable).parent / "keel"), "--workspace", str(root), "server", "--port",
                    str(keel_port), "--log-level", "warning"]
        mlflow_cmd = [str(mlflow_bin), "server", "--backend-store-uri", f"sqlite:///{work / 'mlflow.db'}",
                      "--artifacts-destination", str(work / "mlartifacts"), "--host", "127.0.0.1",
                      "--port", str(mlflow_port)]
        floor_cmd = [sys.executable, __file__, "--serve-floor", str(floor_port), str(work / "floor")]
        print(f"keel {keel.__version__} server, MLflow server and the floor on ports {keel_port}, {mlflow_port}, "
              f"{floor_port}; {args.points:,} points, {args.runs} runs, {args.versions} versions, "
              f"{args.artifact_mib} MiB", flush=True)
        with process(keel_cmd, f"{keel_url}/api/v1/health", work / "keel.log"), \
                process(floor_cmd, f"{floor_url}/health", work / "floor.log"):
            print("keel ...", flush=True)
            keel_out = keel_side(keel_url, token, root, data, big, floor_url, args, work)
        with process(mlflow_cmd, f"{mlflow_url}/health", work / "mlflow.log",
                     env={"MLFLOW_DISABLE_TELEMETRY": "true"}):
            print("MLflow ...", flush=True)
            ml = mlflow_side(python, mlflow_url, data, big, args, work)
        report(keel_out, ml, data, args, machine)


if __name__ == "__main__":
    main()
