"""Appends prediction records one request at a time and prints each id once append returned (what a server
acknowledges), until it is killed."""

from __future__ import annotations

import sys
from pathlib import Path

from keel.serving.predlog import SegmentLog

log = SegmentLog(Path(sys.argv[1]), write=lambda table: None, committed=lambda ids: [], max_records=int(sys.argv[2]))
i = 0
while True:
    log.append([{"request_id": f"r{i}", "prediction": float(i), "model": "price/1"}])
    print(f"r{i}", flush=True)
    i += 1
