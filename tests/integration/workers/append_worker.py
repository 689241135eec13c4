"""Append COUNT small batches to one shared table, printing ``ACK <worker> <i> <version> <rows>`` per commit.

usage: append_worker.py WORKSPACE READY_FILE START_FILE WORKER COUNT
"""

from __future__ import annotations

import os
import sys

import pyarrow as pa

import keel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _barrier import wait_for_start


def main(workspace: str, ready: str, start: str, worker: str, count: str) -> None:
    ws = keel.open(workspace)
    try:
        wait_for_start(ready, start)
        for i in range(int(count)):
            rows = 5 + (int(worker) * 3 + i) % 7
            batch = pa.table({"worker": [int(worker)] * rows, "batch": [i] * rows, "seq": list(range(rows))})
            result = ws.data.ingest(batch, "shared", mode="append")
            print(f"ACK {worker} {i} {result.version.version} {rows}", flush=True)
    finally:
        ws.close()


if __name__ == "__main__":
    main(*sys.argv[1:6])
