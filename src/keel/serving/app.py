"""The data plane (``keel serve``): deployments answering predictions over HTTP, every answer logged.

``POST /v1/endpoints/{name}/predict`` takes ``{"records": [...]}`` or ``{"columns": [...], "data": [[...]]}``;
``POST /invocations`` (one deployment served) takes MLflow's scoring formats; ``/v2/models/{name}/infer`` the
Open Inference Protocol. Each answer names the version that computed it and is in the prediction log (write-ahead
segments committed to the ``predictions`` table) before it goes out. ``/healthz`` answers while the process
lives, ``/readyz`` once every model is loaded and has predicted once, ``/metrics`` is Prometheus text. Deployment
changes are picked up while serving (keel/serving/loader.py); past ``max_inflight`` requests get a fast 503.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import re
import shutil
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow.compute as pc
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from threadpoolctl import threadpool_limits

from keel.errors import InvalidInput, KeelError, NotFound, TooLarge
from keel.logs import configure_logging, get_logger
from keel.serving.endpoint import Answer, Endpoint
from keel.serving.feedback import LOG_SCHEMA, LOG_TABLE, committed_log, feedback_records
from keel.serving.loader import EndpointSet
from keel.serving.oip import frame_from_infer, infer_response, model_metadata
from keel.serving.predlog import SEGMENT_COLUMN, SegmentLog
from keel.serving.requests import frame_from_body, parse_json
from keel.serving.sidecar import Sidecar

__all__ = ["LOG_SCHEMA", "LOG_TABLE", "create_predictor_app"]

MAX_BODY = 8 * 1024 * 1024


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
        self.shadows_dropped = Counter("keel_shadows_dropped", "Shadow calls skipped: the shadow queue was full",
                                       ["deployment"], registry=self.registry)
        self.feedback = Counter("keel_feedback", "Feedback items logged", ["deployment"], registry=self.registry)
        self.drift = Gauge("keel_requirement_drift", "1 for a model whose package recorded another version of its "
                           "library than the one installed here", ["model", "package", "recorded", "installed"],
                           registry=self.registry)
        # CPU seconds, resident memory, start time (uptime) of this worker; its heartbeats read the same
        self.process = ProcessCollector(registry=self.registry)


class _Heartbeat:
    """This process's health as a prediction-log row of kind ``health`` (keel.monitoring.infra reads them). Its
    deployment is null: one process serves many deployments (``deployments`` in the output names the ones it was
    asked for; null: every one). CPU and memory come from the collector /metrics shows."""

    def __init__(self, process: ProcessCollector, every_s: float, names: list[str] | None) -> None:
        self._process, self.every_s, self._names = process, every_s, sorted(names) if names else None
        self.host, self.started_at = socket.gethostname(), datetime.now(UTC)

    def start(self) -> None:
        self.started_at = datetime.now(UTC)  # when this process began serving: a new value is a restart

    def row(self, requests: int, errors: int, *, ready: bool, final: bool = False) -> dict[str, Any]:
        values = {s.name: s.value for m in self._process.collect() for s in m.samples}
        rss = values.get("process_resident_memory_bytes")
        output = {"pid": os.getpid(), "host": self.host, "started_at": self.started_at.isoformat(),
                  "cpu_seconds": values.get("process_cpu_seconds_total", time.process_time()),  # no /proc: our clock
                  "rss_bytes": None if rss is None else int(rss), "requests": requests, "errors": errors,
                  "every_s": self.every_s, "deployments": self._names, "ready": ready}
        return {"at": datetime.now(UTC).isoformat(), "kind": "health", "output": orjson.dumps(output).decode(),
                "status": "stopped" if final else "ok"}


_events = get_logger("keel.serve")
_serve_logger = logging.getLogger("keel.serve")  # whether a routine answer is logged: isEnabledFor(DEBUG), cached


def create_predictor_app(ws: Any, names: list[str] | None = None, *, log_folder: Path | None = None,
                         timeout_s: float = 1.0, commit_every_s: float = 1.0, reload_every_s: float = 1.0,
                         max_inflight: int = 64, trusted: bool = False, strict_requirements: bool = False,
                         grace_s: float = 30.0, sidecar: bool = False, heartbeat_every_s: float = 15.0) -> FastAPI:
    """An app serving ``names`` (default: every deployment, including ones created while it runs) from workspace
    ``ws``. ``max_inflight``: requests answered at once before the next get a fast 503 with Retry-After;
    ``reload_every_s``: how often deployment changes are picked up; ``sidecar``: log commits and shadow models run
    in a child process at the lowest priority (keel serve), else on threads of this one; ``heartbeat_every_s``:
    how often this process logs its health (CPU, memory, counters: a ``health`` row), and once more at shutdown.

    Events (keel.logs, logger ``keel.serve``): a fallback (warning) and a refused or failed request (info, or
    warning for a 5xx) always; every answered request at debug, so that volume is opt-in (setting ``log_level``,
    e.g. ``KEEL_LOG_LEVEL=debug``, sends keel's events from that level to stderr)."""
    if heartbeat_every_s <= 0:
        raise InvalidInput(f"heartbeat_every_s {heartbeat_every_s} must be positive")
    level = getattr(ws.settings, "log_level", None)
    if level:
        if not isinstance(logging.getLevelName(str(level).upper()), int):
            raise InvalidInput(f"log_level {level!r}: use debug, info, warning or error")
        configure_logging(str(level).upper())
    metrics = _Metrics()
    base = Path(ws.settings.root) / ".keel" / "serving"
    folder = log_folder or base / f"log-{uuid.uuid4().hex[:8]}"

    log = prediction_log(ws, folder)
    stop = threading.Event()
    state: dict[str, Any] = {"ready": False, "inflight": 0, "requests": 0, "errors": 0}
    beat = _Heartbeat(metrics.process, heartbeat_every_s, names)

    def heartbeat(final: bool = False) -> None:
        try:  # one line appended: the same cost as an answer's
            log.append([beat.row(state["requests"], state["errors"], ready=state["ready"], final=final)])
        except Exception as exc:  # health reporting never takes serving down
            _events.warning("health.not_logged", error=f"{type(exc).__name__}: {exc}")

    def heartbeats() -> None:
        """On a thread of its own: a slow commit or model reload on the background thread does not delay it (a
        late heartbeat reads as time down)."""
        next_at = time.monotonic() + heartbeat_every_s
        while not stop.wait(max(0.0, next_at - time.monotonic())):
            heartbeat()
            next_at = max(next_at + heartbeat_every_s, time.monotonic())

    def shadow_logger(deployment: str) -> Any:
        def on_shadow(model: str, request_id: str, output: Any, ms: float) -> None:
            log.append([{"request_id": request_id, "at": datetime.now(UTC).isoformat(), "kind": "shadow",
                         "deployment": deployment, "model": model, "served_by": model, "output": jsonable(output),
                         "latency_ms": ms, "status": "error" if isinstance(output, Exception) else "ok"}])

        return on_shadow

    helper = Sidecar((type(ws), ws.settings), folder, trusted=trusted, commit_every_s=commit_every_s) \
        if sidecar else None
    served = EndpointSet(ws, names, timeout_s, shadow_logger, shadows_elsewhere=sidecar, trusted=trusted,
                         strict_requirements=strict_requirements, grace_s=grace_s)

    def refresh() -> None:
        changed = served.refresh()
        for name in changed:
            endpoint = served.endpoints.get(name)
            _events.info("deployment.loaded" if endpoint else "deployment.unloaded", deployment=name,
                         version=endpoint.deployment.current.version if endpoint else None,
                         models=sorted(endpoint.models) if endpoint else [])
        for name, problem in served.problems.items():
            _events.warning("deployment.not_loaded", deployment=name, problem=problem)
        metrics.drift.clear()
        for drift in served.drift:
            metrics.drift.labels(drift.model, drift.package, drift.recorded, drift.installed or "missing").set(1)
            _events.warning("model.requirement_drift", **drift.to_dict())

    def background() -> None:
        due = {"commit": time.monotonic() + commit_every_s, "refresh": time.monotonic() + reload_every_s}
        while not stop.wait(max(0.0, min(due.values()) - time.monotonic())):
            now = time.monotonic()
            if now >= due["commit"]:
                if helper is not None and helper.alive:
                    log.rotate()  # the sidecar commits: no table write in the process answering requests
                else:
                    log.commit()
                due["commit"] = now + commit_every_s
            if now >= due["refresh"]:
                try:
                    refresh()
                except Exception as exc:
                    _events.warning("deployment.refresh_failed", error=f"{type(exc).__name__}: {exc}")
                due["refresh"] = time.monotonic() + reload_every_s

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        held = hold_folder(folder)  # this process's log folder; a folder whose lock is free lost its process
        limits = threadpool_limits(1)  # one core per worker for BLAS/OpenMP: two workers on two cores do not fight
        log.recover()
        beat.start()
        heartbeat()  # up from here: the window's uptime counts from this row (each says whether it is ready)
        beating = threading.Thread(target=heartbeats, name="keel-serve-heartbeat", daemon=True)
        beating.start()
        try:
            for orphan, lock in _orphans(base, folder):
                with lock:  # held while its segments are committed: two starting workers never adopt the same one
                    prediction_log(ws, orphan).recover()
                    shutil.rmtree(orphan, ignore_errors=True)
            if helper is not None:
                helper.start()
            await run_in_threadpool(refresh)
        except BaseException:
            stop.set()  # the heartbeats end with the start that failed
            raise
        state["ready"] = True
        thread = threading.Thread(target=background, name="keel-serve-background", daemon=True)
        thread.start()
        yield
        state["ready"] = False
        stop.set()
        thread.join(10)
        beating.join(10)
        heartbeat(final=True)  # a process that said it stopped is not counted as up after this row
        served.close()
        log.rotate()
        if helper is not None:
            await run_in_threadpool(helper.close)  # it runs what is queued and commits everything
        log.close()  # whatever is left (no sidecar, or a dead one): committed once, under the folder's commit lock
        limits.restore_original_limits()
        held.close()

    app = FastAPI(title="keel serve", lifespan=lifespan, docs_url=None, redoc_url=None)

    @app.exception_handler(KeelError)
    async def keel_error(request: Request, exc: KeelError) -> JSONResponse:
        name = request.path_params.get("name", "-")
        metrics.rejections.labels(name, str(exc.http_status)).inc()
        if exc.http_status >= 500:
            state["errors"] += 1
        if not getattr(request.state, "keel_logged", False):  # _serve logged it with the request's whole context
            _events.info("request.rejected", deployment=name, status=exc.http_status, error=exc.message[:300],
                         request_id=request.headers.get("x-request-id"), user=_user(request),
                         operation=request.url.path.rsplit("/", 1)[-1])
        headers = {"Retry-After": "1"} if exc.http_status == 503 else None
        return JSONResponse(exc.to_dict(), status_code=exc.http_status, headers=headers)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> Response:
        ready = state["ready"] and not (names and any(n not in served.endpoints for n in names))
        body = {"ready": ready, "deployments": sorted(served.endpoints), "problems": served.problems,
                "requirement_drift": [d.to_dict() for d in served.drift]}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/v1/endpoints/{name}/predict")
    async def predict(name: str, request: Request) -> Response:
        endpoint = _endpoint(name)
        payload = await _json(request)
        fetched = None
        if isinstance(payload, dict) and "entities" in payload:  # features looked up online, as trained
            frame, fetched = await run_in_threadpool(endpoint.entity_features.frame, payload["entities"])
        else:
            frame = frame_from_body(payload, mlflow=False)
        answer, request_id = await _serve(request, name, endpoint, frame, payload, fetched=fetched)
        out: dict[str, Any] = {"predictions": answer.predictions.tolist(), "model": answer.served_by,
                               "arm": answer.arm, "request_id": request_id}
        if answer.ranking is not None:
            out.update(ranking=answer.ranking["items"], teams=answer.ranking["teams"])
        if answer.reason is not None:
            out["fallback"] = {"chosen": answer.model, "reason": answer.reason}
        return _json_response(out)

    @app.post("/v1/endpoints/{name}/feedback")
    async def feedback(name: str, request: Request) -> Response:
        """What was true (label), what it was worth (outcome) or what the user picked (chosen) for answered
        requests, by request id: into the same log, where the deployment's report joins them."""
        _endpoint(name)
        payload = await _json(request)
        items = payload.get("items") if isinstance(payload, dict) else None
        if not isinstance(items, list):
            raise InvalidInput('send {"items": [{"request_id": "...", "label" | "outcome" | "chosen": ...}, ...]}')
        records = feedback_records(name, items)
        log.append(records)
        metrics.feedback.labels(name).inc(len(records))
        return _json_response({"deployment": name, "accepted": len(records)})

    @app.post("/invocations")
    async def invocations(request: Request) -> Response:
        if len(served.endpoints) != 1:
            raise InvalidInput("/invocations serves exactly one deployment; start `keel serve --deployment NAME`, "
                               "or post to /v1/endpoints/{name}/predict")
        name = next(iter(served.endpoints))
        endpoint = _endpoint(name)
        payload = await _json(request)
        answer, _ = await _serve(request, name, endpoint, frame_from_body(payload, mlflow=True), payload)
        return _json_response({"predictions": answer.predictions.tolist()})

    @app.get("/v2")
    def v2_server() -> dict[str, Any]:
        return {"name": "keel", "version": _keel_version(), "extensions": []}

    @app.get("/v2/health/live")
    def v2_live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/health/ready")
    def v2_ready() -> Response:
        return JSONResponse({"ready": state["ready"]}, status_code=200 if state["ready"] else 503)

    @app.get("/v2/models/{name}")
    def v2_metadata(name: str) -> dict[str, Any]:
        endpoint = _endpoint(name)
        return model_metadata(name, sorted(endpoint.models), _signature(endpoint))

    @app.get("/v2/models/{name}/ready")
    def v2_model_ready(name: str) -> dict[str, Any]:
        _endpoint(name)
        return {"name": name, "ready": True}

    @app.post("/v2/models/{name}/infer")
    async def v2_infer(name: str, request: Request) -> Response:
        endpoint = _endpoint(name)
        payload = await _json(request)
        signature = _signature(endpoint)
        frame = frame_from_infer(payload, signature.columns if signature is not None else [])
        answer, request_id = await _serve(request, name, endpoint, frame, payload,
                                          request_id=payload.get("id") if isinstance(payload.get("id"), str) else None)
        return _json_response(infer_response(name, answer.served_by, request_id, answer.predictions))

    def _endpoint(name: str) -> Endpoint:
        endpoint = served.endpoints.get(name)
        if endpoint is None:
            problem = served.problems.get(name)
            if problem:
                raise NotReady(f"deployment {name!r} is not loaded: {problem}")
            raise NotFound(f"no deployment {name!r} is served here; served: {', '.join(served.endpoints) or 'none'}")
        return endpoint

    async def _json(request: Request) -> Any:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise _UnsupportedMedia(f"send the body as application/json, not {kind or 'no content type'}")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY:
            raise TooLarge(f"the body is {declared} bytes; at most {MAX_BODY} are taken")
        body = await request.body()
        if len(body) > MAX_BODY:
            raise TooLarge(f"the body is {len(body)} bytes; at most {MAX_BODY} are taken")
        return parse_json(body)

    async def _serve(request: Request, name: str, endpoint: Endpoint, frame: Any, payload: Any, *,
                     request_id: str | None = None, fetched: dict[str, Any] | None = None) -> tuple[Answer, str]:
        """Answer ``frame`` and log it before returning: the one path every protocol shares."""
        if state["inflight"] >= max_inflight:
            raise Overloaded(f"{max_inflight} requests are being answered; retry in a second")
        request_id = request_id or request.headers.get("x-request-id") or uuid.uuid4().hex
        sticky = endpoint.deployment.current.policy.get("sticky_key")
        key = request.headers.get("x-keel-key") or (str(frame[sticky].iloc[0]) if sticky in frame else request_id)
        state["inflight"] += 1
        started = time.perf_counter()
        try:
            if endpoint.inline:  # its models may answer without giving the event loop back: let the requests that
                await asyncio.sleep(0)  # arrived with this one count themselves in first (what the 503 goes by)
            answer: Answer = await endpoint.answer(frame, key, request_id)
        except Exception as exc:
            _failed(request, name, request_id, exc, started)
            raise
        finally:
            state["inflight"] -= 1
        seconds = time.perf_counter() - started
        records = payload.get("records") or payload.get("entities") if isinstance(payload, dict) else None
        inputs = records if isinstance(records, list) else frame.to_dict(orient="records")
        output = answer.ranking if answer.ranking is not None else answer.predictions
        inputs_json = orjson.dumps(inputs, default=str, option=orjson.OPT_SERIALIZE_NUMPY)
        log.append([{"request_id": request_id, "at": datetime.now(UTC).isoformat(), "kind": "primary",
                     "deployment": name, "arm": answer.arm, "model": answer.model, "served_by": answer.served_by,
                     "reason": answer.reason, "output": jsonable(output),
                     "inputs": inputs_json.decode(),
                     "latency_ms": answer.latency_ms, "status": "ok",
                     "features": None if fetched is None else jsonable(fetched)}])  # logged before the answer goes out
        if answer.shadows and helper is not None and not helper.submit(name, answer.shadows, inputs_json, request_id):
            metrics.shadows_dropped.labels(name).inc()
        metrics.requests.labels(name, answer.arm, answer.served_by).inc()
        metrics.latency.labels(name, answer.arm, answer.served_by).observe(seconds)
        state["requests"] += 1
        if answer.reason is not None:
            metrics.fallbacks.labels(name, answer.served_by).inc()
            _events.warning("predict.fallback", request_id=request_id, deployment=name, arm=answer.arm,
                            model=answer.model, served_by=answer.served_by, reason=answer.reason[:300],
                            user=_user(request), operation="predict", status=200,
                            duration_ms=(time.perf_counter() - started) * 1e3)
        elif _serve_logger.isEnabledFor(logging.DEBUG):  # routine answers: opt-in volume, no cost when off
            _events.debug("predict.answered", request_id=request_id, deployment=name, arm=answer.arm,
                          model=answer.model, served_by=answer.served_by, user=_user(request), operation="predict",
                          status=200, duration_ms=(time.perf_counter() - started) * 1e3)
        return answer, request_id

    def _failed(request: Request, name: str, request_id: str, exc: Exception, started: float) -> None:
        """A request no model answered (or that the model refused) logged with its whole context; the exception
        handler answers it."""
        status = exc.http_status if isinstance(exc, KeelError) else 500
        if not isinstance(exc, KeelError):
            state["errors"] += 1  # the handler counts the KeelErrors
        details = exc.details if isinstance(exc, KeelError) and isinstance(exc.details, dict) else {}
        attempts = details.get("attempts") or [{}]
        level = _events.warning if status >= 500 else _events.info
        level("predict.failed" if status >= 500 else "predict.rejected", request_id=request_id, deployment=name,
              arm=None, model=attempts[0].get("model"), served_by=None, user=_user(request), operation="predict",
              status=status, error=f"{type(exc).__name__}: {exc}"[:300],
              duration_ms=(time.perf_counter() - started) * 1e3)
        request.state.keel_logged = True

    return app


def _user(request: Request) -> str | None:
    """Who sent the request, when an authentication middleware in front of the data plane set ``scope["user"]``
    (keel serve has no authentication of its own); else None."""
    user = request.scope.get("user")
    if user is None or not getattr(user, "is_authenticated", True):
        return None
    return str(getattr(user, "display_name", None) or user)


def _json_response(out: dict[str, Any]) -> Response:
    return Response(orjson.dumps(out, option=orjson.OPT_SERIALIZE_NUMPY, default=str), media_type="application/json")


def _signature(endpoint: Endpoint) -> Any:
    primary = endpoint.policy.arms[0].model
    return getattr(endpoint.models.get(primary), "signature", None)


def _keel_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("keel")
    except PackageNotFoundError:
        return "unknown"


class Overloaded(KeelError):
    """More requests than the worker answers at once: refused fast so the client retries elsewhere or later."""

    http_status = 503
    exit_code = 2


class NotReady(KeelError):
    http_status = 503
    exit_code = 2


class _UnsupportedMedia(KeelError):
    http_status = 415
    exit_code = 2


def prediction_log(ws: Any, folder: Path) -> SegmentLog:
    """The write-ahead log of one serving process (or its shadow child) in ``folder``, committed to the table."""
    return SegmentLog(folder, write=lambda rows: ws.data.write_batches([rows], LOG_TABLE, reason="prediction log",
                                                                       schema_change="add-columns"),
                      committed=lambda ids: _committed(ws, ids), schema=LOG_SCHEMA)  # a log from an older keel grows


def hold_folder(folder: Path) -> Any:
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


def _committed(ws: Any, ids: list[str]) -> list[str]:
    """Which of the segment ``ids`` the log table holds (none while another process is creating it)."""
    latest = committed_log(ws.data) if ids else None
    if latest is None:  # nothing asked, or nothing committed yet (another process may be creating the table)
        return []
    if not all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids):  # uuid hex, as SegmentLog names them
        raise KeelError(f"unexpected segment names in the prediction log folder: {ids}")
    where = f"{SEGMENT_COLUMN} IN (" + ", ".join(f"'{i}'" for i in ids) + ")"
    found = ws.data.read_arrow(f"{LOG_TABLE}@{latest.version}", columns=[SEGMENT_COLUMN], where=where)
    return pc.unique(found[SEGMENT_COLUMN]).to_pylist()


def jsonable(output: Any) -> str:
    """The output as JSON text (one column type for every model's output shape)."""
    if isinstance(output, Exception):
        return orjson.dumps({"error": f"{type(output).__name__}: {output}"}).decode()
    return orjson.dumps(output, option=orjson.OPT_SERIALIZE_NUMPY, default=str).decode()
