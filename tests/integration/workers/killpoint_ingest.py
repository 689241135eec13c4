"""Ingest one batch normally, then SIGKILL this process at one exact point of a second ingest.

usage: killpoint_ingest.py WORKSPACE POINT MODE
POINT: before-table-commit    after row ids are allocated (and, with quarantine, after the bad rows
                              were staged), before the table's Delta commit
       after-table-commit     right after the table's Delta commit, before its metadata transaction
       in-metadata-transaction inside that transaction, after the version row was inserted, before COMMIT
MODE: "plain" or "quarantine" (the crash_ingest.py contract; rows with seq % 10 == 3 are bad)
Prints ``ACK b0 ...`` for the first ingest and ``BEGIN b1 <rows>`` before the one that dies.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import numpy as np

import keel
from keel.data.catalog import Catalog
from keel.storage.tables import TableStore

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crash_ingest import CONTRACT, make_batch

TABLE = "events"


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def arm(point: str) -> None:
    write, record = TableStore.write, Catalog.record

    def write_then_maybe_die(self: TableStore, name: str, *args: Any, **kwargs: Any) -> Any:
        if name == TABLE and point == "before-table-commit":
            die()
        commit = write(self, name, *args, **kwargs)
        if name == TABLE and point == "after-table-commit":
            die()
        return commit

    def record_then_die(self: Catalog, conn: Any, version: Any, *args: Any) -> Any:
        inserted = record(self, conn, version, *args)
        if version.table == TABLE:
            die()
        return inserted

    TableStore.write = write_then_maybe_die  # type: ignore[method-assign]
    if point == "in-metadata-transaction":
        Catalog.record = record_then_die  # type: ignore[method-assign]


def main(workspace: str, point: str, mode: str) -> None:
    ws = keel.open(workspace)
    rng = np.random.default_rng(3)
    extra: dict[str, Any] = {"contract": CONTRACT, "on_bad_rows": "quarantine"} if mode == "quarantine" else {}
    result = ws.data.ingest(make_batch("b0", 2500, rng, mode == "quarantine"), TABLE, **extra)
    print(f"ACK b0 {result.version.version} {result.rows_read} {result.rows_written} {result.rows_quarantined}",
          flush=True)
    arm(point)
    print("BEGIN b1 3000", flush=True)
    ws.data.ingest(make_batch("b1", 3000, rng, mode == "quarantine"), TABLE, **extra)
    print("SURVIVED", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
