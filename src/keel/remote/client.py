"""The HTTP side of the remote SDK: one keep-alive connection pool, errors turned back into KeelErrors,
and bodies streamed both ways so a file of any size costs a chunk of memory, not its size.

The server answers every error as ``{"error": {"type", "message", "details"}}``; ``type`` is the name of
a ``keel.errors`` class, so the client raises that very class and user code catches the same exceptions
embedded and remote. A type keel.errors does not define (a proxy's 502, ``InternalError``) falls back to
the class that matches the status code.
"""

from __future__ import annotations

import base64
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

    def download(self, path: str, out: IO[bytes]) -> tuple[int, str, str | None]:
        """Write a response body to ``out`` as it arrives; returns its size, its sha256 and the sha256 the
        server announced for it (its ``Repr-Digest`` header; None without one).

        Writing and hashing each run in a thread of their own (both release the GIL) while this one
        receives: the three overlap, so the check costs about what the slowest of them costs, not the sum.
        Each thread takes chunks from a queue of at most ``_IN_FLIGHT``, so memory stays a few MiB.
        """
        digest, announced = hashlib.sha256(), None
        stages = [_Stage(out.write, "keel-download-write"), _Stage(digest.update, "keel-download-hash")]
        size = 0

        def fetch() -> None:
            nonlocal size, announced
            with self._http.stream("GET", path) as response:
                if response.status_code >= 400:
                    response.read()
                    raise error_from_response(response)
                announced = _announced_sha256(response.headers.get("repr-digest", ""))
                for stage in stages:
                    stage.start()
                try:
                    for chunk in response.iter_raw(CHUNK):
                        if any(stage.failed for stage in stages):
                            break
                        for stage in stages:
                            stage.put(chunk)
                        size += len(chunk)
                finally:
                    for stage in stages:
                        stage.finish()

        self._send(fetch)
        for stage in stages:
            if stage.failed:
                raise stage.failed[0]
        return size, digest.hexdigest(), announced

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


def _announced_sha256(header: str) -> str | None:
    """The sha-256 of a ``Repr-Digest`` header (RFC 9530: ``sha-256=:<base64>:``) as hex; None if absent."""
    for item in header.split(","):
        algorithm, _, value = item.strip().partition("=")
        if algorithm.strip().lower() == "sha-256" and value.startswith(":") and value.endswith(":"):
            try:
                return base64.b64decode(value[1:-1], validate=True).hex()
            except ValueError:
                return None
    return None


class _Stage:
    """A thread that hands every chunk put to it to ``consume``, in order; the first error stops it and is kept."""

    def __init__(self, consume: Callable[[bytes], Any], name: str) -> None:
        self._consume, self._chunks = consume, queue.Queue[bytes | None](maxsize=_IN_FLIGHT)
        self.failed: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def put(self, chunk: bytes) -> None:
        self._chunks.put(chunk)

    def finish(self) -> None:
        """Wait until every chunk put is consumed (or the stage failed); the thread is gone after."""
        if self._thread.is_alive():
            self._chunks.put(None)
            self._thread.join()

    def _run(self) -> None:
        while (chunk := self._chunks.get()) is not None:
            if not self.failed:
                try:
                    self._consume(chunk)
                except BaseException as exc:  # reported by the receiving thread
                    self.failed.append(exc)


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
