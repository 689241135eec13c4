"""``ws.features``: apply definitions, compute point-in-time training sets, materialise and serve online
values, and say who consumes each feature. The CLI, REST API and UI call exactly these methods."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from keel.audit import AuditLog
from keel.data.service import DataService
from keel.errors import InvalidInput, NotFound
from keel.features.definitions import collect, entity_json, fingerprint, load_module, view_json
from keel.features.frames import FrameCache, ViewRows, read_view_rows
from keel.features.model import ApplyPlan, FeatureViewInfo, OnDemandFeatureView, TrainingSet, TrainingSetInfo
from keel.features.requests import resolve_features
from keel.features.training import check_entities, frame_digest, join_features, run_on_demand
from keel.lineage import Edge, LineageService
from keel.refs import check_name, parse_ref
from keel.storage.db import Database
from keel.storage.schema import training_sets

__all__ = ["FeatureService"]


class FeatureService:
    def __init__(self, db: Database, data: DataService, lineage: LineageService, audit: AuditLog, user: str,
                 root: Path, cache: FrameCache, functions: dict[str, Callable[..., Any]]) -> None:
        from keel.features.registry import Registry

        self._db, self._data, self._lineage, self._audit, self._user = db, data, lineage, audit, user
        self._root, self._cache, self._functions = root, cache, functions
        self.registry = Registry(db, lineage, audit, user)

    # -- definitions ---------------------------------------------------------------------------------------

    def apply(self, definitions: Iterable[Any] | ModuleType | str | Path | None = None, *, prune: bool = False,
              dry_run: bool = False) -> ApplyPlan:
        """Validate ``definitions`` (objects, a module, or a file; default: the workspace's features.py) and
        store a new version of each view that changed. ``prune`` removes stored views not among them (what
        applying a whole module does from the CLI)."""
        if definitions is None or isinstance(definitions, str | Path):
            path = Path(definitions) if definitions is not None else self._root / "features.py"
            definitions = load_module(path if path.is_absolute() else self._root / path)
        items = list(vars(definitions).values()) if isinstance(definitions, ModuleType) else list(definitions)
        found = collect(items)
        stored_entities = self.registry.entities()
        entities, entity_rows, entities_added, entities_changed = {}, [], [], []
        for name, known in stored_entities.items():
            entities[name] = {k: known[k] for k in ("name", "join_keys", "description")}
        for name, entity in found.entities.items():
            definition = entity_json(entity)
            print_ = fingerprint(definition)
            entities[name] = definition
            if name not in stored_entities:
                entities_added.append(name)
            elif stored_entities[name]["fingerprint"] != print_:
                entities_changed.append(name)
            else:
                continue
            entity_rows.append({**definition, "fingerprint": print_})
        latest = self.registry.latest(include_removed=True)
        active = {n for n, info in self.registry.latest().items()}
        added, changed, unchanged, to_store = [], [], [], []
        for name, view in found.views.items():
            definition = view_json(view, entities)
            if definition["kind"] == "batch":
                self._check_source(definition)
            print_ = fingerprint(definition)
            known = latest.get(name)
            if known is not None and known.fingerprint == print_ and name in active:
                unchanged.append(name)
                continue
            (changed if name in active else added).append(name)
            to_store.append((definition, print_))
        removed = sorted(active - set(found.views)) if prune else []
        for view in found.views.values():
            self._remember(view)
        if dry_run or not (to_store or removed or entity_rows):
            versions = {n: latest[n].version for n in unchanged}
            return ApplyPlan(added, changed, removed, unchanged, entities_added, entities_changed, versions, False)
        versions = self.registry.store(entity_rows, to_store, removed)
        versions.update({n: latest[n].version for n in unchanged})
        return ApplyPlan(added, changed, removed, unchanged, entities_added, entities_changed, versions, True)

    def _check_source(self, definition: dict[str, Any]) -> None:
        """A table source must exist and (without a transform) have every declared column."""
        from keel.features.frames import is_sql

        source = definition["source"]
        if is_sql(source):
            return
        try:
            version = self._data.version(source)
        except NotFound as exc:
            raise InvalidInput(f"feature view {definition['name']!r}: its source {source!r} is not a table: {exc}") \
                from None
        if definition.get("transform"):
            return
        keys = [k for e in definition["entities"] for k in e["join_keys"]]
        declared = [*keys, definition["timestamp"], *([definition["created_timestamp"]]
                                                       if definition.get("created_timestamp") else []),
                    *(f["name"] for f in definition["features"])]
        missing = [c for c in declared if c not in version.schema]
        if missing:
            raise InvalidInput(f"feature view {definition['name']!r}: its source {version.ref} lacks declared "
                               f"column(s) {', '.join(missing)}; it has {', '.join(version.schema)}")

    def _remember(self, view: Any) -> None:
        """Keep the functions applied in this process, so they need not be imported again."""
        functions = [view.function] if isinstance(view, OnDemandFeatureView) else \
            [view.transform] if callable(view.transform) else []
        for function in functions:
            self._functions[f"{function.__module__}:{function.__qualname__}"] = function

    def list(self) -> list[FeatureViewInfo]:
        return list(self.registry.latest().values())

    def get(self, view: str, version: int | None = None) -> FeatureViewInfo:
        ref = parse_ref(view, kind="features") if "@" in view else None
        if ref is not None:
            return self.registry.version(ref.name, ref.version)
        return self.registry.version(view, version)

    def versions(self, view: str) -> list[FeatureViewInfo]:
        return self.registry.versions(view)

    def entities(self) -> list[dict[str, Any]]:
        return [{k: v for k, v in e.items() if k != "fingerprint"} for e in self.registry.entities().values()]

    # -- offline -----------------------------------------------------------------------------------------

    def training_set(self, entities: pd.DataFrame | pa.Table | str, features: list[str], *, label: str | None = None,
                     timestamp: str = "event_timestamp", name: str | None = None, store: bool = True,
                     full_names: bool = False) -> TrainingSet:
        """Each entity row with, per feature, the latest value at or before its timestamp and within the view's
        ttl (null otherwise). ``entities`` is a frame or a table ref; ``store`` keeps the result as table
        ``name`` (a new version of it) with the exact view and source versions used."""
        views = self.registry.latest()
        plan = resolve_features(list(features), views, full_names=full_names)
        entity_table, entity_source = self._entity_rows(entities)
        keys = list(dict.fromkeys(k for v in plan.batch for k in views[v].join_keys))
        entity_table = check_entities(entity_table, timestamp, keys)
        if label is not None and label not in entity_table.column_names:
            raise InvalidInput(f"label {label!r} is not a column of the entity rows")
        rows = {view: self._rows(views[view]) for view in plan.batch}
        joined = join_features(entity_table, timestamp, plan, rows)
        if plan.on_demand or plan.hidden:
            frame = run_on_demand(joined.to_pandas(), plan, views, self._functions)
            joined = pa.Table.from_pandas(frame, preserve_index=False)
        info = self._store(joined, name, plan.views, views, rows, list(features), label, timestamp, entity_source) \
            if store else None
        return TrainingSet(joined, info, list(features), label)

    def _rows(self, info: FeatureViewInfo, pins: dict[str, int] | None = None) -> ViewRows:
        return read_view_rows(info, self._data, self._functions, self._cache, pins)

    def _entity_rows(self, entities: pd.DataFrame | pa.Table | str) -> tuple[pa.Table, str]:
        if isinstance(entities, str):
            version = self._data.version(entities)
            return self._data.read_arrow(f"{version.table}@{version.version}"), version.ref
        if isinstance(entities, pd.DataFrame):
            entities = pa.Table.from_pandas(entities, preserve_index=False)
        if not isinstance(entities, pa.Table):
            raise InvalidInput("entity rows are a pandas DataFrame, a pyarrow Table or a table ref")
        return entities, f"frame:{frame_digest(entities)}"

    def _store(self, table: pa.Table, name: str | None, used: list[str], views: dict[str, FeatureViewInfo],
               rows: dict[str, ViewRows], features: list[str], label: str | None, timestamp: str,
               entity_source: str) -> TrainingSetInfo:
        name = check_name(name or f"{'_'.join(sorted(used))}_training", "training set name")
        result = self._data.ingest(table, name, mode="overwrite", reason="training set")
        version = result.version
        view_versions = {v: views[v].version for v in used}
        source_versions = {t: n for r in rows.values() for t, n in r.source_versions.items()}
        info = TrainingSetInfo(name, version.version, version.table, features, label, timestamp, entity_source,
                               view_versions, source_versions, table.num_rows, datetime.now(UTC), self._user)
        edges = [Edge(views[v].ref, info.ref, "features") for v in used]
        edges += [Edge(f"table:{t}@{n}", info.ref, "source") for t, n in source_versions.items()]
        edges.append(Edge(info.ref, version.ref, "stored_as"))
        if entity_source.startswith("table:"):
            edges.append(Edge(entity_source, info.ref, "entities"))
        with self._db.transaction() as conn:
            conn.execute(training_sets.insert().values(
                name=name, version=info.version, table_name=info.table, features=features, label=label,
                timestamp_column=timestamp, entity_source=entity_source, view_versions=view_versions,
                source_versions=source_versions, rows=info.rows, created_at=info.created_at,
                created_by=self._user))
            self._lineage.add(conn, edges)
            self._audit.record(conn, actor=self._user, action="features.training_set", target=info.ref,
                               details={"features": features, "rows": info.rows})
        return info

    def training_sets(self, name: str | None = None) -> list[TrainingSetInfo]:
        query = sa.select(training_sets).order_by(training_sets.c.name, training_sets.c.version.desc())
        if name is not None:
            query = query.where(training_sets.c.name == name)
        with self._db.read() as conn:
            return [_training_set(r) for r in conn.execute(query)]

    def get_training_set(self, ref: str) -> TrainingSetInfo:
        parsed = parse_ref(ref, kind="trainingset")
        found = self.training_sets(parsed.name)
        if not found:
            raise NotFound(f"unknown training set {parsed.name!r}; `keel features training-sets` lists them")
        if parsed.version is None:
            return found[0]
        for info in found:
            if info.version == parsed.version:
                return info
        raise NotFound(f"training set {parsed.name!r} has no version {parsed.version}")

    def reproduce(self, ref: str) -> TrainingSet:
        """A stored training set's rows, exactly as stored (its table version), whatever changed since."""
        info = self.get_training_set(ref)
        return TrainingSet(self._data.read_arrow(f"{info.table}@{info.version}"), info, info.features, info.label)


def _training_set(row: Any) -> TrainingSetInfo:
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    return TrainingSetInfo(row.name, row.version, row.table_name, list(row.features), row.label, row.timestamp_column,
                           row.entity_source, dict(row.view_versions), dict(row.source_versions), row.rows, created,
                           row.created_by)
