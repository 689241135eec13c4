"""Monitors through a keel server (issue 8): the same user code, embedded and remote, creates a monitor, runs it
and reads its reports with the same records; the same errors for bad input; a viewer reads but cannot run.

A real uvicorn server on a free loopback port (``remote_server.start_team``), on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from remote_server import Team, start_team
from test_monitoring import serve

from gates_helpers import register, toy_frame, toy_world
from keel.errors import InvalidInput, NotFound, PermissionDenied
from keel.monitoring.model import DriftReport, Monitor


@pytest.fixture(params=["sqlite", "postgresql"])
def team(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Team]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    with start_team(tmp_path / "server", metadata_url=url) as started:
        register(started.ws, toy_world(started.ws, 600))
        started.ws.deployments.create("price", "toy/1")
        serve(started.ws, toy_frame(300, seed=4), tmp_path / "log")
        yield started


def user_code(ws: Any, name: str) -> tuple[Monitor, DriftReport, list[DriftReport]]:
    """What an engineer writes, unchanged whichever workspace ``ws`` is."""
    made = ws.monitors.create(name, "price", window="1h", slices=["cat"], thresholds={"x2": 0.2})
    report = ws.monitors.run(name)
    return made, report, ws.monitors.reports(name)


def test_the_same_code_gives_the_same_records(team: Team) -> None:
    embedded, remote = team.embedded("developer"), team.remote("developer")
    made_e, report_e, _listed_e = user_code(embedded, "local")
    made_r, report_r, listed_r = user_code(remote, "remote")
    assert isinstance(made_r, Monitor) and isinstance(report_r, DriftReport)
    assert (made_r.deployment, made_r.slices, made_r.thresholds) == (made_e.deployment, made_e.slices,
                                                                     made_e.thresholds)
    assert (report_r.rows, report_r.status, report_r.drifted, report_r.model) == \
        (report_e.rows, report_e.status, report_e.drifted, report_e.model)
    assert report_r.results["overall"] == report_e.results["overall"]  # same data, same sketch, same statistics
    assert report_r.baseline == report_e.baseline  # one stored baseline serves both monitors
    assert [r.number for r in listed_r] == [1] and remote.monitors.report("remote").number == 1
    assert [m.name for m in remote.monitors.list("price")] == ["local", "remote"]
    newest = remote.monitors.query_log("kind = 'primary'", columns=["request_id", "at"], limit=2)
    assert newest.equals(embedded.monitors.query_log("kind = 'primary'", columns=["request_id", "at"], limit=2))
    since = datetime.now(UTC) - timedelta(hours=1)
    remote_rows = remote.deployments.log("price", since, columns=["request_id", "at", "kind"])
    local_rows = embedded.deployments.log("price", since, columns=["request_id", "at", "kind"])
    assert sorted(remote_rows["request_id"].to_pylist()) == sorted(local_rows["request_id"].to_pylist())
    assert remote_rows.num_rows == 2 and set(remote_rows["kind"].to_pylist()) == {"primary"}
    request_id = newest["request_id"][0].as_py()
    assert remote.monitors.trace(request_id) == embedded.monitors.trace(request_id)
    page = remote.monitors.html("remote")  # rendered from the server's records: the page embedded would write
    assert page.lower().startswith("<!doctype html>") and page == embedded.monitors.html("remote")
    with pytest.raises(NotFound):
        remote.monitors.html("remote", number=9)
    remote.monitors.delete("remote")
    with pytest.raises(NotFound):
        remote.monitors.get("remote")


def test_the_same_errors(team: Team) -> None:
    for ws in (team.embedded("developer"), team.remote("developer")):
        with pytest.raises(NotFound, match="no deployment 'nope'"):
            ws.monitors.create("m", "nope")
        with pytest.raises(InvalidInput, match="slice column"):
            ws.monitors.create("m", "price", slices=["zzz"])
        with pytest.raises(NotFound, match="no monitor"):
            ws.monitors.run("missing")
    with pytest.raises(InvalidInput, match="Python code"):
        team.remote("developer").monitors.create("k", "price", kpis={"k": "os:getcwd"})
    viewer = team.remote("viewer")
    team.embedded("developer").monitors.create("m", "price")
    assert viewer.monitors.get("m").name == "m"
    with pytest.raises(PermissionDenied):
        viewer.monitors.run("m")


def test_the_rest_api_refuses_bad_bodies_with_400_and_unknown_monitors_with_404(team: Team) -> None:
    headers = {"authorization": f"Bearer {team.tokens['developer']}"}
    with httpx.Client(base_url=team.url, headers=headers) as client:
        extra = client.post("/api/v1/monitors", json={"name": "m", "deployment": "price", "windo": "1h"})
        assert extra.status_code == 400 and "windo" in extra.json()["error"]["message"]
        share = client.post("/api/v1/monitors", json={"name": "m", "deployment": "price", "share": 2})
        assert share.status_code == 400 and "share" in share.json()["error"]["message"]
        kpis = client.post("/api/v1/monitors", json={"name": "m", "deployment": "price", "kpis": {"k": "os:getcwd"}})
        assert kpis.status_code == 400 and "never imports" in kpis.json()["error"]["message"]
        team.embedded("developer").monitors.create("page", "price")
        assert client.post("/api/v1/monitors/page/runs", json={}).status_code == 201
        page = client.get("/api/v1/monitors/page/html")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "<svg" in page.text and "<script" not in page.text
        missing = client.get("/api/v1/monitors/nope/reports/1")
        assert missing.status_code == 404 and missing.json()["error"]["type"] == "NotFound"
