"""The server app: the REST API under /api/v1 for every capability, errors as structured JSON, auth on
every route, the web UI at / (``keel.ui``), and a Host header check in front of everything.
"""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import APIRouter, FastAPI

from keel import __version__
from keel.server.errors import install_error_handlers
from keel.server.routers import (
    admin,
    data,
    deployments,
    features,
    gates,
    incidents,
    lineage,
    models,
    monitors,
    pipelines,
    predictions,
    retraining,
    runs,
)
from keel.server.security import LOOPBACK_NAMES, PUBLIC, HostGuard, ServerState
from keel.ui import install_ui
from keel.workspace import Workspace

__all__ = ["API_PREFIX", "create_app"]

API_PREFIX = "/api/v1"


def create_app(workspace: Workspace, *, auth: bool = True, allowed_hosts: Iterable[str] = ()) -> HostGuard:
    """The ASGI app serving ``workspace``. ``allowed_hosts`` adds names to the loopback ones."""
    app = FastAPI(title="keel", version=__version__, openapi_url=f"{API_PREFIX}/openapi.json",
                  docs_url=None, redoc_url=None)  # FastAPI's docs pages load scripts from a CDN: keel loads none
    app.state.keel = ServerState(workspace, auth=auth)
    install_error_handlers(app)
    api = APIRouter(prefix=API_PREFIX)

    @api.get("/health", tags=["server"])
    async def health(_: None = PUBLIC) -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    for router in (data.router, features.router, runs.router, models.router, gates.router, deployments.router,
                   predictions.router, monitors.router, incidents.router, pipelines.router, retraining.router,
                   lineage.router, admin.router):
        api.include_router(router)
    app.include_router(api)
    install_ui(app)  # the pages at /, /static, and error pages for them (API errors stay JSON)
    guarded = HostGuard(app, {*LOOPBACK_NAMES, "[::1]", *allowed_hosts})
    guarded.fastapi = app  # type: ignore[attr-defined]
    return guarded
