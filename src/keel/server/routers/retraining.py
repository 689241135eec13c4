"""/api/v1/retraining: policies on deployments, the retrains they start, the review and the decision, over
``ws.retraining``.

Reading is for viewers; setting policies and starting retrains is a developer's; approving and rejecting is an
approver's (checked by the service as the token's user). A retrain started here is queued for the scheduler.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from keel.server.responses import json_response
from keel.server.security import APPROVE, READ, WRITE
from keel.workspace import Workspace

__all__ = ["router"]

router = APIRouter(tags=["retraining"])

Text = Annotated[str, Field(min_length=1, max_length=512)]
Reason = Annotated[str, Field(min_length=1, max_length=4096)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error


class Canary(_Body):
    steps: Annotated[list[float], Field(min_length=1, max_length=20)] = [10.0, 50.0, 100.0]
    interval_s: float = Field(600.0, gt=0, le=30 * 86400)
    guardrails: Annotated[list[Text], Field(max_length=20)] = ["error_rate < 0.01"]


class PolicyRequest(_Body):
    deployment: Text
    pipeline: Text
    when: Annotated[list[Text], Field(min_length=1, max_length=20)] = Field(
        description="Conditions: drift(COL, threshold=T, windows=N), performance(METRIC, degradation=D), volume(N), "
                    "schedule('CRON'), manual()")
    data: Text = Field("all", description="since_drift_start | last(30d) | all | a SQL predicate")
    how: Text = Field("from_scratch", description="from_scratch | warm_start")
    source: Text | None = None
    time_column: Text | None = None
    monitor: Text | None = None
    canary: Canary = Field(default_factory=Canary)
    auto_approve: StrictBool = False
    allow_production_auto: StrictBool = False
    max_influenced: float | None = Field(0.8, gt=0, le=1, description="None turns the feedback-loop guard off")
    holdout: float | None = Field(None, ge=0, le=0.5)
    reason: Reason | None = None


class StartRequest(_Body):
    reason: Reason
    override_guard: Reason | None = Field(None, description="Retrain although the feedback-loop guard refuses")


class DecisionRequest(_Body):
    reason: Reason
    override: StrictBool = Field(False, description="Release a candidate that failed a required gate")


@router.put("/retraining/policies/{name}", response_model=dict[str, Any])
def set_policy(name: str, body: PolicyRequest, ws: Workspace = WRITE) -> Response:
    made = ws.retraining.create_policy(
        name, body.deployment, body.pipeline, when=body.when, data=body.data, how=body.how, source=body.source,
        time_column=body.time_column, monitor=body.monitor, canary=body.canary.model_dump(),
        auto_approve=body.auto_approve, allow_production_auto=body.allow_production_auto,
        max_influenced=body.max_influenced, holdout=body.holdout, reason=body.reason)
    return json_response(made.to_dict())


@router.get("/retraining/policies", response_model=list[Any])
def policies(ws: Workspace = READ, deployment: str | None = Query(None, max_length=512)) -> Response:
    return json_response([p.to_dict() for p in ws.retraining.policies(deployment)])


@router.get("/retraining/policies/{name}", response_model=dict[str, Any])
def policy(name: str, ws: Workspace = READ) -> Response:
    return json_response(ws.retraining.policy(name).to_dict())


@router.delete("/retraining/policies/{name}", status_code=204)
def delete_policy(name: str, ws: Workspace = WRITE, reason: str | None = Query(None, max_length=4096)) -> Response:
    ws.retraining.delete_policy(name, reason=reason)
    return Response(status_code=204)


@router.post("/retraining/policies/{name}/retrains", status_code=202, response_model=dict[str, Any])
def start(name: str, body: StartRequest, ws: Workspace = WRITE) -> Response:
    """A manual retrain, queued: the scheduler runs its pipeline; it then waits for review."""
    made = ws.retraining.start(name, reason=body.reason, override_guard=body.override_guard, execute=False)
    return json_response(made.to_dict(), status_code=202)


@router.get("/retraining/retrains", response_model=list[Any])
def retrains(ws: Workspace = READ, policy: str | None = Query(None, max_length=512),
             status: str | None = Query(None, max_length=16), limit: int = Query(50, ge=1, le=10_000)) -> Response:
    return json_response([r.to_dict() for r in ws.retraining.list(policy, status=status, limit=limit)])


@router.get("/retraining/retrains/{id}", response_model=dict[str, Any])
def get(id: int, ws: Workspace = READ) -> Response:
    return json_response(ws.retraining.get(id).to_dict())


@router.get("/retraining/retrains/{id}/review", response_model=dict[str, Any])
def review(id: int, ws: Workspace = READ) -> Response:
    """Why it was triggered, the window, how it was trained, the gates, the comparison with the serving model."""
    return json_response(ws.retraining.review(id))


@router.post("/retraining/retrains/{id}/approve", response_model=dict[str, Any])
def approve(id: int, body: DecisionRequest, ws: Workspace = APPROVE) -> Response:
    return json_response(ws.retraining.approve(id, reason=body.reason, override=body.override).to_dict())


@router.post("/retraining/retrains/{id}/reject", response_model=dict[str, Any])
def reject(id: int, body: DecisionRequest, ws: Workspace = APPROVE) -> Response:
    return json_response(ws.retraining.reject(id, reason=body.reason).to_dict())
