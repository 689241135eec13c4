"""Deployments through a keel server (issue 7): the same user code, embedded and remote, makes the same policy
changes and reads back the same records (``Deployment``, ``DeploymentVersion``, times timezone-aware); the same
rules hold for production endpoints and bad changes.

A real uvicorn server on a free loopback port (``remote_server.start_team``), on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from remote_server import Team, start_team

from gates_helpers import register, toy_world
from keel.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from keel.remote.deployments import RemoteDeploymentService
from keel.serving.feedback import LOG_SCHEMA, LOG_TABLE
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


def test_feedback_and_reports_are_the_same_embedded_and_remote(team: Team) -> None:
    embedded, remote, viewer = team.embedded("developer"), team.remote("developer"), team.remote("viewer")
    try:
        remote.deployments.create("api", "toy/1")
        remote.deployments.ab("api", {"a": ("toy/1", 50), "b": ("toy/2", 50)})
        now = datetime.now(UTC)
        rows = [{"request_id": f"r{i}", "at": now, "kind": "primary", "deployment": "api", "arm": "ab"[i % 2],
                 "model": f"toy/{1 + i % 2}", "served_by": f"toy/{1 + i % 2}", "output": f"[{float(i)}]",
                 "latency_ms": 1.0 + i, "status": "ok"} for i in range(40)]
        team.ws.data.write_batches([pa.Table.from_pylist(rows, schema=LOG_SCHEMA)], LOG_TABLE)
        labels = np.arange(40) + np.where(np.arange(40) % 2, 3.0, 1.0)  # numpy values, as users have them
        done = remote.deployments.feedback("api", [{"request_id": f"r{i}", "label": labels[i]} for i in range(40)])
        assert done == embedded.deployments.feedback("api", [{"request_id": "r0", "outcome": np.int64(1)}]) | {
            "accepted": 40}
        for since in (None, "1h", now - timedelta(minutes=5)):
            there, here = remote.deployments.report("api", since=since), embedded.deployments.report("api", since=since)
            clock = {"until": there["until"], "since": there["since"] if since == "1h" else here["since"]}
            assert there == here | clock  # a duration is counted back from each one's now
        b = viewer.deployments.report("api")["arms"][1]
        assert (b["metric"]["name"], b["metric"]["value"], b["vs_control"]["difference"]) == ("mae", 3.0, 2.0)
        for ws in (remote, embedded):
            with pytest.raises(InvalidInput, match="feedback item 0: outcome must be a finite number"):
                ws.deployments.feedback("api", [{"request_id": "r1", "outcome": float("nan")}])
            with pytest.raises(NotFound):
                ws.deployments.report("nope")
            with pytest.raises(InvalidInput, match="ISO time"):
                ws.deployments.report("api", since="last week")
        with pytest.raises(PermissionDenied):
            viewer.deployments.feedback("api", [{"request_id": "r1", "outcome": 1}])
    finally:
        remote.close()
        viewer.close()


def test_the_remote_service_has_every_method_of_the_embedded_one_with_the_same_parameters() -> None:
    def methods(cls: type) -> dict[str, list[str]]:
        return {name: list(inspect.signature(f).parameters) for name, f in vars(cls).items()
                if callable(f) and not name.startswith("_")}

    assert methods(RemoteDeploymentService) == methods(DeploymentService)
