"""/api/v1/lineage and /api/v1/audit: the graph around any ref, and who changed what."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query

from keel.server.security import READ
from keel.workspace import Workspace

router = APIRouter(tags=["lineage"])


@router.get("/lineage/{ref:path}")
def lineage(ref: str, ws: Workspace = READ, direction: Literal["up", "down"] = "up",
            depth: int | None = Query(None, ge=1, le=100)) -> dict[str, Any]:
    canonical = ws.canonical_ref(ref)
    walk = ws.lineage.upstream if direction == "up" else ws.lineage.downstream
    return walk(canonical, depth).to_dict()


@router.get("/audit")
def audit(ws: Workspace = READ, target: str | None = None, action: str | None = None,
          limit: int = Query(100, ge=1, le=10_000)) -> list[Any]:
    return ws.audit.list(target=target, action=action, limit=limit)
