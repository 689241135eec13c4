"""/api/v1/monitors: drift monitors of deployments and their reports, over ``ws.monitors``.

Reading is for viewers; creating, running (which stores a report) and deleting are a developer's, made as the
token's user.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from keel.errors import InvalidInput
from keel.server.responses import json_response
from keel.server.security import READ, WRITE
from keel.server.streams import receive_to_file
from keel.workspace import Workspace

__all__ = ["router"]

router = APIRouter(tags=["monitors"])

Text = Annotated[str, Field(min_length=1, max_length=512)]
Column = Annotated[str, Field(min_length=1, max_length=1024)]
Reason = Annotated[str, Field(max_length=4096)]
MAX_COLUMNS = 10_000
LABEL_SUFFIXES = (".csv", ".parquet", ".pq", ".jsonl", ".ndjson", ".json")
KPI_REFUSED = ("KPIs name Python code, which the server never imports for a request; create the monitor with its "
               "KPIs from Python or the CLI on the workspace's machine (keel.open(path).monitors.create(kpis=...))")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not silently ignored


class CreateRequest(_Body):
    name: Text = Field(description="The monitor's name")
    deployment: Text = Field(description="The deployment whose predictions it watches")
    baseline: Text = Field("training", description="training (the deployed version's train part), a table ref, "
                                                   "or window:START..END of the deployment's own log")
    window: Text = Field("1d", description="A run's default window, back from now: 1h, 1d")
    slices: Annotated[list[Column], Field(max_length=5)] = Field(default_factory=list,
                                                                 description="Columns reported per value")
    methods: Annotated[dict[Column, Text], Field(max_length=MAX_COLUMNS)] = Field(
        default_factory=dict, description="Per column: psi, ks, wasserstein, jensenshannon, chisquare or z")
    thresholds: Annotated[dict[Column, float], Field(max_length=MAX_COLUMNS)] = Field(
        default_factory=dict, description="Per column: the method's drift threshold")
    share: float = Field(0.5, gt=0.0, le=1.0,
                         description="The share of columns that must drift for the dataset to drift")
    alerts: Annotated[list[Text], Field(max_length=100)] = Field(
        default_factory=list, description="Rules: 'psi(price) > 0.2 for 2 windows', 'rmse > 1.2 x training'")
    webhook: Annotated[str, Field(max_length=2048)] | None = Field(None, description="Where alert events are POSTed")
    kpis: Annotated[dict[Column, Text], Field(max_length=100)] | None = Field(
        None, description="Refused here: KPIs name Python code (set them from Python or the CLI)")
    reason: Reason | None = None


class RunRequest(_Body):
    window: Text | None = Field(None, description="1h / 7d back from now, or START..END; default: the monitor's")


@router.get("/monitors", response_model=list[Any])
def list_monitors(ws: Workspace = READ, deployment: str | None = Query(None, max_length=512)) -> Response:
    return json_response([m.to_dict() for m in ws.monitors.list(deployment)])


@router.post("/monitors", status_code=201, response_model=dict[str, Any])
def create(body: CreateRequest, ws: Workspace = WRITE) -> Response:
    """A monitor; its baseline's statistics are computed and stored now."""
    if body.kpis:
        raise InvalidInput(KPI_REFUSED)
    made = ws.monitors.create(body.name, body.deployment, baseline=body.baseline, window=body.window,
                              slices=body.slices, methods=body.methods, thresholds=body.thresholds, share=body.share,
                              alerts=body.alerts, webhook=body.webhook, reason=body.reason)
    return json_response(made.to_dict(), status_code=201)


@router.get("/monitors/{name}", response_model=dict[str, Any])
def get(name: str, ws: Workspace = READ) -> Response:
    return json_response(ws.monitors.get(name).to_dict())


@router.delete("/monitors/{name}", status_code=204)
def delete(name: str, ws: Workspace = WRITE, reason: str | None = Query(None, max_length=4096)) -> Response:
    ws.monitors.delete(name, reason=reason)
    return Response(status_code=204)


@router.post("/monitors/{name}/runs", status_code=201, response_model=dict[str, Any])
def run(name: str, body: RunRequest, ws: Workspace = WRITE) -> Response:
    """Compare one window of the deployment's log with the baseline; stored as the monitor's next report."""
    return json_response(ws.monitors.run(name, window=body.window).to_dict(), status_code=201)


@router.get("/monitors/{name}/html", response_class=HTMLResponse)
def html(name: str, ws: Workspace = READ, number: int | None = Query(None, ge=1)) -> Response:
    """The monitor as one self-contained HTML page (what ``keel monitor report NAME --out`` writes)."""
    return HTMLResponse(ws.monitors.html(name, number=number),
                        headers={"content-disposition": f'inline; filename="monitor-{name}.html"'})


@router.get("/monitors/{name}/reports", response_model=list[Any])
def reports(name: str, ws: Workspace = READ, limit: int = Query(100, ge=1, le=10_000)) -> Response:
    return json_response([r.to_dict() for r in ws.monitors.reports(name, limit=limit)])


@router.get("/monitors/{name}/reports/{number}", response_model=dict[str, Any])
def report(name: str, number: int, ws: Workspace = READ) -> Response:
    return json_response(ws.monitors.report(name, number).to_dict())


@router.get("/traces/{request_id}", response_model=dict[str, Any])
def trace(request_id: str, ws: Workspace = READ) -> Response:
    """One prediction reconstructed: request, features, route, version and its training data, output, latency,
    fallback, shadows and feedback."""
    return json_response(ws.monitors.trace(request_id))


@router.get("/logs", response_model=list[Any])
def query_log(ws: Workspace = READ, where: str | None = Query(None, max_length=4096),
              columns: str | None = Query(None, max_length=4096), limit: int = Query(100, ge=1, le=100_000),
              version: int | None = Query(None, ge=0)) -> Response:
    """Prediction-log rows matching ``where`` (DuckDB SQL over the log's columns; files cannot be read), newest
    first. ``columns``: comma-separated."""
    wanted = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    return json_response(ws.monitors.query_log(where, columns=wanted, limit=limit, version=version).to_pylist())


@router.post("/labels", status_code=201, response_model=dict[str, Any])
async def ingest_labels(request: Request, ws: Workspace = WRITE, deployment: str = Query(..., max_length=512),
                        filename: str = Query(..., max_length=255), label: str = Query("label", max_length=1024),
                        row: str | None = Query(None, max_length=1024), key: str | None = Query(None, max_length=32),
                        entity: list[str] | None = Query(None, max_length=1024),
                        time: str | None = Query(None, max_length=1024),
                        tolerance: str | None = Query(None, max_length=64),
                        reason: str | None = Query(None, max_length=4096)) -> Response:
    """Labels for answered requests: the body is a CSV, Parquet or JSON Lines file named ``filename`` (streamed to
    disk), keyed by request id or (``key=entity+time``, ``entity``, ``time``, ``tolerance``) by entity and time;
    appended to the prediction log in one commit."""
    base = Path(filename).name
    if base != filename or not base.lower().endswith(LABEL_SUFFIXES) or any(ord(c) < 32 or ord(c) == 127
                                                                            for c in base):
        raise InvalidInput(f"filename must be a plain file name (no control characters) ending in one of "
                           f"{', '.join(LABEL_SUFFIXES)}")
    if entity is not None and len(entity) > 32:
        raise InvalidInput("at most 32 entity columns")
    await run_in_threadpool(ws.deployments.get, deployment)  # an unknown one is refused before the body is read
    with tempfile.TemporaryDirectory(prefix="keel-labels-") as tmp:
        path = Path(tmp) / base
        await receive_to_file(request, path)
        done = await run_in_threadpool(ws.monitors.ingest_labels, deployment, path, label=label, row=row, key=key,
                                       entities=entity or None, time=time, tolerance=tolerance, reason=reason)
    return json_response(done, status_code=201)


@router.get("/alerts", response_model=list[Any])
def alerts(ws: Workspace = READ, monitor: str | None = Query(None, max_length=512),
           limit: int = Query(100, ge=1, le=10_000)) -> Response:
    """Alert events, newest first: a rule that started (firing) or stopped (resolved) holding."""
    return json_response([e.to_dict() for e in ws.monitors.alerts(monitor, limit=limit)])
