"""What the REST tests of every capability share: a call as a role, and the structured error's checks."""

from __future__ import annotations

from typing import Any

from .conftest import Server


def call(server: Server, method: str, path: str, role: str | None, body: Any = None, **params: Any) -> Any:
    """``method /api/v1{path}`` with the token of ``role`` (None: no token)."""
    return server.client.request(method, f"/api/v1{path}", headers=server.as_role(role), params=params or None,
                                 **({"json": body} if body is not None else {}))


def api_error(response: Any, status: int | tuple[int, ...], kind: str | None = None) -> dict[str, Any]:
    """The response's ``{"error": {"type", "message", "details"}}`` after checking its status (and type)."""
    statuses = (status,) if isinstance(status, int) else status
    assert response.status_code in statuses, (response.status_code, response.text)
    error = response.json()["error"]
    assert set(error) == {"type", "message", "details"} and error["message"]
    if kind is not None:
        assert error["type"] == kind, error
    return error
