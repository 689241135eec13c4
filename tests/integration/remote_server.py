"""A real keel server for the remote SDK tests: uvicorn on a free loopback port, in a thread, one user per role.

Imported by test_remote*.py (pytest puts this folder on ``sys.path``) and by workers/remote_transfer.py.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

import keel
from keel.remote import RemoteWorkspace
from keel.server.app import create_app

USERS = {"viewer": "vera", "developer": "dev", "approver": "alice", "admin": "root"}


@dataclass
class Team:
    """A running server and its users; ``ws`` is the server's own (embedded) workspace."""

    ws: keel.Workspace
    url: str
    tokens: dict[str, str]
    requests: list[str] = field(default_factory=list)  # "METHOD /path" of every request a remote() sent

    def remote(self, role: str = "developer", **options: Any) -> RemoteWorkspace:
        """The workspace of the user with ``role``, through the server, counting its requests."""
        hooks = {"request": [lambda request: self.requests.append(f"{request.method} {request.url.path}")]}
        return keel.open(self.url, token=self.tokens[role], event_hooks=hooks, **options)

    def embedded(self, role: str = "developer") -> keel.Workspace:
        """The same user's workspace, embedded: the server's workspace acting as them."""
        return self.ws.acting_as(USERS[role])


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve ``app`` on a free loopback port until the block ends; yields the base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="keel-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@contextmanager
def start_team(root: Path, *, metadata_url: str | None = None) -> Iterator[Team]:
    """A fresh workspace at ``root`` with a user and a token per role, served over HTTP."""
    settings = {"metadata_url": metadata_url} if metadata_url else {}
    ws = keel.init(root, user=USERS["admin"], **settings)
    tokens = {}
    for role, name in USERS.items():
        ws.users.add(name, role)
        tokens[role] = ws.tokens.create(name).token
    try:
        with serving(create_app(ws)) as url:
            yield Team(ws, url, tokens)
    finally:
        ws.close()
