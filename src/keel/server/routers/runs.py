"""/api/v1/runs: search, show, compare; and the write side a remote SDK uses (start, log, end)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from keel.server.responses import json_response
from keel.server.security import READ, WRITE
from keel.server.streams import receive_into_store, stream_artifact
from keel.workspace import Workspace

router = APIRouter(tags=["runs"])


@router.get("/runs", response_model=list[Any])
def list_runs(ws: Workspace = READ, experiment: str | None = None, filter: str | None = None,
              sort: str | None = None, status: str | None = None,
              limit: int = Query(100, ge=1, le=10_000)) -> Response:
    return json_response(ws.runs.list(experiment=experiment, filter=filter, sort=sort, status=status, limit=limit))


@router.get("/runs/compare")
def compare(ws: Workspace = READ, ids: list[str] = Query(..., min_length=2, max_length=10)) -> dict[str, Any]:
    return ws.runs.compare(ids)


@router.get("/runs/{run_id}")
def get_run(run_id: str, ws: Workspace = READ) -> Any:
    return ws.runs.get(run_id)


@router.get("/runs/{run_id}/metrics/{key}")
def metric_history(run_id: str, key: str, ws: Workspace = READ) -> dict[str, Any]:
    ws.runs.get(run_id)  # an unknown run is a 404, not an empty history
    return {"key": key, "points": [{"step": s, "value": v} for s, v in ws.runs.metric_history(run_id, key)]}


class StartRun(BaseModel):
    experiment: str
    name: str | None = None
    inputs: list[str] = Field(default_factory=list)
    tags: dict[str, Any] = Field(default_factory=dict)
    parent: str | None = None


@router.post("/runs", status_code=201)
def start_run(body: StartRun, ws: Workspace = WRITE) -> Any:
    run = ws.runs.start(body.experiment, name=body.name, inputs=body.inputs, tags=body.tags or None,
                        parent=body.parent)
    return ws.runs.get(run.id)


class Point(BaseModel):
    key: str
    value: float | None
    step: int | None = Field(None, ge=-(2**63), le=2**63 - 1)  # a 64-bit step column: more could never be stored


class LogBatch(BaseModel):
    """One request per batch: params, tags and metric points together."""

    params: dict[str, Any] = Field(default_factory=dict)
    tags: dict[str, Any] = Field(default_factory=dict)
    metrics: list[Point] = Field(default_factory=list, max_length=100_000)
    allow_nan: bool = False


@router.post("/runs/{run_id}/log")
def log_batch(run_id: str, body: LogBatch, ws: Workspace = WRITE) -> dict[str, int]:
    run = ws.runs.handle(run_id)
    if body.params:
        run.log_params(body.params)
    if body.tags:
        run.set_tags(body.tags)
    by_step: dict[int | None, dict[str, float]] = {}
    for point in body.metrics:
        value = float("nan") if point.value is None else point.value
        by_step.setdefault(point.step, {})[point.key] = value
    for step, values in by_step.items():
        run.log_metrics(values, step=step, allow_nan=body.allow_nan)
    ws.runs.flush()  # acknowledged means stored
    return {"params": len(body.params), "tags": len(body.tags), "metrics": len(body.metrics)}


class EndRun(BaseModel):
    status: str = "finished"
    error: str | None = None


@router.post("/runs/{run_id}/end")
def end_run(run_id: str, body: EndRun, ws: Workspace = WRITE) -> Any:
    ws.runs.handle(run_id).end(body.status, body.error)
    return ws.runs.get(run_id)


@router.put("/runs/{run_id}/artifacts/{name:path}", status_code=201)
async def upload_artifact(run_id: str, name: str, request: Request, ws: Workspace = WRITE) -> dict[str, str]:
    """The request body, streamed straight into the artifact store (hashed on the way), then recorded."""
    run = await run_in_threadpool(ws.runs.handle, run_id)
    stored = await receive_into_store(request, ws.artifacts, ws.runs.artifact_key(run.id, name))
    return {"name": name, "sha256": await run_in_threadpool(ws.runs.attach_artifact, run.id, name, stored)}


@router.get("/runs/{run_id}/artifacts/{name:path}")
def download_artifact(run_id: str, name: str, ws: Workspace = READ) -> StreamingResponse:
    info = ws.runs.get(run_id)
    return stream_artifact(ws, f"runs/{info.id}/artifacts/{name}", name, sha256=info.artifacts.get(name))


