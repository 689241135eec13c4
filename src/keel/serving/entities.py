"""Entity requests (``{"entities": [...]}``): a model's features looked up in the online store, not sent.

At load, each model version is traced through the lineage graph to the keel training set it was trained on
(model <- run <- split <- table <- training set, or the training set given to the run as an input). That fixes,
once, which of the set's features the model's signature takes and under which column names (a training set names
its columns ``feature``, or ``view__feature`` with ``full_names=True``; the signature was inferred from those
columns), the view versions the set was computed with (a model reads the versions it was trained on, even after a
view changed), and the join keys and request fields an entity must carry. A request then costs one
``FeatureService.online`` call for the whole batch (on-demand features computed by the same functions as offline)
and one Arrow conversion per column.

Missing and expired values reach the model as nulls (NaN for numbers, None for strings and timestamps), exactly as
a training-set row whose feature was unknown: the model's signature check and its own handling of missing values
(an imputer in the pipeline, or a refusal) decide. The record ``frame`` returns beside the frame says, per column,
the value and status (present, missing, expired) of every row, and which rows were incomplete.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from keel.errors import InvalidInput, InvalidRef, NotFound
from keel.serving.service import BASELINE

if TYPE_CHECKING:
    from keel.features.model import FeatureViewInfo
    from keel.features.service import FeatureService
    from keel.lineage import LineageService
    from keel.models.service import ModelService

__all__ = ["EntityFeatures", "ModelFeatures", "resolve_model_features"]

_ARROW = {"int64": pa.int64(), "int32": pa.int32(), "float64": pa.float64(), "float32": pa.float32(),
          "bool": pa.bool_(), "string": pa.string(), "timestamp": pa.timestamp("us", tz="UTC")}
_NOT_MADE_FROM = frozenset({"next_version", "previous_version"})  # an older version is history, not an input
_MAX_DEPTH = 12


@dataclass(frozen=True)
class ModelFeatures:
    """What one model version needs from the feature store, resolved once at load."""

    model: str  # price/4
    training_set: str | None = None  # trainingset:price_training@3
    features: tuple[tuple[str, str, str], ...] = ()  # (view, feature, the model's column), signature order
    versions: dict[str, int] = field(default_factory=dict)  # view -> the version the training set read
    join_keys: tuple[str, ...] = ()  # every entity carries these (and request fields of on-demand views)
    request_fields: tuple[str, ...] = ()
    from_request: tuple[str, ...] = ()  # the model's other inputs: taken from the entities as sent
    dtypes: dict[str, str] = field(default_factory=dict)  # view:feature -> declared dtype
    stale: dict[str, dict[str, int]] = field(default_factory=dict)  # view -> {"trained_on": n, "latest": m}
    problem: str | None = None  # why an entities request cannot be answered (raised when one arrives)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "training_set": self.training_set,
                "features": {f"{v}:{f}@{self.versions.get(v)}": c for v, f, c in self.features},
                "join_keys": list(self.join_keys), "request_fields": list(self.request_fields),
                "from_request": list(self.from_request), "stale_views": self.stale, "problem": self.problem}


def resolve_model_features(features: FeatureService, models: ModelService, lineage: LineageService,
                           ref: str) -> ModelFeatures:
    """Trace model version ``ref`` to its training set and fix what an entities request needs of the store.

    Never raises for a model that cannot look features up: the record carries the problem, so the model still
    serves records and only an entities request is refused."""
    version = models.version(ref)
    inputs = [c["name"] for c in version.signature.get("inputs", [])]
    found = _training_sets(lineage, version.ref)
    if not found:
        return ModelFeatures(version.name, problem=f"model {version.name} was not trained on a keel training set, "
                             "so it cannot look features up; send records")
    candidates = []
    for text in found:
        try:
            info = features.get_training_set(text)
        except (NotFound, InvalidRef):
            continue
        candidates.append((info, _columns(info.features, set(inputs))))
    if not candidates:
        return ModelFeatures(version.name, problem=f"model {version.name} was trained on {', '.join(found)}, which "
                             "keel no longer knows; send records")
    best = max(len(c) for _, c in candidates)
    chosen = [(i, c) for i, c in candidates if len(c) == best]
    if len({tuple(c) for _, c in chosen}) > 1:
        return ModelFeatures(version.name, problem=f"model {version.name} was trained on several training sets "
                             f"({', '.join(i.ref for i, _ in chosen)}) that name its inputs differently; send records")
    info, columns = chosen[0]
    order = {name: i for i, name in enumerate(inputs)}
    columns.sort(key=lambda c: order[c[2]])
    try:
        needs = _needs(features, columns, dict(info.view_versions))
    except (NotFound, InvalidInput) as exc:
        return ModelFeatures(version.name, info.ref, problem=f"model {version.name}: the features of {info.ref} "
                             f"cannot be served: {exc}")
    versions = {v: info.view_versions[v] for v in needs["views"] if v in info.view_versions}  # only views it reads
    taken = {c for _, _, c in columns}
    return ModelFeatures(version.name, info.ref, tuple(columns), versions, needs["keys"], needs["request"],
                         tuple(c for c in inputs if c not in taken), needs["dtypes"], _stale(features, versions))


def _training_sets(lineage: LineageService, ref: str) -> list[str]:
    """The training sets nearest upstream of ``ref`` (breadth first, one query per ref; older versions of a
    table or view are not what it was made from)."""
    frontier, seen = [ref], {ref}
    for _ in range(_MAX_DEPTH):
        found, following = [], []
        for node in frontier:
            for child in lineage.upstream(node, depth=1).children:
                if child.relation in _NOT_MADE_FROM or child.ref in seen:
                    continue
                seen.add(child.ref)
                (found if child.ref.startswith("trainingset:") else following).append(child.ref)
        if found or not following:
            return found
        frontier = following
    return []


def _columns(qualified: Iterable[str], inputs: set[str]) -> list[tuple[str, str, str]]:
    """(view, feature, column) for each feature of a training set the model takes, as its signature names it."""
    out = []
    for text in qualified:
        view, _, feature = text.partition(":")
        full = f"{view}__{feature}"
        column = full if full in inputs else feature if feature in inputs else None
        if column is not None:
            out.append((view, feature, column))
    return out


def _needs(features: FeatureService, columns: list[tuple[str, str, str]], versions: dict[str, int]) -> dict[str, Any]:
    """Join keys and request fields an entity must carry, each feature's declared dtype, and the views read."""
    infos: dict[str, FeatureViewInfo] = {}

    def info(view: str) -> FeatureViewInfo:
        if view not in infos:
            infos[view] = features.get(view, versions.get(view))
        return infos[view]

    keys: dict[str, None] = {}
    request: dict[str, None] = {}
    dtypes = {}
    for view, feature, _ in columns:
        found = info(view)
        dtypes[f"{view}:{feature}"] = next(f["dtype"] for f in found.features if f["name"] == feature)
        if found.kind == "on_demand":
            for source in found.definition["sources"]:
                keys.update(dict.fromkeys(info(source.partition(":")[0]).join_keys))
            request.update(dict.fromkeys(f["name"] for f in found.definition.get("request", [])))
        else:
            keys.update(dict.fromkeys(found.join_keys))
    return {"keys": tuple(keys), "request": tuple(r for r in request if r not in keys), "dtypes": dtypes,
            "views": list(infos)}


def _stale(features: FeatureService, versions: dict[str, int]) -> dict[str, dict[str, int]]:
    """Views changed since the training set read them: the model keeps reading the version it was trained on,
    which is served only while that version is materialised."""
    latest = {i.name: i.version for i in features.list()}
    return {v: {"trained_on": n, "latest": latest[v]} for v, n in sorted(versions.items())
            if v in latest and latest[v] != n}


class EntityFeatures:
    """Builds a model's input frame from entities: ``frame(entities) -> (frame, fetched)``.

    Given several models (every version a deployment routes to), one lookup serves them all: the union of their
    features is fetched, each model's columns are in the frame, and each model keeps the columns of its
    signature (the loaded model drops the others)."""

    def __init__(self, features: FeatureService, models: ModelFeatures | Sequence[ModelFeatures]) -> None:
        self.models = [models] if isinstance(models, ModelFeatures) else list(models)
        self._features = features
        problems = [m.problem for m in self.models if m.problem]
        versions: dict[str, int] = {}
        columns: dict[str, tuple[str, str]] = {}  # the model's column -> (view, feature)
        for m in self.models:
            if m.problem:
                continue
            for view, number in m.versions.items():
                if versions.setdefault(view, number) != number:
                    problems.append(f"the models were trained on different versions of feature view {view!r} "
                                    f"({number} and {versions[view]}); one entities request cannot serve both, "
                                    "send records")
            for view, feature, column in m.features:
                if columns.setdefault(column, (view, feature)) != (view, feature):
                    other = ":".join(columns[column])
                    problems.append(f"column {column!r} is {view}:{feature} for {m.model} but {other} for another "
                                    "model; one entities request cannot serve both, send records")
        self.problem = "; ".join(dict.fromkeys(problems)) or None
        self._versions = versions
        self._columns = columns
        self._wanted = list(dict.fromkeys(f"{v}:{f}" for v, f in columns.values()))
        self._types = {k: _ARROW[d] for m in self.models for k, d in m.dtypes.items()}
        self._keys = tuple(dict.fromkeys(k for m in self.models for k in m.join_keys))
        self._required = tuple(dict.fromkeys([*self._keys, *(r for m in self.models for r in m.request_fields)]))
        self._required_set = frozenset(self._required)
        self._column_set = frozenset(columns)

    @classmethod
    def for_models(cls, ws: Any, refs: str | Iterable[str]) -> EntityFeatures:
        """Resolve ``refs`` (model versions, e.g. a deployment's ``models``; the baseline fallback needs nothing)
        against workspace ``ws``: its ``features``, ``models`` and ``lineage``."""
        chosen = [refs] if isinstance(refs, str) else [r for r in refs if r != BASELINE]
        return cls(ws.features, [resolve_model_features(ws.features, ws.models, ws.lineage, r) for r in chosen])

    def describe(self) -> dict[str, Any]:
        """What each model reads (for /readyz, the logs, and people): features, versions, keys, problems."""
        return {"models": [m.to_dict() for m in self.models], "join_keys": list(self._keys),
                "required": list(self._required), "problem": self.problem}

    def frame(self, entities: list[dict[str, Any]]) -> tuple[pd.DataFrame, dict[str, Any]]:
        """The model input for ``entities`` (their own fields, then the looked-up features), and what was fetched:
        ``{"columns": {column: {"feature", "version", "values", "statuses", "event_timestamps"}},
        "incomplete": [row, ...], "training_sets": {model: ref}}``."""
        if self.problem:
            raise InvalidInput(self.problem)
        self._check(entities)
        data: dict[str, Any] = {}
        names = list(entities[0]) if len(entities) == 1 else list(dict.fromkeys(k for e in entities for k in e))
        for name in names:
            data[name] = [e.get(name) for e in entities]
        fetched: dict[str, Any] = {}
        incomplete: set[int] = set()
        if self._wanted:
            result = self._features.online(self._wanted, entities, full_names=True, versions=self._versions)
            for column, (view, feature) in self._columns.items():
                source = f"{view}__{feature}"
                values, statuses = result.values[source], result.statuses[source]
                data[column] = _column(values, self._types[f"{view}:{feature}"])
                fetched[column] = {"feature": f"{view}:{feature}", "version": self._versions.get(view),
                                   "values": values, "statuses": statuses,
                                   "event_timestamps": result.event_timestamps.get(source)}
                if any(s != "present" for s in statuses):
                    incomplete.update(i for i, s in enumerate(statuses) if s != "present")
        info = {"columns": fetched, "incomplete": sorted(incomplete),
                "training_sets": {m.model: m.training_set for m in self.models}}
        return pd.DataFrame(data), info

    def _check(self, entities: Any) -> None:
        """A non-empty list of objects, each with every join key (an integer or a string) and request field, and
        none carrying a column the store provides."""
        if not isinstance(entities, list) or not entities:
            example = ", ".join(f'"{k}": ...' for k in self._keys) or '"id": ...'
            raise InvalidInput(f"entities must be a non-empty list of objects, e.g. [{{{example}}}]")
        required, keys, provided = self._required_set, self._keys, self._column_set
        for i, item in enumerate(entities):
            if type(item) is not dict:
                raise InvalidInput(f"entities[{i}] must be an object with {', '.join(self._required)}, not "
                                   f"{type(item).__name__}")
            if not required <= item.keys():
                missing = next(k for k in self._required if k not in item)
                what = "join key" if missing in keys else "request field"
                raise InvalidInput(f"entities[{i}] lacks {what} {missing!r}; every entity needs "
                                   f"{', '.join(self._required)}")
            for key in keys:
                value = item[key]
                kind = type(value)
                if kind is not int and kind is not str and not isinstance(value, np.integer):
                    raise InvalidInput(f"entities[{i}].{key} must be an integer or a string, not {value!r}")
            if not provided.isdisjoint(item.keys()):
                clash = sorted(provided & item.keys())
                raise InvalidInput(f"entities[{i}] carries {', '.join(clash)}, looked up in the feature store; "
                                   "leave it out, or send records to give every input yourself")


def _column(values: list[Any], kind: pa.DataType) -> Any:
    """Values as the column a training set read back into pandas would be (an integer feature with a null is
    float64 with NaN, a timestamp stays UTC): Arrow converts, as it did for the training rows."""
    array = pa.array(values, type=kind, from_pandas=True)
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        return array.to_numpy(zero_copy_only=False)
    return array.to_pandas()
