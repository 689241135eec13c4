"""storage/db.py's hot paths against SQLite and PostgreSQL: ``Prepared`` statements run in
``Database.writes()`` store exactly what ``conn.execute`` stores and fail the same way, all or nothing;
``Database.rows`` returns what the driver returns for a reused SELECT."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from keel.errors import StorageError
from keel.storage.db import Database, Prepared, dialect_insert
from keel.storage.schema import run_latest_metrics, run_metrics, runs

T0 = datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)
RUN_KEYS = ("id", "experiment", "name", "parent_id", "status", "created_by", "started_at", "environment")
INSERT_RUN = Prepared(runs.insert(), RUN_KEYS)


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    url = f"sqlite:///{tmp_path}/k.db" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    database = Database(url)
    database.migrate()
    yield database
    database.dispose()


def stored(db: Database, table: sa.Table, order: str) -> list[tuple]:
    """Rows as the database holds them (no result processing), to compare what each path wrote."""
    with db.read() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(f"SELECT * FROM {table.name} ORDER BY {order}")]


def test_inserts_store_what_execute_stores(db: Database) -> None:
    environment = {"packages": {"numpy": "2.0"}, "git": None, "ü": [1, 2.5]}
    with db.writes() as writes:
        writes.run(INSERT_RUN, [("a" * 32, "e", None, None, "running", "ana", T0, environment)])
    with db.transaction() as conn:
        conn.execute(runs.insert(), {"id": "b" * 32, "experiment": "e", "name": None, "parent_id": None,
                                     "status": "running", "created_by": "ana", "started_at": T0,
                                     "environment": environment})
    a, b = stored(db, runs, "id")
    assert a[1:] == b[1:]
    with db.read() as conn:
        row = conn.execute(sa.select(runs).where(runs.c.id == "a" * 32)).one()
    assert row.started_at == T0 and row.environment == environment


def test_executemany_with_shared_and_distinct_timestamps(db: Database) -> None:
    """The datetime processor remembers its last value: shared objects, then new ones, all stored right."""
    times = [T0, T0, T0 + timedelta(seconds=1), T0 + timedelta(seconds=1), T0]
    point = ("run_id", "key", "seq", "step", "value", "logged_at")
    with db.writes() as writes:
        writes.run(INSERT_RUN, [("r" * 32, "e", None, None, "running", "ana", T0, {})])
        writes.run(Prepared(run_metrics.insert(), point),
                   [("r" * 32, "m", i, None if i % 2 else i, float(i) / 3, t) for i, t in enumerate(times)])
    with db.transaction() as conn:
        conn.execute(run_metrics.insert(), [{"run_id": "r" * 32, "key": "n", "seq": i, "step": None if i % 2 else i,
                                             "value": float(i) / 3, "logged_at": t} for i, t in enumerate(times)])
    rows = stored(db, run_metrics, "key, seq")
    assert [r[2:] for r in rows[:5]] == [r[2:] for r in rows[5:]]
    with db.read() as conn:
        logged = conn.execute(sa.select(run_metrics.c.logged_at).where(run_metrics.c.key == "m")
                              .order_by(run_metrics.c.seq)).scalars().all()
    assert logged == times


def test_upsert_and_update_with_bind_parameters(db: Database) -> None:
    insert = dialect_insert(db.dialect)(run_latest_metrics)
    upsert = Prepared(insert.on_conflict_do_update(
        index_elements=["run_id", "key"], set_={"seq": insert.excluded.seq, "value": insert.excluded.value},
        where=run_latest_metrics.c.seq < insert.excluded.seq), ("run_id", "key", "seq", "step", "value", "unused"))
    end = Prepared(runs.update().where(runs.c.id == sa.bindparam("run")).values(
        status=sa.bindparam("new_status"), ended_at=sa.bindparam("new_ended_at")),
        ("run", "new_status", "new_ended_at"))
    with db.writes() as writes:
        writes.run(INSERT_RUN, [("r" * 32, "e", None, None, "running", "ana", T0, {})])
        writes.run(upsert, [("r" * 32, "m", 1, None, 1.5, "x")])
        writes.run(upsert, [("r" * 32, "m", 0, None, 9.0, "x"), ("r" * 32, "m", 2, 7, 2.5, "x")])
        writes.run(end, [("r" * 32, "finished", T0 + timedelta(minutes=1))])
    with db.read() as conn:
        assert conn.execute(sa.select(run_latest_metrics.c.seq, run_latest_metrics.c.value)).all() == [(2, 2.5)]
        run = conn.execute(sa.select(runs)).one()
    assert run.status == "finished" and run.ended_at == T0 + timedelta(minutes=1)


def test_errors_are_sqlalchemy_errors_and_nothing_is_written(db: Database) -> None:
    with pytest.raises(IntegrityError), db.writes() as writes:
        writes.run(INSERT_RUN, [("d" * 32, "e", None, None, "running", "ana", T0, {})])
        writes.run(INSERT_RUN, [("d" * 32, "e", None, None, "running", "ana", T0, {})])
    with pytest.raises(ZeroDivisionError), db.writes() as writes:
        writes.run(INSERT_RUN, [("e" * 32, "e", None, None, "running", "ana", T0, {})])
        raise ZeroDivisionError  # any error in the block: rolled back
    assert stored(db, runs, "id") == []
    with db.writes() as writes:
        writes.run(INSERT_RUN, [])  # no rows: nothing to run
    with db.writes() as writes:  # the pooled connections are usable after the failures
        writes.run(INSERT_RUN, [("f" * 32, "e", None, None, "running", "ana", T0, {})])
    assert [r[0] for r in stored(db, runs, "id")] == ["f" * 32]


def test_a_statement_needing_more_parameters_is_refused(db: Database) -> None:
    update = runs.update().where(runs.c.id == sa.bindparam("run")).values(status=sa.bindparam("new_status"))
    with pytest.raises(StorageError, match="not given"), db.writes() as writes:
        writes.run(Prepared(update, ("new_status",)), [("finished",)])


def test_concurrent_writes_queue_and_all_commit(db: Database) -> None:
    """Eight threads, fifty units each: on SQLite BEGIN IMMEDIATE makes them queue, none fails."""
    def work(t: int) -> None:
        for i in range(50):
            with db.writes() as writes:
                writes.run(INSERT_RUN, [(f"{t:02d}{i:030d}", "e", None, None, "running", "ana", T0, {})])

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(stored(db, runs, "id")) == 400


def test_rows_returns_what_the_driver_returns(db: Database) -> None:
    with db.writes() as writes:
        writes.run(INSERT_RUN, [(c * 32, "e" if c < "c" else "x", None, None, "running", "ana", T0, {})
                                for c in "abc"])
    query = sa.select(runs.c.id, runs.c.status).where(runs.c.experiment.in_(["e", "z"])).order_by(runs.c.id.desc())
    first = db.rows(query)
    assert first == [("b" * 32, "running"), ("a" * 32, "running")]
    with db.writes() as writes:
        writes.run(INSERT_RUN, [("d" * 32, "e", None, None, "running", "ana", T0, {})])
    assert [r[0] for r in db.rows(query)] == ["d" * 32, "b" * 32, "a" * 32]  # the same statement, run again
