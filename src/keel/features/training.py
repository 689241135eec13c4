"""Training sets: entity rows joined point-in-time to the requested features, on-demand features computed
by the same functions the online path runs, and the result stored as a versioned table with exactly what it
was computed from."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from keel.errors import InvalidInput, TransformFailed
from keel.features.definitions import resolve_function
from keel.features.frames import UTC_US, ViewRows
from keel.features.model import DTYPES, FeatureViewInfo
from keel.features.pit import ViewInput, point_in_time_join
from keel.features.requests import Requested

__all__ = ["check_entities", "check_key_types", "frame_digest", "join_features", "run_on_demand"]


def check_entities(entities: pa.Table, timestamp: str, keys: list[str]) -> pa.Table:
    """The entity rows with their timestamp as UTC; refused without the join keys or the timestamp, or with
    naive timestamps."""
    missing = [c for c in [*keys, timestamp] if c not in entities.column_names]
    if missing:
        raise InvalidInput(f"the entity rows lack column(s) {', '.join(missing)}; they need the join keys "
                           f"({', '.join(keys)}) and the timestamp column {timestamp!r} (timestamp=... names it)")
    kind = entities.schema.field(timestamp).type
    if not pa.types.is_timestamp(kind):
        raise InvalidInput(f"the entity rows' {timestamp!r} must be timestamps, not {kind}")
    if kind.tz is None:
        raise InvalidInput(f"the entity rows' {timestamp!r} holds naive timestamps; make them UTC, e.g. "
                           "pd.to_datetime(col, utc=True)")
    index = entities.column_names.index(timestamp)
    stamps = entities[timestamp]
    if kind.unit == "ns":  # pandas' unit: keel keeps microseconds, so a nanosecond remainder is dropped
        stamps = pc.floor_temporal(stamps, unit="microsecond")
    return entities.set_column(index, timestamp, stamps.cast(UTC_US))


def check_key_types(entities: pa.Table, views: list[FeatureViewInfo], rows: dict[str, ViewRows]) -> None:
    """A join key must be the same kind (integer, string, ...) in the entity rows and the view: DuckDB would
    otherwise cast one to the other and join '1' with 1."""
    for info in views:
        for key in info.join_keys:
            mine, theirs = entities.schema.field(key).type, rows[info.name].rows.schema.field(key).type
            if _kind(mine) != _kind(theirs):
                raise InvalidInput(f"join key {key!r} is {mine} in the entity rows but {theirs} in feature view "
                                   f"{info.name!r}; convert one of them")


def _kind(kind: pa.DataType) -> str:
    if pa.types.is_integer(kind):
        return "integer"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "string"
    return "float" if pa.types.is_floating(kind) else str(kind)


def join_features(entities: pa.Table, timestamp: str, plan: Requested, rows: dict[str, ViewRows]) -> pa.Table:
    inputs = []
    for view, wanted in plan.batch.items():
        info = rows[view].info
        inputs.append(ViewInput(view, rows[view].rows, info.join_keys, info.definition["timestamp"],
                                [f for f, _ in wanted], [c for _, c in wanted], ttl=info.ttl))
    return point_in_time_join(entities, timestamp, inputs)


def run_on_demand(frame: pd.DataFrame, plan: Requested, views: dict[str, FeatureViewInfo],
                  functions: dict[str, Callable[..., Any]]) -> pd.DataFrame:
    """Add each requested on-demand feature to ``frame`` (the same call offline and online), then drop the
    columns fetched only for them."""
    for view, wanted in plan.on_demand.items():
        info = views[view]
        definition = info.definition
        inputs = pd.DataFrame(index=frame.index)
        for source in definition["sources"]:
            src_view, _, feature = source.partition(":")
            inputs[feature] = frame[_column_of(plan, src_view, feature)]
        for field in definition["request"]:
            if field["name"] not in frame.columns:
                raise InvalidInput(f"on-demand view {view!r} needs request field {field['name']!r} in the entity rows")
            inputs[field["name"]] = frame[field["name"]]
        function = resolve_function(definition["function"], view, functions)
        try:
            out = function(inputs)
        except Exception as exc:
            raise TransformFailed(f"on-demand view {view!r}: {definition['function']['name']} raised "
                                  f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(out, pd.DataFrame) or len(out) != len(frame):
            raise TransformFailed(f"on-demand view {view!r}: {definition['function']['name']} must return a "
                                  "DataFrame with one row per input row")
        dtypes = {f["name"]: f["dtype"] for f in info.features}
        for feature, column in wanted:
            if feature not in out.columns:
                raise TransformFailed(f"on-demand view {view!r}: its function returned no column {feature!r}")
            _check_output(view, feature, dtypes[feature], out[feature])
            frame[column] = out[feature].to_numpy()
    return frame.drop(columns=[c for c in plan.hidden if c in frame.columns])


def _check_output(view: str, feature: str, dtype: str, values: pd.Series) -> None:
    """An on-demand function's column must fit its declared dtype, as a view's source column must."""
    try:
        kind = pa.Array.from_pandas(values).type
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise TransformFailed(f"on-demand view {view!r}: {feature!r} is not one type: {exc}") from None
    if str(kind) not in DTYPES[dtype] and not pa.types.is_null(kind) and not (
            dtype == "timestamp" and pa.types.is_timestamp(kind)):
        raise TransformFailed(f"on-demand view {view!r}: {feature!r} is declared {dtype} but the function returned "
                              f"{kind}")


def _column_of(plan: Requested, view: str, feature: str) -> str:
    for name, column in plan.batch.get(view, []):
        if name == feature:
            return column
    raise InvalidInput(f"feature {view}:{feature} was not fetched")  # resolve_features always fetches it


def frame_digest(table: pa.Table) -> str:
    """A content hash of an entity frame given as data, so its training set names what it came from."""
    digest = hashlib.sha256()
    for batch in table.to_batches():
        for column in batch.columns:
            for buffer in column.buffers():
                if buffer is not None:
                    digest.update(buffer)
    digest.update(str(table.schema).encode())
    return digest.hexdigest()
