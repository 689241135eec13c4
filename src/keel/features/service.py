"""``ws.features``: apply definitions, compute point-in-time training sets, materialise and serve online
values, and say who consumes each feature. The CLI, REST API and UI call exactly these methods."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from keel.audit import AuditLog
from keel.data.service import DataService
from keel.errors import InvalidInput, NotFound
from keel.features.consumers import consumers_of, summary
from keel.features.definitions import collect, entity_json, fingerprint, load_module, view_json
from keel.features.frames import ViewRows, check_shape, read_view_rows, source_tables
from keel.features.model import ApplyPlan, FeatureViewInfo, OnDemandFeatureView, TrainingSet, TrainingSetInfo
from keel.features.online import (
    OnlineResult,
    SkewReport,
    as_utc,
    decode_value,
    encoded_batches,
    entity_key,
    equal,
    latest_per_entity,
    namespace,
    sample_keys,
)
from keel.features.pit import ViewInput, point_in_time_join
from keel.features.registry import Registry
from keel.features.requests import resolve_features
from keel.features.shared import SharedState
from keel.features.training import check_entities, check_key_types, frame_digest, join_features, run_on_demand
from keel.lineage import Edge, LineageService
from keel.refs import check_name, parse_ref
from keel.storage.db import Database
from keel.storage.online import OnlineStore
from keel.storage.schema import feature_materializations, training_sets

__all__ = ["CHUNK_ROWS", "FeatureService"]

CHUNK_ROWS = 250_000  # entity rows joined (and written) at a time: a training set's memory is one chunk


class FeatureService:
    def __init__(self, db: Database, data: DataService, lineage: LineageService, audit: AuditLog, user: str,
                 root: Path, shared: SharedState, online_store: Callable[[], OnlineStore]) -> None:
        self._db, self._data, self._lineage, self._audit, self._user = db, data, lineage, audit, user
        self._root, self._shared, self._online_store = root, shared, online_store
        self._cache, self._functions = shared.frames, shared.functions
        self.registry = Registry(db, lineage, audit, user)

    # -- definitions ---------------------------------------------------------------------------------------

    def apply(self, definitions: Iterable[Any] | ModuleType | str | Path | None = None, *, prune: bool = False,
              dry_run: bool = False) -> ApplyPlan:
        """Validate ``definitions`` (objects, a module, or a file; default: the workspace's features.py) and
        store a new version of each view that changed. ``prune`` removes stored views not among them (what
        applying a whole module does from the CLI)."""
        if definitions is None or isinstance(definitions, str | Path):
            path = Path(definitions) if definitions is not None else self._root / "features.py"
            path = path if path.is_absolute() else self._root / path
            if not path.is_file():
                raise InvalidInput(f"no definitions file at {path}")
            definitions = load_module(path)
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
        definitions = {name: view_json(view, entities) for name, view in found.views.items()}
        readable = {**{n: v.definition for n, v in self.registry.latest().items()}, **definitions}
        for name, definition in definitions.items():
            if definition["kind"] == "batch":
                self._check_source(definition)
            else:
                self._check_on_demand(definition, readable)
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
        self._shared.changed()
        versions.update({n: latest[n].version for n in unchanged})
        return ApplyPlan(added, changed, removed, unchanged, entities_added, entities_changed, versions, True)

    def _check_source(self, definition: dict[str, Any]) -> None:
        """The source must be readable and give every declared column with a fitting type (SQL is run on
        the tables with no rows; a pandas transform only when rows are computed)."""
        info = FeatureViewInfo(definition["name"], 0, "batch", definition, "", datetime.now(UTC), self._user)
        check_shape(info, self._data)

    def _check_on_demand(self, definition: dict[str, Any], views: dict[str, dict[str, Any]]) -> None:
        """An on-demand view reads features of batch views that exist (applied now or before)."""
        for source in definition["sources"]:
            view, _, feature = source.partition(":")
            found = views.get(view)
            if found is None:
                raise InvalidInput(f"on-demand view {definition['name']!r} reads {source}, but there is no feature "
                                   f"view {view!r}")
            if found["kind"] != "batch":
                raise InvalidInput(f"on-demand view {definition['name']!r} reads {source}, another on-demand view; "
                                   "read batch views only")
            if feature not in [f["name"] for f in found["features"]]:
                raise InvalidInput(f"on-demand view {definition['name']!r} reads {source}, but {view!r} has no "
                                   f"feature {feature!r}")

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
        if isinstance(features, str) or not isinstance(features, list | tuple):
            raise InvalidInput(f"features must be a list of 'view:feature' names, e.g. [{features!r}]")
        views = self.registry.latest()
        plan = resolve_features(list(features), views, full_names=full_names)
        entity_table, entity_ref = self._entity_rows(entities)
        given = entity_table
        keys = list(dict.fromkeys(k for v in plan.batch for k in views[v].join_keys))
        entity_table = check_entities(entity_table, timestamp, keys)
        if label is not None and label not in entity_table.column_names:
            raise InvalidInput(f"label {label!r} is not a column of the entity rows")
        clash = [c for c in plan.order if c in entity_table.column_names]
        if clash:
            raise InvalidInput(f"the entity rows already have column(s) {', '.join(clash)}, the name(s) of requested "
                               "features; rename them, or ask with full_names=True (columns view__feature)")
        if store and entity_table.num_rows == 0:
            raise InvalidInput("the entity rows are empty: a stored training set needs at least one row")
        rows = {view: self._rows(views[view]) for view in plan.batch}
        check_key_types(entity_table, [views[v] for v in plan.batch], rows)

        def joined(part: pa.Table) -> pa.Table:
            out = join_features(part, timestamp, plan, rows)
            if plan.on_demand or plan.hidden:
                out = pa.Table.from_pandas(run_on_demand(out.to_pandas(), plan, views, self._functions),
                                           preserve_index=False)
            return out

        qualified = [f"{view}:{feature}" for view, wanted in [*plan.batch.items(), *plan.on_demand.items()]
                     for feature, column in wanted if column not in plan.hidden]
        if entity_table.num_rows <= CHUNK_ROWS:
            table = joined(entity_table)
            info = self._store([table], name, plan.views, views, rows, qualified, label, timestamp,
                               entity_ref or f"frame:{frame_digest(given)}") if store else None
            return TrainingSet(table, info, list(features), label)
        chunks = (joined(entity_table.slice(start, CHUNK_ROWS))
                  for start in range(0, entity_table.num_rows, CHUNK_ROWS))
        if not store:
            return TrainingSet(pa.concat_tables(chunks), None, list(features), label)
        info = self._store(chunks, name, plan.views, views, rows, qualified, label, timestamp,
                           entity_ref or f"frame:{frame_digest(given)}")
        return TrainingSet(lambda: self._data.read_arrow(f"{info.table}@{info.version}"), info, list(features), label)

    def _rows(self, info: FeatureViewInfo, pins: dict[str, int] | None = None) -> ViewRows:
        return read_view_rows(info, self._data, self._functions, self._cache, pins)

    def _entity_rows(self, entities: pd.DataFrame | pa.Table | str) -> tuple[pa.Table, str | None]:
        """The entity rows, and their table version's ref (None for a frame: its digest is computed only when
        the training set is stored, the one place that records it)."""
        if isinstance(entities, str):
            version = self._data.version(entities)
            return self._data.read_arrow(f"{version.table}@{version.version}"), version.ref
        if isinstance(entities, pd.DataFrame):
            entities = pa.Table.from_pandas(entities, preserve_index=False)
        if not isinstance(entities, pa.Table):
            raise InvalidInput("entity rows are a pandas DataFrame, a pyarrow Table or a table ref")
        return entities, None

    def _store(self, batches: Iterable[pa.Table], name: str | None, used: list[str],
               views: dict[str, FeatureViewInfo], rows: dict[str, ViewRows], features: list[str], label: str | None,
               timestamp: str, entity_source: str) -> TrainingSetInfo:
        """Write the rows (a chunk at a time: one chunk in memory) as a new version of table ``name``, and
        record exactly what they were computed from."""
        name = check_name(name or f"{'_'.join(sorted(used))}_training", "training set name")
        if self._data.catalog.dataset(name) is not None and not self.training_sets(name):
            raise InvalidInput(f"table {name!r} exists and is not a training set; name the training set otherwise")
        keys = self._data.catalog.dataset(entity_source[6:].split("@")[0]).key_columns \
            if entity_source.startswith("table:") else None  # the entity table's keys stay keys
        version = self._data.write_batches(batches, name, mode="overwrite", key=keys or None,
                                           schema_change="overwrite", source_name="training set",
                                           reason="training set")
        view_versions = {v: views[v].version for v in used}
        source_versions = {t: n for r in rows.values() for t, n in r.source_versions.items()}
        info = TrainingSetInfo(name, version.version, version.table, features, label, timestamp, entity_source,
                               view_versions, source_versions, version.row_count, datetime.now(UTC), self._user)
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

    def consumers(self, view: str) -> dict[str, dict[str, list[str]]]:
        """feature -> {kind -> refs}: the training sets, runs, models (and later deployments and jobs) that
        read each feature of ``view``, through any of its versions."""
        return consumers_of(self.versions(view), self.training_sets(), self._lineage)

    def show(self, view: str) -> dict[str, Any]:
        """A view as its page shows it: schema, versions, source tables, freshness, and consumers per feature."""
        info = self.get(view)
        consumers = self.consumers(info.name)
        result: dict[str, Any] = {"name": info.name, "version": info.version, "kind": info.kind, "ref": info.ref,
                                  "definition": info.definition, "created_at": info.created_at,
                                  "created_by": info.created_by,
                                  "versions": [{"version": v.version, "created_at": v.created_at,
                                                "created_by": v.created_by, "fingerprint": v.fingerprint[:12]}
                                               for v in self.versions(info.name)]}
        features = []
        for feature in info.features:
            used = consumers.get(feature["name"], {})
            features.append({**feature, "owner": info.definition.get("owner"), "consumers": used,
                             **summary(used)})
        result["features"] = features
        if info.kind == "batch":
            result["sources"] = {t: self._data.version(t).version for t in source_tables(info)}
            runs = self.materializations(info.name)
            mine = [m for m in runs if m["version"] == info.version]
            result["freshness"] = {
                "materialized_until": _utc(mine[0]["end_ts"]) if mine else None,
                "materialized_at": _utc(mine[0]["at"]) if mine else None,
                "latest_event": self._latest_event(info)}
        return result

    def _latest_event(self, info: FeatureViewInfo) -> datetime | None:
        try:
            rows = self._rows(info).rows
        except (InvalidInput, NotFound):
            return None
        latest = pc.max(rows[info.definition["timestamp"]]).as_py() if rows.num_rows else None
        return latest

    def reproduce(self, ref: str) -> TrainingSet:
        """A stored training set's rows, exactly as stored (its table version), whatever changed since."""
        info = self.get_training_set(ref)
        return TrainingSet(self._data.read_arrow(f"{info.table}@{info.version}"), info, info.features, info.label)


    # -- online ------------------------------------------------------------------------------------------

    def materialize(self, views: Iterable[str] | None = None, *, start: datetime | str | None = None,
                    end: datetime | str | None = None, incremental: bool = False) -> list[dict[str, Any]]:
        """Write each view's latest value per entity in [start, end) (end: now) into the online store, in
        batches; ``incremental`` starts where the last materialisation of that view version ended."""
        start, end = as_utc(start, "--start"), as_utc(end, "--end") or datetime.now(UTC)
        if incremental and start is not None:
            raise InvalidInput("--incremental starts where the last materialisation ended; drop --start")
        infos = self._batch_views(views)
        store = self._online_store()
        done = []
        for info in infos:
            rows = self._rows(info)
            begin = start
            if incremental:
                last = self._last_materialization(info, store.url)
                # Same sources: only the event-time window since the last run can change anything. New source
                # versions may hold late rows of any event time: the latest per entity is recomputed (the store
                # keeps the newer of what it has and what it gets, so nothing is ever rolled back).
                if last is not None and last["source_versions"] == rows.source_versions:
                    begin = _utc(last["end_ts"])
            if begin is not None and begin >= end:
                raise InvalidInput(f"nothing to materialise for {info.name!r}: the window starts at "
                                   f"{begin.isoformat()}, not before its end {end.isoformat()}")
            latest = latest_per_entity(info, rows.rows, begin, end)
            written = 0
            for keys, stamps, payloads in encoded_batches(info, latest):
                written += store.write(namespace(info, self._shared.registry), keys, stamps, payloads)
            record = {"view": info.name, "version": info.version, "start_ts": begin, "end_ts": end,
                      "rows": latest.num_rows, "incremental": incremental, "source_versions": rows.source_versions,
                      "store": store.url, "at": datetime.now(UTC), "by": self._user}
            with self._db.transaction() as conn:
                conn.execute(feature_materializations.insert().values(**record))
                self._audit.record(conn, actor=self._user, action="features.materialize", target=info.ref,
                                   details={"rows": latest.num_rows, "written": written, "end": end.isoformat()})
            done.append({**record, "written": written})
        return done

    def _batch_views(self, views: Iterable[str] | None) -> list[FeatureViewInfo]:
        latest = self.registry.latest()
        if views is None or not list(views):
            return [v for v in latest.values() if v.kind == "batch"]
        out = []
        for name in views:
            info = self.get(name)
            if info.kind != "batch":
                raise InvalidInput(f"{name!r} is an on-demand view: it is computed at request time, not materialised")
            out.append(info)
        return out

    def _last_materialization(self, info: FeatureViewInfo, store: str) -> dict[str, Any] | None:
        with self._db.read() as conn:
            found = conn.execute(sa.select(feature_materializations).where(
                feature_materializations.c.view == info.name, feature_materializations.c.version == info.version,
                feature_materializations.c.store == store).order_by(feature_materializations.c.id.desc())).first()
        return None if found is None else dict(found._mapping)

    def materializations(self, view: str) -> list[dict[str, Any]]:
        with self._db.read() as conn:
            rows = conn.execute(sa.select(feature_materializations).where(feature_materializations.c.view == view)
                                .order_by(feature_materializations.c.id.desc())).all()
        return [{str(k): v for k, v in r._mapping.items()} for r in rows]

    def online(self, features: list[str], entity_rows: list[dict[str, Any]], *,
               full_names: bool = False, versions: Mapping[str, int] | None = None) -> OnlineResult:
        """The online value of each feature for each entity row, in the order asked, each with its status:
        ``present``, ``missing`` (never materialised for that entity) or ``expired`` (older than the ttl).
        ``versions`` (view -> version) reads those view versions instead of the latest: a model trained on a
        training set reads what it was trained on (``missing`` if that version was never materialised)."""
        if not isinstance(entity_rows, list) or not all(isinstance(r, dict) for r in entity_rows):
            raise InvalidInput("entity_rows must be a list of {join key: value} objects")
        views = self._shared.latest(self.registry.latest)
        if versions:
            views = self._shared.pinned(views, versions, self.registry.version)
        plan = self._shared.plan(tuple(features), full_names, views)
        store = self._online_store()
        now_us = int(time.time() * 1_000_000)
        values: dict[str, list[Any]] = {}
        statuses: dict[str, list[str]] = {}
        stamps: dict[str, list[datetime | None]] = {}
        for view, wanted in plan.batch.items():
            self._shared.serving(views[view]).lookup(store, entity_rows, wanted, now_us, values, statuses, stamps)
        if plan.on_demand:
            frame = pd.DataFrame(entity_rows)
            for column, column_values in values.items():
                frame[column] = column_values
            frame = run_on_demand(frame, plan, views, self._functions)
            for view, wanted in plan.on_demand.items():
                status = _combined_status([statuses[plan.column_of(source)] for source in
                                           views[view].definition["sources"]], len(entity_rows))
                for _feature, column in wanted:  # a value computed from a missing or expired input is that too
                    values[column] = [v if s == "present" else None for v, s in
                                      zip(frame[column].astype(object).where(frame[column].notna(), None), status,
                                          strict=True)]
                    statuses[column], stamps[column] = status, [None] * len(entity_rows)
        for hidden in plan.hidden:
            values.pop(hidden, None), statuses.pop(hidden, None), stamps.pop(hidden, None)
        return OnlineResult(entity_rows, plan.order, {c: values[c] for c in plan.order},
                            {c: statuses[c] for c in plan.order}, {c: stamps[c] for c in plan.order})

    def check_skew(self, view: str, *, sample: int = 1000, seed: int = 0) -> SkewReport:
        """Online values against the offline point-in-time values at the last materialisation's end, for up to
        ``sample`` entities (and a few that were never materialised): every difference is reported."""
        info = self.get(view)
        if info.kind != "batch":
            raise InvalidInput(f"{view!r} is an on-demand view: nothing of it is stored online")
        store = self._online_store()
        runs = [m for m in self.materializations(info.name) if m["version"] == info.version and m["store"] == store.url]
        if not runs:
            raise InvalidInput(f"feature view {view!r} (version {info.version}) was never materialised to "
                               f"{store.url}; run `keel features materialize {view}` first")
        until = max(_utc(m["end_ts"]) for m in runs)
        starts = [m["start_ts"] for m in runs]
        since = None if any(s is None for s in starts) else min(_utc(s) for s in starts)
        pins = {t: int(v) for t, v in runs[0]["source_versions"].items()}
        rows = self._rows(info, pins).rows
        ts = info.definition["timestamp"]
        if since is not None:
            rows = rows.filter(pc.greater_equal(rows[ts], pa.scalar(since, rows.schema.field(ts).type)))
        keys = info.join_keys
        distinct = rows.select(keys).group_by(keys).aggregate([])
        chosen = sample_keys(list(range(distinct.num_rows)), sample, seed)
        entities = distinct.take(pa.array(chosen, pa.int64())) if chosen else distinct.slice(0, 0)
        absent = _absent_entities(distinct, keys, 3)
        if absent is not None:
            entities = pa.concat_tables([entities, absent.cast(entities.schema)])
        at = pa.array([until - timedelta(microseconds=1)] * entities.num_rows, pa.timestamp("us", tz="UTC"))
        probe = entities.append_column("__keel_at", at)
        names = [f["name"] for f in info.features]
        offline = point_in_time_join(probe, "__keel_at", [ViewInput(info.name, rows, keys, ts, [*names, ts],
                                                                    [*names, "__keel_event_ts"])])
        entity_rows = offline.select(keys).to_pylist()
        found = store.read(namespace(info, self._shared.registry), [entity_key(info, r) for r in entity_rows])
        offline_values = list(zip(*(offline[n].to_pylist() for n in names), strict=True))
        matched = offline["__keel_event_ts"].to_pylist()
        mismatches = []
        for i, hit in enumerate(found):
            online = decode_value(hit[1], info) if hit is not None else None
            expected = list(offline_values[i])
            if online is None and matched[i] is None:
                continue  # neither side has the entity
            if online is None or not all(equal(a, b) for a, b in zip(online, expected, strict=True)):
                mismatches.append({"entity": entity_rows[i], "online": online, "offline": expected})
        return SkewReport(info.name, info.version, until, len(found), mismatches)


def _combined_status(sources: list[list[str]], n: int) -> list[str]:
    """Per row, the worst of its inputs' statuses: missing, then expired, then present."""
    rank = {"present": 0, "expired": 1, "missing": 2}
    return [max((s[i] for s in sources), key=rank.__getitem__, default="present") for i in range(n)]


def _absent_entities(distinct: pa.Table, keys: list[str], n: int) -> pa.Table | None:
    """A few entities that cannot exist in the view (integer keys past the largest; strings nobody uses)."""
    columns = {}
    for key in keys:
        kind = distinct.schema.field(key).type
        if pa.types.is_integer(kind):
            top = pc.max(distinct[key]).as_py() if distinct.num_rows else 0
            columns[key] = pa.array([(top or 0) + 1 + i for i in range(n)], kind)
        elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
            columns[key] = pa.array([f"__keel_absent_{i}" for i in range(n)], kind)
        else:
            return None
    return pa.table(columns)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _training_set(row: Any) -> TrainingSetInfo:
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    return TrainingSetInfo(row.name, row.version, row.table_name, list(row.features), row.label, row.timestamp_column,
                           row.entity_source, dict(row.view_versions), dict(row.source_versions), row.rows, created,
                           row.created_by)
