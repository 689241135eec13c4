"""/api/v1/users and /api/v1/tokens: people, roles and API tokens (admins only)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from keel.server.security import ADMIN, READ
from keel.workspace import Workspace

router = APIRouter(tags=["admin"])


@router.get("/me")
def me(ws: Workspace = READ) -> Any:
    return ws.users.get(ws.user)


@router.get("/users")
def list_users(ws: Workspace = ADMIN) -> list[Any]:
    return ws.users.list()


class NewUser(BaseModel):
    name: str
    role: str = "developer"
    reason: str | None = None


@router.post("/users", status_code=201)
def add_user(body: NewUser, ws: Workspace = ADMIN) -> Any:
    return ws.users.add(body.name, body.role, reason=body.reason)


class RoleChange(BaseModel):
    role: str
    reason: str | None = None


@router.put("/users/{name}/role")
def set_role(name: str, body: RoleChange, ws: Workspace = ADMIN) -> Any:
    return ws.users.set_role(name, body.role, reason=body.reason)


@router.get("/tokens")
def list_tokens(ws: Workspace = ADMIN, user: str | None = None) -> list[Any]:
    return ws.tokens.list(user)


class NewToken(BaseModel):
    user: str
    expires_in: str | None = None
    description: str | None = None


@router.post("/tokens", status_code=201)
def create_token(body: NewToken, ws: Workspace = ADMIN) -> dict[str, Any]:
    issued = ws.tokens.create(body.user, expires_in=body.expires_in, description=body.description)
    return {"token": issued.token, "info": issued.info}


@router.delete("/tokens/{token_id}")
def revoke_token(token_id: str, ws: Workspace = ADMIN, reason: str | None = None) -> Any:
    return ws.tokens.revoke(token_id, reason=reason)
