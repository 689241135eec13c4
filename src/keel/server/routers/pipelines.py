"""/api/v1/pipelines: applied pipelines, their runs, and starting a run with the caller's identity (the ``api``
trigger) over ``ws.pipelines``.

A run started here is queued: the scheduler (``keel scheduler``) executes it, so a long pipeline never holds a
request. An ``Idempotency-Key`` header makes a retried request start one run, not two. Applying pipelines stays
with the CLI and SDK: it imports code, which the server does not take over HTTP.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Header, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from keel.errors import Conflict
from keel.server.responses import json_response
from keel.server.security import READ, WRITE
from keel.workspace import Workspace

__all__ = ["router"]

router = APIRouter(tags=["pipelines"])


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error

    params: dict[str, Any] = Field(default_factory=dict, description="Pipeline parameters for this run")
    force: bool = Field(False, description="Run every step, even those whose inputs are unchanged")


@router.get("/pipelines", response_model=list[Any])
def list_pipelines(ws: Workspace = READ) -> Response:
    return json_response([p.to_dict() for p in ws.pipelines.list()])


@router.get("/pipelines/{name}", response_model=dict[str, Any])
def get(name: str, ws: Workspace = READ, version: int | None = Query(None, ge=1)) -> Response:
    return json_response(ws.pipelines.get(name, version).to_dict())


@router.post("/pipelines/{name}/runs", status_code=202, response_model=dict[str, Any])
def start(name: str, body: RunRequest, ws: Workspace = WRITE,
          idempotency_key: str | None = Header(None, max_length=200)) -> Response:
    """Queue a run as the token's user; with ``Idempotency-Key``, a repeated request returns the first run."""
    trigger = {"kind": "api", "by": ws.user, "what": f"POST /pipelines/{name}/runs by {ws.user}"}
    if idempotency_key is None:
        return json_response(ws.pipelines.enqueue(name, body.params, force=body.force, trigger=trigger).to_dict(),
                             status_code=202)
    key = f"api:{name}:{ws.user}:{idempotency_key}"
    made = ws.pipelines.fire(name, key, trigger, body.params, force=body.force)
    if made is None:
        earlier = ws.pipelines.fired(key)
        if earlier is None:
            raise Conflict(f"Idempotency-Key {idempotency_key!r} was used already")
        return json_response(ws.pipelines.show(earlier).to_dict(logs=False), status_code=200)
    return json_response(made.to_dict(), status_code=202)


@router.get("/pipelines/{name}/runs", response_model=list[Any])
def runs(name: str, ws: Workspace = READ, status: str | None = Query(None, max_length=16),
         limit: int = Query(50, ge=1, le=10_000)) -> Response:
    return json_response([r.to_dict(logs=False) for r in ws.pipelines.runs(name, status=status, limit=limit)])


@router.get("/pipeline-runs/{id}", response_model=dict[str, Any])
def show(id: int, ws: Workspace = READ) -> Response:
    """A run with each step's status, times, inputs, output, error and logs."""
    return json_response(ws.pipelines.show(id).to_dict())


@router.post("/pipeline-runs/{id}/retry", status_code=202, response_model=dict[str, Any])
def retry(id: int, ws: Workspace = WRITE) -> Response:
    """Queue a failed run again: the scheduler resumes it from its failure."""
    return json_response(ws.pipelines.retry(id, execute=False).to_dict(), status_code=202)
