"""The feature registry's rows: entities, views and their versions, written in one transaction per apply."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from keel.audit import AuditLog
from keel.errors import NotFound
from keel.features.model import FeatureViewInfo
from keel.lineage import Edge, LineageService
from keel.storage.db import Database
from keel.storage.schema import feature_entities, feature_view_versions, feature_views

__all__ = ["Registry"]


class Registry:
    def __init__(self, db: Database, lineage: LineageService, audit: AuditLog, user: str) -> None:
        self._db, self._lineage, self._audit, self._user = db, lineage, audit, user

    def entities(self) -> dict[str, dict[str, Any]]:
        with self._db.read() as conn:
            rows = conn.execute(sa.select(feature_entities)).all()
        return {r.name: {"name": r.name, "join_keys": list(r.join_keys), "description": r.description,
                         "fingerprint": r.fingerprint} for r in rows}

    def latest(self, include_removed: bool = False) -> dict[str, FeatureViewInfo]:
        """Every view's latest version, by name."""
        query = sa.select(feature_view_versions).join(
            feature_views, sa.and_(feature_views.c.name == feature_view_versions.c.view,
                                   feature_views.c.latest_version == feature_view_versions.c.version))
        if not include_removed:
            query = query.where(feature_views.c.removed_at.is_(None))
        with self._db.read() as conn:
            return {r.view: _info(r) for r in conn.execute(query.order_by(feature_view_versions.c.view))}

    def version(self, name: str, version: int | None = None) -> FeatureViewInfo:
        with self._db.read() as conn:
            head = conn.execute(sa.select(feature_views).where(feature_views.c.name == name)).first()
            if head is None or (version is None and head.removed_at is not None):
                known = sorted(self.latest())
                raise NotFound(f"unknown feature view {name!r}; known views: {', '.join(known) or 'none'} "
                               "(`keel features list`)")
            number = head.latest_version if version is None else version
            row = conn.execute(sa.select(feature_view_versions).where(
                feature_view_versions.c.view == name, feature_view_versions.c.version == number)).first()
        if row is None:
            raise NotFound(f"feature view {name!r} has no version {number} (versions 1..{head.latest_version})")
        return _info(row)

    def versions(self, name: str) -> list[FeatureViewInfo]:
        self.version(name)  # unknown -> NotFound
        with self._db.read() as conn:
            rows = conn.execute(sa.select(feature_view_versions).where(feature_view_versions.c.view == name)
                                .order_by(feature_view_versions.c.version.desc())).all()
        return [_info(r) for r in rows]

    def store(self, entities: list[dict[str, Any]], views: list[tuple[dict[str, Any], str]],
              removed: list[str]) -> dict[str, int]:
        """Upsert ``entities``, add a version of each ``(definition, fingerprint)``, mark ``removed``; one
        transaction. Returns view -> new version."""
        now = datetime.now(UTC)
        versions: dict[str, int] = {}
        with self._db.transaction() as conn:
            for entity in entities:
                values = {"join_keys": entity["join_keys"], "description": entity["description"],
                          "fingerprint": entity["fingerprint"], "updated_at": now, "updated_by": self._user}
                updated = conn.execute(feature_entities.update().where(feature_entities.c.name == entity["name"])
                                       .values(**values)).rowcount
                if not updated:
                    conn.execute(feature_entities.insert().values(name=entity["name"], **values))
                self._audit.record(conn, actor=self._user, action="features.entity", target=f"entity:{entity['name']}",
                                   details={"join_keys": entity["join_keys"]})
            heads = {r.name: r for r in conn.execute(sa.select(feature_views).where(
                feature_views.c.name.in_([d["name"] for d, _ in views] + removed))).all()}
            rows, edges = [], []
            for definition, print_ in views:
                name = definition["name"]
                head = heads.get(name)
                if head is None:
                    conn.execute(feature_views.insert().values(name=name, latest_version=1, kind=definition["kind"],
                                                               created_at=now, created_by=self._user))
                    number = 1
                else:
                    number = head.latest_version + 1
                    conn.execute(feature_views.update().where(feature_views.c.name == name)
                                 .values(latest_version=number, kind=definition["kind"], removed_at=None))
                versions[name] = number
                rows.append({"view": name, "version": number, "kind": definition["kind"], "definition": definition,
                             "fingerprint": print_, "created_at": now, "created_by": self._user})
                if head is not None:
                    edges.append(Edge(f"features:{name}@{head.latest_version}", f"features:{name}@{number}",
                                      "previous_version"))
            if rows:
                conn.execute(feature_view_versions.insert(), rows)
                self._lineage.add(conn, edges)
                self._audit.record(conn, actor=self._user, action="features.apply", target="features",
                                   details={"versions": versions, "removed": removed})
            if removed:
                conn.execute(feature_views.update().where(feature_views.c.name.in_(removed)).values(removed_at=now))
                for name in removed:
                    self._audit.record(conn, actor=self._user, action="features.remove", target=f"features:{name}")
        return versions


def _info(row: Any) -> FeatureViewInfo:
    return FeatureViewInfo(row.view, row.version, row.kind, dict(row.definition), row.fingerprint,
                           _utc(row.created_at), row.created_by)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
