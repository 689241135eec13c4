"""The feature store's offline side (issue 5): definitions and apply, point-in-time training sets stored as
versioned, reproducible objects with lineage, transforms (SQL, pandas, SQL sources, on-demand), and every kind
of bad input refused with a keel error that names the problem."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import keel
from keel import Entity, Feature, FeatureView, OnDemandFeatureView, RequestField
from keel.errors import InvalidInput, NotFound, TransformFailed

T0 = pd.Timestamp("2024-01-01", tz="UTC")
H = pd.Timedelta(hours=1)
DRIVER = Entity("driver", ["driver_id"], description="a driver")


# -- user functions: top level, so keel can find them again --------------------------------------------------


def double_trips(frame: pd.DataFrame) -> pd.DataFrame:
    """A pandas transform: a computed column."""
    return frame.assign(trips_x2=frame["trips"] * 2)


BOOM = ValueError("boom: the transform does not like these rows")


def exploding(frame: pd.DataFrame) -> pd.DataFrame:
    raise BOOM


def not_a_frame(frame: pd.DataFrame) -> list[int]:
    return [1, 2, 3]


def trips_per_hour(frame: pd.DataFrame) -> pd.DataFrame:
    """An on-demand feature: a view's feature and a request field; the same code offline and online."""
    return pd.DataFrame({"trips_per_hour": frame["trips"] / frame["hours"]}, index=frame.index)


def wrong_type(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"trips_per_hour": ["many"] * len(frame)}, index=frame.index)


def drop_trips(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["trips"])


# -- data --------------------------------------------------------------------------------------------------


def trips_frame(drivers: int = 4, hours: int = 12, offset: int = 0) -> pd.DataFrame:
    """Hourly rows per driver: trips = 100 * driver + hour (so a value names its row), rating, city."""
    rows = [{"driver_id": d, "event_ts": T0 + h * H, "created_ts": T0 + h * H + pd.Timedelta(minutes=5),
             "trips": 100 * d + h + offset, "rating": 4.0 + d / 10 + h / 100, "city": f"c{d % 2}"}
            for d in range(1, drivers + 1) for h in range(hours)]
    return pd.DataFrame(rows)


def stats_view(**changes: object) -> FeatureView:
    spec: dict[str, object] = dict(
        name="stats", entities=[DRIVER], source="trips", timestamp="event_ts", created_timestamp="created_ts",
        features=[Feature("trips", "int64", "trips in the hour"), Feature("rating", "float64")],
        ttl=timedelta(hours=3), owner="alice", tags={"team": "pricing"})
    spec.update(changes)
    return FeatureView(**spec)  # type: ignore[arg-type]


@pytest.fixture
def fws(ws: keel.Workspace) -> keel.Workspace:
    """A workspace with table ``trips`` (version 0) and view ``stats`` (version 1) applied."""
    ws.data.ingest(trips_frame(), "trips")
    ws.features.apply([DRIVER, stats_view()])
    return ws


def entity_rows(n: int = 8, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"driver_id": rng.integers(1, 6, n),  # driver 5 has no rows
                         "event_timestamp": [T0 + int(h) * H + pd.Timedelta(minutes=int(m))
                                             for h, m in zip(rng.integers(0, 16, n), rng.integers(0, 60, n),
                                                             strict=True)],
                         "label": rng.normal(size=n)})


def expected_trips(entities: pd.DataFrame, ttl_hours: int = 3, hours: int = 12) -> list[float]:
    """The value at or before each row's time (the hourly row at its floor), null when too old or absent."""
    out = []
    for driver, at in zip(entities["driver_id"], entities["event_timestamp"], strict=True):
        hour = min(int((at - T0) / H), hours - 1)
        fresh = at - (T0 + hour * H) <= pd.Timedelta(hours=ttl_hours)
        out.append(float(100 * driver + hour) if 1 <= driver <= 4 and fresh else np.nan)
    return out


# -- apply ---------------------------------------------------------------------------------------------------


def test_apply_returns_a_plan_and_stores_a_version_of_changed_views_only(ws: keel.Workspace) -> None:
    ws.data.ingest(trips_frame(), "trips")
    ratings = FeatureView("ratings", [DRIVER], source="trips", timestamp="event_ts",
                          features=[Feature("rating", "float64")])
    first = ws.features.apply([DRIVER, stats_view(), ratings])
    assert (sorted(first.added), first.changed, first.removed, first.unchanged) == (["ratings", "stats"], [], [], [])
    assert first.entities_added == ["driver"] and first.applied and first.versions == {"stats": 1, "ratings": 1}

    again = ws.features.apply([DRIVER, stats_view(), ratings])
    assert again.empty and not again.applied and sorted(again.unchanged) == ["ratings", "stats"]
    assert again.versions == {"stats": 1, "ratings": 1}

    changed = ws.features.apply([DRIVER, stats_view(ttl=timedelta(hours=5)), ratings])
    assert (changed.added, changed.changed, changed.unchanged) == ([], ["stats"], ["ratings"])
    assert changed.applied and changed.versions == {"stats": 2, "ratings": 1}
    assert [v.version for v in ws.features.versions("stats")] == [2, 1]
    assert [v.version for v in ws.features.versions("ratings")] == [1]
    info = ws.features.get("stats")
    assert (info.ref, info.ttl, info.join_keys, info.entities) == ("features:stats@2", timedelta(hours=5),
                                                                 ["driver_id"], ["driver"])
    assert info.definition["owner"] == "alice" and info.definition["tags"] == {"team": "pricing"}
    assert info.definition["created_timestamp"] == "created_ts"
    assert [f["description"] for f in info.features] == ["trips in the hour", None]
    assert ws.features.get("features:stats@1").ttl == timedelta(hours=3)

    dry = ws.features.apply([DRIVER, stats_view()], dry_run=True)
    assert dry.changed == ["stats"] and not dry.applied and ws.features.get("stats").version == 2


def test_apply_of_a_module_file_default_path_and_prune(ws: keel.Workspace) -> None:
    ws.data.ingest(trips_frame(), "trips")
    header = textwrap.dedent("""\
        from keel import Entity, Feature, FeatureView

        driver = Entity("driver", ["driver_id"])
        """)
    stats = 'stats = FeatureView("stats", [driver], source="trips", timestamp="event_ts", ' \
            'features=[Feature("trips", "int64")])\n'
    ratings = 'ratings = FeatureView("ratings", ["driver"], source="trips", timestamp="event_ts", ' \
              'features=[Feature("rating", "float64")])\n'
    (ws.root / "features.py").write_text(header + stats + ratings)
    plan = ws.features.apply()  # the workspace's features.py
    assert sorted(plan.added) == ["ratings", "stats"] and plan.applied

    other = ws.root / "defs" / "only_stats.py"
    other.parent.mkdir()
    other.write_text(header + "# only the stats view now\n" + stats)
    kept = ws.features.apply(other)  # without prune, views not in the file stay
    assert kept.removed == [] and kept.unchanged == ["stats"] and not kept.applied
    assert sorted(v.name for v in ws.features.list()) == ["ratings", "stats"]

    pruned = ws.features.apply("defs/only_stats.py", prune=True)  # relative to the workspace root
    assert pruned.removed == ["ratings"] and pruned.unchanged == ["stats"] and pruned.applied
    assert [v.name for v in ws.features.list()] == ["stats"]
    with pytest.raises(NotFound, match=r"ratings"):
        ws.features.get("ratings")
    with pytest.raises(NotFound, match=r"ratings"):
        ws.features.training_set(entity_rows(), ["ratings:rating"], store=False)

    back = ws.features.apply(prune=True)  # the full file again: ratings comes back as a new version
    assert back.removed == [] and "ratings" in back.added + back.changed
    assert sorted(v.name for v in ws.features.list()) == ["ratings", "stats"]

    with pytest.raises(InvalidInput, match=r"no definitions file"):
        ws.features.apply("nope.py")


def test_one_hundred_views_apply_in_one_call_and_a_second_identical_apply_stores_nothing(
        ws: keel.Workspace) -> None:
    ws.data.ingest(trips_frame(drivers=2, hours=3), "trips")
    views = [FeatureView(f"view{i:03d}", [DRIVER], source="trips", timestamp="event_ts",
                         features=[Feature("trips", "int64")],
                         ttl=timedelta(hours=i + 1)) for i in range(100)]
    first = ws.features.apply([DRIVER, *views])
    assert len(first.added) == 100 and first.applied and set(first.versions.values()) == {1}
    second = ws.features.apply([DRIVER, *views])
    assert not second.applied and second.empty and len(second.unchanged) == 100
    assert second.versions == first.versions
    assert all(len(ws.features.versions(v.name)) == 1 for v in views[::10])
    assert len(ws.features.list()) == 100


# -- training sets ---------------------------------------------------------------------------------------------


def test_training_set_is_point_in_time_correct_and_stored_with_what_it_came_from(fws: keel.Workspace) -> None:
    entities = entity_rows(40)
    ts = fws.features.training_set(entities, ["stats:trips", "rating"], label="label", name="pricing")
    frame = ts.to_pandas()
    assert list(frame.columns) == ["driver_id", "event_timestamp", "label", "trips", "rating"]
    assert frame["driver_id"].tolist() == entities["driver_id"].tolist()  # the entity rows, in their order
    assert frame["label"].tolist() == entities["label"].tolist()
    np.testing.assert_array_equal(frame["trips"].astype(float).to_numpy(), expected_trips(entities))
    assert ts.to_arrow().num_rows == ts.num_rows == 40

    assert (ts.ref, ts.table_ref) == ("trainingset:pricing@0", "pricing@0")
    info = fws.features.get_training_set(ts.ref)
    assert info == ts.info
    assert (info.features, info.label, info.timestamp, info.rows) == (["stats:trips", "stats:rating"], "label",
                                                                        "event_timestamp", 40)
    assert info.view_versions == {"stats": 1} and info.source_versions == {"trips": 0}
    assert info.entity_source.startswith("frame:")
    assert fws.features.get_training_set("pricing") == info
    assert fws.features.training_sets("pricing") == [info]
    assert fws.data.read_arrow(ts.table_ref).to_pylist() == ts.to_arrow().to_pylist()

    upstream = fws.lineage.upstream(ts.ref).refs()
    assert "features:stats@1" in upstream and "table:trips@0" in upstream


def test_training_set_from_a_table_ref_records_it_as_an_input(fws: keel.Workspace) -> None:
    fws.data.ingest(entity_rows(12), "drivers_to_score")
    ts = fws.features.training_set("drivers_to_score", ["stats:trips"], label="label", name="from_table")
    assert ts.info.entity_source == "table:drivers_to_score@0"
    assert "table:drivers_to_score@0" in fws.lineage.upstream(ts.ref).refs()
    np.testing.assert_array_equal(ts.to_pandas()["trips"].astype(float), expected_trips(entity_rows(12)))


def test_a_stored_training_set_is_reproduced_exactly_after_its_sources_change(fws: keel.Workspace) -> None:
    entities = entity_rows(30)
    before = fws.features.training_set(entities, ["stats:trips", "stats:rating"], label="label", name="repro")
    # New data: corrections of existing hours (created later, so they win) and more hours; the view changes too.
    fws.data.ingest(trips_frame(hours=16, offset=1000).assign(created_ts=lambda f: f["created_ts"] + H), "trips")
    plan = fws.features.apply([DRIVER, stats_view(ttl=timedelta(hours=6))])
    assert plan.changed == ["stats"] and plan.versions == {"stats": 2}

    after = fws.features.training_set(entities, ["stats:trips", "stats:rating"], label="label", name="repro_now")
    assert not after.to_pandas()[["trips"]].equals(before.to_pandas()[["trips"]])  # the change matters
    assert after.info.view_versions == {"stats": 2} and after.info.source_versions == {"trips": 1}

    again = fws.features.reproduce(before.ref)
    assert again.to_arrow().column_names == before.to_arrow().column_names
    assert again.to_arrow().to_pylist() == before.to_arrow().to_pylist()  # the same rows and values, in order
    assert again.info == before.info
    info = fws.features.get_training_set(before.ref)
    assert info.view_versions == {"stats": 1} and info.source_versions == {"trips": 0}


_ROUND_TRIP = """
import sys
import pandas as pd
import keel
from keel import Entity, Feature, FeatureView
ws = keel.init(sys.argv[1])
t0 = pd.Timestamp("2024-01-01", tz="UTC")
ws.data.ingest(pd.DataFrame({"driver_id": [1, 1], "event_ts": [t0, t0 + pd.Timedelta(hours=1)], "trips": [1, 2]}),
               "trips")
driver = Entity("driver", ["driver_id"])
ws.features.apply([driver, FeatureView("stats", [driver], source="trips", timestamp="event_ts",
                                       features=[Feature("trips", "int64")])])
ts = ws.features.training_set(pd.DataFrame({"driver_id": [1], "event_timestamp": [t0]}), ["stats:trips"],
                              name="round_trip")
print(ts.to_arrow().schema.field("event_timestamp").type.tz, ts.to_pandas()["event_timestamp"].dt.tz,
      ws.features.reproduce(ts.ref).to_arrow().equals(ts.to_arrow()))
"""


def test_a_training_set_is_utc_and_reproduced_bit_for_bit_whatever_the_local_time_zone(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", _ROUND_TRIP, str(tmp_path / "ws")], capture_output=True, text=True,
                          env={**os.environ, "TZ": "America/New_York"}, check=True, timeout=120)
    assert done.stdout.split() == ["UTC", "UTC", "True"]


def test_a_training_set_name_keeps_versions_when_its_features_change(fws: keel.Workspace) -> None:
    """Asking again under the same name, with one more feature, is a new version of the training set."""
    entities = entity_rows(10)
    one = fws.features.training_set(entities, ["stats:trips"], label="label", name="grow")
    two = fws.features.training_set(entities, ["stats:trips", "stats:rating"], label="label", name="grow")
    assert (one.ref, two.ref) == ("trainingset:grow@0", "trainingset:grow@1")
    assert fws.features.reproduce(one.ref).to_arrow().to_pylist() == one.to_arrow().to_pylist()


def test_a_stored_training_set_can_be_split(fws: keel.Workspace) -> None:
    entities = pd.DataFrame([{"driver_id": d, "event_timestamp": T0 + h * H + H / 2, "label": float(d * h)}
                             for h in range(12) for d in range(1, 5)])
    ts = fws.features.training_set(entities, ["stats:trips", "stats:rating"], label="label", name="to_split")
    split = fws.data.split(ts.table_ref, target="label", time_column="event_timestamp", name="ts-split")
    parts = {p: fws.data.read_split(split.ref, p) for p in ("train", "validation", "test")}
    assert sum(len(p) for p in parts.values()) == len(entities) == 48
    assert all(list(p.columns) == ["driver_id", "event_timestamp", "label", "trips", "rating"]
               for p in parts.values())
    assert parts["train"]["event_timestamp"].max() < parts["validation"]["event_timestamp"].min()
    assert parts["validation"]["event_timestamp"].max() < parts["test"]["event_timestamp"].min()
    assert split.table == "to_split" and split.table_version == ts.info.version
    assert ts.ref in fws.lineage.upstream(split.ref).refs()


def test_ttl_none_keeps_values_forever_and_created_timestamp_breaks_ties(ws: keel.Workspace) -> None:
    events = pd.DataFrame({"driver_id": [1, 1, 1, 2],
                           "event_ts": [T0, T0, T0, T0],
                           "created_ts": [T0 + H, T0 + 3 * H, T0 + 2 * H, pd.NaT],
                           "trips": [1, 3, 2, 7]})
    ws.data.ingest(events, "trips")
    view = FeatureView("forever", [DRIVER], source="trips", timestamp="event_ts", created_timestamp="created_ts",
                       features=[Feature("trips", "int64")])
    ws.features.apply([DRIVER, view])
    entities = pd.DataFrame({"driver_id": [1, 2, 1], "event_timestamp": [T0 + 1000 * H, T0, T0 - H]})
    out = ws.features.training_set(entities, ["forever:trips"], store=False).to_pandas()
    assert out["trips"].tolist()[:2] == [3, 7] and pd.isna(out["trips"].iloc[2])


# -- transforms ------------------------------------------------------------------------------------------------


def test_sql_transform_over_source_computes_a_rolling_average(fws: keel.Workspace) -> None:
    view = FeatureView("rolling", [DRIVER], source="trips", timestamp="event_ts",
                       features=[Feature("trips_avg3", "float64", "mean of the last three hours")],
                       transform="SELECT driver_id, event_ts, avg(trips) OVER (PARTITION BY driver_id ORDER BY "
                                 "event_ts ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS trips_avg3 FROM source")
    fws.features.apply([DRIVER, view])
    entities = pd.DataFrame({"driver_id": [1, 2, 3], "event_timestamp": [T0, T0 + 5 * H, T0 + 11 * H + 30 * H / 60]})
    out = fws.features.training_set(entities, ["rolling:trips_avg3"], store=False).to_pandas()
    assert out["trips_avg3"].tolist() == [100.0, 204.0, 310.0]


def test_pandas_transform_adds_a_computed_column(fws: keel.Workspace) -> None:
    view = FeatureView("doubled", [DRIVER], source="trips", timestamp="event_ts", transform=double_trips,
                       features=[Feature("trips_x2", "int64")])
    plan = fws.features.apply([DRIVER, view])
    assert plan.added == ["doubled"]
    assert fws.features.get("doubled").definition["transform"]["pandas"]["name"] == "double_trips"
    entities = entity_rows(10)
    out = fws.features.training_set(entities, ["doubled:trips_x2"], store=False).to_pandas()
    np.testing.assert_array_equal(out["trips_x2"].astype(float), [2 * v for v in expected_trips(entities, 10**6)])


def test_sql_source_reads_keel_tables_by_name(fws: keel.Workspace) -> None:
    fws.data.ingest(pd.DataFrame({"driver_id": [1, 2, 3, 4], "bonus": [10, 20, 30, 40]}), "bonuses")
    view = FeatureView("boosted", [DRIVER], timestamp="event_ts", features=[Feature("boosted", "int64")],
                       source="SELECT t.driver_id, t.event_ts, t.trips + b.bonus AS boosted "
                              "FROM trips t JOIN bonuses b ON t.driver_id = b.driver_id")
    fws.features.apply([DRIVER, view])
    entities = pd.DataFrame({"driver_id": [2, 4], "event_timestamp": [T0 + 3 * H, T0 + 30 * H]})
    ts = fws.features.training_set(entities, ["boosted:boosted"], name="boosted_set")
    assert ts.to_pandas()["boosted"].tolist() == [203 + 20, 411 + 40]  # no ttl: the last value stays
    assert ts.info.source_versions == {"bonuses": 0, "trips": 0}
    assert {"table:trips@0", "table:bonuses@0"} <= set(fws.lineage.upstream(ts.ref).refs())


def test_sql_source_may_join_with_using(fws: keel.Workspace) -> None:
    fws.data.ingest(pd.DataFrame({"driver_id": [1, 2, 3, 4], "bonus": [10, 20, 30, 40]}), "bonuses")
    view = FeatureView("boosted", [DRIVER], timestamp="event_ts", features=[Feature("boosted", "int64")],
                       source="SELECT driver_id, event_ts, trips + bonus AS boosted FROM trips JOIN bonuses "
                              "USING (driver_id)")
    fws.features.apply([DRIVER, view])
    entities = pd.DataFrame({"driver_id": [2], "event_timestamp": [T0 + 3 * H]})
    out = fws.features.training_set(entities, ["boosted:boosted"], store=False).to_pandas()
    assert out["boosted"].tolist() == [203 + 20]


def test_on_demand_feature_from_request_data_and_a_view_feature(fws: keel.Workspace) -> None:
    od = OnDemandFeatureView("rates", sources=["stats:trips"], function=trips_per_hour,
                             features=[Feature("trips_per_hour", "float64")],
                             request=[RequestField("hours", "float64")])
    plan = fws.features.apply([od])
    assert plan.added == ["rates"] and fws.features.get("rates").kind == "on_demand"
    entities = entity_rows(10).assign(hours=np.arange(1, 11, dtype=float))

    only = fws.features.training_set(entities, ["rates:trips_per_hour"], name="rates_only")
    frame = only.to_pandas()
    assert "trips" not in frame.columns and not any(c.startswith("__keel") for c in frame.columns)
    # the same function, called by hand on the values the view gives, gives the same numbers
    by_hand = trips_per_hour(pd.DataFrame({"trips": expected_trips(entities), "hours": entities["hours"]}))
    np.testing.assert_allclose(frame["trips_per_hour"], by_hand["trips_per_hour"], equal_nan=True)
    assert only.info.view_versions == {"rates": 1, "stats": 1}
    assert "features:rates@1" in fws.lineage.upstream(only.ref).refs()

    both = fws.features.training_set(entities, ["stats:trips", "rates:trips_per_hour"], store=False).to_pandas()
    np.testing.assert_allclose(both["trips_per_hour"], both["trips"].astype(float) / both["hours"])

    with pytest.raises(InvalidInput, match=r"hours"):
        fws.features.training_set(entities.drop(columns="hours"), ["rates:trips_per_hour"], store=False)


# -- bad input ---------------------------------------------------------------------------------------------


def test_unknown_features_and_views_are_named(fws: keel.Workspace) -> None:
    entities = entity_rows()
    with pytest.raises(NotFound, match=r"'stats' has no feature 'nope'"):
        fws.features.training_set(entities, ["stats:nope"], store=False)
    with pytest.raises(NotFound, match=r"unknown feature view 'nope'"):
        fws.features.training_set(entities, ["nope:trips"], store=False)
    with pytest.raises(NotFound, match=r"unknown feature 'nope'"):
        fws.features.training_set(entities, ["nope"], store=False)
    with pytest.raises(InvalidInput, match=r"at least one feature"):
        fws.features.training_set(entities, [], store=False)
    with pytest.raises(NotFound, match=r"unknown feature view 'nope'"):
        fws.features.get("nope")


def test_entity_rows_need_the_join_keys_and_a_tz_aware_timestamp(fws: keel.Workspace) -> None:
    entities = entity_rows()
    with pytest.raises(InvalidInput, match=r"lack column.*driver_id"):
        fws.features.training_set(entities.drop(columns="driver_id"), ["stats:trips"], store=False)
    with pytest.raises(InvalidInput, match=r"lack column.*event_timestamp"):
        fws.features.training_set(entities.drop(columns="event_timestamp"), ["stats:trips"], store=False)
    with pytest.raises(InvalidInput, match=r"lack column.*'ts'"):
        fws.features.training_set(entities, ["stats:trips"], timestamp="ts", store=False)
    naive = entities.assign(event_timestamp=entities["event_timestamp"].dt.tz_localize(None))
    with pytest.raises(InvalidInput, match=r"naive"):
        fws.features.training_set(naive, ["stats:trips"], store=False)
    with pytest.raises(InvalidInput, match=r"must be timestamps"):
        fws.features.training_set(entities.assign(event_timestamp="2024-01-01"), ["stats:trips"], store=False)
    with pytest.raises(InvalidInput, match=r"label 'price'"):
        fws.features.training_set(entities, ["stats:trips"], label="price", store=False)
    renamed = fws.features.training_set(entities.rename(columns={"event_timestamp": "at"}), ["stats:trips"],
                                        timestamp="at", store=False).to_pandas()
    np.testing.assert_array_equal(renamed["trips"].astype(float), expected_trips(entities))
    # another time zone is fine: it is the same instant
    berlin = entities.assign(event_timestamp=entities["event_timestamp"].dt.tz_convert("Europe/Berlin"))
    out = fws.features.training_set(berlin, ["stats:trips"], store=False).to_pandas()
    np.testing.assert_array_equal(out["trips"].astype(float), expected_trips(entities))


def test_entity_timestamps_finer_than_microseconds_are_kept_to_the_microsecond(fws: keel.Workspace) -> None:
    """pandas timestamps are nanoseconds; keel keeps microseconds, so 1 ns after an instant is that instant."""
    plain = fws.features.training_set(entity_rows(), ["stats:trips"], store=False).to_pandas()
    later = entity_rows().assign(event_timestamp=lambda f: f["event_timestamp"] + pd.Timedelta(1, "ns"))
    out = fws.features.training_set(later, ["stats:trips"], store=False).to_pandas()
    pd.testing.assert_frame_equal(out, plain)


def test_an_entity_column_named_like_a_feature_is_refused(fws: keel.Workspace) -> None:
    """A label (or any entity column) called like a requested feature would give two columns of one name."""
    entities = entity_rows().rename(columns={"label": "rating"})
    with pytest.raises(InvalidInput, match=r"rating"):
        fws.features.training_set(entities, ["stats:trips", "stats:rating"], label="rating", store=False)


def test_a_failing_pandas_transform_names_the_view_and_chains_the_users_error(fws: keel.Workspace) -> None:
    fws.features.apply([DRIVER, FeatureView("broken", [DRIVER], source="trips", timestamp="event_ts",
                                            transform=exploding, features=[Feature("trips", "int64")])])
    with pytest.raises(TransformFailed, match=r"'broken'.*exploding.*ValueError.*boom") as caught:
        fws.features.training_set(entity_rows(), ["broken:trips"], store=False)
    assert caught.value.__cause__ is BOOM

    fws.features.apply([DRIVER, FeatureView("listy", [DRIVER], source="trips", timestamp="event_ts",
                                            transform=not_a_frame, features=[Feature("trips", "int64")])])
    with pytest.raises(TransformFailed, match=r"'listy'.*list"):
        fws.features.training_set(entity_rows(), ["listy:trips"], store=False)


@pytest.mark.parametrize("sql", [
    "SELECT driver_id, event_ts, no_such_column AS trips FROM source",  # fails to bind
    "SELECT driver_id, event_ts, CAST(city AS INTEGER) AS trips FROM source",  # fails while running
    "SELEKT * FROM source",  # does not parse
])
def test_a_failing_sql_transform_names_the_view(fws: keel.Workspace, sql: str) -> None:
    """SQL is run on the source with no rows at apply, so a query that cannot bind is refused before it is
    stored; one that fails only on the data (a cast of a real value) fails when rows are computed."""
    view = FeatureView("bad_sql", [DRIVER], source="trips", timestamp="event_ts", transform=sql,
                       features=[Feature("trips", "int64")])
    with pytest.raises(TransformFailed, match=r"'bad_sql'.*SQL") as caught:
        fws.features.apply([DRIVER, view])
        fws.features.training_set(entity_rows(), ["bad_sql:trips"], store=False)
    assert caught.value.__cause__ is not None


def test_a_transform_result_without_a_declared_column_is_refused(fws: keel.Workspace) -> None:
    with pytest.raises(InvalidInput, match=r"'short'.*lacks.*trips"):
        fws.features.apply([DRIVER, FeatureView("short", [DRIVER], source="trips", timestamp="event_ts",
                                                transform="SELECT driver_id, event_ts FROM source",
                                                features=[Feature("trips", "int64")])])


def test_a_pandas_transform_result_without_a_declared_column_is_refused_when_computed(fws: keel.Workspace) -> None:
    """A pandas transform is user code: it runs when rows are computed, not at apply."""
    fws.features.apply([DRIVER, FeatureView("short_pd", [DRIVER], source="trips", timestamp="event_ts",
                                            transform=drop_trips, features=[Feature("trips", "int64")])])
    with pytest.raises(InvalidInput, match=r"'short_pd'.*lacks.*trips"):
        fws.features.training_set(entity_rows(), ["short_pd:trips"], store=False)


def test_a_source_without_a_declared_column_is_refused_at_apply(fws: keel.Workspace) -> None:
    for features in ([Feature("trips", "int64"), Feature("speed", "float64")], [Feature("trips", "int64")]):
        ts_column = "event_ts" if len(features) == 2 else "happened_at"
        view = FeatureView("gappy", [DRIVER], source="trips", timestamp=ts_column, features=features)
        with pytest.raises(InvalidInput, match=r"'gappy'.*lacks.*(speed|happened_at)"):
            fws.features.apply([DRIVER, view])
    with pytest.raises(InvalidInput, match=r"'nowhere'.*not a table"):
        fws.features.apply([DRIVER, FeatureView("nowhere", [DRIVER], source="no_table", timestamp="event_ts",
                                                features=[Feature("trips", "int64")])])
    assert [v.name for v in fws.features.list()] == ["stats"]  # nothing stored by a refused apply


def test_a_sql_source_without_a_declared_column_is_refused_at_apply(fws: keel.Workspace) -> None:
    view = FeatureView("gappy_sql", [DRIVER], source="SELECT driver_id, event_ts FROM trips", timestamp="event_ts",
                       features=[Feature("trips", "int64")])
    with pytest.raises(InvalidInput, match=r"'gappy_sql'.*trips"):
        fws.features.apply([DRIVER, view])


def test_a_column_that_does_not_match_its_declared_dtype_is_refused(fws: keel.Workspace) -> None:
    with pytest.raises(InvalidInput, match=r"'typed'.*'city'.*int64.*string"):
        fws.features.apply([DRIVER, FeatureView("typed", [DRIVER], source="trips", timestamp="event_ts",
                                                features=[Feature("city", "int64")])])
    with pytest.raises(InvalidInput, match=r"'typed_ts'.*'city'.*timestamp"):
        fws.features.apply([DRIVER, FeatureView("typed_ts", [DRIVER], source="trips", timestamp="city",
                                                features=[Feature("trips", "int64")])])
    assert [v.name for v in fws.features.list()] == ["stats"]


def test_an_on_demand_result_that_does_not_match_its_declared_dtype_is_refused(fws: keel.Workspace) -> None:
    fws.features.apply([OnDemandFeatureView("wrong", sources=["stats:trips"], function=wrong_type,
                                            features=[Feature("trips_per_hour", "float64")])])
    with pytest.raises((InvalidInput, TransformFailed), match=r"'wrong'.*trips_per_hour"):
        fws.features.training_set(entity_rows(), ["wrong:trips_per_hour"], store=False)


@pytest.mark.parametrize("ttl", [timedelta(0), timedelta(hours=-1)])
def test_ttl_must_be_positive(fws: keel.Workspace, ttl: timedelta) -> None:
    with pytest.raises(InvalidInput, match=r"'stats'.*ttl must be positive"):
        fws.features.apply([DRIVER, stats_view(ttl=ttl)])
    assert fws.features.get("stats").version == 1


def test_the_same_feature_name_in_two_views(fws: keel.Workspace) -> None:
    fws.features.apply([DRIVER, FeatureView("daily", [DRIVER], source="trips", timestamp="event_ts",
                                            features=[Feature("trips", "int64")], ttl=timedelta(days=1))])
    entities = entity_rows(12)
    with pytest.raises(InvalidInput, match=r"'trips' is in several views.*daily.*stats"):
        fws.features.training_set(entities, ["trips"], store=False)
    one = fws.features.training_set(entities, ["daily:trips"], store=False).to_pandas()
    np.testing.assert_array_equal(one["trips"].astype(float), expected_trips(entities, ttl_hours=24))
    with pytest.raises(InvalidInput, match=r"both be named 'trips'.*full_names=True"):
        fws.features.training_set(entities, ["daily:trips", "stats:trips"], store=False)
    both = fws.features.training_set(entities, ["daily:trips", "stats:trips"], full_names=True, name="both")
    frame = both.to_pandas()
    assert list(frame.columns) == ["driver_id", "event_timestamp", "label", "daily__trips", "stats__trips"]
    np.testing.assert_array_equal(frame["stats__trips"].astype(float), expected_trips(entities))
    np.testing.assert_array_equal(frame["daily__trips"].astype(float), expected_trips(entities, ttl_hours=24))
    assert fws.features.reproduce(both.ref).to_arrow().to_pylist() == both.to_arrow().to_pylist()


def test_definitions_that_break_the_rules_are_refused_at_apply(fws: keel.Workspace) -> None:
    def view(**changes: object) -> FeatureView:
        return stats_view(name="rules", **changes)

    cases = [
        (view(features=[Feature("trips", "int64"), Feature("trips", "float64")]), "declares feature 'trips' twice"),
        (view(features=[Feature("trips", "integer")]), "unknown dtype 'integer'"),
        (view(entities=["rider"]), "unknown entity 'rider'"),
        (view(entities=[]), "at least one entity"),
        (view(features=[]), "declares no features"),
        (view(features=[Feature("driver_id", "int64")]), "clash with a join key"),
        (view(transform=lambda f: f), "top level"),
        (OnDemandFeatureView("rules", sources=["stats:trips"], function=lambda f: f,
                             features=[Feature("x", "float64")]), "top level"),
        (OnDemandFeatureView("rules", sources=["stats.trips"], function=trips_per_hour,
                             features=[Feature("trips_per_hour", "float64")]), "view:feature"),
        (OnDemandFeatureView("rules", sources=["stats:trips"], function=trips_per_hour,
                             features=[Feature("trips_per_hour", "float64")],
                             request=[RequestField("hours", "double")]), "unknown dtype 'double'"),
    ]
    for definition, message in cases:
        with pytest.raises(InvalidInput, match=message):
            fws.features.apply([DRIVER, definition])

    def local(frame: pd.DataFrame) -> pd.DataFrame:
        return frame

    with pytest.raises(InvalidInput, match=r"top level"):
        fws.features.apply([DRIVER, view(transform=local)])
    with pytest.raises(InvalidInput, match=r"two feature views are named 'rules'"):
        fws.features.apply([DRIVER, view(), view(ttl=None)])
    with pytest.raises(InvalidInput, match=r"two different entities are named 'driver'"):
        fws.features.apply([DRIVER, Entity("driver", ["driver_id", "city"]), view()])
    with pytest.raises(InvalidInput, match=r"join_keys"):
        fws.features.apply([Entity("rider", [])])
    assert [v.name for v in fws.features.list()] == ["stats"]  # nothing was stored


def test_an_on_demand_view_over_an_unknown_feature_is_refused_at_apply(fws: keel.Workspace) -> None:
    for source in ("nope:trips", "stats:nope"):
        od = OnDemandFeatureView("dangling", sources=[source], function=trips_per_hour,
                                 features=[Feature("trips_per_hour", "float64")])
        with pytest.raises((InvalidInput, NotFound), match=r"nope"):
            fws.features.apply([od])
    assert [v.name for v in fws.features.list()] == ["stats"]


def test_unknown_features_are_refused_before_anything_is_stored(fws: keel.Workspace) -> None:
    before = {t.name for t in fws.data.tables()}
    with pytest.raises(NotFound):
        fws.features.training_set(entity_rows(), ["stats:trips", "stats:nope"], name="never")
    assert {t.name for t in fws.data.tables()} == before
    assert fws.features.training_sets() == []


def test_a_training_set_larger_than_a_chunk_is_written_chunk_by_chunk(fws: keel.Workspace,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Bounded memory: the entity rows are joined and written a chunk at a time, into one table version, and
    the rows are exactly those of one join over all of them."""
    import keel.features.service as service

    entities = entity_rows(50, seed=3)
    whole = fws.features.training_set(entities, ["stats:trips", "stats:rating"], label="label", store=False)
    monkeypatch.setattr(service, "CHUNK_ROWS", 7)
    chunked = fws.features.training_set(entities, ["stats:trips", "stats:rating"], label="label", name="chunked")
    assert chunked.info is not None and chunked.info.rows == 50 == chunked.num_rows
    assert [v.version for v in fws.data.history("chunked")] == [chunked.info.version]  # one commit
    assert chunked.to_arrow().equals(whole.to_arrow())
    assert fws.features.reproduce(chunked.ref).to_arrow().equals(whole.to_arrow())
    small = fws.features.training_set(entities, ["stats:trips"], store=False)  # not stored: chunks joined up
    assert small.to_arrow().equals(whole.to_arrow().drop_columns(["rating"]))
