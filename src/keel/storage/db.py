"""The metadata database: one engine, short transactions, and migrations that are safe to race.

SQLite runs in WAL mode with a busy timeout; write transactions start with ``BEGIN IMMEDIATE`` so
two writers queue instead of failing on a read-to-write lock upgrade. PostgreSQL serialises
migrations with a transaction-scoped advisory lock. Either way, several processes opening a fresh
workspace at once all end up on the head revision, and none sees a half-migrated database.
"""

from __future__ import annotations

import contextlib
import functools
import operator
import os
import sqlite3
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError

from keel.errors import InvalidInput, StorageError

__all__ = ["Database", "Prepared", "Writes", "dialect_insert", "insert_ignoring_duplicates", "is_unique_violation"]

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
        self._sent: weakref.WeakKeyDictionary[sa.Select, tuple[str, Any]] = weakref.WeakKeyDictionary()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One unit of work: everything inside commits together or not at all."""
        with _translate_errors(self.url), self.engine.begin() as conn:
            yield conn

    @contextmanager
    def writes(self) -> Iterator[Writes]:
        """One unit of work like ``transaction()`` (``BEGIN IMMEDIATE`` on SQLite, all or nothing, the same
        errors), for hot paths that only run ``Prepared`` statements: it runs them straight on a pooled
        DBAPI connection, without SQLAlchemy's per-transaction and per-statement work."""
        with _translate_errors(self.url):
            raw = self.engine.raw_connection()
            writes = Writes(raw, self.engine.dialect)
            try:
                if self.dialect == "sqlite":
                    writes.run_sql("BEGIN IMMEDIATE")
                yield writes
                writes.run_sql(None)  # commit
            except BaseException:
                with contextlib.suppress(Exception):  # the error that got us here is the one to report
                    raw.rollback()
                raise
            finally:
                writes.close()
                raw.close()

    def rows(self, statement: sa.Select) -> list[tuple[Any, ...]]:
        """The rows of a SELECT whose values are all bound in it (a statement built once and reused), as
        the driver returns them: no type processing. One statement is its own consistent snapshot.

        For hot listings, where SQLAlchemy's per-call work costs a tenth of the query: the first call
        runs the statement through SQLAlchemy to learn the SQL text and DBAPI parameters it sends, and
        every call sends those straight on a pooled DBAPI connection.
        """
        sent = self._sent.get(statement)
        if sent is None:
            captured: list[tuple[str, Any]] = []

            def capture(conn: Connection, cursor: Any, sql: str, parameters: Any, context: Any, many: bool) -> None:
                captured.append((sql, parameters))

            with self.read() as conn:
                sa.event.listen(conn, "before_cursor_execute", capture)
                try:
                    conn.execute(statement).close()
                finally:
                    sa.event.remove(conn, "before_cursor_execute", capture)
            sent = self._sent[statement] = captured[-1]
        with _translate_errors(self.url):
            raw = self.engine.raw_connection()
            try:
                cursor = raw.cursor()
                try:
                    cursor.execute(*sent)
                    return cursor.fetchall()
                except self.engine.dialect.loaded_dbapi.Error as exc:
                    raise _dbapi_error(self.engine.dialect, raw, cursor, sent, exc) from exc
                finally:
                    cursor.close()
            finally:
                raw.close()

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
        """Upgrade to the head revision; a no-op when already there. Safe under concurrent opens.

        An up-to-date store (every open but the first) is checked with one query against the head read from the
        migration files' names, without importing alembic: that import costs every CLI command a third of a
        second."""
        head = head_revision()
        with self.read() as conn:
            if sa.inspect(conn).has_table("alembic_version") and \
                    conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == head:
                return
        from alembic import command
        from alembic.config import Config
        from alembic.runtime.migration import MigrationContext

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.transaction() as conn:
            if self.dialect == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
            if MigrationContext.configure(conn).get_current_revision() == head:
                return
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    def dispose(self) -> None:
        self.engine.dispose()


@functools.cache
def head_revision() -> str:
    """The newest migration's revision: migration files are named ``NNNN_what.py`` with revision ``NNNN``, each
    revising the one before (a contract test holds alembic's own head to this)."""
    numbers = [p.name.split("_", 1)[0] for p in (MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py")]
    return max(numbers)


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
    """An INSERT or UPDATE compiled once per dialect, for ``Database.writes()``.

    For small, frequent writes (a run's row, its end, a batch of metric points) SQLAlchemy's per-call
    work — cache key, execution context, parameter construction per row — costs several times what
    the database takes to run the statement. Here the SQL text, the parameter order and the bind
    processors (UTC datetimes, JSON) all come from SQLAlchemy's own compilation for the dialect, once,
    so what is stored is what ``conn.execute(statement, rows)`` would store. Rows are tuples in
    ``keys`` order. Not for statements with expanding (``IN``) parameters.
    """

    def __init__(self, statement: sa.Insert | sa.Update, keys: Sequence[str]) -> None:
        self.statement = statement
        self.keys = tuple(keys)
        self._plans: dict[tuple[str, str, str], tuple[str, Callable[[Sequence[Any]], Any]]] = {}

    def plan(self, dialect: sa.Dialect) -> tuple[str, Callable[[Sequence[Any]], Any]]:
        """The SQL text for ``dialect`` and the function turning a row into its DBAPI parameters."""
        found = self._plans.get((dialect.name, dialect.driver, dialect.paramstyle))
        return found if found is not None else self._plan(dialect)

    def _plan(self, dialect: sa.Dialect) -> tuple[str, Callable[[Sequence[Any]], Any]]:
        columns = self.statement.table.c  # type: ignore[attr-defined]
        compiled = self.statement.compile(dialect=dialect, column_keys=[k for k in self.keys if k in columns])
        names = list(compiled.positiontup or []) if dialect.positional else list(compiled.binds)
        unknown = [n for n in names if n not in self.keys]
        if unknown or compiled.literal_execute_params or compiled.post_compile_params:
            raise StorageError(f"cannot prepare {self.statement}: parameters {unknown} are not given")
        positions = [self.keys.index(n) for n in names]
        processors = [(i, p) for i, p in enumerate(_processor(compiled.binds[n].type, dialect) for n in names)
                      if p is not None]
        convert: Callable[[Sequence[Any]], Any]
        if not dialect.positional:
            def convert(row: Sequence[Any]) -> Any:
                values = [row[i] for i in positions]
                for i, process in processors:
                    values[i] = process(values[i])
                return dict(zip(names, values, strict=True))
        elif positions == list(range(len(self.keys))) and not processors:
            convert = tuple  # rows are the parameters already
        elif positions == list(range(len(self.keys))) and [i for i, _ in processors] == [len(names) - 1]:
            last, process_last = len(names) - 1, processors[0][1]  # e.g. a timestamp at the end

            def convert(row: Sequence[Any]) -> Any:
                return (*row[:last], process_last(row[last]))
        else:
            take = operator.itemgetter(*positions)

            def convert(row: Sequence[Any]) -> Any:
                values = take(row)
                values = [values] if len(positions) == 1 else list(values)
                for i, process in processors:
                    values[i] = process(values[i])
                return tuple(values)

        plan = self._plans[(dialect.name, dialect.driver, dialect.paramstyle)] = (compiled.string, convert)
        return plan


class Writes:
    """The unit of work of ``Database.writes()``: runs ``Prepared`` statements on one DBAPI cursor."""

    def __init__(self, raw: Any, dialect: sa.Dialect) -> None:
        self.dialect = dialect
        self._raw = raw
        self._cursor = raw.cursor()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._cursor.close()

    def run(self, prepared: Prepared, rows: Sequence[Sequence[Any]]) -> None:
        """Run ``prepared`` for every row (one ``executemany`` when there are several)."""
        if rows:
            sql, convert = prepared.plan(self.dialect)
            self.run_sql(sql, rows if convert is tuple else [convert(row) for row in rows])

    def run_sql(self, sql: str | None, params: list[Any] | None = None) -> None:
        """Run driver SQL (``None``: commit), DBAPI errors raised as SQLAlchemy's, as ``conn.execute`` does."""
        try:
            if sql is None:
                self._raw.commit()
            elif not params:
                self._cursor.execute(sql)
            elif len(params) == 1:
                self._cursor.execute(sql, params[0])
            else:
                self._cursor.executemany(sql, params)
        except self.dialect.loaded_dbapi.Error as exc:
            raise _dbapi_error(self.dialect, self._raw, self._cursor, (sql or "COMMIT", params), exc) from exc


def _dbapi_error(dialect: sa.Dialect, raw: Any, cursor: Any, sent: tuple[str, Any], exc: Exception) -> Exception:
    """A DBAPI error as SQLAlchemy raises it (IntegrityError, OperationalError, ...); a connection the
    error shows is gone is invalidated, so the pool does not hand it out again."""
    invalidated = dialect.is_disconnect(exc, raw.dbapi_connection, cursor)
    if invalidated:
        raw.invalidate(exc)
    return sa.exc.DBAPIError.instance(*sent, exc, dialect.loaded_dbapi.Error, connection_invalidated=invalidated,
                                      dialect=dialect)


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
            with contextlib.suppress(FileExistsError):  # SQLite gives its -wal and -shm files the db file's mode
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
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
