"""Incidents through a keel server (issue 8): the same user code, embedded and remote, reads a deployment's
timeline and records, lists, reads and annotates incidents with the same records; the same errors for bad input; a
viewer reads but cannot record; bad bodies are 4xx with a structured error, never 500.

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
from keel.monitoring.incidents import Incident
from keel.monitoring.timeline import Timeline, TimelineEvent


@pytest.fixture(params=["sqlite", "postgresql"])
def team(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Team]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    with start_team(tmp_path / "server", metadata_url=url) as started:
        split = toy_world(started.ws, 600)
        register(started.ws, split)
        started.ws.deployments.create("price", "toy/1")
        serve(started.ws, toy_frame(300, seed=4), tmp_path / "log")
        register(started.ws, split)
        started.ws.deployments.canary("price", "toy/2", steps=[20], interval_s=60, reason="try toy/2")
        yield started


def user_code(ws: Any, start: datetime) -> tuple[Timeline, Incident, Incident]:
    """What an engineer writes, unchanged whichever workspace ``ws`` is."""
    found = ws.incidents.timeline("price", start)
    made = ws.incidents.create("price", start, title="canary of toy/2", note="first look", severity="low")
    return found, made, ws.incidents.note(made.id, "looks fine after all")


def test_the_same_code_gives_the_same_records(team: Team) -> None:
    embedded, remote = team.embedded("developer"), team.remote("developer")
    start = datetime.now(UTC) - timedelta(hours=1)
    found_e, made_e, noted_e = user_code(embedded, start)
    found_r, made_r, noted_r = user_code(remote, start)
    assert isinstance(found_r, Timeline) and isinstance(found_r.events[0], TimelineEvent)
    assert isinstance(made_r, Incident) and made_r.window_start == start
    assert found_r.events == found_e.events and found_r.versions == found_e.versions == [1, 2]
    assert [e.kind for e in found_r.events if e.kind == "deployment"] == ["deployment", "deployment"]
    assert {"data", "registry", "deployment"} <= set(found_r.kinds())
    assert (made_r.id, made_e.id) == (2, 1) and made_r.created_by == made_e.created_by
    assert made_r.timeline["events"] == made_e.timeline["events"]
    assert [n["text"] for n in noted_r.notes] == [n["text"] for n in noted_e.notes] == ["first look",
                                                                                        "looks fine after all"]
    assert remote.incidents.get("incident:2") == noted_r and embedded.incidents.get(2) == noted_r
    assert [i.id for i in remote.incidents.list("price")] == [2, 1] == [i.id for i in embedded.incidents.list()]
    assert remote.incidents.list("other") == []


def test_the_same_errors(team: Team) -> None:
    for ws in (team.embedded("developer"), team.remote("developer")):
        with pytest.raises(NotFound, match="no deployment 'nope'"):
            ws.incidents.timeline("nope", "1h")
        with pytest.raises(InvalidInput, match="not before"):
            ws.incidents.timeline("price", "2024-01-02T00:00Z", "2024-01-01T00:00Z")
        with pytest.raises(InvalidInput, match="title"):
            ws.incidents.create("price", "1h", title=" ")
        with pytest.raises(NotFound, match="no incident"):
            ws.incidents.note(9, "text")
    viewer = team.remote("viewer")
    made = team.embedded("developer").incidents.create("price", "1h", title="t")
    assert viewer.incidents.get(made.id).title == "t" and viewer.incidents.timeline("price", "1h").versions
    with pytest.raises(PermissionDenied):
        viewer.incidents.create("price", "1h", title="t")
    with pytest.raises(PermissionDenied):
        viewer.incidents.note(made.id, "text")


def test_the_rest_api_refuses_bad_input_with_4xx_never_500(team: Team) -> None:
    headers = {"authorization": f"Bearer {team.tokens['developer']}"}
    with httpx.Client(base_url=team.url, headers=headers) as client:
        extra = client.post("/api/v1/incidents", json={"deployment": "price", "from": "1h", "title": "t",
                                                       "seververity": "high"})
        assert extra.status_code == 400 and "seververity" in extra.json()["error"]["message"]
        severity = client.post("/api/v1/incidents", json={"deployment": "price", "from": "1h", "title": "t",
                                                          "severity": "sev1"})
        assert severity.status_code == 400 and severity.json()["error"]["type"] == "InvalidInput"
        for query in ({"deployment": "price"}, {"deployment": "price", "from": "soon"},
                      {"deployment": "price", "from": "1h", "to": "2h"}):
            bad = client.get("/api/v1/incidents/timeline", params=query)
            assert bad.status_code == 400 and bad.json()["error"]["message"], (query, bad.text)
        unknown = client.get("/api/v1/incidents/timeline", params={"deployment": "nope", "from": "1h"})
        assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "NotFound"
        assert client.get("/api/v1/incidents/7").status_code == 404
        assert client.get("/api/v1/incidents/seven").status_code == 400
        assert client.post("/api/v1/incidents/7/notes", json={"text": "x"}).status_code == 404
        made = client.post("/api/v1/incidents", json={"deployment": "price", "from": "1h", "title": "t"})
        assert made.status_code == 201 and made.json()["ref"] == "incident:1"
        note = client.post("/api/v1/incidents/1/notes", json={"text": ""})
        assert note.status_code == 400
        timeline = client.get("/api/v1/incidents/timeline", params={"deployment": "price", "from": "1h"})
        assert timeline.status_code == 200 and timeline.json()["versions"] == [1, 2]
