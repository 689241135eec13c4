"""Feast's side of benchmarks/features.py; runs inside Feast's own venv (benchmarks/.venv-feast).

Not meant to be run by hand: ``features.py`` writes the generated data as parquet files and the settings
to a JSON file, runs ``python _feast_worker.py SPEC.json`` with Feast's interpreter and reads one JSON
document from this script's stdout (everything Feast prints goes to stderr). Two modes:

``offline``  for each offline store in ``spec["stores"]`` (``file``, ``duckdb``), in that order: a fresh
             repo (file registry, provider local, online store sqlite), ``apply`` of the entity and the
             feature view (a ``FileSource`` over the features parquet with ``timestamp_field`` and
             ``created_timestamp_column``), one untimed warm-up ``get_historical_features`` on a small
             entity frame (Feast loads dask / ibis lazily), then one timed
             ``get_historical_features(entity_df=..., features=[...]).to_df()`` on the whole entity frame.
             The entity frame is read from parquet into pandas before any timing. With ``result_dir``
             set, each store's result is written there as parquet for the correctness check.
``online``   one online store (``sqlite`` or ``redis``): ``apply``, ``materialize`` of the whole data window
             (offline store duckdb, timed as information), then ``get_online_features(...).to_dict()``
             interleaved call by call with the raw floor (a ``sqlite3`` SELECT ... IN (...) on the floor
             table, or one redis MGET of packed values) — the same floor ``features.py`` measures against
             keel, measured again here so that Feast's ratio is to a floor timed in the same process, at
             the same moments, with this venv's sqlite3 and redis-py.

Only the standard library, numpy, pandas, pyarrow, redis-py and Feast are imported.
"""

from __future__ import annotations

import gc
import platform
import sqlite3
import struct
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _worker_io import answer


def main(spec_path: str) -> int:
    return answer(run, spec_path)


def run(spec: dict[str, Any]) -> dict[str, Any]:
    import feast

    out: dict[str, Any] = {"feast": feast.__version__, "python": platform.python_version(),
                           "sqlite": sqlite3.sqlite_version, "versions": versions()}
    if spec["mode"] == "offline":
        out.update(offline(spec))
    else:
        out.update(online(spec))
    return out


def versions() -> dict[str, str | None]:
    from importlib import metadata

    found: dict[str, str | None] = {}
    for name in ("feast", "pandas", "numpy", "pyarrow", "duckdb", "ibis-framework", "dask", "redis", "hiredis"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


# -- the repo -------------------------------------------------------------------------------------------

def make_store(spec: dict[str, Any], folder: Path, offline_type: str, online: dict[str, Any]) -> Any:
    """A FeatureStore over a fresh repo in ``folder``, with the entity and the feature view applied."""
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.repo_config import RepoConfig
    from feast.types import Float64, Int64

    folder.mkdir(parents=True, exist_ok=True)
    config = RepoConfig(
        project="keel_bench", provider="local", registry=str(folder / "registry.db"),
        offline_store={"type": offline_type}, online_store=online, repo_path=folder,
        entity_key_serialization_version=3,
    )
    store = FeatureStore(config=config)
    driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
    source = FileSource(name="driver_stats_source", path=spec["features_parquet"], timestamp_field="event_ts",
                        created_timestamp_column="created")
    view = FeatureView(
        name="driver_stats", entities=[driver], ttl=timedelta(seconds=spec["ttl_seconds"]),
        schema=[Field(name="driver_id", dtype=Int64)] + [Field(name=f, dtype=Float64) for f in spec["features"]],
        source=source, online=True,
    )
    store.apply([driver, view])
    return store


def refs(spec: dict[str, Any]) -> list[str]:
    return [f"driver_stats:{f}" for f in spec["features"]]


def clocked(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# -- offline --------------------------------------------------------------------------------------------

def entity_frame(path: str) -> Any:
    import pandas as pd

    df = pd.read_parquet(path)
    df["event_timestamp"] = df["event_timestamp"].astype("datetime64[ns, UTC]")
    return df


def offline(spec: dict[str, Any]) -> dict[str, Any]:
    workdir = Path(spec["workdir"])
    entities = entity_frame(spec["entities_parquet"])
    warm = entities.head(spec["warm_up_rows"]).copy()
    features = refs(spec)
    out: dict[str, Any] = {"seconds": {}, "apply_s": {}, "warm_up_s": {}, "rows": {}}
    for store_type in spec["stores"]:
        folder = workdir / f"feast-offline-{store_type}-{spec['repeat']}"
        online = {"type": "sqlite", "path": str(folder / "online.db")}
        start = time.perf_counter()
        store = make_store(spec, folder, store_type, online)
        out["apply_s"][store_type] = time.perf_counter() - start
        out["warm_up_s"][store_type] = clocked(
            lambda store=store: store.get_historical_features(entity_df=warm, features=features).to_df())
        gc.collect()
        start = time.perf_counter()
        result = store.get_historical_features(entity_df=entities, features=features).to_df()
        out["seconds"][store_type] = time.perf_counter() - start
        out["rows"][store_type] = len(result)
        if spec.get("result_dir"):
            keep = result[["driver_id", "event_timestamp", *spec["features"]]]
            keep.to_parquet(Path(spec["result_dir"]) / f"feast-{store_type}.parquet", index=False)
        del result
    return out


# -- online ---------------------------------------------------------------------------------------------

class SqliteFloor:
    """The least a lookup does: one SELECT ... WHERE driver_id IN (...) on one row per entity, as columns."""

    def __init__(self, path: str, features: list[str]) -> None:
        self.conn = sqlite3.connect(path, check_same_thread=False)
        self.features = features
        self.columns = ", ".join(features)

    def lookup(self, ids: list[int]) -> dict[str, list[Any]]:
        sql = f"SELECT driver_id, {self.columns} FROM driver_stats WHERE driver_id IN ({','.join('?' * len(ids))})"
        found = {row[0]: row for row in self.conn.execute(sql, ids)}
        out: dict[str, list[Any]] = {"driver_id": list(ids)}
        for j, name in enumerate(self.features, start=1):
            out[name] = [found[i][j] if i in found else None for i in ids]
        return out


class RedisFloor:
    """The least a lookup does: one MGET of one key per entity holding the 10 values packed (little-endian
    float64), unpacked into columns."""

    def __init__(self, url: str, prefix: str, features: list[str]) -> None:
        import redis

        self.client = redis.Redis.from_url(url)
        self.prefix = prefix
        self.features = features
        self.unpack = struct.Struct(f"<{len(features)}d").unpack

    def lookup(self, ids: list[int]) -> dict[str, list[Any]]:
        values = self.client.mget([f"{self.prefix}{i}" for i in ids])
        none = (None,) * len(self.features)
        rows = [self.unpack(v) if v is not None else none for v in values]
        out: dict[str, list[Any]] = {"driver_id": list(ids)}
        for j, name in enumerate(self.features):
            out[name] = [row[j] for row in rows]
        return out


def redis_connection_string(url: str) -> str:
    """redis://host:port/db -> Feast's ``host:port,db=N``."""
    from urllib.parse import urlparse

    parsed = urlparse(url)
    db = (parsed.path or "/0").lstrip("/") or "0"
    return f"{parsed.hostname or '127.0.0.1'}:{parsed.port or 6379},db={db}"


def online(spec: dict[str, Any]) -> dict[str, Any]:
    workdir = Path(spec["workdir"])
    kind = spec["store"]
    folder = workdir / f"feast-online-{kind}"
    if kind == "sqlite":
        online_config: dict[str, Any] = {"type": "sqlite", "path": str(folder / "online.db")}
        floor: Any = SqliteFloor(spec["floor_sqlite"], spec["features"])
    else:
        online_config = {"type": "redis", "connection_string": redis_connection_string(spec["redis_url"])}
        floor = RedisFloor(spec["redis_url"], spec["floor_redis_prefix"], spec["features"])
    out: dict[str, Any] = {}
    start = time.perf_counter()
    store = make_store(spec, folder, "duckdb", online_config)
    out["apply_s"] = time.perf_counter() - start
    begin = datetime.fromisoformat(spec["materialize_start"]).astimezone(UTC)
    end = datetime.fromisoformat(spec["materialize_end"]).astimezone(UTC)
    out["materialize_s"] = clocked(lambda: store.materialize(start_date=begin, end_date=end))
    features = refs(spec)

    def feast_lookup(rows: list[dict[str, int]]) -> dict[str, list[Any]]:
        return store.get_online_features(features=features, entity_rows=rows).to_dict()

    check_ids: list[int] = spec["check_ids"]
    out["check"] = {"feast": feast_lookup([{"driver_id": i} for i in check_ids]),
                    "floor": floor.lookup(check_ids)}

    out["samples"] = {}
    for name, calls in spec["calls"].items():  # {"1": [[id], ...], "100": [[ids...], ...]}
        rows = [[{"driver_id": i} for i in ids] for ids in calls]
        for ids, entity_rows in zip(calls[: spec["warm_up_calls"]], rows, strict=False):  # warm-up
            feast_lookup(entity_rows)
            floor.lookup(ids)
        feast_s: list[float] = []
        floor_s: list[float] = []
        gc.collect()
        for n, (ids, entity_rows) in enumerate(zip(calls, rows, strict=True)):
            # interleaved call by call, alternating which side goes first
            if n % 2 == 0:
                feast_s.append(clocked(lambda entity_rows=entity_rows: feast_lookup(entity_rows)))
                floor_s.append(clocked(lambda ids=ids: floor.lookup(ids)))
            else:
                floor_s.append(clocked(lambda ids=ids: floor.lookup(ids)))
                feast_s.append(clocked(lambda entity_rows=entity_rows: feast_lookup(entity_rows)))
        out["samples"][name] = {"feast": feast_s, "floor": floor_s}
    return out


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
