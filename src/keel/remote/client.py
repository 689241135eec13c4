"""The HTTP side of the remote SDK: one keep-alive connection pool, errors turned back into KeelErrors,
and bodies streamed both ways so a file of any size costs a chunk of memory, not its size.

The server answers every error as ``{"error": {"type", "message", "details"}}``; ``type`` is the name of
a ``keel.errors`` class, so the client raises that very class and user code catches the same exceptions
embedded and remote. A type keel.errors does not define (a proxy's 502, ``InternalError``) falls back to
the class that matches the status code.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import pydantic_core

from keel import errors
from keel.errors import KeelError

__all__ = ["CHUNK", "Client", "ServerError", "ServerUnreachable", "error_from_response"]

CHUNK = 1024 * 1024
_IN_FLIGHT = 8  # chunks received but not yet written: the download's memory bound
API = "/api/v1"


class ServerUnreachable(KeelError):
    """The keel server did not answer (not running, wrong URL, network down, timed out)."""


class ServerError(KeelError):
    """The server failed on a request (a 5xx); its log has the cause."""


_BY_STATUS: dict[int, type[KeelError]] = {
    400: errors.InvalidInput, 401: errors.Unauthenticated, 403: errors.PermissionDenied, 404: errors.NotFound,
    405: errors.InvalidInput, 409: errors.Conflict, 413: errors.InvalidInput, 422: errors.InvalidInput,
}


def error_from_response(response: httpx.Response) -> KeelError:
    """The KeelError a failed response stands for: the class the server named, else one by status."""
    try:
        body = response.json()["error"]
        kind, message, details = str(body["type"]), str(body["message"]), body.get("details") or {}
    except (ValueError, KeyError, TypeError):
        kind, details = "", {}
        message = f"the server answered {response.status_code} {response.reason_phrase}: {response.text[:200]}"
    cls = getattr(errors, kind, None) if kind in errors.__all__ else None
    if not (isinstance(cls, type) and issubclass(cls, KeelError)):
        cls = _BY_STATUS.get(response.status_code, ServerError if response.status_code >= 500 else errors.UserError)
    if cls is errors.ValidationFailed:
        from keel.remote.decode import validation_report

        return errors.ValidationFailed(message, report=validation_report(details), details=details)
    return cls(message, details=details)


class Client:
    """A keel server's API under ``/api/v1``, as the user a bearer token names."""

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 60.0,
                 event_hooks: dict[str, list[Callable[..., Any]]] | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        headers = {"User-Agent": "keel-remote"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(base_url=self.url + API, headers=headers, event_hooks=event_hooks,
                                  timeout=httpx.Timeout(timeout, connect=10.0), transport=transport)

    # -- JSON requests -----------------------------------------------------------------------------------

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any = None, **params: Any) -> Any:
        return self.request("POST", path, json=body, params=params)

    def put(self, path: str, body: Any = None, **params: Any) -> Any:
        return self.request("PUT", path, json=body, params=params)

    def delete(self, path: str, **params: Any) -> Any:
        return self.request("DELETE", path, params=params)

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None, **options: Any) -> Any:
        """The decoded JSON answer (None for an empty one); a KeelError for an error answer."""
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        response = self._send(lambda: self._http.request(method, path, params=clean, **options))
        if response.status_code >= 400:
            raise error_from_response(response)
        return _decoded(response)

    # -- streamed bodies -----------------------------------------------------------------------------------

    def upload(self, method: str, path: str, source: Path | bytes, **params: Any) -> Any:
        """Send a file (read a chunk at a time, with its length) or bytes as the request body."""
        clean = {k: v for k, v in params.items() if v is not None}
        if isinstance(source, bytes | bytearray):
            content: Any = bytes(source)
            headers = {"Content-Type": "application/octet-stream"}
        else:
            size = os.stat(source).st_size
            content = _chunks(source)
            headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        response = self._send(lambda: self._http.request(method, path, params=clean, content=content,
                                                         headers=headers))
        if response.status_code >= 400:
            raise error_from_response(response)
        return _decoded(response)

    def download(self, path: str, out: IO[bytes]) -> tuple[int, str]:
        """Write a response body to ``out`` as it arrives; returns its size and sha256.

        A second thread writes and hashes while this one receives (both release the GIL), through a
        queue of at most ``_IN_FLIGHT`` chunks, so memory stays a few MiB whatever the size.
        """
        digest, chunks = hashlib.sha256(), queue.Queue[bytes | None](maxsize=_IN_FLIGHT)
        failed: list[BaseException] = []

        def write() -> None:
            while (chunk := chunks.get()) is not None:
                if not failed:
                    try:
                        out.write(chunk)
                        digest.update(chunk)
                    except BaseException as exc:  # reported by the receiving thread
                        failed.append(exc)

        writer = threading.Thread(target=write, name="keel-download", daemon=True)
        size = 0

        def fetch() -> None:
            nonlocal size
            with self._http.stream("GET", path) as response:
                if response.status_code >= 400:
                    response.read()
                    raise error_from_response(response)
                writer.start()
                try:
                    for chunk in response.iter_raw(CHUNK):
                        if failed:
                            break
                        chunks.put(chunk)
                        size += len(chunk)
                finally:
                    chunks.put(None)
                    writer.join()

        self._send(fetch)
        if failed:
            raise failed[0]
        return size, digest.hexdigest()

    # -- plumbing ------------------------------------------------------------------------------------------

    def _send(self, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except httpx.TimeoutException as exc:
            raise ServerUnreachable(f"the keel server at {self.url} did not answer in time ({type(exc).__name__}); "
                                    "is it overloaded, or is the timeout too short?") from None
        except httpx.TransportError as exc:
            raise ServerUnreachable(f"cannot reach the keel server at {self.url} ({type(exc).__name__}: {exc}); "
                                    "is `keel server` running there, and is the URL right?") from None

    def close(self) -> None:
        self._http.close()


def _chunks(path: Path) -> Iterator[bytes]:
    """A file's bytes a chunk at a time: the upload holds one chunk, whatever the file's size."""
    with open(path, "rb") as src:
        while chunk := src.read(CHUNK):
            yield chunk


def quote(part: str | int) -> str:
    """A path segment with '/' and friends escaped, so a name never changes which route is called."""
    from urllib.parse import quote as _quote

    return _quote(str(part), safe="")


def join(*parts: str | int) -> str:
    return "/" + "/".join(quote(p) for p in parts)


def _decoded(response: httpx.Response) -> Any:
    """The JSON body (None when empty), parsed by pydantic's Rust parser: a listing of hundreds of runs
    decodes in half the time ``json.loads`` takes."""
    return pydantic_core.from_json(response.content) if response.content else None
