"""``ws.features`` over HTTP: the embedded ``FeatureService`` methods that make sense through a server,
returning the same records (``FeatureViewInfo``, ``TrainingSetInfo``, ``TrainingSet``, ``OnlineResult``,
``SkewReport``).

Two things stay where the code and the data are. ``apply`` imports the user's definitions (pandas
transforms, on-demand functions), which a server never does for a request: it is run next to the code,
against the same metadata store. And a training set's entity rows are a table on the server (a ref), not a
frame in this process: ingest the frame first (``ws.data.ingest(frame, "labels")``) and pass its name, so
the training set records a table version it can be reproduced from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import numpy as np

from keel.errors import InvalidInput
from keel.features.model import ApplyPlan, FeatureViewInfo, TrainingSet, TrainingSetInfo
from keel.features.online import OnlineResult, SkewReport
from keel.refs import Ref
from keel.remote.client import Client, join
from keel.remote.data import MAX_ROWS, RemoteDataService
from keel.remote.decode import decode, decode_list

__all__ = ["RemoteFeatureService"]

_MATERIALIZATION_TIMES = ("start_ts", "end_ts", "at")


class RemoteFeatureService:
    """The feature store of a keel server: the embedded ``FeatureService`` methods, over HTTP."""

    def __init__(self, client: Client, data: RemoteDataService) -> None:
        self._client, self._data = client, data

    # -- definitions ---------------------------------------------------------------------------------------

    def apply(self, definitions: Any = None, *, prune: bool = False, dry_run: bool = False) -> ApplyPlan:
        raise InvalidInput("feature definitions are applied where their code lives, not through a server (it would "
                           "have to import your Python): run `keel features apply` (or ws.features.apply in "
                           "keel.open(path)) against the server's metadata store; then use them here")

    def list(self) -> list[FeatureViewInfo]:
        return decode_list(FeatureViewInfo, self._client.get("/features"))

    def get(self, view: str, version: int | None = None) -> FeatureViewInfo:
        return decode(FeatureViewInfo, self._client.get(join("features", view, "info"), version=version))

    def versions(self, view: str) -> list[FeatureViewInfo]:
        return decode_list(FeatureViewInfo, self._client.get(join("features", view, "versions")))

    def entities(self) -> list[dict[str, Any]]:
        return self._client.get("/features/entities")

    def consumers(self, view: str) -> dict[str, dict[str, list[str]]]:
        return self._client.get(join("features", view, "consumers"))

    def show(self, view: str) -> dict[str, Any]:
        """A view as its page shows it (times as timezone-aware datetimes, as embedded)."""
        shown = self._client.get(join("features", view))
        shown["created_at"] = _time(shown.get("created_at"))
        for version in shown.get("versions", []):
            version["created_at"] = _time(version.get("created_at"))
        if isinstance(shown.get("freshness"), dict):
            shown["freshness"] = {k: _time(v) for k, v in shown["freshness"].items()}
        return shown

    # -- offline -------------------------------------------------------------------------------------------

    def training_set(self, entities: str | Ref | Any, features: Iterable[str], *, label: str | None = None,
                     timestamp: str = "event_timestamp", name: str | None = None, store: bool = True,
                     full_names: bool = False) -> TrainingSet:
        """Compute and store a training set on the server from a table of entity rows (a ref); its rows
        come back through the data routes (at most 10,000)."""
        if not isinstance(entities, str | Ref):
            raise InvalidInput(f"through a server the entity rows are a table ref, not a {type(entities).__name__}: "
                               "ingest them first (ws.data.ingest(frame, 'driver_labels')) and pass "
                               "'driver_labels', so the training set records the table version it came from")
        if not store:
            raise InvalidInput("a training set computed through a server is stored there (store=True); compute one "
                               "without storing it in an embedded workspace")
        body = {"entities": str(entities), "features": list(features), "label": label, "timestamp": timestamp,
                "name": name, "full_names": full_names}
        info = decode(TrainingSetInfo, self._client.post("/features/training-sets", body))
        return self._rows(info)

    def training_sets(self, name: str | None = None) -> list[TrainingSetInfo]:
        return decode_list(TrainingSetInfo, self._client.get("/features/training-sets", name=name))

    def get_training_set(self, ref: str) -> TrainingSetInfo:
        return decode(TrainingSetInfo, self._client.get(join("features", "training-sets", str(ref), "info")))

    def reproduce(self, ref: str) -> TrainingSet:
        """A stored training set's rows, exactly as stored (its table version), whatever changed since."""
        return self._rows(self.get_training_set(ref))

    def _rows(self, info: TrainingSetInfo) -> TrainingSet:
        if info.rows > MAX_ROWS:
            raise InvalidInput(f"{info.ref} is stored on the server ({info.rows:,} rows, table {info.table}@"
                               f"{info.version}); a read through the server returns at most {MAX_ROWS:,} rows. "
                               "Train on it where the data is (an embedded workspace), or pass its ref to a run",
                               details={"ref": info.ref})
        table = self._data.read_arrow(f"{info.table}@{info.version}")
        return TrainingSet(table, info, list(info.features), info.label)

    # -- online --------------------------------------------------------------------------------------------

    def materialize(self, views: Iterable[str] | None = None, *, start: datetime | str | None = None,
                    end: datetime | str | None = None, incremental: bool = False) -> list[dict[str, Any]]:
        """Materialise on the server: each view's latest value per entity in [start, end) into its online store."""
        body = {"views": None if views is None else list(views), "start": _iso(start), "end": _iso(end),
                "incremental": incremental}
        return [_materialization(m) for m in self._client.post("/features/materialize", body)]

    def materializations(self, view: str) -> list[dict[str, Any]]:
        return [_materialization(m) for m in self._client.get(join("features", view, "materializations"))]

    def online(self, features: Iterable[str], entity_rows: list[dict[str, Any]], *,
               full_names: bool = False, versions: Mapping[str, int] | None = None) -> OnlineResult:
        """The online value of each feature for each entity row, in the order asked, each with its status
        (``versions``: view versions to read instead of the latest)."""
        if not isinstance(entity_rows, list) or not all(isinstance(r, dict) for r in entity_rows):
            raise InvalidInput("entity_rows must be a list of {join key: value} objects")
        asked = list(features)
        rows = [{k: v.item() if isinstance(v, np.generic) else v for k, v in row.items()} for row in entity_rows]
        body: dict[str, Any] = {"features": asked, "entity_rows": rows, "full_names": full_names}
        if versions:
            body["versions"] = dict(versions)
        answer = self._client.post("/features/online", body)
        columns, found = answer["features"], answer["rows"]
        values = {c: [r["features"][c]["value"] for r in found] for c in columns}
        statuses = {c: [r["features"][c]["status"] for r in found] for c in columns}
        stamps = {c: [_time(r["features"][c]["event_timestamp"]) for r in found] for c in columns}
        for column in self._timestamp_columns(asked, columns, values):
            values[column] = [_time(v) for v in values[column]]
        return OnlineResult(entity_rows, columns, values, statuses, stamps)

    def _timestamp_columns(self, asked: list[str], columns: list[str], values: dict[str, list[Any]]) -> list[str]:
        """Columns of timestamp features (JSON carries them as text): looked up only when text came back."""
        if len(asked) != len(columns) or not any(isinstance(v, str) for c in columns for v in values[c]):
            return []
        views = {v.name: v for v in self.list()}
        dtypes: dict[str, list[str]] = {}
        for info in views.values():
            for feature in info.features:
                dtypes.setdefault(feature["name"], []).append(feature["dtype"])
        out = []
        for text, column in zip(asked, columns, strict=True):
            view, _, feature = text.rpartition(":")
            found = [f["dtype"] for f in views[view].features if f["name"] == feature] if view in views else \
                dtypes.get(feature, [])
            if found == ["timestamp"]:
                out.append(column)
        return out

    def check_skew(self, view: str, *, sample: int = 1000, seed: int = 0) -> SkewReport:
        """Online values against the offline point-in-time values at materialisation time (on the server)."""
        return decode(SkewReport, self._client.get(join("features", view, "skew"), sample=sample, seed=seed))


def _time(value: Any) -> Any:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _iso(value: datetime | str | None) -> str | None:
    """A time as the server parses it (a naive one is sent as such, and refused there like embedded)."""
    return value.isoformat() if isinstance(value, datetime) else value


def _materialization(record: dict[str, Any]) -> dict[str, Any]:
    return {k: _time(v) if k in _MATERIALIZATION_TIMES else v for k, v in record.items()}
