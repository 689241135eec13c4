"""The online side end to end, on SQLite and on Redis: materialise, look up with a status per value, and check
that online equals the offline point-in-time values — after a full run, after incremental runs (late rows
included), and for entities that were never materialised."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import keel
from conftest import REDIS_URL
from keel import Entity, Feature, FeatureView, OnDemandFeatureView
from keel.errors import InvalidInput, NotFound

DRIVER = Entity("driver", ["driver_id"])
NOW = datetime.now(UTC).replace(microsecond=0)


def speed_band(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"band": (frame["speed"] // 10).astype("float64")}, index=frame.index)


def stats_view(ttl: timedelta | None = timedelta(days=30)) -> FeatureView:
    return FeatureView("stats", [DRIVER], source="trips", timestamp="event_ts", created_timestamp="created",
                       features=[Feature("trips", "int64"), Feature("speed", "float64"), Feature("city", "string"),
                                 Feature("seen", "timestamp")], ttl=ttl)


def events(n: int, drivers: int, seed: int, start: datetime) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    at = pd.Timestamp(start) + pd.to_timedelta(rng.integers(0, 20 * 86400, n), unit="s")
    return pd.DataFrame({
        "driver_id": rng.integers(0, drivers, n), "event_ts": at,
        "created": at + pd.to_timedelta(rng.integers(0, 3600, n), unit="s"),
        "trips": rng.integers(0, 50, n), "speed": np.round(rng.random(n) * 100, 3),
        "city": rng.choice(["Lisbon", "Porto", "Faro", None], n), "seen": at - pd.Timedelta(hours=1)})


@pytest.fixture(params=["sqlite", "redis"])
def fws(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[keel.Workspace]:
    settings = {}
    if request.param == "redis":
        if not REDIS_URL:
            pytest.skip("KEEL_TEST_REDIS_URL is not set (e.g. redis://127.0.0.1:6379/0)")
        settings["online_url"] = REDIS_URL
    ws = keel.init(tmp_path / f"ws-{uuid.uuid4().hex[:8]}", **settings)  # its own registry id: its own namespaces
    ws.data.ingest(events(2000, 150, 0, NOW - timedelta(days=25)), "trips", time_column="event_ts")
    ws.features.apply([DRIVER, stats_view(), OnDemandFeatureView(
        "bands", sources=["stats:speed"], function=speed_band, features=[Feature("band", "float64")])])
    yield ws
    store = ws.online_store()
    for name in store.namespaces():
        if name.startswith(ws._features.registry + "/"):
            store.delete_namespace(name)
    ws.close()


def test_materialised_values_equal_the_offline_values_at_that_moment(fws: keel.Workspace) -> None:
    done = fws.features.materialize()
    assert [(d["view"], d["rows"]) for d in done] == [("stats", 150)]  # on-demand views are not materialised
    report = fws.features.check_skew("stats", sample=1000)
    assert report.ok and report.checked == 150 + 3  # every driver, and three that never existed

    rows = [{"driver_id": d} for d in (3, 10_000, 7)]
    got = fws.features.online(["stats:trips", "stats:city", "stats:seen", "bands:band"], rows)
    offline = fws.features.training_set(
        pd.DataFrame({"driver_id": [3, 7], "event_timestamp": [pd.Timestamp(NOW)] * 2}),
        ["stats:trips", "stats:city", "stats:seen", "bands:band"], store=False).to_pandas()
    assert got.statuses["trips"] == ["present", "missing", "present"]
    assert got.values["trips"] == [offline["trips"][0], None, offline["trips"][1]]
    assert got.values["city"][0] == offline["city"][0] and got.values["seen"][0] == offline["seen"][0]
    assert got.values["band"] == [offline["band"][0], None, offline["band"][1]]  # same function, offline and online
    assert got.features == ["trips", "city", "seen", "band"]


def test_incremental_materialisation_stays_equal_to_offline_with_late_rows(fws: keel.Workspace) -> None:
    fws.features.materialize(end=NOW - timedelta(days=10))
    assert fws.features.check_skew("stats").ok
    fws.features.materialize(incremental=True)  # the window from where the last one ended
    assert fws.features.check_skew("stats").ok
    late = events(300, 200, 1, NOW - timedelta(days=40))  # new drivers, and old events for known ones
    fws.data.ingest(late, "trips")
    fws.features.materialize(incremental=True)  # new source version: late rows of any event time count
    report = fws.features.check_skew("stats", sample=10_000)
    assert report.ok and report.checked > 150


def test_online_values_expire_with_the_ttl_and_a_newer_value_is_never_replaced(fws: keel.Workspace) -> None:
    fws.data.ingest(pd.DataFrame({"driver_id": [500, 501], "event_ts": [pd.Timestamp(NOW - timedelta(days=90))] * 2,
                                  "created": [pd.Timestamp(NOW - timedelta(days=90))] * 2, "trips": [1, 2],
                                  "speed": [1.0, 2.0], "city": ["Faro", "Faro"],
                                  "seen": [pd.Timestamp(NOW - timedelta(days=91))] * 2}), "trips")
    fws.features.materialize()
    got = fws.features.online(["stats:trips"], [{"driver_id": 500}, {"driver_id": 3}])
    assert got.statuses["trips"] == ["expired", "present"] and got.values["trips"][0] is None
    assert got.event_timestamps["trips"][0] == NOW - timedelta(days=90)
    before = fws.features.online(["stats:trips"], [{"driver_id": 3}]).values["trips"]
    fws.features.materialize(end=NOW - timedelta(days=24))  # an older window: nothing rolls back
    assert fws.features.online(["stats:trips"], [{"driver_id": 3}]).values["trips"] == before


def test_a_changed_view_serves_only_its_own_materialised_rows(fws: keel.Workspace) -> None:
    fws.features.materialize()
    fws.features.apply([DRIVER, stats_view(ttl=timedelta(days=31))])  # a new version, not materialised yet
    assert fws.features.online(["stats:trips"], [{"driver_id": 3}]).statuses["trips"] == ["missing"]
    with pytest.raises(InvalidInput, match="never materialised"):
        fws.features.check_skew("stats")
    fws.features.materialize(["stats"])
    assert fws.features.online(["stats:trips"], [{"driver_id": 3}]).statuses["trips"] == ["present"]


def test_bad_lookups_are_refused(fws: keel.Workspace) -> None:
    with pytest.raises(NotFound, match="nope"):
        fws.features.online(["nope:trips"], [{"driver_id": 1}])
    with pytest.raises(InvalidInput, match="driver_id"):
        fws.features.online(["stats:trips"], [{"driver": 1}])
    with pytest.raises(InvalidInput, match="integer or a string"):
        fws.features.online(["stats:trips"], [{"driver_id": 1.5}])
    with pytest.raises(InvalidInput, match="list"):
        fws.features.online(["stats:trips"], {"driver_id": 1})  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="on-demand"):
        fws.features.materialize(["bands"])
    with pytest.raises(InvalidInput, match="naive"):
        fws.features.materialize(start=datetime(2024, 1, 1))
    with pytest.raises(InvalidInput, match="window starts"):
        fws.features.materialize(start=NOW, end=NOW - timedelta(days=1))


def test_materialize_and_lookups_from_the_cli(fws: keel.Workspace, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from keel.cli.main import main

    if fws.settings.online_url:
        monkeypatch.setenv("KEEL_ONLINE_URL", fws.settings.online_url)
    root = str(fws.root)
    assert main(["-w", root, "features", "materialize", "stats"]) == 0
    capsys.readouterr()
    assert main(["-w", root, "features", "online", "-f", "stats:trips", "-e", '{"driver_id": 3}']) == 0
    assert '"status": "present"' in capsys.readouterr().out
    assert main(["-w", root, "features", "check-skew", "stats", "--sample", "20"]) == 0
    assert "0 mismatch" in capsys.readouterr().out
    assert main(["-w", root, "features", "online", "-f", "stats:trips", "-e", "{driver_id: 3}"]) == 2
    assert "is not JSON" in capsys.readouterr().err
