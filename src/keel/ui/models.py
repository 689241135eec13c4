"""Model pages: the registry, one model's versions and alias history, and one version with its lineage,
its release gates and the approve and promote forms.

The forms are shown enabled only to someone whose role allows the action, but that is a courtesy: the
POST routes declare their permission like every API route, check the CSRF token, and the registry
checks again (an approval exists before production, the approver role to approve).
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from keel.errors import PermissionDenied
from keel.gates.model import GateReport
from keel.models.model import ENVIRONMENTS
from keel.server.security import APPROVE, READ, WRITE
from keel.ui.charts import lineage_graph
from keel.ui.csrf import CSRF
from keel.ui.deployments import routes_to
from keel.ui.render import current_user, page
from keel.users import role_allows
from keel.workspace import Workspace

__all__ = ["router"]

router = APIRouter()
LINEAGE_DEPTH = 4  # model ← run ← split ← table version ← its sources; the lineage page walks all of it


def _ref(name: str, version: str) -> str:
    return f"{name}/{version}" if version.isdigit() else f"{name}@{version}"


def _version_url(name: str, version: int, done: str | None = None) -> str:
    url = f"/models/{quote(name, safe='')}/versions/{version}"
    return f"{url}?done={done}" if done else url


@router.get("/models", response_class=HTMLResponse)
def models_page(request: Request, ws: Workspace = READ) -> HTMLResponse:
    return page(request, "models.html", ws, title="Models", models=ws.models.list(), environments=ENVIRONMENTS)


@router.get("/models/{name}", response_class=HTMLResponse)
def model_page(request: Request, name: str, ws: Workspace = READ) -> HTMLResponse:
    """Versions (newest first) with their aliases and environments, approvals, alias moves, and the card."""
    registered = ws.models.get(name)
    approvals: dict[int, list] = {}
    for approval in ws.models.approvals(name):
        approvals.setdefault(approval.version, []).append(approval)
    gates: dict[int, GateReport] = {}
    for report in ws.gates.reports(name):  # newest first: each version's latest gate run
        gates.setdefault(report.version, report)
    return page(request, "model.html", ws, title=name, model=registered,
                versions=list(reversed(ws.models.versions(name))), approvals=approvals, gates=gates,
                history=list(reversed(ws.models.alias_history(name))), card=ws.models.card(name),
                environments=ENVIRONMENTS)


@router.get("/models/{name}/versions/{version}", response_class=HTMLResponse)
def version_page(request: Request, name: str, version: str, ws: Workspace = READ,
                 done: str | None = None) -> HTMLResponse:
    """A version end to end: lineage from the data to it (and on to what uses it), its run, environment,
    package, gate reports (with overrides), the deployments routing to it, approvals, and the forms to approve
    and promote it."""
    shown = ws.models.show(_ref(name, version))
    ref = shown["ref"]
    graph = lineage_graph(ref, ws.lineage.upstream(ref, LINEAGE_DEPTH), ws.lineage.downstream(ref, LINEAGE_DEPTH))
    audit = ws.audit.list(target=ref, limit=50)
    number = f"{shown['model']}/{shown['version']}"
    checklists = ws.gates.checklists(shown["model"])
    return page(request, "version.html", ws, title=number, v=shown, graph=graph, audit=audit,
                environments=ENVIRONMENTS, done=done, gates=ws.gates.reports(shown["model"], shown["version"]),
                checklist=checklists[-1] if checklists else None,
                gate_in_force=ws.gates.latest(number) if checklists else None, deployments=routes_to(ws, number))


@router.post("/models/{name}/versions/{version}/approve")
def approve(request: Request, name: str, version: int, _csrf: None = CSRF, ws: Workspace = APPROVE,
            reason: str = Form(""), environment: Literal["staging", "production"] = Form("production")
            ) -> RedirectResponse:
    approval = ws.models.approve(f"{name}/{version}", reason=reason, environment=environment)
    return RedirectResponse(_version_url(approval.model, approval.version, "approved"), status_code=303)


@router.post("/models/{name}/versions/{version}/promote")
def promote(request: Request, name: str, version: int, _csrf: None = CSRF, ws: Workspace = WRITE,
            environment: Literal["staging", "production"] = Form(...), reason: str = Form("")) -> RedirectResponse:
    """Staging for developers; production for approvers, once the version is approved (as in the API)."""
    if environment == "production" and not role_allows(current_user(request, ws).role, "approver"):
        raise PermissionDenied("promoting to production needs the approver role")
    moved = ws.models.promote(f"{name}/{version}", environment, reason=reason.strip() or None)
    return RedirectResponse(_version_url(moved.model, moved.version, f"promoted-{environment}"), status_code=303)
