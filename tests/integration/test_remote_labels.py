"""Labels by entity and time through a keel server (issue 8): the same user code, embedded and remote, gives the
same result; bad input is the same error (a 400 on the REST API) and writes nothing; a viewer cannot write labels.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from remote_server import Team, start_team
from test_labels_entity_time import labels_of, listings, serve_listings

from gates_helpers import register, toy_world
from keel.errors import InvalidInput, NotFound, PermissionDenied


@pytest.fixture(params=["sqlite", "postgresql"])
def team(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Team, str, Any]]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    with start_team(tmp_path / "server", metadata_url=url) as started:
        register(started.ws, toy_world(started.ws, 600))
        started.ws.deployments.create("price", "toy/1")
        (request_id,), (end,) = serve_listings(started.ws, [listings(0, 10, seed=7)], tmp_path / "log")
        yield started, request_id, end


def test_the_same_code_gives_the_same_result_and_the_same_errors(team, tmp_path: Path) -> None:
    team, request_id, end = team
    labels = pd.DataFrame({"listing_id": [*range(10), 99], "at": [end] * 11, "y": [float(i) for i in range(11)]})
    path = tmp_path / "labels.csv"
    labels.to_csv(path, index=False)
    remote, embedded = team.remote("developer"), team.embedded("developer")
    before = team.ws.data.version("predictions").version
    for ws in (embedded, remote):
        with pytest.raises(InvalidInput, match="no input 'y'"):
            ws.monitors.ingest_labels("price", labels.assign(z=1.0), entities=["y"], time="at", label="z")
        with pytest.raises(InvalidInput, match="--row goes with"):
            ws.monitors.ingest_labels("price", path, entities=["listing_id"], time="at", label="y", row="y")
        with pytest.raises(NotFound, match="no deployment 'nope'"):
            ws.monitors.ingest_labels("nope", path, entities=["listing_id"], time="at", label="y")
    with pytest.raises(PermissionDenied):
        team.remote("viewer").monitors.ingest_labels("price", path, entities=["listing_id"], time="at", label="y")
    assert team.ws.data.version("predictions").version == before
    from_file = remote.monitors.ingest_labels("price", path, key="entity+time", entities=["listing_id"], time="at",
                                              label="y", tolerance=timedelta(hours=1))
    from_frame = remote.monitors.ingest_labels("price", labels, entities=["listing_id"], time="at", label="y")
    local = embedded.monitors.ingest_labels("price", labels, entities=["listing_id"], time="at", label="y")
    assert from_file == from_frame == local == {"deployment": "price", "requests": 1, "key": "entity+time",
                                                "matched": 10, "unmatched": 1, "skipped_missing": 0,
                                                "superseded": 0}
    assert labels_of(team.ws, request_id) == [float(i) for i in range(10)]
    assert team.ws.data.version("predictions").version == before + 3


def test_the_rest_api_refuses_bad_labels_with_400(team, tmp_path: Path) -> None:
    team, _, end = team
    headers = {"authorization": f"Bearer {team.tokens['developer']}"}
    body = pd.DataFrame({"listing_id": [1], "at": ["not a time"], "label": [1.0]}).to_csv(index=False).encode()
    params = {"deployment": "price", "filename": "labels.csv", "key": "entity+time", "entity": "listing_id",
              "time": "at"}
    with httpx.Client(base_url=team.url, headers=headers) as client:
        bad = client.post("/api/v1/labels", params=params, content=body)
        assert bad.status_code == 400 and "not ISO times" in bad.json()["error"]["message"]
        name = client.post("/api/v1/labels", params={**params, "filename": "../x.csv"}, content=body)
        assert name.status_code == 400 and "plain file name" in name.json()["error"]["message"]
        missing = client.post("/api/v1/labels", params={**params, "deployment": "nope"}, content=body)
        assert missing.status_code == 404
        good = pd.DataFrame({"listing_id": [1], "at": [end.isoformat()], "label": [1.0]}).to_csv(index=False)
        done = client.post("/api/v1/labels", params=params, content=good.encode())
        assert done.status_code == 201 and done.json()["matched"] == 1
