"""The SQLite metadata database is private whatever the umask: created 0600, and its WAL files follow."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import keel


def test_the_metadata_database_and_its_wal_files_are_0600_under_umask_0(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        ws = keel.init(tmp_path / "ws")
        with ws.runs.start("x") as run:
            run.log_metric("a", 1.0)
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "ws" / ".keel").glob("keel.db*")}
        ws.close()
    finally:
        os.umask(old)
    assert set(modes) >= {"keel.db", "keel.db-wal", "keel.db-shm"} and set(modes.values()) == {0o600}
