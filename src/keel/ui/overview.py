"""The home page (what is in the workspace, what changed lately), the lineage graph of any ref, and the
audit log."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from keel.data.model import QUARANTINE_SUFFIX
from keel.errors import KeelError
from keel.server.security import READ
from keel.ui.charts import lineage_graph
from keel.ui.render import page
from keel.workspace import Workspace

__all__ = ["router"]

router = APIRouter()


@router.get("/", response_class=HTMLResponse)
def home(request: Request, ws: Workspace = READ) -> HTMLResponse:
    models = ws.models.list()
    tables = [t for t in ws.data.tables() if not t.name.endswith(QUARANTINE_SUFFIX)]
    return page(request, "home.html", ws, title="Overview", runs=ws.runs.list(limit=8), models=models, tables=tables,
                audit=ws.audit.list(limit=12))


@router.get("/lineage", response_class=HTMLResponse)
def lineage_page(request: Request, ws: Workspace = READ, ref: str = "",
                 depth: int | None = Query(None, ge=1, le=100)) -> HTMLResponse:
    """What a ref was made from and what was made from it, as a graph and as two trees. Any ref people
    type works (``listings``, ``price@production``, ``run:…``); an unknown one is explained on the page."""
    if not ref.strip():
        return page(request, "lineage.html", ws, title="Lineage", ref="", canonical=None, error=None)
    try:
        canonical = ws.canonical_ref(ref.strip())
    except KeelError as exc:
        return page(request, "lineage.html", ws, title="Lineage", ref=ref, canonical=None, error=exc.message,
                    status_code=exc.http_status)
    up, down = ws.lineage.upstream(canonical, depth), ws.lineage.downstream(canonical, depth)
    if not up.children and not down.children:
        error = f"{canonical} has no lineage edges: nothing was recorded as made from it or into it"
    else:
        error = None
    return page(request, "lineage.html", ws, title=f"Lineage of {canonical}", ref=ref, canonical=canonical,
                graph=lineage_graph(canonical, up, down), upstream=up, downstream=down, error=error)


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request, ws: Workspace = READ, target: str = "", action: str = "",
               limit: int = Query(200, ge=1, le=5000)) -> HTMLResponse:
    entries = ws.audit.list(target=target.strip() or None, action=action.strip() or None, limit=limit)
    return page(request, "audit.html", ws, title="Audit log", entries=entries, target=target, action=action,
                limit=limit)
