"""Several processes at once: opening one fresh workspace together, and appending to one table together.

Workers are plain scripts (``workers/``) run as subprocesses. They import keel, touch a "ready" file and
spin until the test creates a "start" file, so they all hit the workspace at the same instant.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
import sqlalchemy as sa
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

import keel
import keel.storage.tables as tables_module
from keel.data.model import ROW_ID
from keel.storage.db import MIGRATIONS, Database
from keel.storage.schema import metadata
from keel.storage.tables import COMMIT_ID, TableStore

WORKERS = Path(__file__).parent / "workers"
PROCESSES = 4
ROUNDS = 5
MIGRATION_ERRORS = ("duplicate column", "already exists", "no such table", "does not exist", "UndefinedTable",
                    "Traceback")

pytestmark = pytest.mark.slow


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        return f"exit {self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


def run_together(script: str, argument_lists: list[list[str]], scratch: Path, timeout: float = 120) -> list[Finished]:
    """Start one process per argument list, release them at the same instant, and wait for all."""
    scratch.mkdir(parents=True, exist_ok=True)
    start = scratch / "start"
    ready = [scratch / f"ready-{i}" for i in range(len(argument_lists))]
    procs = [
        subprocess.Popen([sys.executable, str(WORKERS / script), args[0], str(ready[i]), str(start), *args[1:]],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
        for i, args in enumerate(argument_lists)
    ]
    try:
        deadline = time.monotonic() + timeout
        while not all(r.exists() for r in ready):
            if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
                break  # a worker died before the barrier: release the others, report below
            time.sleep(0.005)
        start.touch()
        out = []
        for p in procs:
            stdout, stderr = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            out.append(Finished(p.returncode, stdout, stderr))
        return out
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def alembic_head() -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head()


def write_config(root: Path, metadata_url: str | None) -> None:
    """A workspace folder with keel.toml and nothing else: no .keel/, no database."""
    root.mkdir(parents=True)
    lines = ["[keel]"]
    if metadata_url:
        lines.append(f'metadata_url = "{metadata_url}"')
    (root / "keel.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(params=["sqlite", "postgresql"])
def metadata_url(request: pytest.FixtureRequest) -> Callable[[Path], str | None]:
    """For a workspace root: None (SQLite default in .keel/) or a fresh PostgreSQL database URL."""
    if request.param == "sqlite":
        return lambda root: None
    url = request.getfixturevalue("postgres_url")
    return lambda root: url


def database_url(root: Path, configured: str | None) -> str:
    return configured or f"sqlite:///{root / '.keel' / 'keel.db'}"


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_processes_open_one_fresh_workspace_at_once(
    round_: int, tmp_path: Path, metadata_url: Callable[[Path], str | None]
) -> None:
    root = tmp_path / f"fresh-{round_}"
    configured = metadata_url(root)
    write_config(root, configured)
    assert not (root / ".keel").exists()
    tables = [f"t{i}" for i in range(PROCESSES)]

    finished = run_together("open_and_ingest.py", [[str(root), t] for t in tables], tmp_path / "barrier")

    for table, result in zip(tables, finished, strict=True):
        assert result.returncode == 0, f"{table}: {result.describe()}"
        assert result.stdout.startswith(f"OK {table} 0 "), result.describe()
        for marker in MIGRATION_ERRORS:
            assert marker not in result.stderr, f"{table}: {result.describe()}"
    db = Database(database_url(root, configured))
    try:
        with db.read() as conn:
            assert MigrationContext.configure(conn).get_current_revision() == alembic_head()
            assert conn.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
        assert set(metadata.tables) <= set(sa.inspect(db.engine).get_table_names())
    finally:
        db.dispose()
    with keel.open(root) as ws:
        assert sorted(t.name for t in ws.data.tables()) == tables
        for table in tables:
            history = ws.data.history(table)
            assert [(v.version, v.row_count) for v in history] == [(0, 10)]
            assert ws.data.read(table)["who"].tolist() == [table] * 10


def append_together(tmp_path: Path, metadata_url: Callable[[Path], str | None], *, precreate: bool,
                    appends: int = 20) -> None:
    """PROCESSES workers append ``appends`` batches each to one table at once; check every version."""
    root = tmp_path / "ws"
    configured = metadata_url(root)
    write_config(root, configured)
    with keel.open(root) as ws:  # migrated; the table exists only when ``precreate``
        if precreate:
            ws.data.ingest(pa.table({"worker": [-1], "batch": [0], "seq": [0]}), "shared")
    first = 1 if precreate else 0

    finished = run_together("append_worker.py", [[str(root), str(w), str(appends)] for w in range(PROCESSES)],
                            tmp_path / "barrier", timeout=240)

    acks: list[tuple[int, int, int, int]] = [(-1, 0, 0, 1)] if precreate else []
    for worker, result in enumerate(finished):
        assert result.returncode == 0, f"worker {worker}: {result.describe()}"
        lines = [line.split() for line in result.stdout.splitlines() if line.startswith("ACK ")]
        assert len(lines) == appends, result.describe()
        acks += [(int(w), int(i), int(v), int(n)) for _, w, i, v, n in lines]
    total = first + PROCESSES * appends
    versions = sorted(v for _, _, v, _ in acks)
    assert versions == list(range(total)), "every append gets its own version, without gaps"

    with keel.open(root) as ws:
        history = list(reversed(ws.data.history("shared")))
        assert [v.version for v in history] == list(range(total))
        by_version = {v: (w, i, n) for w, i, v, n in acks}
        running = 0
        for v in history:
            running += by_version[v.version][2]
            assert (v.rows_added, v.row_count) == (by_version[v.version][2], running), v
        data = ws.data.read_arrow("shared", with_row_ids=True)
        assert data.num_rows == sum(n for *_, n in acks) == history[-1].row_count
        assert pc.count_distinct(data[ROW_ID]).as_py() == data.num_rows, "row ids overlap"
        seen = data.group_by(["worker", "batch"]).aggregate([("seq", "count")]).to_pylist()
        assert {(r["worker"], r["batch"]): r["seq_count"] for r in seen} == {(w, i): n for w, i, _, n in acks}
        for v in history:  # time travel sees exactly the batches committed up to v
            at = ws.data.read_arrow(f"shared@{v.version}", columns=["worker", "batch"])
            assert at.num_rows == v.row_count
            w, i, _ = by_version[v.version]
            assert pc.sum(pc.and_(pc.equal(at["worker"], w), pc.equal(at["batch"], i))).as_py() > 0


def test_processes_append_to_one_new_table_at_once(tmp_path: Path, metadata_url: Callable[[Path], str | None]) -> None:
    append_together(tmp_path, metadata_url, precreate=False)


def test_processes_append_to_one_existing_table_at_once(
    tmp_path: Path, metadata_url: Callable[[Path], str | None]
) -> None:
    append_together(tmp_path, metadata_url, precreate=True)


# -- the same races, made deterministic in one process -------------------------------------------------


def commit_ids(location: str) -> dict[str, int]:
    """keel commit id -> the Delta version that really holds it (from the log file names, not history())."""
    out = {}
    for path in sorted(Path(location, "_delta_log").glob("*.json")):
        for line in path.read_text().splitlines():
            info = json.loads(line).get("commitInfo")
            if info and COMMIT_ID in info:
                out[info[COMMIT_ID]] = int(path.stem)
    return out


def test_table_store_write_reports_its_own_version_when_another_writer_follows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = TableStore(str(tmp_path / "data"))
    batch = pa.table({"x": [1, 2, 3]})
    store.write("t", batch, mode="append")
    real = tables_module.write_deltalake

    def then_another_writer(*args: Any, **kwargs: Any) -> None:
        real(*args, **kwargs)
        real(store.location("t"), batch, mode="append")  # a second process commits right after us

    monkeypatch.setattr(tables_module, "write_deltalake", then_another_writer)
    commit = store.write("t", batch, mode="append")
    assert commit.version == commit_ids(store.location("t"))[commit.info[COMMIT_ID]]


def test_table_store_commit_info_names_the_right_version_whatever_lands_after(tmp_path: Path) -> None:
    """Commit infos are read per version from the log, so later commits cannot shift their numbers."""
    store = TableStore(str(tmp_path / "data"))
    batch = pa.table({"x": [1, 2, 3]})
    first = store.write("t", batch, mode="append")
    stale = store.latest("t")
    for _ in range(3):
        tables_module.write_deltalake(store.location("t"), batch, mode="append")  # another writer
    truth = commit_ids(store.location("t"))
    assert store.commit_info("t", first.version)[COMMIT_ID] == first.info[COMMIT_ID]
    assert truth[first.info[COMMIT_ID]] == first.version == 0
    assert stale.version() == 0  # a handle that has not been refreshed still gives true numbers
    assert [store.commit_info("t", v)["version"] for v in range(4)] == [0, 1, 2, 3]
