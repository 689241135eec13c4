"""Feature pages: the feature views (with their freshness) and the stored training sets, and one view with,
per feature, its type, owner, freshness and consumers (models, deployments, jobs), removal candidates
flagged, its versions, source table versions and materialisations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from keel.features.model import FeatureViewInfo
from keel.server.security import READ
from keel.ui.render import page
from keel.workspace import Workspace

__all__ = ["router"]

router = APIRouter()
MATERIALIZATIONS_SHOWN = 10
_UNITS = (("day", 86_400), ("hour", 3_600), ("minute", 60), ("second", 1))


def _utc(value: Any) -> Any:
    """Stored times as UTC (a database may hand them back without their zone)."""
    return value.replace(tzinfo=UTC) if isinstance(value, datetime) and value.tzinfo is None else value


def _materializations(ws: Workspace, info: FeatureViewInfo) -> list[dict[str, Any]]:
    if info.kind != "batch":
        return []
    return [{k: _utc(v) for k, v in m.items()} for m in ws.features.materializations(info.name)]


def ttl_text(seconds: float | None) -> str:
    """A view's time to live as people say it: ``7 days``, ``36 hours``, ``90 seconds``."""
    if seconds is None:
        return "values never expire"
    for unit, size in _UNITS:
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds:g} seconds"


@router.get("/features", response_class=HTMLResponse)
def features_page(request: Request, ws: Workspace = READ) -> HTMLResponse:
    """The views (latest versions) with when their online values were last materialised, and the training sets."""
    views = []
    for info in ws.features.list():
        mine = [m for m in _materializations(ws, info) if m["version"] == info.version]
        views.append({"info": info, "owner": info.definition.get("owner"),
                      "description": info.definition.get("description"),
                      "materialized_until": mine[0]["end_ts"] if mine else None})
    return page(request, "features.html", ws, title="Features", views=views,
                training_sets=ws.features.training_sets())


@router.get("/features/{name}", response_class=HTMLResponse)
def view_page(request: Request, name: str, ws: Workspace = READ) -> HTMLResponse:
    """One view as ``ws.features.show`` describes it: the feature table with consumers, then its history."""
    shown = ws.features.show(name)
    info = ws.features.get(shown["name"], shown["version"])
    used_by = [t for t in ws.features.training_sets() if shown["name"] in t.view_versions]
    unused = [f["name"] for f in shown["features"] if f["removal_candidate"]]
    return page(request, "feature_view.html", ws, title=shown["name"], v=shown, d=shown["definition"],
                ttl=ttl_text(shown["definition"].get("ttl_seconds")), training_sets=used_by,
                materializations=_materializations(ws, info)[:MATERIALIZATIONS_SHOWN], unused=unused)
