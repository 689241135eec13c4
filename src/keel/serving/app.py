"""The data plane (``keel serve``): deployments answering predictions over HTTP, every answer logged.

``POST /v1/endpoints/{name}/predict`` takes ``{"records": [...]}`` or ``{"columns": [...], "data": [[...]]}``;
``POST /invocations`` (one deployment served) takes MLflow's scoring formats. Each answer names the version
that computed it and is in the prediction log (write-ahead segments committed to the ``predictions`` table)
before it goes out. ``/healthz`` answers while the process lives, ``/readyz`` once every model is loaded and has
predicted once, ``/metrics`` is Prometheus text.
"""

from __future__ import annotations

import fcntl
import shutil
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from keel.errors import InvalidInput, KeelError, NotFound, TooLarge
from keel.serving.endpoint import Answer, Endpoint
from keel.serving.predlog import SEGMENT_COLUMN, SegmentLog
from keel.serving.requests import frame_from_body, parse_json

__all__ = ["LOG_TABLE", "create_predictor_app"]

LOG_TABLE = "predictions"
MAX_BODY = 8 * 1024 * 1024
LOG_SCHEMA = pa.schema([
    ("request_id", pa.string()), ("at", pa.timestamp("us", tz="UTC")), ("kind", pa.string()),
    ("deployment", pa.string()), ("arm", pa.string()), ("model", pa.string()), ("served_by", pa.string()),
    ("reason", pa.string()), ("inputs", pa.string()), ("output", pa.string()), ("latency_ms", pa.float64()),
    ("status", pa.string()),
])  # one schema for primary and shadow rows; inputs and outputs as JSON text (any model's shapes)


class _Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ["deployment", "arm", "version"]
        self.requests = Counter("keel_predictions", "Requests answered", labels, registry=self.registry)
        self.latency = Histogram("keel_prediction_seconds", "Time to answer", labels, registry=self.registry,
                                 buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0))
        self.rejections = Counter("keel_rejections", "Requests refused", ["deployment", "status"],
                                  registry=self.registry)
        self.fallbacks = Counter("keel_fallbacks", "Answers by a fallback", ["deployment", "version"],
                                 registry=self.registry)


def create_predictor_app(ws: Any, names: list[str] | None = None, *, log_folder: Path | None = None,
                         timeout_s: float = 1.0, commit_every_s: float = 1.0) -> FastAPI:
    """An app serving ``names`` (default: every active deployment) from workspace ``ws``."""
    metrics = _Metrics()
    base = Path(ws.settings.root) / ".keel" / "serving"
    folder = log_folder or base / f"log-{uuid.uuid4().hex[:8]}"

    def segment_log(where: Path) -> SegmentLog:
        return SegmentLog(where, write=lambda rows: ws.data.write_batches([rows], LOG_TABLE, reason="prediction log"),
                          committed=lambda: _committed(ws), schema=LOG_SCHEMA)

    log = segment_log(folder)
    state: dict[str, Any] = {"endpoints": {}, "ready": False}
    stop = threading.Event()

    def shadow_logger(deployment: str) -> Any:
        def on_shadow(model: str, key: str, output: Any, ms: float) -> None:
            log.append([{"request_id": key, "at": datetime.now(UTC).isoformat(), "kind": "shadow",
                         "deployment": deployment, "model": model, "served_by": model, "output": _jsonable(output),
                         "latency_ms": ms, "status": "error" if isinstance(output, Exception) else "ok"}])

        return on_shadow

    def load() -> None:
        chosen = names or [d.name for d in ws.deployments.list() if d.state == "active"]
        endpoints = {}
        for name in chosen:
            deployment = ws.deployments.get(name)
            models = {ref: ws.models.load(ref) for ref in deployment.models}
            endpoints[name] = Endpoint(deployment, models, timeout_s=timeout_s, on_shadow=shadow_logger(name))
        state["endpoints"] = endpoints
        state["ready"] = True

    def committer() -> None:
        while not stop.wait(commit_every_s):
            log.commit()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        held = _hold(folder)  # this process's log folder; a folder whose lock is free lost its process
        log.recover()
        for orphan, lock in _orphans(base, folder):
            with lock:  # held while its segments are committed: two starting workers never adopt the same one
                segment_log(orphan).recover()
                shutil.rmtree(orphan, ignore_errors=True)
        load()
        thread = threading.Thread(target=committer, name="keel-log-commit", daemon=True)
        thread.start()
        yield
        stop.set()
        thread.join(10)
        for endpoint in state["endpoints"].values():
            endpoint.close()
        log.close()
        held.close()

    app = FastAPI(title="keel serve", lifespan=lifespan, docs_url=None, redoc_url=None)

    @app.exception_handler(KeelError)
    async def keel_error(request: Request, exc: KeelError) -> JSONResponse:
        name = request.path_params.get("name", "-")
        metrics.rejections.labels(name, str(exc.http_status)).inc()
        return JSONResponse(exc.to_dict(), status_code=exc.http_status)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> Response:
        ready = state["ready"]
        body = {"ready": ready, "deployments": sorted(state["endpoints"])}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/v1/endpoints/{name}/predict")
    async def predict(name: str, request: Request) -> Response:
        return await _answer(request, name, mlflow=False)

    @app.post("/invocations")
    async def invocations(request: Request) -> Response:
        if len(state["endpoints"]) != 1:
            raise InvalidInput("/invocations serves exactly one deployment; start `keel serve --deployment NAME`, "
                               "or post to /v1/endpoints/{name}/predict")
        return await _answer(request, next(iter(state["endpoints"])), mlflow=True)

    async def _answer(request: Request, name: str, *, mlflow: bool) -> Response:
        endpoint = state["endpoints"].get(name)
        if endpoint is None:
            raise NotFound(f"no deployment {name!r} is served here; served: {', '.join(state['endpoints']) or 'none'}")
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise _UnsupportedMedia(f"send the body as application/json, not {kind or 'no content type'}")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY:
            raise TooLarge(f"the body is {declared} bytes; at most {MAX_BODY} are taken")
        body = await request.body()
        if len(body) > MAX_BODY:
            raise TooLarge(f"the body is {len(body)} bytes; at most {MAX_BODY} are taken")
        frame = frame_from_body(parse_json(body), mlflow=mlflow)
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        sticky = endpoint.deployment.current.policy.get("sticky_key")
        key = request.headers.get("x-keel-key") or (str(frame[sticky].iloc[0]) if sticky in frame else request_id)
        started = time.perf_counter()
        answer: Answer = await run_in_threadpool(endpoint.predict, frame, key)
        seconds = time.perf_counter() - started
        record = {"request_id": request_id, "at": datetime.now(UTC).isoformat(), "kind": "primary",
                  "deployment": name, "arm": answer.arm, "model": answer.model, "served_by": answer.served_by,
                  "reason": answer.reason, "output": _jsonable(answer.predictions),
                  "inputs": orjson.dumps(frame.to_dict(orient="records"), default=str).decode(),
                  "latency_ms": answer.latency_ms, "status": "ok"}
        await run_in_threadpool(log.append, [record])  # in the log before the answer goes out
        metrics.requests.labels(name, answer.arm, answer.served_by).inc()
        metrics.latency.labels(name, answer.arm, answer.served_by).observe(seconds)
        if answer.reason is not None:
            metrics.fallbacks.labels(name, answer.served_by).inc()
        out = {"predictions": answer.predictions.tolist(), "model": answer.served_by, "arm": answer.arm,
               "request_id": request_id}
        if answer.reason is not None:
            out["fallback"] = {"chosen": answer.model, "reason": answer.reason}
        return Response(orjson.dumps(out, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")

    return app


class _UnsupportedMedia(KeelError):
    http_status = 415
    exit_code = 2


def _hold(folder: Path) -> Any:
    """Lock ``folder`` for this process's lifetime (the lock goes with the process, however it dies)."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    handle = open(folder / "lock", "a+")  # noqa: SIM115 - held open until the app stops
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return handle


def _orphans(base: Path, mine: Path) -> Iterator[tuple[Path, Any]]:
    """Log folders under ``base`` whose process is gone (their lock can be taken), each with its lock held: their
    segments are recovered by whoever starts next, so a killed worker's answers still reach the table."""
    for other in sorted(base.glob("log-*")) if base.exists() else []:
        if other.resolve() == mine.resolve() or not other.is_dir():
            continue
        handle = open(other / "lock", "a+")  # noqa: SIM115 - closed by the caller once the folder is recovered
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()  # a live process holds it
            continue
        yield other, handle


def _committed(ws: Any) -> list[str]:
    if ws.data.catalog.dataset(LOG_TABLE) is None:
        return []
    return pc.unique(ws.data.read_arrow(LOG_TABLE, columns=[SEGMENT_COLUMN])[SEGMENT_COLUMN]).to_pylist()


def _jsonable(output: Any) -> str:
    """The output as JSON text (one column type for every model's output shape)."""
    if isinstance(output, Exception):
        return orjson.dumps({"error": f"{type(output).__name__}: {output}"}).decode()
    return orjson.dumps(output, option=orjson.OPT_SERIALIZE_NUMPY, default=str).decode()
