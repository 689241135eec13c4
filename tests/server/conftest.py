"""A workspace with one user per role and a token each, and an in-process client of the server app."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import keel
from keel.server.app import create_app
from keel.users import ROLES


@dataclass
class Server:
    ws: keel.Workspace
    client: TestClient
    tokens: dict[str, str]  # role -> token of a user with that role

    def as_role(self, role: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    ws = keel.init(tmp_path / "ws", user="admin-user")
    tokens = {}
    for role in ROLES:
        ws.users.add(f"{role}-user" if role != "admin" else "admin-user", role)
        tokens[role] = ws.tokens.create(f"{role}-user" if role != "admin" else "admin-user").token
    client = TestClient(create_app(ws), base_url="http://127.0.0.1")
    yield Server(ws, client, tokens)
    client.close()
    ws.close()
