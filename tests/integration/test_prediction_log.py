"""The prediction log's write-ahead segments: nothing acknowledged is lost when the process is killed, and
nothing is committed twice (issue 7's reliability requirement, for the log's storage half)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

import keel
from keel.serving.predlog import SEGMENT_COLUMN, SegmentLog

WORKER = Path(__file__).parent / "workers" / "predlog_writer.py"


asked: list[list[str]] = []  # every question delta_log's logs asked the table


def delta_log(ws: keel.Workspace, folder: Path, table: str = "predictions", **options) -> SegmentLog:
    def committed(ids: list[str]) -> list[str]:
        asked.append(ids)
        if ws.data.catalog.dataset(table) is None:
            return []
        held = pc.unique(ws.data.read_arrow(table, columns=[SEGMENT_COLUMN])[SEGMENT_COLUMN]).to_pylist()
        return [i for i in ids if i in held]

    return SegmentLog(folder, write=lambda rows: ws.data.write_batches([rows], table, reason="prediction log"),
                      committed=committed, **options)


def test_records_are_committed_to_a_delta_table_in_segments(ws: keel.Workspace, tmp_path: Path) -> None:
    log = delta_log(ws, tmp_path / "segments", max_records=50)
    for i in range(120):
        log.append([{"request_id": f"r{i}", "prediction": i * 1.5}])
    assert log.commit() == 120
    rows = ws.data.read_arrow("predictions")
    assert sorted(rows["request_id"].to_pylist(), key=lambda r: int(r[1:])) == [f"r{i}" for i in range(120)]
    assert pc.count_distinct(rows[SEGMENT_COLUMN]).as_py() == 3  # 50 + 50 + 20
    assert not [p for p in (tmp_path / "segments").iterdir() if p.suffix in (".open", ".closed")]  # all committed
    assert log.commit() == 0  # nothing left


def test_a_segment_committed_before_a_crash_is_not_committed_again(ws: keel.Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "segments"
    log = delta_log(ws, folder)
    log.append([{"request_id": "r1", "prediction": 1.0}, {"request_id": "r2", "prediction": 2.0}])
    log.rotate()
    closed = next(folder.glob("*.closed"))
    kept = shutil.copy(closed, tmp_path / "copy")
    asked.clear()
    assert log.commit() == 2 and asked == []  # the normal path never reads the table
    interrupted = closed.with_suffix(".committing")
    shutil.copy(kept, interrupted)  # as if the committer died after the table commit, before deleting the segment
    log.append([{"request_id": "r3", "prediction": 3.0}])
    assert delta_log(ws, folder).recover() == 1  # r3 only: the table already holds the interrupted one
    assert asked == [[closed.stem]]  # and only that segment's id was asked about
    assert ws.data.read_arrow("predictions").num_rows == 3 and not interrupted.exists()


def test_sigkill_loses_no_acknowledged_record_and_commits_each_once(ws: keel.Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "segments"
    proc = subprocess.Popen([sys.executable, str(WORKER), str(folder), "300"], stdout=subprocess.PIPE, text=True)
    acknowledged: list[str] = []
    deadline = time.monotonic() + 60
    while len(acknowledged) < 1000 and time.monotonic() < deadline:
        acknowledged.append(proc.stdout.readline().strip())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(acknowledged) == 1000
    assert list(folder.glob("*.open")), "the killed writer left an open segment"
    recovered = delta_log(ws, folder).recover()
    ids = ws.data.read_arrow("predictions")["request_id"].to_pylist()
    assert recovered == len(ids) >= 1000
    assert set(acknowledged) <= set(ids) and len(ids) == len(set(ids))  # every acknowledged one, each once
    assert pa.types.is_floating(ws.data.read_arrow("predictions").schema.field("prediction").type)
