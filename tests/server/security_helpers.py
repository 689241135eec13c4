"""Helpers for the security tests: requests the server sees exactly as sent, a real uvicorn on loopback,
canary files, and the app's routes filled in with real objects.

A test client normalises ``..`` and re-encodes paths, so hostile paths go in as raw ASGI scopes (built the
way uvicorn builds them: ``path`` is the percent-decoded ``raw_path``) or as raw bytes over a socket to a
real uvicorn server.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import anyio


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    error: BaseException | None = None  # an exception the app let out (after sending its 500)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def asgi_call(app: Any, method: str, raw_path: bytes, *, query: bytes = b"",
              headers: Iterable[tuple[bytes, bytes]] | None = None, body: bytes = b"",
              host: bytes | None = b"127.0.0.1") -> RawResponse:
    """One request through the ASGI app with ``raw_path`` as the bytes on the wire (no normalisation)."""
    sent: list[tuple[bytes, bytes]] = [] if host is None else [(b"host", host)]
    sent += [(k.lower(), v) for k, v in (headers or [])]
    if body:
        sent.append((b"content-length", str(len(body)).encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": unquote(raw_path.decode("ascii")), "raw_path": raw_path, "query_string": query,
             "root_path": "", "headers": sent, "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80),
             "state": {}}
    chunks = [{"type": "http.request", "body": body, "more_body": False}]
    out: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if chunks:
            return chunks.pop(0)
        await anyio.sleep_forever()  # like a client that waits for the answer
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        out.append(message)

    async def run() -> BaseException | None:
        try:
            await app(scope, receive, send)
        except Exception as exc:  # Starlette re-raises after sending its 500
            return exc
        return None

    error = anyio.run(run)
    start = next((m for m in out if m["type"] == "http.response.start"), None)
    if start is None:
        return RawResponse(500, {}, b"", error)
    head = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in start.get("headers", [])}
    data = b"".join(m.get("body", b"") for m in out if m["type"] == "http.response.body")
    return RawResponse(start["status"], head, data, error)


# -- a real server ----------------------------------------------------------------------------------------

@contextmanager
def live_server(app: Any) -> Iterator[int]:
    """uvicorn serving ``app`` on a free loopback port (in a thread); yields the port."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", proxy_headers=False,
                                           server_header=False, access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@contextmanager
def keel_server_process(root: Path, *, umask: int | None = None) -> Iterator[str]:
    """``keel server`` for the workspace at ``root`` in its own process (with ``umask``), on a free loopback
    port, until the block ends; yields its URL."""
    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = root.parent / f"keel-server-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "keel.cli.main", "server", "--port", str(port)], cwd=root,
                                stdout=out, stderr=subprocess.STDOUT, umask=-1 if umask is None else umask)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"keel server exited ({proc.returncode}): {log.read_text()[-2000:]}")
            try:
                if httpx.get(url + "/api/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"keel server did not answer in 60 s: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def raw_http(port: int, request: bytes, timeout: float = 10.0) -> RawResponse:
    """Send ``request`` byte for byte and read the whole answer (the request should say Connection: close)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(request)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1]) if lines and lines[0].startswith("HTTP/") else 0
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = _unchunk(body)
    return RawResponse(status, headers, body)


def _unchunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2:]
    return out


def http_request(method: str, target: bytes, *, host: bytes, headers: dict[str, str] | None = None,
                 body: bytes = b"") -> bytes:
    """The bytes of one HTTP/1.1 request with ``target`` exactly as given."""
    lines = [method.encode() + b" " + target + b" HTTP/1.1", b"Host: " + host, b"Connection: close"]
    lines += [f"{k}: {v}".encode() for k, v in (headers or {}).items()]
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


# -- canaries -------------------------------------------------------------------------------------------

@dataclass
class Canaries:
    """Files outside the artifact root that no request may read, write or delete."""

    files: dict[Path, tuple[bytes, int]] = field(default_factory=dict)  # path -> (content, mtime_ns)
    outside: Path | None = None  # everything under here but the artifact root is watched for new files
    artifact_root: Path | None = None
    before: set[Path] = field(default_factory=set)

    @classmethod
    def plant(cls, folders: Iterable[Path], *, watch: Path, artifact_root: Path) -> Canaries:
        canaries = cls(outside=watch, artifact_root=artifact_root)
        for index, folder in enumerate(folders):
            path = folder / "canary.txt"
            content = f"CANARY-{index}-7f3a9c-never-served".encode()
            path.write_bytes(content)
            canaries.files[path] = (content, path.stat().st_mtime_ns)
        canaries.before = canaries._watched()
        return canaries

    def _watched(self) -> set[Path]:
        assert self.outside is not None and self.artifact_root is not None
        return {p for p in self.outside.rglob("*") if p.is_file() and self.artifact_root not in p.parents
                and not re.search(r"\.db-(wal|shm|journal)$", p.name)}

    def assert_not_in(self, body: bytes, what: str = "") -> None:
        for path, (content, _) in self.files.items():
            assert content not in body, f"the canary {path} was served: {what}"

    def assert_untouched(self) -> None:
        for path, (content, mtime) in self.files.items():
            assert path.exists(), f"the canary {path} was deleted"
            assert path.read_bytes() == content, f"the canary {path} was written"
            assert path.stat().st_mtime_ns == mtime, f"the canary {path} was touched"
        new = {p for p in self._watched() - self.before if "keel-upload-" not in str(p)}
        assert new == set(), f"files appeared outside the artifact root: {sorted(map(str, new))}"


# -- routes ------------------------------------------------------------------------------------------------

_PARAM = re.compile(r"\{([^}:]+)(?::[^}]+)?\}")


def all_routes(app: Any) -> list[Any]:
    """Every route of the app with a dependant (the API and the UI pages), included routers flattened."""
    from fastapi.routing import iter_route_contexts

    fastapi_app = getattr(app, "fastapi", app)
    return [r for r in iter_route_contexts(fastapi_app.routes) if hasattr(r, "dependant")
            and not r.path.startswith(("/api/v1/openapi", "/api/v1/docs", "/static"))]


def path_params(path: str) -> list[str]:
    return _PARAM.findall(path)


def fill(path: str, values: dict[str, str]) -> str:
    """The route's path with each ``{param}`` replaced (a param missing from ``values`` raises KeyError)."""
    return _PARAM.sub(lambda m: values[m.group(1)], path)


# -- model packages ----------------------------------------------------------------------------------------------

def write_toy_package(folder: Path) -> None:
    """A genuine python-flavor package of helpers_models.ToyModel in ``folder``, written the registry's way."""
    import pandas as pd

    from helpers_models import ToyModel
    from keel.models.flavors import flavor_named
    from keel.models.package import write_package
    from keel.models.signature import infer_signature

    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [0.5, 0.1, 0.2]})
    model = ToyModel()
    write_package(model, folder, flavor=flavor_named("python"), signature=infer_signature(frame, model.predict(frame)),
                  environment={}, run_id=None, input_example=frame)


def tar_folder(folder: Path) -> bytes:
    """The files of ``folder`` as an uncompressed tar (what the package upload route takes)."""
    import io
    import tarfile

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for path in sorted(folder.iterdir()):
            tar.add(path, arcname=path.name)
    return out.getvalue()
