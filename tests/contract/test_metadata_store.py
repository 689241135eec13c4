"""One contract for the metadata store, run against every backend: SQLite (a tmp file) and PostgreSQL.

Covers the Database unit of work (migrations, transactions, snapshots, UTC and JSON round trips,
retry on unique violations), the generic lineage and audit tables built on it, and the atomic
allocation of version numbers and row ids under concurrency.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.exc import IntegrityError, StatementError

import keel
from keel.audit import AuditLog
from keel.data.catalog import Catalog
from keel.lineage import Edge, LineageService
from keel.storage.db import MIGRATIONS, Database, is_unique_violation
from keel.storage.schema import audit_log, contracts, datasets, lineage_edges, metadata, splits
from keel.storage.tables import TableStore

THREADS = 4


def alembic_head() -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def current_revision(db: Database) -> str | None:
    with db.read() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of an empty metadata database on the backend under test."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'meta' / 'keel.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """A migrated Database on the backend under test."""
    database = Database(db_url)
    database.migrate()
    yield database
    database.dispose()


def run_threads(count: int, target: Callable[[int], Any]) -> list[Any]:
    """Run ``target(i)`` in ``count`` threads started together; re-raise the first failure."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = target(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if errors:
        raise errors[0]
    return results


def add_audit(conn: sa.Connection, target: str = "table:t@0", action: str = "test", **values: Any) -> None:
    row = {"at": datetime.now(UTC), "actor": "tester", "action": action, "target": target, "reason": None,
           "details": {}}
    row.update(values)
    conn.execute(audit_log.insert().values(**row))


def audit_count(db: Database) -> int:
    with db.read() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(audit_log)).scalar_one()


# -- migrations ------------------------------------------------------------------------------------


def test_migrate_creates_every_table_and_stamps_head(db: Database) -> None:
    inspector = sa.inspect(db.engine)
    tables = set(inspector.get_table_names())
    assert set(metadata.tables) <= tables
    assert "alembic_version" in tables
    for name, table in metadata.tables.items():
        columns = {c["name"] for c in inspector.get_columns(name)}
        assert columns == {c.name for c in table.columns}, name
    assert current_revision(db) == alembic_head()


def test_migrate_twice_is_a_no_op(db: Database) -> None:
    with db.transaction() as conn:
        add_audit(conn, reason="kept")
    db.migrate()
    again = Database(db.url)
    try:
        again.migrate()
    finally:
        again.dispose()
    assert current_revision(db) == alembic_head()
    with db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(sa.table("alembic_version"))).scalar_one() == 1
        assert conn.execute(sa.select(audit_log.c.reason)).scalars().all() == ["kept"]


def test_a_fresh_database_has_no_revision_until_migrated(db_url: str) -> None:
    database = Database(db_url)
    try:
        assert current_revision(database) is None
        database.migrate()
        assert current_revision(database) == alembic_head()
    finally:
        database.dispose()


# -- unit of work ----------------------------------------------------------------------------------


def test_transaction_commits_everything_together(db: Database) -> None:
    with db.transaction() as conn:
        add_audit(conn, target="a")
        add_audit(conn, target="b")
    with db.read() as conn:
        assert sorted(conn.execute(sa.select(audit_log.c.target)).scalars()) == ["a", "b"]


def test_transaction_rolls_back_entirely_on_exception(db: Database) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom), db.transaction() as conn:
        add_audit(conn, target="a")
        add_audit(conn, target="b")
        raise Boom
    assert audit_count(db) == 0
    with db.transaction() as conn:  # the store is usable afterwards
        add_audit(conn, target="c")
    assert audit_count(db) == 1


def test_transaction_rolls_back_on_a_failing_statement(db: Database) -> None:
    with pytest.raises(IntegrityError), db.transaction() as conn:
        add_audit(conn, target="a")
        conn.execute(lineage_edges.insert(), [
            {"src": "x", "dst": "y", "relation": "r", "created_at": datetime.now(UTC)},
            {"src": "x", "dst": "y", "relation": "r", "created_at": datetime.now(UTC)},
        ])
    assert audit_count(db) == 0
    with db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(lineage_edges)).scalar_one() == 0


def test_read_sees_committed_data_from_another_connection_and_process_object(db: Database) -> None:
    other = Database(db.url)
    try:
        with db.transaction() as conn:
            add_audit(conn, target="committed")
        with other.read() as conn:
            assert conn.execute(sa.select(audit_log.c.target)).scalars().all() == ["committed"]
        with db.read() as conn:
            assert conn.execute(sa.select(audit_log.c.target)).scalars().all() == ["committed"]
    finally:
        other.dispose()


def test_read_does_not_see_uncommitted_writes(db: Database) -> None:
    with db.transaction() as conn:
        add_audit(conn, target="pending")
        seen = run_threads(1, lambda _: audit_count(db))[0]  # another connection, while we hold the write
        assert seen == 0
    assert audit_count(db) == 1


def test_utc_datetimes_round_trip_aware_utc(db: Database) -> None:
    plus_five = timezone(timedelta(hours=5, minutes=30))
    moments = [
        datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC),
        datetime(2024, 5, 1, 23, 59, 59, 999999, tzinfo=plus_five),  # 18:29:59Z the same day
        datetime(1999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-8))),  # next year in UTC
    ]
    with db.transaction() as conn:
        for i, moment in enumerate(moments):
            add_audit(conn, target=f"t{i}", at=moment)
    with db.read() as conn:
        stored = conn.execute(sa.select(audit_log.c.at).order_by(audit_log.c.id)).scalars().all()
    assert stored == moments  # the same instants
    for value in stored:
        assert value.tzinfo is not None and value.utcoffset() == timedelta(0)
    assert stored[2].year == 2000


def test_a_naive_datetime_is_refused(db: Database) -> None:
    with pytest.raises(StatementError, match="naive datetime"), db.transaction() as conn:
        add_audit(conn, at=datetime(2024, 5, 1, 12, 0))
    assert audit_count(db) == 0


def test_json_columns_round_trip(db: Database) -> None:
    details = {
        "int": 3, "big": 2**53, "float": 0.1, "neg": -1.5e-9, "bool": True, "none": None, "text": "naïve ✓ 価格",
        "list": [1, "two", [3.0, {"four": 4}], None], "nested": {"a": {"b": {"c": []}}}, "empty": {},
    }
    with db.transaction() as conn:
        add_audit(conn, details=details)
        conn.execute(datasets.insert().values(
            name="t", location="/x", created_at=datetime.now(UTC), created_by="me", partition_by=["a", "b"],
            time_column=None, key_columns=[], next_row_id=0))
    with db.read() as conn:
        assert conn.execute(sa.select(audit_log.c.details)).scalar_one() == details
        row = conn.execute(sa.select(datasets.c.partition_by, datasets.c.key_columns)).one()
    assert row.partition_by == ["a", "b"] and row.key_columns == []


# -- retrying --------------------------------------------------------------------------------------


def _contract_row(version: int, spec_hash: str = "h") -> dict[str, Any]:
    return {"table_name": "t", "version": version, "spec": {}, "spec_hash": spec_hash,
            "created_at": datetime.now(UTC), "created_by": "tester"}


def test_retrying_retries_a_unique_violation_and_keeps_no_partial_attempt(db: Database) -> None:
    attempts: list[int] = []

    def work(conn: sa.Connection) -> int:
        attempts.append(len(attempts))
        add_audit(conn, target=f"attempt-{len(attempts)}")
        number = (conn.execute(sa.select(sa.func.max(contracts.c.version))).scalar() or 0) + 1
        if len(attempts) == 1:  # a concurrent writer took our number first
            conn.execute(contracts.insert().values(**_contract_row(number, "theirs")))
        conn.execute(contracts.insert().values(**_contract_row(number, "ours")))
        return number

    assert db.retrying(work) == 1
    assert len(attempts) == 2
    with db.read() as conn:
        assert conn.execute(sa.select(contracts.c.version, contracts.c.spec_hash)).all() == [(1, "ours")]
        assert conn.execute(sa.select(audit_log.c.target)).scalars().all() == ["attempt-2"]


def test_retrying_does_not_retry_other_integrity_errors(db: Database) -> None:
    attempts: list[int] = []

    def work(conn: sa.Connection) -> None:
        attempts.append(1)
        conn.execute(contracts.insert().values(**{**_contract_row(1), "spec_hash": None}))  # NOT NULL

    with pytest.raises(IntegrityError) as info:
        db.retrying(work)
    assert not is_unique_violation(info.value)
    assert len(attempts) == 1


def test_retrying_gives_up_after_its_attempts(db: Database) -> None:
    with db.transaction() as conn:
        conn.execute(contracts.insert().values(**_contract_row(1)))
    attempts: list[int] = []

    def work(conn: sa.Connection) -> None:
        attempts.append(1)
        conn.execute(contracts.insert().values(**_contract_row(1)))

    with pytest.raises(IntegrityError) as info:
        db.retrying(work, attempts=3)
    assert is_unique_violation(info.value)
    assert len(attempts) == 3


@pytest.fixture
def ws_on(db: Database, tmp_path: Path) -> Iterator[Callable[[], keel.Workspace]]:
    """Open (many) Workspace objects on the backend under test; each has its own Database."""
    root = tmp_path / "ws"
    keel.init(root, metadata_url=db.url).close()
    opened: list[keel.Workspace] = []

    def open_one() -> keel.Workspace:
        workspace = keel.open(root, metadata_url=db.url)
        opened.append(workspace)
        return workspace

    yield open_one
    for workspace in opened:
        workspace.close()


def test_concurrent_contract_versions_are_distinct_and_contiguous(ws_on: Callable[[], keel.Workspace]) -> None:
    per_thread = 5
    workspaces = [ws_on() for _ in range(THREADS)]

    def set_contracts(i: int) -> list[int]:
        out = []
        for j in range(per_thread):
            spec = {"columns": {"x": {"dtype": "int64", "min": i * 100 + j}}}
            out.append(workspaces[i].data.set_contract("events", spec))
        return out

    numbers = [n for chunk in run_threads(THREADS, set_contracts) for n in chunk]
    assert sorted(numbers) == list(range(1, THREADS * per_thread + 1))
    with workspaces[0].db.read() as conn:
        rows = conn.execute(sa.select(contracts.c.version, contracts.c.spec).order_by(contracts.c.version)).all()
    assert [r.version for r in rows] == list(range(1, THREADS * per_thread + 1))
    assert len({r.spec["columns"]["x"]["min"] for r in rows}) == THREADS * per_thread
    assert len(workspaces[0].audit.list(action="data.contract.set")) == THREADS * per_thread


@pytest.mark.slow
def test_concurrent_split_versions_are_distinct_and_contiguous(ws_on: Callable[[], keel.Workspace]) -> None:
    first = ws_on()
    first.data.ingest(pa.table({"x": list(range(200)), "y": [i % 2 for i in range(200)]}), "points")
    workspaces = [ws_on() for _ in range(THREADS)]
    per_thread = 2

    def split(i: int) -> list[int]:
        return [workspaces[i].data.split("points", target="y", name="shared", seed=i * 10 + j).version
                for j in range(per_thread)]

    numbers = [n for chunk in run_threads(THREADS, split) for n in chunk]
    assert sorted(numbers) == list(range(1, THREADS * per_thread + 1))
    with first.db.read() as conn:
        stored = conn.execute(sa.select(splits.c.version).where(splits.c.name == "shared")).scalars().all()
    assert sorted(stored) == list(range(1, THREADS * per_thread + 1))


# -- lineage ---------------------------------------------------------------------------------------


@pytest.fixture
def lineage(db: Database) -> LineageService:
    return LineageService(db)


def add_edges(db: Database, lineage: LineageService, *edges: tuple[str, str, str]) -> None:
    with db.transaction() as conn:
        lineage.add(conn, [Edge(*e) for e in edges])


def shape(node: Any) -> tuple:
    """A comparable (ref, relation, sorted children) form of a walked tree."""
    return (node.ref, node.relation, tuple(sorted(shape(c) for c in node.children)))


def test_lineage_add_and_edges_in_both_directions(db: Database, lineage: LineageService) -> None:
    add_edges(db, lineage, ("file:a", "table:t@0", "ingested_from"), ("table:t@0", "split:s@1", "split_into"))
    assert lineage.edges("table:t@0") == [
        Edge("file:a", "table:t@0", "ingested_from"), Edge("table:t@0", "split:s@1", "split_into")]
    assert lineage.edges("file:a") == [Edge("file:a", "table:t@0", "ingested_from")]
    assert lineage.edges("nothing") == []
    with db.read() as conn:
        created = conn.execute(sa.select(lineage_edges.c.created_at)).scalars().all()
    assert all(c.utcoffset() == timedelta(0) for c in created)


def test_lineage_add_in_a_rolled_back_transaction_leaves_nothing(db: Database, lineage: LineageService) -> None:
    with pytest.raises(RuntimeError), db.transaction() as conn:
        lineage.add(conn, [Edge("a", "b", "r")])
        raise RuntimeError
    assert lineage.edges("a") == []


def test_lineage_existing_edges_are_ignored(db: Database, lineage: LineageService) -> None:
    add_edges(db, lineage, ("a", "b", "made_from"))
    add_edges(db, lineage, ("a", "b", "made_from"), ("a", "b", "other"), ("c", "b", "made_from"))
    add_edges(db, lineage)  # nothing to add
    assert lineage.edges("b") == [Edge("a", "b", "made_from"), Edge("a", "b", "other"), Edge("c", "b", "made_from")]


def test_lineage_duplicates_within_one_call_are_ignored(db: Database, lineage: LineageService) -> None:
    add_edges(db, lineage, ("a", "b", "made_from"), ("a", "b", "made_from"))
    assert lineage.edges("b") == [Edge("a", "b", "made_from")]


def test_lineage_multi_level_walks(db: Database, lineage: LineageService) -> None:
    add_edges(db, lineage,
              ("file:raw", "table:t@0", "ingested_from"),
              ("table:t@0", "table:t@1", "next_version"),
              ("file:more", "table:t@1", "ingested_from"),
              ("table:t@1", "split:s@1", "split_into"),
              ("split:s@1", "run:r1", "trained_on"),
              ("split:s@1", "run:r2", "trained_on"),
              ("run:r1", "model:m/1", "produced"))
    up = lineage.upstream("model:m/1")
    assert shape(up) == ("model:m/1", None, (
        ("run:r1", "produced", (
            ("split:s@1", "trained_on", (
                ("table:t@1", "split_into", (
                    ("file:more", "ingested_from", ()),
                    ("table:t@0", "next_version", (("file:raw", "ingested_from", ()),)),
                )),
            )),
        )),
    ))
    down = lineage.downstream("table:t@0")
    assert set(down.refs()) == {"table:t@0", "table:t@1", "split:s@1", "run:r1", "run:r2", "model:m/1"}
    assert down.to_dict()["children"][0]["ref"] == "table:t@1"
    assert lineage.upstream("file:raw").children == []
    assert lineage.downstream("unknown").refs() == ["unknown"]


def test_lineage_depth_limit(db: Database, lineage: LineageService) -> None:
    add_edges(db, lineage, ("a", "b", "r"), ("b", "c", "r"), ("c", "d", "r"))
    assert lineage.downstream("a", depth=0).refs() == ["a"]
    assert lineage.downstream("a", depth=1).refs() == ["a", "b"]
    assert lineage.downstream("a", depth=2).refs() == ["a", "b", "c"]
    assert lineage.downstream("a").refs() == ["a", "b", "c", "d"]
    assert lineage.upstream("d", depth=2).refs() == ["d", "c", "b"]


def test_lineage_diamond_is_walked_through_both_paths(db: Database, lineage: LineageService) -> None:
    add_edges(db, lineage, ("a", "b", "r"), ("a", "c", "r"), ("b", "d", "r"), ("c", "d", "r"), ("d", "e", "r"))
    tree = lineage.downstream("a")
    assert sorted(tree.refs()) == ["a", "b", "c", "d", "d", "e", "e"]


def test_lineage_cycles_terminate(db: Database, lineage: LineageService) -> None:
    add_edges(db, lineage, ("a", "b", "r"), ("b", "c", "r"), ("c", "a", "r"), ("x", "x", "self"))
    result: dict[str, Any] = {}

    def walk() -> None:
        result["down"] = lineage.downstream("a")
        result["up"] = lineage.upstream("a")
        result["self"] = lineage.downstream("x")

    thread = threading.Thread(target=walk, daemon=True)
    thread.start()
    thread.join(timeout=20)
    assert not thread.is_alive(), "walking a cycle did not terminate"
    down, up = result["down"], result["up"]
    assert set(down.refs()) == {"a", "b", "c"} and len(down.refs()) <= 4
    assert set(up.refs()) == {"a", "b", "c"} and len(up.refs()) <= 4
    assert set(result["self"].refs()) == {"x"}


def test_lineage_sources_among(db: Database, lineage: LineageService) -> None:
    add_edges(db, lineage,
              ("table:t@0", "table:t@1", "next_version"),
              ("table:t@1", "table:t@2", "next_version"),
              ("table:t@1", "split:s@1", "split_into"),
              ("table:t@2", "table:t__quarantine@0", "quarantine_of"))
    refs = ["table:t@0", "table:t@1", "table:t@2", "table:t@3"]
    assert lineage.sources_among(refs) == {"table:t@0", "table:t@1", "table:t@2"}
    assert lineage.sources_among(refs, exclude_relations=("next_version",)) == {"table:t@1", "table:t@2"}
    assert lineage.sources_among(refs, exclude_relations=("next_version", "quarantine_of")) == {"table:t@1"}
    assert lineage.sources_among(iter(refs), exclude_relations=iter(["next_version", "quarantine_of",
                                                                     "split_into"])) == set()
    assert lineage.sources_among([]) == set()


# -- audit -----------------------------------------------------------------------------------------


def test_audit_record_and_list_newest_first_with_filters(db: Database) -> None:
    audit = AuditLog(db)
    entries = [
        ("model.promote", "model:price/1", "good gates"),
        ("model.promote", "model:price/2", None),
        ("deploy", "deployment:price", "ship it"),
        ("data.vacuum", "table:listings", None),
        ("data.schema_change.append", "table:listings@3", "new column"),
        ("data.vacuum", "table:listings_eu@0", None),
    ]
    before = datetime.now(UTC)
    for action, target, reason in entries:
        with db.transaction() as conn:
            audit.record(conn, actor="alice", action=action, target=target, reason=reason,
                         details={"target": target})
    after = datetime.now(UTC)

    everything = audit.list()
    assert [e.target for e in everything] == [t for _, t, _ in reversed(entries)]
    assert [e.id for e in everything] == sorted((e.id for e in everything), reverse=True)
    first = everything[-1]
    assert (first.actor, first.action, first.reason, first.details) == \
        ("alice", "model.promote", "good gates", {"target": "model:price/1"})
    assert all(before - timedelta(seconds=1) <= e.at <= after + timedelta(seconds=1) for e in everything)
    assert all(e.at.utcoffset() == timedelta(0) for e in everything)

    assert [e.target for e in audit.list(target="table:listings")] == ["table:listings@3", "table:listings"]
    assert [e.target for e in audit.list(target="model:price")] == ["model:price/2", "model:price/1"]
    assert [e.target for e in audit.list(target="model:price/1")] == ["model:price/1"]
    assert audit.list(target="table:list") == []
    assert [e.target for e in audit.list(action="data.vacuum")] == ["table:listings_eu@0", "table:listings"]
    assert [e.target for e in audit.list(target="table:listings", action="data.vacuum")] == ["table:listings"]
    assert [e.target for e in audit.list(limit=2)] == ["table:listings_eu@0", "table:listings@3"]
    assert audit.list(action="nothing") == []


def test_audit_record_joins_the_callers_transaction(db: Database) -> None:
    audit = AuditLog(db)
    with pytest.raises(RuntimeError), db.transaction() as conn:
        audit.record(conn, actor="bob", action="deploy", target="deployment:x")
        raise RuntimeError
    assert audit.list() == []
    with db.transaction() as conn:
        audit.record(conn, actor="bob", action="deploy", target="deployment:x")
    assert [e.details for e in audit.list()] == [{}]


# -- row ids ---------------------------------------------------------------------------------------


def test_allocate_row_ids_from_threads_never_overlaps(db: Database, tmp_path: Path) -> None:
    store = TableStore(str(tmp_path / "data"))
    Catalog(db, store, LineageService(db)).ensure_dataset(
        "events", partition_by=[], time_column=None, key_columns=[], user="tester")
    rounds = 25

    def allocate(i: int) -> list[tuple[int, int]]:
        own = Database(db.url)  # each thread its own engine, like separate processes
        try:
            catalog = Catalog(own, store, LineageService(own))
            out = []
            for j in range(rounds):
                count = 1 + (i * 7 + j * 13) % 50
                out.append((catalog.allocate_row_ids("events", count), count))
            return out
        finally:
            own.dispose()

    ranges = sorted(r for chunk in run_threads(THREADS, allocate) for r in chunk)
    total = sum(count for _, count in ranges)
    assert ranges[0][0] == 0
    for (start, count), (next_start, _) in itertools.pairwise(ranges):
        assert start + count == next_start  # no overlap, and no gap without a crash
    with db.read() as conn:
        assert conn.execute(sa.select(datasets.c.next_row_id)).scalar_one() == total
