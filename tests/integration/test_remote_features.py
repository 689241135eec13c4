"""The feature store through a keel server: the same user code, embedded and remote, gives the same training
set rows, the same online values (with their statuses) and the same records (issue 5).

A real uvicorn server on a free loopback port (``remote_server.start_team``), on SQLite and on PostgreSQL.
Definitions are applied through the embedded workspace, as they must be: applying imports user code, which
a server never does for a request.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from remote_server import Team, start_team

from keel.errors import InvalidInput, NotFound, PermissionDenied
from keel.features.model import Entity, Feature, FeatureView, FeatureViewInfo, TrainingSet, TrainingSetInfo
from keel.features.online import OnlineResult, SkewReport
from keel.features.service import FeatureService
from keel.remote.features import RemoteFeatureService
from server.test_features_api import FEATURES, VIEW, add_driver_features, train_on  # tests/ is on sys.path

ROWS = [{"driver_id": 2}, {"driver_id": 3}, {"driver_id": 404}, {"driver_id": 1}]


@pytest.fixture(params=["sqlite", "postgresql"])
def team(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Team]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    with start_team(tmp_path / "server", metadata_url=url) as started:
        add_driver_features(started.ws, train=False)
        yield started


def user_code(ws: Any) -> tuple[TrainingSet, OnlineResult]:
    """What a data scientist writes, unchanged whichever workspace ``ws`` is."""
    training = ws.features.training_set("driver_labels", FEATURES, label="eta_minutes", name="drivers_training")
    ws.features.materialize([VIEW])
    online = ws.features.online([f"{VIEW}:rating", "trips_today"], ROWS)
    return training, online


def test_the_same_code_gives_the_same_training_set_and_online_values(team: Team) -> None:
    embedded, remote = team.embedded("developer"), team.remote("developer")
    try:
        here, here_online = user_code(embedded)
        there, there_online = user_code(remote)
    finally:
        remote.close()
    assert isinstance(there, TrainingSet) and isinstance(there.info, TrainingSetInfo)
    assert there.to_arrow().equals(here.to_arrow())  # same rows, same column types (timestamps UTC)
    pd.testing.assert_frame_equal(there.to_pandas(), here.to_pandas())
    assert there.to_arrow().equals(embedded.features.reproduce(here.ref).to_arrow())
    assert (there.info.version, here.info.version) == (1, 0)  # one more version of the same training set
    same = ("name", "table", "features", "label", "timestamp", "entity_source", "view_versions", "source_versions",
            "rows", "created_by")
    assert {k: getattr(there.info, k) for k in same} == {k: getattr(here.info, k) for k in same}
    assert there.info.created_at.tzinfo is not None and there.ref == "trainingset:drivers_training@1"
    assert there.table_ref == "drivers_training@1" and there.features == here.features and there.label == "eta_minutes"

    assert isinstance(there_online, OnlineResult)
    assert there_online.features == here_online.features == ["rating", "trips_today"]
    assert there_online.entity_rows == here_online.entity_rows == ROWS
    assert there_online.values == here_online.values
    assert there_online.statuses == here_online.statuses
    assert there_online.statuses["trips_today"] == ["present", "expired", "missing", "present"]
    assert there_online.event_timestamps == here_online.event_timestamps
    pd.testing.assert_frame_equal(there_online.to_pandas(), here_online.to_pandas())
    assert there_online.to_json() == here_online.to_json()


def test_the_records_are_the_same_embedded_and_remote(team: Team) -> None:
    embedded, remote = team.embedded("developer"), team.remote("developer")
    try:
        training, _ = user_code(embedded)
        run_id, model = train_on(remote, training.ref)  # a model trained remotely consumes the features
        for ws in (embedded, remote):
            [info] = ws.features.list()
            assert isinstance(info, FeatureViewInfo) and info == embedded.features.get(VIEW)
            assert info.ref == f"features:{VIEW}@1" and info.ttl == timedelta(days=7)
            assert ws.features.get(VIEW, 1) == ws.features.get(f"{VIEW}@1") == info
            assert ws.features.versions(VIEW) == [info]
            assert ws.features.entities() == [{"name": "driver", "join_keys": ["driver_id"],
                                               "description": "a driver"}]
            assert ws.features.training_sets() == embedded.features.training_sets()
            assert ws.features.get_training_set("drivers_training") == training.info
            assert ws.features.get_training_set(training.ref) == training.info
            reproduced = ws.features.reproduce(training.ref)
            pd.testing.assert_frame_equal(reproduced.to_pandas(), embedded.features.reproduce(training.ref).to_pandas())
            consumers = ws.features.consumers(VIEW)
            assert consumers["trips_today"]["model"] == [model] and consumers["trips_today"]["run"] == [f"run:{run_id}"]
            assert ws.features.show(VIEW) == embedded.features.show(VIEW)
            assert ws.features.materializations(VIEW) == embedded.features.materializations(VIEW)
            report = ws.features.check_skew(VIEW, sample=50)
            assert isinstance(report, SkewReport) and report.ok and report.checked >= 3
            assert report == embedded.features.check_skew(VIEW, sample=50)
        shown = {f["name"]: f for f in remote.features.show(VIEW)["features"]}
        assert shown["acc_rate"]["removal_candidate"] and not shown["rating"]["removal_candidate"]
    finally:
        remote.close()


def test_timestamp_features_come_back_as_datetimes_remotely_too(team: Team) -> None:
    """JSON carries a timestamp feature as text: the remote client turns it back into the datetime embedded gives."""
    stats = team.ws.data.read(VIEW)
    team.ws.data.ingest(stats[["driver_id", "event_ts"]].assign(seen_at=stats["event_ts"]), "driver_seen")
    team.ws.features.apply([FeatureView("driver_seen", ["driver"], "driver_seen", "event_ts",
                                        [Feature("seen_at", "timestamp")])])
    remote = team.remote("viewer")
    try:
        team.ws.features.materialize(["driver_seen"])
        asked = ["driver_seen:seen_at", f"{VIEW}:trips_today"]
        here = team.embedded("viewer").features.online(asked, ROWS, full_names=True)
        there = remote.features.online(asked, ROWS, full_names=True)
        assert there.features == here.features == ["driver_seen__seen_at", f"{VIEW}__trips_today"]
        assert there.values == here.values and there.statuses == here.statuses
        assert isinstance(there.values["driver_seen__seen_at"][0], datetime)
        assert there.values["driver_seen__seen_at"][0].tzinfo is not None
    finally:
        remote.close()


def test_materialize_windows_and_incremental_runs_work_remotely(team: Team) -> None:
    remote = team.remote("developer")
    try:
        first = remote.features.materialize(start=pd.Timestamp.now(tz="UTC") - timedelta(days=2))
        assert [(m["view"], m["rows"], m["incremental"]) for m in first] == [(VIEW, 2, False)]  # driver 3: older
        assert first[0]["start_ts"].tzinfo is not None and first[0]["by"] == "dev"
        again = remote.features.materialize([VIEW], incremental=True)
        assert again[0]["start_ts"] == first[0]["end_ts"]
        with pytest.raises(InvalidInput, match="naive"):
            remote.features.materialize(start=pd.Timestamp("2024-01-01").to_pydatetime())
    finally:
        remote.close()


def test_what_cannot_work_through_a_server_says_so_and_errors_are_the_same_classes(team: Team) -> None:
    remote, viewer = team.remote("developer"), team.remote("viewer")
    embedded_viewer = team.embedded("viewer")
    try:
        with pytest.raises(InvalidInput, match="keel features apply"):
            remote.features.apply([Entity("driver", ["driver_id"])])
        frame = pd.DataFrame({"driver_id": [1], "event_timestamp": [pd.Timestamp.now(tz="UTC")]})
        with pytest.raises(InvalidInput, match=r"ws\.data\.ingest"):
            remote.features.training_set(frame, FEATURES)
        with pytest.raises(InvalidInput, match="store=True"):
            remote.features.training_set("driver_labels", FEATURES, store=False)
        for ws in (remote, team.embedded("developer")):
            with pytest.raises(NotFound):
                ws.features.show("nope")
            with pytest.raises(NotFound):
                ws.features.online(["driver_stats:nope"], [{"driver_id": 1}])
            with pytest.raises(InvalidInput):
                ws.features.online(FEATURES, [{"driver": 1}])
            with pytest.raises(NotFound, match="no version 99"):  # a pinned view version (a model's) must exist
                ws.features.online(FEATURES, [{"driver_id": 1}], versions={VIEW: 99})
            pinned = ws.features.online(FEATURES, [{"driver_id": 1}], versions={VIEW: 1})
            assert pinned.features == ["trips_today", "rating"] and pinned.statuses["rating"] == ["missing"]
            with pytest.raises(NotFound):
                ws.features.get_training_set("nope")
            with pytest.raises(InvalidInput, match="never materialised"):
                ws.features.check_skew(VIEW)
        # reading online values is a read; computing and storing a training set is a change
        assert viewer.features.online(FEATURES, [{"driver_id": 1}]).statuses["trips_today"] == ["missing"]
        with pytest.raises(PermissionDenied):
            viewer.features.training_set("driver_labels", FEATURES)
        with pytest.raises(PermissionDenied):
            viewer.features.materialize()
        assert embedded_viewer.features.list() == viewer.features.list()
    finally:
        remote.close()
        viewer.close()


def test_the_remote_service_has_every_method_of_the_embedded_one_with_the_same_parameters() -> None:
    def methods(cls: type) -> dict[str, list[str]]:
        return {name: list(inspect.signature(f).parameters) for name, f in vars(cls).items()
                if callable(f) and not name.startswith("_")}

    assert methods(RemoteFeatureService) == methods(FeatureService)
