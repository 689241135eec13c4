"""Retraining pages: the policies on deployments and the retrains they started, and one retrain's review: why it was
triggered, its data window and the feedback-loop guard's numbers, how the candidate was trained (its pipeline run,
drawn), the candidate's release gates, its metrics beside the serving model's, what approving does, and the
decision.

An approver sees the Approve and Reject forms while the retrain is pending review. Each POST checks the CSRF token,
declares the approve permission, and calls ``ws.retraining.approve`` / ``reject`` as the logged-in user (the service
checks the role again and holds the rules: a reason, no failed required gate without an override, pending review
only). A decision the service refuses is said on the review page, with its 4xx status; a decision made redirects
back to the page, which shows it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from keel.errors import GatesFailed, KeelError, NotFound
from keel.retraining.model import Retrain
from keel.server.security import APPROVE, READ
from keel.ui.csrf import CSRF
from keel.ui.incidents import subject_url
from keel.ui.pipelines import link, run_graph
from keel.ui.render import page
from keel.workspace import Workspace

__all__ = ["RETRAIN_STATUSES", "STATUS_WORDS", "direction", "router"]

router = APIRouter()
RETRAIN_STATUSES = ("running", "pending_review", "deciding", "approved", "rejected", "no_new_data", "refused", "failed")
STATUS_WORDS = {  # one per keel.retraining.model.STATUSES (a test checks)
    "running": "its pipeline is running", "pending_review": "a candidate waits for an approver",
    "deciding": "an approver's decision is being carried out",
    "approved": "approved: the candidate went out as a canary", "rejected": "rejected: production untouched",
    "no_new_data": "nothing newer than the serving model's data: nothing done",
    "refused": "refused before training (empty window or the feedback-loop guard)",
    "failed": "the pipeline or the candidate's gates failed"}
_LOWER = {"rmse", "mse", "mae", "mape", "smape", "loss", "log_loss", "logloss", "error", "error_rate", "brier"}
_HIGHER = {"r2", "accuracy", "auc", "roc_auc", "pr_auc", "f1", "precision", "recall", "ap", "ndcg"}
_DONE = {"approved": "Approved", "rejected": "Rejected"}


def direction(metric: str) -> int:
    """+1 when a larger value of the metric is better (``validation.r2``), -1 when a smaller one is
    (``validation.rmse``), 0 when the name does not say (row counts, anything else) or the metric is not the
    model's own (``baseline.*``: the mean or prior on the same data, for scale)."""
    if metric.startswith("baseline."):
        return 0
    last = metric.rsplit(".", 1)[-1].lower()
    return 1 if last in _HIGHER else -1 if last in _LOWER else 0


@router.get("/retraining", response_class=HTMLResponse)
def retraining_page(request: Request, ws: Workspace = READ, policy: str | None = Query(None, max_length=512),
                    status: str | None = Query(None, max_length=32)) -> HTMLResponse:
    """Every retraining policy, and the retrains (of one policy, in one status, when asked), newest first."""
    policies = ws.retraining.policies()
    retrains = ws.retraining.list(policy or None, status=status or None)
    rows = [{"r": r, "gates": (r.evidence or {}).get("gates") or {}, "candidate": _model(r.candidate)}
            for r in retrains]
    return page(request, "retrain.html", ws, title="Retraining", policies=policies, rows=rows,
                policy=policy or "", status=status or "", statuses=RETRAIN_STATUSES, words=STATUS_WORDS)


@router.get("/retraining/{id}", response_class=HTMLResponse)
def review_page(request: Request, id: str, ws: Workspace = READ, done: str | None = None) -> HTMLResponse:
    """Everything an approver weighs, and for an approver the forms while the candidate is pending review."""
    found = ws.retraining.get(id)  # "seven" is a 400 page, an unknown number a 404 page
    return _review_page(request, ws, found, done=_DONE.get(done or ""))


@router.post("/retraining/{id}/approve")
def approve(request: Request, id: str, _csrf: None = CSRF, ws: Workspace = APPROVE,
            reason: str = Form("", max_length=4096), override: bool = Form(False)) -> Response:
    """An approver releases the candidate: approved for production, a canary on the deployment."""
    return _decide(request, ws, id, "approve", reason, override)


@router.post("/retraining/{id}/reject")
def reject(request: Request, id: str, _csrf: None = CSRF, ws: Workspace = APPROVE,
           reason: str = Form("", max_length=4096)) -> Response:
    """An approver turns the candidate down; the deployment is not touched."""
    return _decide(request, ws, id, "reject", reason, False)


def _decide(request: Request, ws: Workspace, id: str, action: str, reason: str, override: bool) -> Response:
    found = ws.retraining.get(id)
    try:
        if action == "approve":
            made = ws.retraining.approve(found.id, reason=reason.strip(), override=override)
        else:
            made = ws.retraining.reject(found.id, reason=reason.strip())
    except KeelError as exc:
        if exc.http_status >= 500:
            raise
        hint = " Tick “override failed gates” to release it anyway; the override is recorded with your reason." \
            if isinstance(exc, GatesFailed) else ""
        return _review_page(request, ws, ws.retraining.get(found.id), status_code=exc.http_status,
                            error=exc.message + hint, asked={"action": action, "reason": reason, "override": override})
    return RedirectResponse(f"/retraining/{made.id}?done={made.status}", status_code=303)


def _review_page(request: Request, ws: Workspace, found: Retrain, *, status_code: int = 200, done: str | None = None,
                 error: str | None = None, asked: Mapping[str, Any] | None = None) -> HTMLResponse:
    review = _review(ws, found)
    evidence = review.get("evidence") or {}
    report = review.get("gate_report") if isinstance(review.get("gate_report"), dict) else None
    comparison = evidence.get("comparison") or {}
    run, graph = None, None
    if found.pipeline_run is not None:
        try:
            run = ws.pipelines.show(found.pipeline_run)
            graph = run_graph(run)
        except NotFound:
            run = None
    decision = review.get("decision") or None
    return page(request, "retrain_review.html", ws, status_code=status_code,
                title=f"Retrain {found.id} ({found.policy})", r=found, review=review, spec=review.get("policy_spec"),
                trigger=found.trigger or {}, trigger_values=(found.trigger or {}).get("values") or [],
                window=found.window or {}, guard=(found.window or {}).get("guard") or {},
                how=found.how or {}, run=run, graph=graph, gates=evidence.get("gates") or {}, report=report,
                gate_url=link(found.gate_report) if found.gate_report else None,
                metrics=_metrics(comparison), compared_on=comparison.get("on"), compare_note=comparison.get("note"),
                candidate=_model(found.candidate),
                serving=_model(review.get("serving") or comparison.get("serving")), decision=decision,
                canary_url=link(decision.get("canary")) if decision and decision.get("canary") else None,
                done=done, error=error, asked=asked or {}, words=STATUS_WORDS, report_url=subject_url,
                evidence_error=evidence.get("error") or evidence.get("message"))


def _review(ws: Workspace, found: Retrain) -> dict[str, Any]:
    """``ws.retraining.review``; when the retrain's policy (or gate report) is gone, what the retrain itself holds."""
    try:
        return ws.retraining.review(found.id)
    except NotFound:
        return {**found.to_dict(), "policy_spec": None, "serving": found.trigger.get("base_model"),
                "on_approve": None}


def _metrics(comparison: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The comparison's rows with the difference and which side is better, when the metric's name says."""
    rows = []
    for m in sorted(comparison.get("metrics") or [], key=_metric_order):
        mine, theirs = m.get("candidate"), m.get("serving")
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (mine, theirs))
        diff = mine - theirs if numbers else None
        sign = direction(str(m.get("metric", "")))
        better = None if not diff or not sign else ("candidate" if diff * sign > 0 else "serving")
        rows.append({**m, "difference": diff, "better": better})
    return rows


def _metric_order(row: Mapping[str, Any]) -> tuple[int, str]:
    """Held-out parts first (validation, test), then train, anything else, the baselines last."""
    name = str(row.get("metric", ""))
    part = name.split(".", 1)[0]
    return ({"validation": 0, "test": 1, "train": 2, "baseline": 4}.get(part, 3), name)


def _model(ref: str | None) -> str | None:
    """A model version as ``name/3`` (the service stores the candidate as ``model:name/3``, the serving one bare)."""
    return ref.removeprefix("model:") if ref else None
