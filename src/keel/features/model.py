"""The feature store's definitions and records: entities, feature views, and what keel stores about them.

Definitions are plain, frozen dataclasses a user writes in Python (a ``features.py`` in the workspace, or
any module); ``ws.features.apply`` validates them and stores a new version of each view that changed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import pyarrow as pa

__all__ = ["DTYPES", "ApplyPlan", "Entity", "Feature", "FeatureView", "FeatureViewInfo", "OnDemandFeatureView",
           "RequestField", "TrainingSet", "TrainingSetInfo"]

# A feature's declared type -> the Arrow type names its column may have (checked on every read of the source).
DTYPES: dict[str, tuple[str, ...]] = {
    "int64": ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32"),
    "int32": ("int8", "int16", "int32", "uint8", "uint16"),
    "float64": ("float", "double", "halffloat", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32"),
    "float32": ("float", "halffloat", "int8", "int16", "uint8", "uint16"),
    "bool": ("bool",),
    "string": ("string", "large_string"),
    "timestamp": ("timestamp[us, tz=UTC]", "timestamp[ns, tz=UTC]", "timestamp[ms, tz=UTC]", "timestamp[s, tz=UTC]"),
}


@dataclass(frozen=True)
class Entity:
    """What features describe (a driver, a listing): its name and the columns that identify one."""

    name: str
    join_keys: list[str]
    description: str | None = None


@dataclass(frozen=True)
class Feature:
    name: str
    dtype: str
    description: str | None = None


@dataclass(frozen=True)
class RequestField:
    """A value an on-demand feature needs from the request (the entity rows), not from a view."""

    name: str
    dtype: str


@dataclass(frozen=True)
class FeatureView:
    """Features computed from one source, keyed by entities, each valid for ``ttl`` after its timestamp.

    ``source`` is a table ref (``listings``, ``listings@3``) or a SQL query over keel tables; ``transform`` is
    SQL over the relation ``source`` or a pandas function ``DataFrame -> DataFrame``. The result must have
    the entities' join keys, ``timestamp``, ``created_timestamp`` (if given) and every declared feature.
    """

    name: str
    entities: list[Entity | str]
    source: str
    timestamp: str
    features: list[Feature]
    ttl: timedelta | None = None
    created_timestamp: str | None = None
    transform: str | Callable[[pd.DataFrame], pd.DataFrame] | None = None
    owner: str | None = None
    description: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class OnDemandFeatureView:
    """Features computed at request time by ``function`` from request data and other views' features.

    The same function runs offline (on a training set's frame) and online (on the looked-up rows), so the
    two cannot drift apart. ``sources`` names the features it reads (``view:feature``).
    """

    name: str
    sources: list[str]
    function: Callable[[pd.DataFrame], pd.DataFrame]
    features: list[Feature]
    request: list[RequestField] = field(default_factory=list)
    owner: str | None = None
    description: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FeatureViewInfo:
    """One stored version of a view: its definition as keel keeps it (JSON), and who stored it."""

    name: str
    version: int
    kind: str  # "batch" or "on_demand"
    definition: dict[str, Any]
    fingerprint: str
    created_at: datetime
    created_by: str

    @property
    def ref(self) -> str:
        return f"features:{self.name}@{self.version}"

    @property
    def features(self) -> list[dict[str, Any]]:
        return list(self.definition["features"])

    @property
    def entities(self) -> list[str]:
        return [e["name"] for e in self.definition.get("entities", [])]

    @property
    def join_keys(self) -> list[str]:
        return [k for e in self.definition.get("entities", []) for k in e["join_keys"]]

    @property
    def ttl(self) -> timedelta | None:
        seconds = self.definition.get("ttl_seconds")
        return None if seconds is None else timedelta(seconds=seconds)


@dataclass(frozen=True, slots=True)
class ApplyPlan:
    """What an apply changes: views (and entities) added, changed (a new version) or removed, and the rest."""

    added: list[str]
    changed: list[str]
    removed: list[str]
    unchanged: list[str]
    entities_added: list[str] = field(default_factory=list)
    entities_changed: list[str] = field(default_factory=list)
    versions: dict[str, int] = field(default_factory=dict)  # view -> its version after the apply
    applied: bool = False

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed or self.entities_added or self.entities_changed)


@dataclass(frozen=True, slots=True)
class TrainingSetInfo:
    """A stored training set: its Delta table version, and exactly what it was computed from."""

    name: str
    version: int  # the version of its table
    table: str
    features: list[str]
    label: str | None
    timestamp: str
    entity_source: str  # a table ref, or "frame:<sha256>" for a DataFrame
    view_versions: dict[str, int]
    source_versions: dict[str, int]
    rows: int
    created_at: datetime
    created_by: str

    @property
    def ref(self) -> str:
        return f"trainingset:{self.name}@{self.version}"


class TrainingSet:
    """A computed training set: its rows (``to_pandas``, ``to_arrow``) and, when stored, its record.

    A large stored one is not held in memory: its rows are read from its table when asked for."""

    def __init__(self, table: pa.Table | Callable[[], pa.Table], info: TrainingSetInfo | None, features: list[str],
                 label: str | None) -> None:
        self._table, self.info, self.features, self.label = table, info, features, label

    @property
    def ref(self) -> str | None:
        return self.info.ref if self.info else None

    @property
    def table_ref(self) -> str | None:
        """The stored table (``name@version``): split it, read it, or train from it like any table."""
        return f"{self.info.table}@{self.info.version}" if self.info else None

    @property
    def num_rows(self) -> int:
        return self.info.rows if self.info is not None else self.to_arrow().num_rows

    def to_arrow(self) -> pa.Table:
        if callable(self._table):
            return self._table()
        return self._table

    def to_pandas(self) -> pd.DataFrame:
        return self._table.to_pandas()

    def __repr__(self) -> str:
        return f"TrainingSet({self.ref or 'not stored'}, {self.num_rows} rows, {len(self.features)} features)"
