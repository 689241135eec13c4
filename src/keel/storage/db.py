"""The metadata database: one engine, short transactions, and migrations that are safe to race.

SQLite runs in WAL mode with a busy timeout; write transactions start with ``BEGIN IMMEDIATE`` so
two writers queue instead of failing on a read-to-write lock upgrade. PostgreSQL serialises
migrations with a transaction-scoped advisory lock. Either way, several processes opening a fresh
workspace at once all end up on the head revision, and none sees a half-migrated database.
"""

from __future__ import annotations

import operator
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError

from keel.errors import InvalidInput, StorageError

__all__ = ["Database", "Prepared", "dialect_insert", "insert_ignoring_duplicates", "is_unique_violation"]

MIGRATIONS = Path(__file__).with_name("migrations")
_PG_MIGRATION_LOCK = 0x6B65656C  # "keel"
T = TypeVar("T")


class Database:
    """The metadata store: ``transaction()`` for writes, ``read()`` for reads, ``migrate()`` on open."""

    def __init__(self, url: str, *, busy_timeout_ms: int = 30_000) -> None:
        self.url = url
        try:
            self.engine = _create_engine(url, busy_timeout_ms)
        except (ArgumentError, ImportError, sa.exc.NoSuchModuleError) as exc:
            raise InvalidInput(
                f"cannot use metadata_url {url!r}: {exc}; use sqlite:///PATH or postgresql+psycopg://..."
            ) from None
        self._reader = self.engine.execution_options(keel_begin="DEFERRED")

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One unit of work: everything inside commits together or not at all."""
        with _translate_errors(self.url), self.engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only snapshot that does not queue behind writers."""
        with _translate_errors(self.url), self._reader.connect() as conn, conn.begin():
            yield conn

    def retrying(self, work: Callable[[Connection], T], attempts: int = 8) -> T:
        """Run ``work`` in a transaction, retrying when a concurrent writer took the same unique key."""
        for attempt in range(attempts):
            try:
                with self.transaction() as conn:
                    return work(conn)
            except IntegrityError as exc:
                if not is_unique_violation(exc) or attempt == attempts - 1:
                    raise
                time.sleep(0.005 * (attempt + 1))
        raise AssertionError("unreachable")

    def migrate(self) -> None:
        """Upgrade to the head revision; a no-op when already there. Safe under concurrent opens."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        head = ScriptDirectory.from_config(config).get_current_head()
        with self.read() as conn:
            if MigrationContext.configure(conn).get_current_revision() == head:
                return
        with self.transaction() as conn:
            if self.dialect == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
            if MigrationContext.configure(conn).get_current_revision() == head:
                return
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    def dispose(self) -> None:
        self.engine.dispose()


def insert_ignoring_duplicates(conn: Connection, table: sa.Table, rows: list[dict]) -> int:
    """Insert rows, silently skipping any that hit a unique constraint; returns how many were new.

    ``INSERT ... ON CONFLICT DO NOTHING`` on both dialects, so concurrent writers of the same row
    neither fail nor abort their transaction.
    """
    if not rows:
        return 0
    return conn.execute(dialect_insert(conn.dialect.name)(table).on_conflict_do_nothing(), rows).rowcount


def dialect_insert(dialect: str) -> Callable[[sa.Table], sa.Insert]:
    """The dialect's ``insert`` with ``on_conflict_do_nothing`` / ``on_conflict_do_update``."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - keel supports SQLite and PostgreSQL
        raise StorageError(f"unsupported metadata database {dialect}")
    return insert


class Prepared:
    """An INSERT or UPDATE compiled once per dialect and run with ``exec_driver_sql``.

    For small, frequent writes (a run's row, its end, a batch of metric points) SQLAlchemy's per-call
    work — cache key, parameter construction per row, type processing dispatch — costs several times
    what the database takes to run the statement. Here the SQL text, the parameter order and the bind
    processors (UTC datetimes, JSON) all come from SQLAlchemy's own compilation for the connection's
    dialect, once, so the rows stored are the same as ``conn.execute(statement, rows)`` would store;
    errors are SQLAlchemy's as usual. Rows are tuples in ``keys`` order. Not for statements with
    expanding (``IN``) parameters.
    """

    def __init__(self, statement: sa.Insert | sa.Update, keys: Sequence[str]) -> None:
        self.statement = statement
        self.keys = tuple(keys)
        self._plans: dict[tuple[str, str, str], tuple[str, Callable[[Sequence[Any]], Any]]] = {}

    def execute(self, conn: Connection, rows: Sequence[Sequence[Any]]) -> None:
        """Run the statement for every row (one ``executemany`` when there are several)."""
        if not rows:
            return
        dialect = conn.dialect
        plan = self._plans.get((dialect.name, dialect.driver, dialect.paramstyle)) or self._plan(dialect)
        sql, convert = plan
        if len(rows) == 1:
            conn.exec_driver_sql(sql, convert(rows[0]))
        else:
            conn.exec_driver_sql(sql, [convert(row) for row in rows])

    def _plan(self, dialect: sa.Dialect) -> tuple[str, Callable[[Sequence[Any]], Any]]:
        columns = self.statement.table.c  # type: ignore[attr-defined]
        compiled = self.statement.compile(dialect=dialect, column_keys=[k for k in self.keys if k in columns])
        names = list(compiled.positiontup or []) if dialect.positional else list(compiled.binds)
        unknown = [n for n in names if n not in self.keys]
        if unknown or compiled.literal_execute_params or compiled.post_compile_params:
            raise StorageError(f"cannot prepare {self.statement}: parameters {unknown} are not given")
        take = operator.itemgetter(*[self.keys.index(n) for n in names])
        processors = [(position, _processor(compiled.binds[n].type, dialect)) for position, n in enumerate(names)]
        processors = [(position, p) for position, p in processors if p is not None]
        named = not dialect.positional

        def convert(row: Sequence[Any]) -> Any:
            values = take(row)
            values = [values] if len(names) == 1 else list(values)
            for position, process in processors:
                values[position] = process(values[position])
            return dict(zip(names, values, strict=True)) if named else tuple(values)

        plan = self._plans[(dialect.name, dialect.driver, dialect.paramstyle)] = (compiled.string, convert)
        return plan


def _processor(type_: sa.types.TypeEngine, dialect: sa.Dialect) -> Callable[[Any], Any] | None:
    """The type's bind processor; for datetimes it remembers its last value, because a batch of rows
    usually shares one timestamp object (datetimes are immutable, so identity is enough)."""
    process = type_.dialect_impl(dialect).bind_processor(dialect)
    base = type_.impl if isinstance(type_, sa.TypeDecorator) else type_
    if process is None or not isinstance(base, sa.DateTime):
        return process
    last: list[tuple[Any, Any]] = [(object(), None)]

    def remembered(value: Any) -> Any:
        seen, out = last[0]
        if value is seen:
            return out
        out = process(value)
        last[0] = (value, out)
        return out

    return remembered


def is_unique_violation(exc: IntegrityError) -> bool:
    text = str(exc.orig).lower()
    return "unique" in text or "duplicate key" in text


def _create_engine(url: str, busy_timeout_ms: int) -> Engine:
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": busy_timeout_ms / 1000})
        _configure_sqlite(engine, busy_timeout_ms)
        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        _enable_wal(cursor, busy_timeout_ms)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn):  # type: ignore[no-untyped-def]
        mode = conn.get_execution_options().get("keel_begin", "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")


def _enable_wal(cursor: sqlite3.Cursor, busy_timeout_ms: int) -> None:
    """Switch a database to WAL once (the mode persists in the file).

    Switching needs an exclusive lock, and SQLite answers "database is locked" at once, without its
    busy handler, when processes race to switch a fresh file; so wait and retry here instead.
    """
    deadline = time.monotonic() + busy_timeout_ms / 1000
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
                return
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@contextmanager
def _translate_errors(url: str) -> Iterator[None]:
    try:
        yield
    except OperationalError as exc:
        safe_url = sa.engine.make_url(url).render_as_string(hide_password=True)
        raise StorageError(f"metadata store {safe_url} failed: {exc.orig}") from exc
