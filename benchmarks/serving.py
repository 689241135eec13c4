"""Benchmark for issue 7, "Serving and deployments": `keel serve` vs `mlflow models serve` and a bare FastAPI floor.

Two models trained here on generated data (8 numeric features, seeded): a scikit-learn LogisticRegression
(binary classifier) and a 100-tree RandomForestRegressor (default depth). One-row requests, concurrency 1,
side by side in one run, for each model:

1. in-process       ``model.predict`` on a prebuilt one-row pandas DataFrame, in this process, pinned to the
                    servers' core (the model's own floor)
2. floor            a bare FastAPI app under uvicorn with keel's options (1 worker, uvloop + httptools, no
                    server header): reads ``{"records": [{...}]}`` with orjson, builds the one-row DataFrame,
                    calls the same ``model.predict`` on the event loop and answers ``{"predictions": [...]}``
3. keel, parts ¹    the same uvicorn app shape running keel's own pieces, to split keel's overhead:
                    a) keel's body parsing and signature check (``frame_from_body`` + ``LoadedModel.predict``,
                       on the event loop); b) parsing + ``await Endpoint.answer`` as ``keel serve`` does it
                       (routing, value checks, the model inline or on its own thread as keel serve decides, the chain,
                       the endpoint loaded by keel's ``EndpointSet``) — but no prediction log, no metrics
4. keel             ``keel serve --deployment NAME --workers 1`` on a fresh workspace where the model is
                    registered and deployed; ``POST /v1/endpoints/NAME/predict`` with ``{"records": [...]}``
5. keel, shadow on  the same with a second version of the model as a shadow (``ws.deployments.shadow``,
                    sample 1.0): what the shadow costs the primary's latency (keel runs shadows in a child process
                    at nice 19, on the server's core, fed by a bounded queue; the log count after the stop shows
                    how many it predicted)
6. MLflow           ``mlflow models serve --env-manager local --workers 1`` of the same model (pickled here,
                    saved with ``mlflow.sklearn.save_model`` in MLflow's own venv, ``benchmarks/.venv-mlflow-serve``,
                    with keel's scikit-learn version); ``POST /invocations`` with ``dataframe_split``

Every server is pinned to one core (the first usable) in a process group of its own. A model's servers are
started one after the other, each paused (SIGSTOP) once ``/readyz`` (MLflow: ``/ping``) answers; then the
targets are measured in ``--rounds`` interleaved slices (the order rotated every round), only the measured
server running, so drift in a shared machine's load hits every target alike and an idle server's background
work (keel's log committer) never disturbs another's. The load generator (``_serving_worker.py load``) is a
separate process pinned to the other core: one keep-alive connection, a raw socket, each request timed with
``perf_counter_ns``, a warm-up before every slice. Every server's answers to the 64 distinct request rows are
checked against ``model.predict``, and once the servers are stopped each keel prediction log is counted
(every answered request is in it). Every server runs at uvicorn's log level info, each one's default (an
access-log line a request; ``--log-level warning`` drops it everywhere). MLflow's venv has neither uvloop nor
httptools (``pip install mlflow`` brings neither), so its uvicorn runs asyncio + h11; keel and the floor get both.

Targets (issue 7): keel within 1.5x of the floor's throughput and p50 for both models (so at least 5x
MLflow's throughput on the logistic regression), keel's p99 within 5 ms of the floor's; prediction logging
plus routing add at most 10% to p50 (keel's p50 over part 3a's); shadow adds nothing measurable to the
primary's p99 (criterion: shadow-on p99 within 10% or 0.5 ms of shadow-off's, whichever is larger). Printed
PASS/FAIL; the exit code is 0 either way (a measurement). Results: benchmarks/results/serving.json.

    .venv/bin/python benchmarks/serving.py            # full run (about 3.5 minutes)
    .venv/bin/python benchmarks/serving.py --quick    # smoke check (about 1.5 minutes, mostly server starts)
    .venv/bin/python benchmarks/serving.py --log-level warning   # every server without its access log
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import httpx
import numpy as np
import orjson
import pandas as pd
import sklearn
from fastapi import FastAPI, Request
from fastapi.responses import Response
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LogisticRegression

import keel
from _common import (
    BENCH_DIR,
    fresh_dir,
    keel_dependency_versions,
    machine_info,
    package_versions,
    peer_venv,
    write_results,
)

MLFLOW_REQUIREMENTS = ["mlflow>=3", f"scikit-learn=={sklearn.__version__}"]  # the same pickle loads on both sides
FEATURES = [f"f{i}" for i in range(8)]
N_REQUEST_ROWS = 64  # distinct one-row requests, posted in turn
THROUGHPUT_TARGET = 1.5  # floor's req/s over keel's, and keel's p50 over the floor's, at most
MLFLOW_TARGET = 5.0  # keel's req/s over MLflow's on the logistic regression, at least
P99_TARGET_MS = 5.0  # keel's p99 minus the floor's, at most
OVERHEAD_TARGET = 0.10  # (keel p50 - parts-a p50) / parts-a p50, at most
SHADOW_TARGET = (0.10, 0.5)  # shadow-on p99 within this share or these ms of shadow-off's, whichever is larger
ISSUE_REFERENCE = {  # issue 7, "measured here": one worker, wrk on the other core, concurrency 1
    "lr": {"in_process_ms": 0.23, "floor_rps": 1937, "floor_p50_ms": 0.44, "mlflow_rps": 224, "mlflow_p50_ms": 4.3},
    "rf": {"in_process_ms": 6.9, "floor_rps": 127, "mlflow_rps": 88},
}
TARGETS = [  # key, label
    ("in_process", "in-process model.predict"),
    ("floor", "floor: bare FastAPI + predict"),
    ("parts_validate", "keel a: parse + signature ¹"),
    ("parts_route", "keel b: a + Endpoint.answer ¹"),
    ("keel", "keel serve (b + log, metrics)"),
    ("keel_shadow", "keel serve, shadow on"),
    ("mlflow", "mlflow models serve"),
]
MODELS = {"lr": "LogisticRegression (binary)", "rf": "RandomForestRegressor (100 trees)"}


# -- models and requests -----------------------------------------------------------------------------------

def make_models(n: int, seed: int) -> dict[str, dict[str, Any]]:
    """Both models, a second version of each (the shadow candidate), and the request rows with their answers."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n + N_REQUEST_ROWS, len(FEATURES))), columns=FEATURES)
    train, rows = X.iloc[:n], X.iloc[n:].reset_index(drop=True)
    linear = train.f0 + 0.5 * train.f1 - train.f2 + 0.25 * train.f3 * train.f4
    label = (linear + rng.normal(size=n) > 0).astype(int)
    target = 3 * train.f0 + np.sin(2 * train.f1) + train.f2 * train.f3 + rng.normal(0, 0.5, n)
    cases = {
        "lr": (LogisticRegression().fit(train, label), LogisticRegression(C=0.1).fit(train, label)),
        "rf": (RandomForestRegressor(n_estimators=100, random_state=0).fit(train, target),
               RandomForestRegressor(n_estimators=100, random_state=1).fit(train, target)),
    }
    records = rows.to_dict(orient="records")
    out = {}
    for name, (model, candidate) in cases.items():
        expected = [model.predict(rows.iloc[[i]])[0].item() for i in range(len(rows))]
        out[name] = {"model": model, "candidate": candidate, "records": records, "expected": expected,
                     "example": train.head(5)}
    return out


def bodies(case: dict[str, Any], mlflow: bool) -> list[str]:
    if mlflow:
        return [json.dumps({"dataframe_split": {"columns": FEATURES, "data": [[r[c] for c in FEATURES]]}})
                for r in case["records"]]
    return [json.dumps({"records": [r]}) for r in case["records"]]


def keel_workspace(root: Path, name: str, case: dict[str, Any], shadow: bool) -> None:
    """A fresh workspace: the model and its candidate registered, a deployment NAME serving the first."""
    with keel.init(root, user="bench") as ws:
        first = ws.models.register(case["model"], name, input_example=case["example"])
        second = ws.models.register(case["candidate"], name, input_example=case["example"])
        ws.deployments.create(name, first.name)
        if shadow:
            ws.deployments.shadow(name, candidate=second.name, sample=1.0)


def logged(root: Path, name: str) -> dict[str, int]:
    """Rows of the prediction log by kind (read after the server stopped and committed)."""
    with keel.open(root) as ws:
        frame = ws.data.read("predictions", columns=["deployment", "kind"])
    frame = frame[frame.deployment == name]
    return {str(k): int(v) for k, v in frame.kind.value_counts().items()}


# -- the floor and keel's parts, served by this script (--serve) --------------------------------------------

def floor_app(spec: dict[str, Any]) -> Any:
    with open(spec["pickle"], "rb") as src:
        model = pickle.load(src)  # written by this benchmark a moment ago
    app = FastAPI(docs_url=None, redoc_url=None)

    @app.get("/readyz")
    def readyz() -> dict[str, bool]:
        return {"ready": True}

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        frame = pd.DataFrame.from_records(orjson.loads(await request.body())["records"])
        return Response(orjson.dumps({"predictions": model.predict(frame).tolist()}), media_type="application/json")

    return app


def parts_app(spec: dict[str, Any]) -> Any:
    """keel serve's request path without its prediction log and metrics (keel/serving/app.py's ``predict`` and
    ``_serve``): the deployment loaded as keel serve loads it (``EndpointSet``: verified, warmed), BLAS limited
    to one thread as keel serve's lifespan does."""
    from threadpoolctl import threadpool_limits

    from keel.serving.loader import EndpointSet
    from keel.serving.requests import frame_from_body, parse_json

    threadpool_limits(1)
    name = spec["deployment"]
    served = EndpointSet(keel.open(spec["workspace"]), [name], 1.0, lambda _name: None)
    served.refresh()
    endpoint = served.endpoints[name]
    primary = endpoint.models[endpoint.policy.arms[0].model]
    app = FastAPI(docs_url=None, redoc_url=None)

    @app.get("/readyz")
    def readyz() -> dict[str, bool]:
        return {"ready": True}

    @app.post("/validate")
    async def validate(request: Request) -> Response:
        frame = frame_from_body(parse_json(await request.body()))
        return Response(orjson.dumps({"predictions": primary.predict(frame).tolist()}), media_type="application/json")

    @app.post("/route")
    async def routed(request: Request) -> Response:
        frame = frame_from_body(parse_json(await request.body()))
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        answer = await endpoint.answer(frame, request_id, request_id)
        out = {"predictions": answer.predictions.tolist(), "model": answer.served_by, "arm": answer.arm,
               "request_id": request_id}
        return Response(orjson.dumps(out, option=orjson.OPT_SERIALIZE_NUMPY, default=str),
                        media_type="application/json")

    return app


def serve(kind: str, port: int, spec_path: str) -> None:
    """Run the floor or keel's parts with the uvicorn options `keel serve` uses."""
    import uvicorn

    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    app = floor_app(spec) if kind == "floor" else parts_app(spec)
    uvicorn.run(app, host="127.0.0.1", port=port, workers=1, log_level=spec["log_level"], server_header=False,
                timeout_graceful_shutdown=30)


# -- processes ----------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A server process pinned to ``core``, in a process group of its own: paused (SIGSTOP) while another target
    is measured, so an idle server's background work (keel's log committer) cannot disturb it; ``stop`` ends the
    whole group."""

    def __init__(self, command: list[str], ready: str, log: Path, env: dict[str, str], core: int | None) -> None:
        self.command, self.ready, self.log, self.env, self.core = command, ready, log, env, core
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_s = 0.0

    def __enter__(self) -> Server:
        core = self.core

        def pin() -> None:
            if core is not None:
                os.sched_setaffinity(0, {core})  # threads and child processes inherit it

        started = time.perf_counter()
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT, env=self.env,
                                         start_new_session=True, preexec_fn=pin)
        deadline = time.monotonic() + 180
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{' '.join(self.command[:4])} ... exited ({self.proc.returncode}):\n{self.tail()}")
            try:
                if httpx.get(self.ready, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.ready} did not answer 200 within 180 s:\n{self.tail()}")
            time.sleep(0.1)
        self.startup_s = time.perf_counter() - started
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def pause(self) -> None:
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def stop(self) -> None:
        """SIGTERM to the server's main process, as a process manager stops it (keel closes its shadow child and
        commits its log on the way out); whatever of the group is left after 60 s gets SIGKILL."""
        if self.proc is None:
            return
        self.resume()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait()
        deadline = time.monotonic() + 10
        while self._alive() and time.monotonic() < deadline:  # children still finishing (MLflow's uvicorn)
            time.sleep(0.1)
        self._signal(signal.SIGKILL)

    def _alive(self) -> bool:
        """Whether any process of the group is left."""
        if self.proc is None:
            return False
        try:
            os.killpg(self.proc.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def _signal(self, sig: int) -> None:
        if self.proc is not None:
            with suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Samples:
    """One target's timed requests, gathered over the rounds."""

    def __init__(self) -> None:
        self.latencies_ns: list[int] = []
        self.elapsed_ns, self.sent, self.errors = 0, 0, 0
        self.answers: list[Any] | None = None

    def add(self, latencies_ns: list[int], elapsed_ns: int, answers: list[Any], sent: int, errors: int) -> None:
        self.latencies_ns += latencies_ns
        self.elapsed_ns += elapsed_ns
        self.sent, self.errors = self.sent + sent, self.errors + errors
        self.answers = self.answers if self.answers is not None else answers

    def stats(self) -> dict[str, Any]:
        ordered = np.sort(np.asarray(self.latencies_ns, dtype=np.float64)) / 1e6
        pct = {f"p{q:g}_ms": float(np.percentile(ordered, q)) for q in (1, 10, 50, 90, 99, 99.9)}
        return {"n": len(ordered), "rps": len(ordered) / (self.elapsed_ns / 1e9), "mean_ms": float(ordered.mean()),
                "min_ms": float(ordered[0]), "max_ms": float(ordered[-1]), **pct, "sent": self.sent,
                "errors": self.errors}


def drive(samples: Samples, port: int, path: str, texts: list[str], seconds: float, warmup: float,
          core: int | None, work: Path) -> None:
    """One slice of load against one server (the load generator in its own process, on the client core)."""
    spec = work / "load.json"
    spec.write_text(json.dumps({"host": "127.0.0.1", "port": port, "path": path, "bodies": texts, "core": core,
                                "warmup_s": warmup, "duration_s": seconds}), encoding="utf-8")
    done = subprocess.run([sys.executable, str(BENCH_DIR / "_serving_worker.py"), "load", str(spec)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the load generator failed against {path}:\n{done.stderr[-3000:]}")
    out = json.loads(done.stdout)
    samples.add(out["latencies_ns"], out["elapsed_ns"], [a["predictions"][0] for a in out["answers"]], out["sent"],
                out["errors"])


def start_shadows(port: int, path: str, texts: list[str], root: Path) -> tuple[float, int]:
    """A few requests, then wait until keel's shadow process has logged its first output: its start (a new
    interpreter, imports, the shadow model loaded) is a one-off, kept out of the timings like a warm-up. Returns
    the seconds it took and the requests sent."""
    started = time.perf_counter()
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        for text in texts[:8]:
            client.post(path, content=text, headers={"content-type": "application/json"}).raise_for_status()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for folder in (root / ".keel" / "serving").glob("log-*-shadows"):
            if any(p.name != "lock" for p in folder.iterdir()):
                return time.perf_counter() - started, min(8, len(texts))
        time.sleep(0.05)
    raise RuntimeError(f"keel's shadow process logged nothing within 120 s (under {root})")


def in_process(samples: Samples, case: dict[str, Any], frames: list[pd.DataFrame], seconds: float, warmup: float,
               core: int | None) -> None:
    """One slice of ``model.predict`` on prebuilt one-row frames, in this process pinned to the servers' core."""
    model = case["model"]
    before = os.sched_getaffinity(0)
    if core is not None:
        os.sched_setaffinity(0, {core})
    try:
        answers = [model.predict(f)[0].item() for f in frames]
        clock, i = time.perf_counter_ns, 0
        deadline = clock() + int(warmup * 1e9)
        while clock() < deadline:
            model.predict(frames[i % len(frames)])
            i += 1
        latencies = []
        started = clock()
        stop = started + int(seconds * 1e9)
        now = started
        while now < stop:
            t0 = clock()
            model.predict(frames[i % len(frames)])
            now = clock()
            latencies.append(now - t0)
            i += 1
        samples.add(latencies, clock() - started, answers, len(latencies), 0)
    finally:
        os.sched_setaffinity(0, before)


# -- one model, every target --------------------------------------------------------------------------------

def run_model(name: str, case: dict[str, Any], args: argparse.Namespace, cores: tuple[int | None, int | None],
              mlflow_python: Path, work: Path) -> dict[str, Any]:
    """Start every server for the model (one at a time, each paused once ready), then measure the targets in
    ``--rounds`` interleaved slices, the order rotated every round, only the measured server running."""
    server_core, client_core = cores
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("KEEL_")}
    spec_path = work / f"{name}-serve.json"
    spec_path.write_text(json.dumps({"log_level": args.log_level, "pickle": str(work / f"{name}.pkl"),
                                     "deployment": name, "workspace": str(work / f"keel-{name}")}), encoding="utf-8")
    mlflow_env = {**base_env, "PATH": f"{mlflow_python.parent}{os.pathsep}{base_env.get('PATH', '')}",
                  "MLFLOW_DISABLE_TELEMETRY": "true", "UVICORN_LOG_LEVEL": args.log_level}

    def script(kind: str) -> list[str]:
        return [sys.executable, __file__, "--serve", kind, "--spec", str(spec_path), "--port"]

    def keel_serve(root: Path) -> list[str]:
        return [sys.executable, "-m", "keel.cli.main", "-w", str(root), "serve", "--workers", "1", "--deployment",
                name, "--log-level", args.log_level, *args.keel_serve_args.split(), "--port"]

    mlflow_serve = [str(mlflow_python.parent / "mlflow"), "models", "serve", "-m", str(work / f"mlflow-{name}"),
                    "--env-manager", "local", "--workers", "1", "--host", "127.0.0.1", "--port"]
    records, split = bodies(case, mlflow=False), bodies(case, mlflow=True)
    processes = {  # process: (command without the port, ready path, env)
        "floor": (script("floor"), "/readyz", base_env),
        "parts": (script("parts"), "/readyz", base_env),
        "keel": (keel_serve(work / f"keel-{name}"), "/readyz", base_env),
        "keel_shadow": (keel_serve(work / f"keel-{name}-shadow"), "/readyz", base_env),
        "mlflow": (mlflow_serve, "/ping", mlflow_env),
    }
    routes = {  # target: (process, path, bodies)
        "floor": ("floor", "/predict", records), "parts_validate": ("parts", "/validate", records),
        "parts_route": ("parts", "/route", records), "keel": ("keel", f"/v1/endpoints/{name}/predict", records),
        "keel_shadow": ("keel_shadow", f"/v1/endpoints/{name}/predict", records),
        "mlflow": ("mlflow", "/invocations", split),
    }
    frames = [pd.DataFrame.from_records([r]) for r in case["records"]]
    samples = {key: Samples() for key, _ in TARGETS}
    out: dict[str, Any] = {"startup_s": {}, "checks": {}}
    seconds, warm = args.duration / args.rounds, 0
    with ExitStack() as stack:
        servers: dict[str, tuple[Server, int]] = {}
        for kind, (command, ready, env) in processes.items():
            print(f"  {name}: starting {kind} ...", flush=True)
            port = free_port()
            server = stack.enter_context(Server([*command, str(port)], f"http://127.0.0.1:{port}{ready}",
                                                work / f"{kind}-{name}.log", env, server_core))
            out["startup_s"][kind] = round(server.startup_s, 2)
            if kind == "keel_shadow":  # keel starts its shadow process on the first shadow request: not timed
                out["shadow_process_start_s"], warm = start_shadows(port, routes[kind][1], records,
                                                                    work / f"keel-{name}-shadow")
            server.pause()
            servers[kind] = (server, port)
        order = [key for key, _ in TARGETS]
        for r in range(args.rounds):
            print(f"  {name}: round {r + 1}/{args.rounds} ...", flush=True)
            for key in order[r % len(order):] + order[:r % len(order)]:
                if key == "in_process":
                    in_process(samples[key], case, frames, seconds, args.warmup, server_core)
                    continue
                kind, path, texts = routes[key]
                server, port = servers[kind]
                server.resume()
                try:
                    drive(samples[key], port, path, texts, seconds, args.warmup, client_core, work)
                finally:
                    server.pause()
        server, port = servers["keel_shadow"]
        server.resume()
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        out["checks"]["keel_shadow_dropped"] = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                                                   if line.startswith("keel_shadows_dropped_total"))
    for kind in ("keel", "keel_shadow"):  # stopped: every answer committed
        root = work / (f"keel-{name}" if kind == "keel" else f"keel-{name}-shadow")
        sent = samples[kind].sent + (warm if kind == "keel_shadow" else 0)
        out["checks"][f"{kind}_log"] = {"sent": sent, "logged": logged(root, name)}
    for key, sample in samples.items():
        got, expected = sample.answers or [], case["expected"]
        out["checks"][f"{key}_answers_match_model_predict"] = len(got) == len(expected) and all(
            abs(float(g) - float(e)) <= 1e-9 * max(1.0, abs(float(e))) for g, e in zip(got, expected, strict=True))
    out["targets"] = {key: sample.stats() for key, sample in samples.items()}
    return out


# -- report ---------------------------------------------------------------------------------------------

def build_report(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    rows, verdicts, notes = [], [], []
    for name, res in results.items():
        t = res["targets"]
        floor = t["floor"]
        for key, label in TARGETS:
            s = t[key]
            rows.append({"model": name, "target": key, "label": label, "rps": s["rps"], "p50_ms": s["p50_ms"],
                         "p99_ms": s["p99_ms"], "rps_over_floor": s["rps"] / floor["rps"],
                         "p50_over_floor": s["p50_ms"] / floor["p50_ms"], "p99_minus_floor_ms": s["p99_ms"] -
                         floor["p99_ms"], "errors": s.get("errors", 0)})
        k, m, a, b, sh = t["keel"], t["mlflow"], t["parts_validate"], t["parts_route"], t["keel_shadow"]
        slow = floor["rps"] / k["rps"]
        p50x = k["p50_ms"] / floor["p50_ms"]
        verdicts.append({"name": f"{name}: keel throughput and p50 within {THROUGHPUT_TARGET}x of the floor",
                         "pass": slow <= THROUGHPUT_TARGET and p50x <= THROUGHPUT_TARGET,
                         "detail": f"keel {k['rps']:,.0f} req/s vs floor {floor['rps']:,.0f} (floor ÷ keel = "
                                   f"{slow:.2f}x), p50 {k['p50_ms']:.2f} vs {floor['p50_ms']:.2f} ms ({p50x:.2f}x)"})
        diff = k["p99_ms"] - floor["p99_ms"]
        verdicts.append({"name": f"{name}: keel p99 within {P99_TARGET_MS:g} ms of the floor's", "pass": diff <=
                         P99_TARGET_MS, "detail": f"keel {k['p99_ms']:.2f} ms - floor {floor['p99_ms']:.2f} ms = "
                                                  f"{diff:+.2f} ms"})
        ratio = k["rps"] / m["rps"]
        if name == "lr":
            verdicts.append({"name": f"lr: keel at least {MLFLOW_TARGET:g}x MLflow's throughput",
                             "pass": ratio >= MLFLOW_TARGET,
                             "detail": f"keel {k['rps']:,.0f} req/s ÷ MLflow {m['rps']:,.0f} = {ratio:.2f}x"})
        ref = ISSUE_REFERENCE[name]
        notes.append(f"{name}: throughput over MLflow's: keel {ratio:.2f}x, the floor {floor['rps'] / m['rps']:.2f}x "
                     f"(the issue's machine: floor {ref['floor_rps'] / ref['mlflow_rps']:.1f}x)")
        added = (k["p50_ms"] - a["p50_ms"]) / a["p50_ms"]
        verdicts.append({"name": f"{name}: prediction logging + routing add at most {OVERHEAD_TARGET:.0%} to p50",
                         "pass": added <= OVERHEAD_TARGET,
                         "detail": f"keel p50 {k['p50_ms']:.3f} ms vs parts a {a['p50_ms']:.3f} ms: {added:+.0%} "
                                   f"(Endpoint.answer {(b['p50_ms'] - a['p50_ms']) * 1e3:+.0f} µs, log + "
                                   f"metrics {(k['p50_ms'] - b['p50_ms']) * 1e3:+.0f} µs)"})
        allowed = max(SHADOW_TARGET[0] * k["p99_ms"], SHADOW_TARGET[1])
        verdicts.append({"name": f"{name}: shadow adds nothing measurable to the primary's p99",
                         "pass": sh["p99_ms"] - k["p99_ms"] <= allowed,
                         "detail": f"p99 {sh['p99_ms']:.2f} ms on vs {k['p99_ms']:.2f} ms off "
                                   f"({sh['p99_ms'] - k['p99_ms']:+.2f} ms, allowed +{allowed:.2f} ms = 10% or "
                                   f"0.5 ms); p50 {sh['p50_ms']:.2f} vs {k['p50_ms']:.2f} ms, "
                                   f"{sh['rps']:,.0f} vs {k['rps']:,.0f} req/s"})
        notes.append(f"{name}: keel's p50 over the floor's, split: parsing + signature check "
                     f"{(a['p50_ms'] - floor['p50_ms']) * 1e3:+.0f} µs, Endpoint.answer "
                     f"{(b['p50_ms'] - a['p50_ms']) * 1e3:+.0f} µs, prediction log + metrics "
                     f"{(k['p50_ms'] - b['p50_ms']) * 1e3:+.0f} µs (floor p50 {floor['p50_ms'] * 1e3:.0f} µs, "
                     f"in-process predict p50 {t['in_process']['p50_ms'] * 1e3:.0f} µs)")
    return {"rows": rows, "verdicts": verdicts, "notes": notes}


def print_report(report: dict[str, Any], results: dict[str, Any], info: dict[str, Any], mlflow: dict[str, Any],
                 args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 150))
    title = (f"keel serving benchmark — one-row requests, concurrency 1, server on 1 core, client on the other; "
             f"keel {keel.__version__}, MLflow {mlflow['mlflow']}, scikit-learn {sklearn.__version__}")
    table = Table(title=title, title_justify="left")
    for col, justify in (("model", "left"), ("target", "left"), ("req/s", "right"), ("p50 ms", "right"),
                         ("p99 ms", "right"), ("req/s ÷ floor", "right"), ("p50 ÷ floor", "right"),
                         ("p99 − floor", "right")):
        table.add_column(col, justify=justify)
    last = None
    for row in report["rows"]:
        if last is not None and row["model"] != last:
            table.add_section()
        floor = row["target"] == "floor"
        table.add_row(MODELS[row["model"]] if row["model"] != last else "", row["label"], f"{row['rps']:,.0f}",
                      f"{row['p50_ms']:.3f}", f"{row['p99_ms']:.3f}", "—" if floor else f"{row['rps_over_floor']:.2f}x",
                      "—" if floor else f"{row['p50_over_floor']:.2f}x",
                      "—" if floor else f"{row['p99_minus_floor_ms']:+.2f} ms")
        last = row["model"]
    console.print(table)
    console.print(f"{args.duration:g} s a target in {args.rounds} interleaved rounds (order rotated each round; "
                  f"idle servers paused), each slice after a {args.warmup:g} s warm-up; in-process: calls a second, "
                  "servers: answers a second. Access log: uvicorn log level "
                  f"{args.log_level!r} for every server. MLflow's venv has uvloop "
                  f"{'yes' if mlflow['uvloop'] else 'no'}, httptools {'yes' if mlflow['httptools'] else 'no'} "
                  "(as `pip install mlflow` gives it); keel and the floor run with both.", highlight=False)
    console.print("¹ served by this script with keel's own functions and uvicorn options: a = frame_from_body + "
                  "LoadedModel.predict (signature check) on the event loop; b = frame_from_body + await "
                  "Endpoint.answer (routing, value checks, the model inline or on its thread), as keel serve does it. "
                  "Neither logs predictions nor counts metrics.", highlight=False)
    for note in report["notes"]:
        console.print(note, highlight=False)
    for name, res in results.items():
        ref, t = ISSUE_REFERENCE[name], res["targets"]
        line = (f"{name} here vs the issue's: in-process {t['in_process']['mean_ms']:.2f} ms (issue "
                f"{ref['in_process_ms']}), floor {t['floor']['rps']:,.0f} req/s (issue {ref['floor_rps']:,}), MLflow "
                f"{t['mlflow']['rps']:,.0f} req/s (issue {ref['mlflow_rps']})")
        console.print(line, highlight=False)
        for kind in ("keel", "keel_shadow"):
            check = res["checks"][f"{kind}_log"]
            dropped = f", {res['checks']['keel_shadow_dropped']:.0f} shadow calls dropped (queue full); the shadow " \
                f"process took {res['shadow_process_start_s']:.1f} s to log its first output (untimed)" \
                if kind == "keel_shadow" else ""
            console.print(f"{name}: {kind} prediction log after stop: {check['logged']} for {check['sent']} requests "
                          f"answered{dropped}", highlight=False)
        bad = [k for k, v in res["checks"].items() if k.endswith("_answers_match_model_predict") and not v]
        if bad:
            console.print(f"[red]{name}: answers differ from model.predict for {', '.join(bad)}[/]")
        errors = {k: v["errors"] for k, v in t.items() if v.get("errors")}
        if errors:
            console.print(f"[red]{name}: non-200 answers during the timed run: {errors}[/]")
    for v in report["verdicts"]:
        console.print(f"[{'green' if v['pass'] else 'red'}]{'PASS' if v['pass'] else 'FAIL'}[/] {v['name']}: "
                      f"{v['detail']}", highlight=False)


# -- main -------------------------------------------------------------------------------------------------

def run(args: argparse.Namespace) -> int:
    info = machine_info()
    load = info["load_average_1m"]
    if load is not None and load > (info["cpu_count"] or 1) / 2:
        print(f"warning: 1-minute load average is {load:.1f} on {info['cpu_count']} cores; other work will "
              "inflate and scatter the timings", flush=True)
    usable = sorted(os.sched_getaffinity(0))
    cores: tuple[int | None, int | None] = (usable[0], usable[1]) if len(usable) >= 2 else (None, None)
    if cores[0] is None:
        print("warning: one usable core: the servers and the load generator share it", flush=True)
    print(f"MLflow's venv ({', '.join(MLFLOW_REQUIREMENTS)}) ...", flush=True)
    mlflow_python = peer_venv("mlflow-serve", MLFLOW_REQUIREMENTS)
    started = time.perf_counter()
    with fresh_dir("keel-bench-serving-", base=args.workdir) as work:
        print(f"training on {args.rows:,} rows ...", flush=True)
        cases = make_models(args.rows, args.seed)
        for name, case in cases.items():
            (work / f"{name}.pkl").write_bytes(pickle.dumps(case["model"]))
            keel_workspace(work / f"keel-{name}", name, case, shadow=False)
            keel_workspace(work / f"keel-{name}-shadow", name, case, shadow=True)
        spec = {"models": {name: {"pickle": str(work / f"{name}.pkl"), "out": str(work / f"mlflow-{name}"),
                                  "example": case["example"].to_dict(orient="records")}
                           for name, case in cases.items()},
                "pip_requirements": [f"scikit-learn=={sklearn.__version__}"]}
        (work / "mlflow-save.json").write_text(json.dumps(spec), encoding="utf-8")
        done = subprocess.run([str(mlflow_python), str(BENCH_DIR / "_serving_worker.py"), "mlflow-save",
                               str(work / "mlflow-save.json")], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"saving the MLflow models failed:\n{done.stderr[-3000:]}")
        mlflow = json.loads(done.stdout)
        results = {}
        for name, case in cases.items():
            print(f"{MODELS[name]}:", flush=True)
            results[name] = run_model(name, case, args, cores, mlflow_python, work)
    report = build_report(results)
    print_report(report, results, info, mlflow, args)
    payload = {
        "params": {"rows": args.rows, "seed": args.seed, "features": len(FEATURES), "request_rows": N_REQUEST_ROWS,
                   "duration_s": args.duration, "rounds": args.rounds, "warmup_s_per_slice": args.warmup,
                   "log_level": args.log_level,
                   "concurrency": 1, "server_core": cores[0], "client_core": cores[1],
                   "models": MODELS, "shadow_sample": 1.0, "wall_s": round(time.perf_counter() - started, 1)},
        "versions": {**keel_dependency_versions(), **package_versions(["uvloop", "httptools"]),
                     "mlflow_venv": mlflow},
        "table": report["rows"], "targets": report["verdicts"], "notes": report["notes"],
        "criteria": {"throughput_and_p50_within_x_of_floor": THROUGHPUT_TARGET, "keel_over_mlflow_lr": MLFLOW_TARGET,
                     "p99_minus_floor_ms": P99_TARGET_MS, "log_and_routing_p50_share": OVERHEAD_TARGET,
                     "shadow_p99_share_or_ms": SHADOW_TARGET},
        "issue_reference": ISSUE_REFERENCE,
        "results": results, "load_average_1m_at_end": machine_info()["load_average_1m"],
    }
    print(f"results: {write_results('serving', payload, machine=info)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=8.0, help="timed seconds per target, over all rounds "
                                                                    "(default 8)")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds the duration is split into, "
                                                             "every target once a round (default 4)")
    parser.add_argument("--warmup", type=float, default=0.3, help="warm-up seconds before every slice (default 0.3)")
    parser.add_argument("--rows", type=int, default=5000, help="training rows (default 5,000)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the generated data (default 7)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                        help="uvicorn log level of every server (default info, each server's default: one "
                             "access-log line a request; warning turns it off everywhere)")
    parser.add_argument("--quick", action="store_true", help="smoke check: 2 s a target in 2 rounds, 0.25 s "
                                                             "warm-ups, 2,000 training rows")
    parser.add_argument("--workdir", default=None, help="where the temporary workspaces go (default: the system "
                                                        "temp dir, removed afterwards)")
    parser.add_argument("--keel-serve-args", default="", help="extra options for `keel serve`, e.g. "
                                                              "'--timeout-ms 0' (models on the request's thread)")
    parser.add_argument("--serve", choices=["floor", "parts"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.port, args.spec)
        return 0
    if args.quick:
        args.duration, args.rounds, args.warmup, args.rows = 2.0, 2, 0.25, 2000
    if min(args.duration, args.rows, args.rounds) <= 0 or args.warmup < 0:
        parser.error("--duration, --rounds and --rows must be positive, --warmup not negative")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the servers on the way out, as on Ctrl-C
    try:
        return run(args)
    except KeyboardInterrupt:
        print("interrupted: every server started was stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
