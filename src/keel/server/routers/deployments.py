"""/api/v1/deployments: named endpoints and their routing policies, over ``ws.deployments``.

Reading (reports too) is for viewers; every change is a developer's, made as the token's user; so is feedback,
which writes to the prediction log. Whether a model version may
be routed to (gates passed; for a production endpoint an approval, or an approver's override with a reason)
is the service's decision, so the rules are the same here as in the SDK and the CLI.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from keel.server.responses import json_response
from keel.server.security import READ, WRITE
from keel.workspace import Workspace

__all__ = ["router"]

router = APIRouter(tags=["deployments"])

Text = Annotated[str, Field(min_length=1, max_length=512)]
Reason = Annotated[str, Field(max_length=4096)]
Arm = Annotated[str, Field(min_length=1, max_length=64)]
MAX_ITEMS = 100  # arms, fallbacks, steps and guardrails: a policy is a handful of each
MAX_FEEDBACK = 10_000  # feedback items per request (more: several requests)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not silently ignored


class Change(_Body):
    reason: Reason | None = Field(None, description="Why (kept in the audit log and the history)")


class Gated(Change):
    override: StrictBool = Field(False, description="An approver routes an unapproved version to a production "
                                                    "endpoint (needs a reason)")


class CreateRequest(Gated):
    name: Text = Field(description="The endpoint's name")
    model: Text = Field(description="The version it serves: price/3, price@production")
    fallbacks: Annotated[list[Text], Field(max_length=MAX_ITEMS)] = Field(
        default_factory=list, description="Versions (or 'baseline') answering, in order, when the primary fails")
    production: StrictBool = Field(False, description="Serves production traffic: approved versions only")
    strict_requirements: StrictBool = Field(False, description="The data plane refuses a model packaged with "
                                                               "another version of its library")


class ShadowRequest(Change):
    candidate: Text
    sample: float = Field(1.0, ge=0.0, le=1.0, description="The share of requests the candidate also answers")


class HoldoutRequest(Change):
    share: float = Field(ge=0.0, le=0.5, description="Share of keys the baseline answers instead of any model")


class Variant(_Body):
    model: Text
    weight: float = Field(ge=0, le=1e9, description="Relative share of traffic (the service refuses 0)")


class AbRequest(Gated):
    variants: Annotated[dict[Arm, Variant], Field(min_length=1, max_length=MAX_ITEMS)]
    sticky_key: Text | None = Field(None, description="The request field that keeps a caller on one arm")


class InterleaveRequest(Gated):
    variants: Annotated[dict[Arm, Text], Field(min_length=1, max_length=MAX_ITEMS)]
    item_key: Text | None = None


class CanaryRequest(Gated):
    candidate: Text
    steps: Annotated[list[float], Field(max_length=MAX_ITEMS)] = Field(
        description="Rising percentages of traffic, e.g. [5, 25, 50, 100]")
    interval_s: float = Field(description="Seconds between steps", allow_inf_nan=False)
    guardrails: Annotated[list[Text], Field(max_length=MAX_ITEMS)] = Field(
        default_factory=list, description='Conditions that must hold to advance, e.g. "error_rate < 0.01"')


class FeedbackRequest(_Body):
    items: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=MAX_FEEDBACK)] = Field(
        description='{"request_id": ..., and one of "label", "outcome", "chosen"} per answered request')


def _one(deployment: Any, status_code: int = 200) -> Response:
    return json_response(deployment.to_dict(), status_code=status_code)


# -- reading ------------------------------------------------------------------------------------------------

@router.get("/deployments", response_model=list[Any])
def list_deployments(ws: Workspace = READ) -> Response:
    return json_response([d.to_dict() for d in ws.deployments.list()])


@router.get("/deployments/{name}", response_model=dict[str, Any])
def get(name: str, ws: Workspace = READ) -> Response:
    return _one(ws.deployments.get(name))


@router.get("/deployments/{name}/history", response_model=list[Any])
def history(name: str, ws: Workspace = READ) -> Response:
    """Every version of the policy, oldest first: what changed, who changed it and why."""
    return json_response([v.to_dict() for v in ws.deployments.history(name)])


@router.get("/deployments/{name}/report", response_model=dict[str, Any])
def report(name: str, ws: Workspace = READ, since: str | None = Query(None, max_length=64)) -> Response:
    """Per arm: traffic, latency, fallbacks, predictions and metrics from feedback with their tests; the sample
    ratio check, shadow agreement and the interleaving preference. ``since``: ISO time or a duration (6h)."""
    return json_response(ws.deployments.report(name, since=since))


# -- changing -----------------------------------------------------------------------------------------------

@router.post("/deployments/{name}/feedback", response_model=dict[str, Any])
def feedback(name: str, body: FeedbackRequest, ws: Workspace = WRITE) -> Response:
    """Labels, outcomes or chosen items for answered requests, by request id (written to the prediction log)."""
    return json_response(ws.deployments.feedback(name, body.items))


@router.post("/deployments", status_code=201, response_model=dict[str, Any])
def create(body: CreateRequest, ws: Workspace = WRITE) -> Response:
    made = ws.deployments.create(body.name, body.model, fallbacks=body.fallbacks, production=body.production,
                                 strict_requirements=body.strict_requirements,
                                 override=body.override, reason=body.reason)
    return _one(made, 201)


@router.post("/deployments/{name}/shadow", response_model=dict[str, Any])
def shadow(name: str, body: ShadowRequest, ws: Workspace = WRITE) -> Response:
    return _one(ws.deployments.shadow(name, body.candidate, sample=body.sample, reason=body.reason))


@router.post("/deployments/{name}/holdout", response_model=dict[str, Any])
def holdout(name: str, body: HoldoutRequest, ws: Workspace = WRITE) -> Response:
    """Hold ``share`` of the traffic out of the model's influence (retraining's feedback-loop guard)."""
    return _one(ws.deployments.holdout(name, body.share, reason=body.reason))


@router.post("/deployments/{name}/ab", response_model=dict[str, Any])
def ab(name: str, body: AbRequest, ws: Workspace = WRITE) -> Response:
    variants = {arm: (v.model, v.weight) for arm, v in body.variants.items()}
    return _one(ws.deployments.ab(name, variants, sticky_key=body.sticky_key, override=body.override,
                                  reason=body.reason))


@router.post("/deployments/{name}/interleave", response_model=dict[str, Any])
def interleave(name: str, body: InterleaveRequest, ws: Workspace = WRITE) -> Response:
    return _one(ws.deployments.interleave(name, dict(body.variants), item_key=body.item_key, override=body.override,
                                          reason=body.reason))


@router.post("/deployments/{name}/canary", response_model=dict[str, Any])
def canary(name: str, body: CanaryRequest, ws: Workspace = WRITE) -> Response:
    return _one(ws.deployments.canary(name, body.candidate, steps=body.steps, interval_s=body.interval_s,
                                      guardrails=body.guardrails, override=body.override, reason=body.reason))


@router.post("/canary-checks", response_model=dict[str, Any])
def check_canaries(ws: Workspace = WRITE, min_requests: int = Query(20, ge=1, le=10_000_000)) -> Response:
    """One pass of the canary controller over every active canary."""
    return json_response({name: d.to_dict() for name, d in
                          ws.deployments.check_canaries(min_requests=min_requests).items()})


@router.post("/deployments/{name}/check-canary", response_model=dict[str, Any])
def check_canary(name: str, ws: Workspace = WRITE, min_requests: int = Query(20, ge=1, le=10_000_000)) -> Response:
    """One step of the canary controller: advance, promote, roll back (recorded) or wait."""
    return json_response(ws.deployments.check_canary(name, min_requests=min_requests).to_dict())


def _policy_change(action: str, summary: str) -> None:
    """``POST /deployments/{name}/ACTION`` with an optional reason: the policy changes that take nothing else."""

    def change(name: str, body: Change | None = None, ws: Workspace = WRITE) -> Response:
        return _one(getattr(ws.deployments, action)(name, reason=body.reason if body else None))

    router.post(f"/deployments/{{name}}/{action}", response_model=dict[str, Any], name=action,
                description=summary)(change)


_policy_change("promote", "The canary's or the shadow's candidate becomes the primary.")
_policy_change("rollback", "Back to the policy before the current one.")
_policy_change("pause", "Freeze the policy (a canary stops advancing).")
_policy_change("resume", "Unfreeze a paused deployment.")


@router.delete("/deployments/{name}", status_code=204)
def delete(name: str, ws: Workspace = WRITE, reason: str | None = Query(None, max_length=4096)) -> None:
    """The endpoint stops serving; its history stays (and its name stays taken)."""
    ws.deployments.delete(name, reason=reason)
