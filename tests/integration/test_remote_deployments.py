"""Deployments through a keel server (issue 7): the same user code, embedded and remote, makes the same policy
changes and reads back the same records (``Deployment``, ``DeploymentVersion``, times timezone-aware); the same
rules hold for production endpoints and bad changes.

A real uvicorn server on a free loopback port (``remote_server.start_team``), on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from remote_server import Team, start_team

from gates_helpers import register, toy_world
from keel.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from keel.remote.deployments import RemoteDeploymentService
from keel.serving.model import Deployment, DeploymentVersion
from keel.serving.service import DeploymentService


@pytest.fixture(params=["sqlite", "postgresql"])
def team(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Team]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    with start_team(tmp_path / "server", metadata_url=url) as started:
        split = toy_world(started.ws, 600)
        register(started.ws, split)
        register(started.ws, split)
        yield started


def user_code(ws: Any, name: str) -> list[Deployment]:
    """What an engineer writes, unchanged whichever workspace ``ws`` is."""
    return [
        ws.deployments.create(name, "toy/1", fallbacks=["baseline"], reason="first"),
        ws.deployments.shadow(name, "toy@latest", sample=0.5),
        ws.deployments.canary(name, "toy/2", steps=[5, 25, 50, 100], interval_s=600, guardrails=["p99_ms < 50"]),
        ws.deployments.promote(name, reason="guardrails held"),
        ws.deployments.ab(name, {"a": ("toy/1", 70), "b": ("toy/2", 30)}, sticky_key="host_id"),
        ws.deployments.interleave(name, {"a": "toy/1", "b": "toy/2"}),
        ws.deployments.rollback(name, reason="undo"),
        ws.deployments.pause(name, reason="incident"),
        ws.deployments.resume(name),
    ]


def comparable(d: Deployment) -> tuple[Any, ...]:
    """What must match between two endpoints made by the same code (names, seeds and times differ)."""
    v = d.current
    return d.production, d.models, d.kind, d.state, v.version, v.policy, v.action, v.reason, v.by


def test_the_same_code_makes_the_same_changes(team: Team) -> None:
    embedded, remote = team.embedded("developer"), team.remote("developer")
    try:
        here = user_code(embedded, "here")
        there = user_code(remote, "there")
        for mine, theirs in zip(here, there, strict=True):
            assert isinstance(theirs, Deployment) and isinstance(theirs.current, DeploymentVersion)
            assert comparable(theirs) == comparable(mine)
            assert theirs.created_at.tzinfo is not None and theirs.current.at.tzinfo is not None
        assert there[-1].routing() is not None  # the decoded policy routes
        for ws in (embedded, remote):
            assert ws.deployments.get("there") == embedded.deployments.get("there") == there[-1]
            assert ws.deployments.list() == embedded.deployments.list()
            assert ws.deployments.history("there") == embedded.deployments.history("there")
        assert [v.action for v in remote.deployments.history("there")] == [
            "create", "shadow", "canary", "promote", "ab", "interleave", "rollback", "pause", "resume"]
        assert remote.deployments.delete("there", reason="retired") is None
        assert [d.name for d in remote.deployments.list()] == ["here"]
        assert team.ws.audit.list(action="deployment.delete", limit=1)[0].actor == "dev"
    finally:
        remote.close()


def test_the_same_rules_hold_embedded_and_remote(team: Team) -> None:
    developer, approver, viewer = team.remote("developer"), team.remote("approver"), team.remote("viewer")
    try:
        developer.deployments.create("api", "toy/1")
        for ws in (developer, team.embedded("developer")):
            with pytest.raises(Conflict, match="exists"):
                ws.deployments.create("api", "toy/1")
            with pytest.raises(NotFound):
                ws.deployments.get("nope")
            with pytest.raises(NotFound):
                ws.deployments.create("api-2", "toy/9")
            with pytest.raises(InvalidInput, match="rising percentages"):
                ws.deployments.canary("api", "toy/2", steps=[50, 25], interval_s=60)
            with pytest.raises(InvalidInput, match="only a canary or a shadow"):
                ws.deployments.promote("api")
            with pytest.raises(PermissionDenied, match="no production approval"):
                ws.deployments.create("prod", "toy/1", production=True)
            with pytest.raises(PermissionDenied, match="approver"):
                ws.deployments.create("prod", "toy/1", production=True, override=True, reason="hotfix")
        with pytest.raises(PermissionDenied):
            viewer.deployments.shadow("api", "toy/2")
        assert viewer.deployments.get("api").current.version == 1
        made = approver.deployments.create("prod", "toy/1", production=True, override=True, reason="hotfix")
        assert made.production and made.current.by == "alice"
    finally:
        for ws in (developer, approver, viewer):
            ws.close()


def test_the_remote_service_has_every_method_of_the_embedded_one_with_the_same_parameters() -> None:
    def methods(cls: type) -> dict[str, list[str]]:
        return {name: list(inspect.signature(f).parameters) for name, f in vars(cls).items()
                if callable(f) and not name.startswith("_")}

    assert methods(RemoteDeploymentService) == methods(DeploymentService)
