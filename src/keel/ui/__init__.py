"""The web UI: server-rendered pages over the same services as the API, at ``/`` beside ``/api/v1``.

``install_ui(app)`` adds the page routes (each declares its permission, like every API route), serves
``/static`` (keel's stylesheet and script, and the vendored chart library: no CDN), and answers errors
on pages as pages: a friendly error page for a browser, a redirect to the login page when the session
is missing or over. API routes keep their JSON errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from keel.errors import KeelError, Unauthenticated
from keel.logs import get_logger
from keel.server.security import SESSION_COOKIE
from keel.ui import (
    data,
    deployments,
    features,
    gates,
    incidents,
    models,
    monitors,
    overview,
    pipelines,
    retraining,
    runs,
    session,
    traces,
)
from keel.ui.render import page

__all__ = ["STATIC", "install_ui"]

STATIC = Path(__file__).with_name("static")
log = get_logger("keel.ui")
_TITLES = {400: "That request did not make sense", 401: "Log in first", 403: "Not allowed", 404: "Not found",
           405: "Not allowed here", 409: "Conflict", 422: "Not accepted", 500: "Something went wrong"}


def install_ui(app: FastAPI) -> None:
    """Add the UI's pages, its static files and its error pages to the server app."""
    for module in (session, overview, runs, models, gates, deployments, monitors, traces, incidents, data,
                   features, pipelines, retraining):
        app.include_router(module.router, include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for kind in (KeelError, RequestValidationError, HTTPException, Exception):
        app.add_exception_handler(kind, _page_errors(app.exception_handlers.get(kind)))


def is_page(request: Request) -> bool:
    return not request.url.path.startswith(("/api/", "/static/"))


def _page_errors(api_handler: Any) -> Any:
    """An error handler that answers pages as pages and leaves everything else to the API's handler."""

    async def handle(request: Request, exc: Exception) -> Response:
        if is_page(request):
            if isinstance(exc, Unauthenticated):
                return _to_login(request)
            if "text/html" in request.headers.get("accept", ""):
                try:
                    return _error_page(request, exc)
                except Exception as failure:  # the error page must never become a second error
                    log.error("ui.error_page_failed", path=request.url.path, error=repr(failure))
        return await api_handler(request, exc)

    return handle


def _to_login(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    params = {"next": target if request.method == "GET" else "/"}
    if request.cookies.get(SESSION_COOKIE):
        params["reason"] = "expired"
    response = RedirectResponse("/login?" + urlencode(params), status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")
    return response


def _error_page(request: Request, exc: Exception) -> Response:
    if isinstance(exc, KeelError):
        status, kind, message = exc.http_status, type(exc).__name__, exc.message
    elif isinstance(exc, RequestValidationError):
        first = (exc.errors() or [{}])[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "path", "body"))
        status, kind, message = 400, "InvalidInput", f"{where or 'request'}: {first.get('msg', 'invalid')}"
    elif isinstance(exc, HTTPException):
        status, kind, message = exc.status_code, "HTTPError", str(exc.detail)
    else:
        log.error("ui.unexpected_error", path=request.url.path, error=repr(exc), exc_info=exc)
        status, kind, message = 500, "InternalError", "The server failed on this page; the error is in its log."
    if status >= 500 and isinstance(exc, KeelError):
        log.error("ui.server_error", path=request.url.path, error=repr(exc))
    return page(request, "error.html", None, status_code=status, title=_TITLES.get(status, "Error"), kind=kind,
                message=message, code=status)
