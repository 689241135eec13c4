"""Ingest batches into one table until killed, acknowledging each commit on stdout.

usage: crash_ingest.py WORKSPACE GO_FILE PREFIX MODE
MODE is "plain" (append) or "quarantine" (append with a contract; every row with seq % 10 == 3 is bad).
Protocol, one line each, flushed: ``READY`` once the workspace is open; ``BEGIN <batch> <rows>`` before
an ingest; ``ACK <batch> <version> <rows_read> <rows_written> <rows_quarantined> <quarantine_version>``
after ``ingest`` returned, i.e. once the write is acknowledged to the caller.
"""

from __future__ import annotations

import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa

import keel

CONTRACT = {
    "columns": {
        "batch_id": {"dtype": "string", "nullable": False},
        "batch_rows": {"dtype": "int64", "nullable": False},
        "seq": {"dtype": "int64", "nullable": False},
        "value": {"dtype": "float64", "nullable": False, "min": 0.0},
    },
}


def make_batch(batch_id: str, rows: int, rng: np.random.Generator, bad: bool) -> pa.Table:
    seq = np.arange(rows, dtype=np.int64)
    value = rng.random(rows) * 100
    if bad:
        value[seq % 10 == 3] = -1.0
    return pa.table({
        "batch_id": pa.array([batch_id] * rows, pa.string()),
        "batch_rows": pa.array(np.full(rows, rows, dtype=np.int64)),
        "seq": pa.array(seq),
        "value": pa.array(value),
    })


def main(workspace: str, go: str, prefix: str, mode: str) -> None:
    while not Path(go).exists():
        time.sleep(0.001)
    ws = keel.open(workspace)
    print("READY", flush=True)
    rng = np.random.default_rng(zlib.crc32(prefix.encode()))
    quarantine = mode == "quarantine"
    i = 0
    while True:
        batch_id = f"{prefix}-{i:04d}"
        rows = int(rng.integers(2000, 4000))
        batch = make_batch(batch_id, rows, rng, quarantine)
        print(f"BEGIN {batch_id} {rows}", flush=True)
        if quarantine:
            result = ws.data.ingest(batch, "events", mode="append", contract=CONTRACT, on_bad_rows="quarantine")
        else:
            result = ws.data.ingest(batch, "events", mode="append")
        print(f"ACK {batch_id} {result.version.version} {result.rows_read} {result.rows_written} "
              f"{result.rows_quarantined} {result.quarantine_version}", flush=True)
        i += 1


if __name__ == "__main__":
    main(*sys.argv[1:5])
