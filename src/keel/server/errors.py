"""Every error as ``{"error": {"type", "message", "details"}}``: a KeelError with its class's status, a
request the server cannot understand as a 4xx, and anything else as a 500 without a traceback."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from keel.errors import InvalidInput, KeelError
from keel.logs import get_logger

__all__ = ["error_body", "install_error_handlers"]

log = get_logger("keel.server")  # keel's JSON events (structlog's default renders tracebacks with locals: seconds)
_HTTP_TYPES = {400: "InvalidInput", 401: "Unauthenticated", 403: "PermissionDenied", 404: "NotFound",
               405: "MethodNotAllowed", 409: "Conflict", 413: "TooLarge", 415: "InvalidInput", 422: "InvalidInput"}


def error_body(kind: str, message: str, details: dict | None = None) -> dict:
    return {"error": {"type": kind, "message": message, "details": details or {}}}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(KeelError)
    async def keel_error(request: Request, exc: KeelError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None
        return JSONResponse(exc.to_dict(), status_code=exc.http_status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [{"where": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg")}
                    for e in exc.errors()]
        first = problems[0] if problems else {"where": "request", "problem": "invalid"}
        return JSONResponse(error_body("InvalidInput", f"{first['where']}: {first['problem']}",
                                       {"problems": problems}), status_code=400)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        kind = _HTTP_TYPES.get(exc.status_code, "HTTPError")
        return JSONResponse(error_body(kind, str(exc.detail)), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(OverflowError)
    async def out_of_range(request: Request, exc: OverflowError) -> Response:
        """A number too large for the database or the clock (``?version=10**30``, ``expires_in=10**20d``) is
        the request's fault: answered as invalid input, by whatever handles KeelError (pages answer as pages)."""
        refused = InvalidInput(f"a number in the request is out of range ({exc})")
        return await app.exception_handlers[KeelError](request, refused)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("server.unexpected_error", path=request.url.path, error=repr(exc), exc_info=exc)
        return JSONResponse(error_body("InternalError", "the server failed on this request; the error is in its "
                                       "log"), status_code=500)
