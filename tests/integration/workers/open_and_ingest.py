"""Open a (possibly brand-new) workspace the instant the test says go, then ingest into its own table.

usage: open_and_ingest.py WORKSPACE READY_FILE START_FILE TABLE
Exit code 0 on success; any failure prints its traceback to stderr and exits non-zero.
"""

from __future__ import annotations

import os
import sys

import pyarrow as pa

import keel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _barrier import wait_for_start


def main(workspace: str, ready: str, start: str, table: str) -> None:
    wait_for_start(ready, start)
    ws = keel.open(workspace)
    try:
        result = ws.data.ingest(pa.table({"who": [table] * 10, "n": list(range(10))}), table)
        print(f"OK {table} {result.version.version} {os.getpid()}", flush=True)
    finally:
        ws.close()


if __name__ == "__main__":
    main(*sys.argv[1:5])
