"""The lineage graph: every keel object is a ref, and every "made from" is an edge between refs.

Capabilities add edges inside the same transaction that creates the object, so an object never
exists without its lineage. Walking is breadth-first, one query per level, in both directions.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from keel.storage.db import Database, Prepared, Writes, dialect_insert, insert_ignoring_duplicates
from keel.storage.schema import lineage_edges

__all__ = ["Edge", "LineageNode", "LineageService"]


@dataclass(frozen=True, slots=True)
class Edge:
    src: str
    dst: str
    relation: str


@dataclass
class LineageNode:
    """One ref in a walked tree, with the relation that led to it from its parent."""

    ref: str
    relation: str | None = None
    children: list[LineageNode] = field(default_factory=list)

    def refs(self) -> list[str]:
        """Every ref in the tree below (and including) this node, depth first."""
        out = [self.ref]
        for child in self.children:
            out.extend(child.refs())
        return out

    def to_dict(self) -> dict:
        return {"ref": self.ref, "relation": self.relation, "children": [c.to_dict() for c in self.children]}


@functools.cache
def _insert_edges(dialect: str) -> Prepared:
    insert = dialect_insert(dialect)(lineage_edges).on_conflict_do_nothing()
    return Prepared(insert, ("src", "dst", "relation", "created_at"))


class LineageService:
    """Records and walks lineage edges (``ws.lineage``)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, conn: Connection | Writes, edges: Iterable[Edge]) -> None:
        """Add edges within the caller's transaction (``db.transaction()`` or ``db.writes()``); an edge
        that exists already is kept as is."""
        now = datetime.now(UTC)
        unique = dict.fromkeys((e.src, e.dst, e.relation) for e in edges)
        if isinstance(conn, Writes):
            conn.run(_insert_edges(conn.dialect.name), [(src, dst, relation, now) for src, dst, relation in unique])
            return
        insert_ignoring_duplicates(conn, lineage_edges, [
            {"src": src, "dst": dst, "relation": relation, "created_at": now} for src, dst, relation in unique
        ])

    def upstream(self, ref: str, depth: int | None = None) -> LineageNode:
        """What ``ref`` was made from, recursively."""
        return self._walk(ref, lineage_edges.c.dst, lineage_edges.c.src, depth)

    def downstream(self, ref: str, depth: int | None = None) -> LineageNode:
        """What was made from ``ref``, recursively."""
        return self._walk(ref, lineage_edges.c.src, lineage_edges.c.dst, depth)

    def edges(self, ref: str) -> list[Edge]:
        """Edges touching ``ref`` directly, in either direction."""
        with self._db.read() as conn:
            rows = conn.execute(
                sa.select(lineage_edges.c.src, lineage_edges.c.dst, lineage_edges.c.relation)
                .where(sa.or_(lineage_edges.c.src == ref, lineage_edges.c.dst == ref))
                .order_by(lineage_edges.c.id)
            )
            return [Edge(r.src, r.dst, r.relation) for r in rows]

    def sources_among(self, refs: Iterable[str], exclude_relations: Iterable[str] = ()) -> set[str]:
        """Which of ``refs`` something else was made from (used by retention: keep those)."""
        refs = list(refs)
        if not refs:
            return set()
        query = sa.select(lineage_edges.c.src).where(lineage_edges.c.src.in_(refs))
        excluded = list(exclude_relations)
        if excluded:
            query = query.where(lineage_edges.c.relation.not_in(excluded))
        with self._db.read() as conn:
            return {row.src for row in conn.execute(query.distinct())}

    def _walk(self, ref: str, near: sa.Column, far: sa.Column, depth: int | None) -> LineageNode:
        root = LineageNode(ref)
        frontier = {ref: [root]}
        seen = {ref}
        level = 0
        with self._db.read() as conn:
            while frontier and (depth is None or level < depth):
                rows = conn.execute(
                    sa.select(near.label("near"), far.label("far"), lineage_edges.c.relation)
                    .where(near.in_(list(frontier)))
                    .order_by(lineage_edges.c.id)
                ).all()
                next_frontier: dict[str, list[LineageNode]] = {}
                for row in rows:
                    for parent in frontier[row.near]:
                        child = LineageNode(row.far, row.relation)
                        parent.children.append(child)
                        if row.far not in seen:
                            next_frontier.setdefault(row.far, []).append(child)
                seen.update(next_frontier)
                frontier = next_frontier
                level += 1
        return root
