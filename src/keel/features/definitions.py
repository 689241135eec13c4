"""Definitions in, canonical JSON out: validation, fingerprints, and finding definitions in a module.

A view's stored definition is JSON (so the registry, the API and the UI can show it without importing user
code); a pandas transform or on-demand function is recorded by module, name and the sha256 of its source,
and found again by importing that module. The fingerprint is the sha256 of the canonical JSON: an apply
stores a new version of a view only when its fingerprint changed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from typing import Any

from keel import code
from keel.code import load_module
from keel.errors import InvalidInput
from keel.features.model import DTYPES, Entity, Feature, FeatureView, OnDemandFeatureView
from keel.refs import check_name

__all__ = ["Definitions", "collect", "entity_json", "fingerprint", "function_json", "load_module", "resolve_function",
           "view_json"]

Definition = Entity | FeatureView | OnDemandFeatureView


class Definitions:
    """A validated set of definitions, by name."""

    def __init__(self, entities: dict[str, Entity], views: dict[str, FeatureView | OnDemandFeatureView]) -> None:
        self.entities, self.views = entities, views


def collect(items: Iterable[Any]) -> Definitions:
    """The entities and views among ``items`` (anything else is ignored), checked for duplicate names."""
    entities: dict[str, Entity] = {}
    views: dict[str, FeatureView | OnDemandFeatureView] = {}
    for item in items:
        if isinstance(item, Entity):
            check_name(item.name, "entity name")
            if item.name in entities and entities[item.name] != item:
                raise InvalidInput(f"two different entities are named {item.name!r}")
            entities[item.name] = item
        elif isinstance(item, FeatureView | OnDemandFeatureView):
            check_name(item.name, "feature view name")
            if item.name in views and views[item.name] is not item:
                raise InvalidInput(f"two feature views are named {item.name!r}; view names must be unique")
            views[item.name] = item
            if isinstance(item, FeatureView):
                for entity in item.entities:
                    if isinstance(entity, Entity):
                        check_name(entity.name, "entity name")
                        if entities.get(entity.name, entity) != entity:
                            raise InvalidInput(f"two different entities are named {entity.name!r}")
                        entities[entity.name] = entity
    return Definitions(entities, views)


def entity_json(entity: Entity) -> dict[str, Any]:
    keys = list(entity.join_keys) if isinstance(entity.join_keys, list | tuple) else None
    if not keys or not all(isinstance(k, str) and k for k in keys):
        raise InvalidInput(f"entity {entity.name!r} needs join_keys: a non-empty list of column names")
    if len(set(keys)) != len(keys):
        raise InvalidInput(f"entity {entity.name!r} lists a join key twice")
    return {"name": entity.name, "join_keys": keys, "description": entity.description}


def view_json(view: FeatureView | OnDemandFeatureView, entities: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The canonical JSON of a view, every rule a definition must follow checked (``entities``: by name)."""
    features = _features_json(view)
    common = {"name": view.name, "features": features, "owner": view.owner, "description": view.description,
              "tags": {str(k): str(v) for k, v in (view.tags or {}).items()}}
    if isinstance(view, OnDemandFeatureView):
        if not callable(view.function):
            raise InvalidInput(f"on-demand view {view.name!r}: function must be a callable DataFrame -> DataFrame")
        sources = [str(s) for s in view.sources]
        for source in sources:
            if source.count(":") != 1:
                raise InvalidInput(f"on-demand view {view.name!r}: source {source!r} must be 'view:feature'")
        request = []
        for field in view.request:
            _check_dtype(view.name, field.name, field.dtype)
            request.append({"name": field.name, "dtype": field.dtype})
        return {**common, "kind": "on_demand", "sources": sources, "request": request,
                "function": function_json(view.function, view.name)}
    if not isinstance(view.source, str) or not view.source.strip():
        raise InvalidInput(f"feature view {view.name!r}: source must be a table ref or a SQL query")
    if not isinstance(view.timestamp, str) or not view.timestamp:
        raise InvalidInput(f"feature view {view.name!r}: timestamp must name the event-time column")
    if view.ttl is not None and view.ttl.total_seconds() <= 0:
        raise InvalidInput(f"feature view {view.name!r}: ttl must be positive (got {view.ttl}); leave it None for "
                           "values that never expire")
    if not view.entities:
        raise InvalidInput(f"feature view {view.name!r} needs at least one entity")
    used = []
    for entity in view.entities:
        name = entity.name if isinstance(entity, Entity) else str(entity)
        if name not in entities:
            raise InvalidInput(f"feature view {view.name!r} uses unknown entity {name!r}; define it (Entity(...)) "
                               "and apply it with the view")
        used.append(entities[name])
    keys = [k for e in used for k in e["join_keys"]]
    reserved = {*keys, view.timestamp, view.created_timestamp}
    clash = [f["name"] for f in features if f["name"] in reserved]
    if clash:
        raise InvalidInput(f"feature view {view.name!r}: feature(s) {', '.join(clash)} clash with a join key or "
                           "timestamp column")
    transform: Any = None
    if isinstance(view.transform, str):
        transform = {"sql": view.transform}
    elif callable(view.transform):
        transform = {"pandas": function_json(view.transform, view.name)}
    elif view.transform is not None:
        raise InvalidInput(f"feature view {view.name!r}: transform must be SQL text or a pandas function")
    return {**common, "kind": "batch", "entities": used, "source": view.source.strip(), "timestamp": view.timestamp,
            "created_timestamp": view.created_timestamp,
            "ttl_seconds": None if view.ttl is None else view.ttl.total_seconds(), "transform": transform}


def _features_json(view: FeatureView | OnDemandFeatureView) -> list[dict[str, Any]]:
    if not view.features:
        raise InvalidInput(f"feature view {view.name!r} declares no features")
    out, seen = [], set()
    for feature in view.features:
        if not isinstance(feature, Feature):
            raise InvalidInput(f"feature view {view.name!r}: features must be Feature(name, dtype)")
        check_name(feature.name, "feature name")
        if feature.name in seen:
            raise InvalidInput(f"feature view {view.name!r} declares feature {feature.name!r} twice")
        seen.add(feature.name)
        _check_dtype(view.name, feature.name, feature.dtype)
        out.append({"name": feature.name, "dtype": feature.dtype, "description": feature.description})
    return out


def _check_dtype(view: str, name: str, dtype: str) -> None:
    if dtype not in DTYPES:
        raise InvalidInput(f"feature view {view!r}: {name!r} has unknown dtype {dtype!r}; use one of "
                           f"{', '.join(DTYPES)}")


def function_json(function: Callable[..., Any], view: str) -> dict[str, Any]:
    """Where a user function lives and what its code is (its sha256 is part of the fingerprint)."""
    return code.function_json(function, f"feature view {view!r}")


def resolve_function(spec: dict[str, Any], view: str, known: dict[str, Callable[..., Any]]) -> Callable[..., Any]:
    """The function a stored definition names, its source still the one applied."""
    return code.resolve_function(spec, f"feature view {view!r}", known,
                                 changed="run `keel features apply` to store the new version first")


def fingerprint(definition: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(definition, sort_keys=True, default=str).encode()).hexdigest()
