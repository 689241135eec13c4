"""SIGKILL a process in the middle of ingests, many times over, then check nothing was lost or half-written.

The worker (``workers/crash_ingest.py``) appends batches to one table in a loop and prints
``ACK <batch> <version> ...`` after each ``ingest`` returns. Every batch carries its id and its size in
every row, so any version can be checked for whole batches. After the kills we require:

(a) every acknowledged batch is in the latest version exactly once, with all its rows, and was added by
    exactly the version its ACK reported;
(b) the history is contiguous 0..N, and each version's row_count and content_hash equal what reading
    that version returns (hash recomputed over the data, without ``_keel_row_id``);
(c) no version holds part of a batch; each version adds exactly one whole batch to the one before;
(d) batches committed but never acknowledged (killed after the Delta commit) may appear, whole.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import keel
from keel.data.model import QUARANTINE_SUFFIX, ROW_ID
from keel.data.profiles import content_hash

WORKER = Path(__file__).parent / "workers" / "crash_ingest.py"
KILLPOINT_WORKER = WORKER.with_name("killpoint_ingest.py")
KILL_DELAY = (0.02, 0.3)  # seconds after the worker opened the workspace; each ingest takes ~10-30 ms
PREFETCH = 2  # workers importing keel ahead of their turn

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Ack:
    batch: str
    version: int
    rows_read: int
    rows_written: int
    rows_quarantined: int
    quarantine_version: int | None


@dataclass
class KillReport:
    acks: list[Ack] = field(default_factory=list)
    begun: dict[str, int] = field(default_factory=dict)  # batch -> rows, for every ingest started
    killed_mid_ingest: int = 0


class Worker:
    """One crash_ingest.py process; it imports keel at once and opens the workspace when ``go()`` is called."""

    def __init__(self, root: Path, scratch: Path, prefix: str, mode: str) -> None:
        self.go_file = scratch / f"go-{prefix}"
        self.stderr_path = scratch / f"stderr-{prefix}.txt"
        self.lines: list[str] = []
        self.ready = threading.Event()
        with self.stderr_path.open("w") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, str(WORKER), str(root), str(self.go_file), prefix, mode],
                stdout=subprocess.PIPE, stderr=stderr, text=True, env=dict(os.environ),
            )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("READY"):
                self.ready.set()
        self.ready.set()  # EOF: wake a waiter so it can report the death

    def go(self) -> None:
        self.go_file.touch()

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.reader.join(timeout=30)

    def describe(self) -> str:
        return f"exit {self.proc.returncode}; stdout tail {self.lines[-3:]}; stderr:\n{self.stderr_path.read_text()}"


def kill_repeatedly(root: Path, scratch: Path, *, mode: str, rounds: int, seed: int,
                    delay: tuple[float, float] = KILL_DELAY) -> KillReport:
    """Run ``rounds`` workers one after the other on one workspace, each SIGKILLed at a random moment.

    The next workers are started (and import keel) while the current one runs, so rounds cost little more
    than the kill delay; each opens the workspace only once the one before it is dead.
    """
    scratch.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    report = KillReport()
    upcoming = deque(Worker(root, scratch, f"r{r:02d}", mode) for r in range(min(PREFETCH, rounds)))
    try:
        for r in range(rounds):
            current = upcoming.popleft()
            current.go()
            assert current.ready.wait(60) and current.proc.poll() is None, current.describe()
            if r + len(upcoming) + 1 < rounds:
                upcoming.append(Worker(root, scratch, f"r{r + len(upcoming) + 1:02d}", mode))
            time.sleep(rng.uniform(*delay))
            alive = current.proc.poll() is None
            current.kill()
            assert alive and current.proc.returncode == -signal.SIGKILL, f"the worker died on its own: " \
                f"{current.describe()}"
            for line in current.lines:
                kind, *rest = line.split()
                if kind == "BEGIN":
                    report.begun[rest[0]] = int(rest[1])
                elif kind == "ACK":
                    b, v, read, written, quarantined, qv = rest
                    report.acks.append(Ack(b, int(v), int(read), int(written), int(quarantined),
                                           None if qv == "None" else int(qv)))
            if current.lines and current.lines[-1].startswith("BEGIN"):
                report.killed_mid_ingest += 1
    finally:
        for worker in upcoming:
            worker.kill()
    return report


def bad_rows(rows: int) -> int:
    """Rows the quarantine worker makes bad in a batch of ``rows``: those with seq % 10 == 3."""
    return len(range(3, rows, 10))


def batch_counts(data: pa.Table) -> dict[str, tuple[int, int]]:
    """batch id -> (rows present, rows the batch was made with)."""
    grouped = data.group_by("batch_id").aggregate([("seq", "count"), ("batch_rows", "max")]).to_pylist()
    return {g["batch_id"]: (g["seq_count"], g["batch_rows_max"]) for g in grouped}


def check_every_version(ws: keel.Workspace, table: str, whole: dict[str, int] | None = None) -> dict[str, int]:
    """(b) and (c) for every version of ``table``; returns batch id -> the version that added it.

    ``whole`` maps a batch id to the rows a whole batch has in this table (default: its batch_rows).
    """
    history = list(reversed(ws.data.history(table)))
    assert [v.version for v in history] == list(range(len(history))), f"{table}: versions not contiguous"
    added: dict[str, int] = {}
    before: dict[str, tuple[int, int]] = {}
    previous_rows = 0
    for v in history:
        data = ws.data.read_arrow(f"{table}@{v.version}")
        assert ROW_ID not in data.column_names
        assert data.num_rows == v.row_count, f"{v.ref}: metadata says {v.row_count} rows, reading gives {data.num_rows}"
        assert v.rows_added == v.row_count - previous_rows, v.ref
        assert v.content_hash == content_hash(data, data.column_names), f"{v.ref}: content hash differs"
        counts = batch_counts(data)
        for batch, (present, made) in counts.items():
            expected = whole[batch] if whole is not None and batch in whole else made
            assert present == expected, f"{v.ref} holds {present} of the {expected} rows of batch {batch}"
        new = sorted(set(counts) - set(before))
        assert len(new) == 1, f"{v.ref} adds batches {new}; each append commits exactly one batch"
        assert {b: counts[b] for b in before} == before, f"{v.ref} changed rows of earlier versions"
        added[new[0]] = v.version
        before, previous_rows = counts, v.row_count
    return added


def check_row_ids(ws: keel.Workspace, table: str) -> None:
    ids = ws.data.read_arrow(table, with_row_ids=True)[ROW_ID]
    assert ids.null_count == 0
    assert pc.count_distinct(ids).as_py() == len(ids), f"{table}: row ids repeat"


def test_sigkill_during_ingest_loses_no_acknowledged_write(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    keel.init(root).close()
    began = time.monotonic()
    report = kill_repeatedly(root, tmp_path / "scratch", mode="plain", rounds=30, seed=20240501)
    print(f"kill loop {time.monotonic() - began:.1f}s")
    assert report.acks, "no ingest was ever acknowledged; the kill delay is too short"
    assert report.killed_mid_ingest >= 10, f"only {report.killed_mid_ingest} of 30 kills hit an ingest"

    with keel.open(root) as ws:
        added = check_every_version(ws, "events")
        latest = batch_counts(ws.data.read_arrow("events"))
        for ack in report.acks:  # (a)
            assert ack.batch in latest, f"acknowledged batch {ack.batch} (version {ack.version}) is missing"
            assert latest[ack.batch][0] == ack.rows_written == ack.rows_read == report.begun[ack.batch]
            assert added[ack.batch] == ack.version, f"{ack.batch} was acknowledged as version {ack.version} but " \
                f"version {added[ack.batch]} added it"
            assert ack.rows_quarantined == 0 and ack.quarantine_version is None
        assert set(latest) <= set(report.begun), "a batch nobody wrote"
        unacknowledged = set(latest) - {a.batch for a in report.acks}  # (d): allowed, and whole (checked above)
        assert len(unacknowledged) <= report.killed_mid_ingest
        check_row_ids(ws, "events")
        history = ws.data.history("events")
        assert history[0].row_count == sum(n for n, _ in latest.values())
        assert not ws.data.catalog.sync("events"), "reopening found more versions to recover"
        print(f"acks={len(report.acks)} versions={len(history)} killed_mid_ingest={report.killed_mid_ingest} "
              f"unacknowledged_committed={len(unacknowledged)}")


def test_sigkill_during_ingest_with_quarantine_keeps_rows_in_plus_quarantined_equal_rows_read(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    keel.init(root).close()
    # up to 0.9 s: on a loaded machine one quarantining ingest took over 0.45 s, and no round acknowledged one
    report = kill_repeatedly(root, tmp_path / "scratch", mode="quarantine", rounds=15, seed=7, delay=(0.05, 0.9))
    assert report.acks, "no ingest was ever acknowledged; the kill delay is too short"
    quarantine = "events" + QUARANTINE_SUFFIX

    with keel.open(root) as ws:
        good_rows = {b: n - bad_rows(n) for b, n in report.begun.items()}
        added = check_every_version(ws, "events", whole=good_rows)
        q_added = check_every_version(ws, quarantine, whole={b: bad_rows(n) for b, n in report.begun.items()})
        latest = batch_counts(ws.data.read_arrow("events"))
        quarantined = ws.data.read_arrow(quarantine)
        q_latest = batch_counts(quarantined)
        for ack in report.acks:
            rows = report.begun[ack.batch]
            assert ack.rows_read == rows
            assert ack.rows_written + ack.rows_quarantined == ack.rows_read
            assert (ack.rows_written, ack.rows_quarantined) == (rows - bad_rows(rows), bad_rows(rows))
            assert latest[ack.batch][0] == ack.rows_written, f"acknowledged batch {ack.batch} lost good rows"
            assert q_latest[ack.batch][0] == ack.rows_quarantined, f"acknowledged batch {ack.batch} lost bad rows"
            assert added[ack.batch] == ack.version
            assert q_added[ack.batch] == ack.quarantine_version
        assert pc.all(pc.less(quarantined["value"], 0)).as_py()
        assert set(quarantined["_keel_reason"].to_pylist()) == {"min(value)"}
        assert set(latest) <= set(report.begun) and set(q_latest) <= set(report.begun)
        check_row_ids(ws, "events")
        check_row_ids(ws, quarantine)
        # An ingest killed between its quarantine commit and its table commit leaves bad rows whose good rows
        # never landed; count them so a change in that behaviour shows up in the report.
        orphans = sorted(set(q_latest) - set(latest))
        print(f"acks={len(report.acks)} killed_mid_ingest={report.killed_mid_ingest} "
              f"unacknowledged_committed={len(set(latest) - {a.batch for a in report.acks})} "
              f"quarantine_without_table_rows={orphans}")


# -- deterministic kill points -----------------------------------------------------------------------

KILL_POINTS = ("before-table-commit", "after-table-commit", "in-metadata-transaction")


def kill_at(root: Path, point: str, mode: str) -> list[str]:
    """Run killpoint_ingest.py to its own SIGKILL and return its stdout lines."""
    proc = subprocess.run([sys.executable, str(KILLPOINT_WORKER), str(root), point, mode], capture_output=True,
                          text=True, timeout=120, env=dict(os.environ))
    assert proc.returncode == -signal.SIGKILL, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("ACK b0 0 ") and lines[-1] == "BEGIN b1 3000", lines
    return lines


def edge_relations(ws: keel.Workspace, ref: str) -> set[str]:
    return {e.relation for e in ws.lineage.edges(ref) if e.dst == ref}


@pytest.mark.parametrize("mode", ["plain", "quarantine"])
@pytest.mark.parametrize("point", KILL_POINTS)
def test_sigkill_at_each_point_of_an_ingest(tmp_path: Path, point: str, mode: str) -> None:
    root = tmp_path / "ws"
    keel.init(root).close()
    kill_at(root, point, mode)
    committed = point != "before-table-commit"
    quarantine = "events" + QUARANTINE_SUFFIX
    good = {"b0": 2500 - bad_rows(2500), "b1": 3000 - bad_rows(3000)} if mode == "quarantine" else None

    with keel.open(root) as ws:
        added = check_every_version(ws, "events", whole=good)
        assert added == ({"b0": 0, "b1": 1} if committed else {"b0": 0})
        if committed:  # recovered from the Delta log with the metadata its commit carried
            recovered = ws.data.version("events@1")
            first = ws.data.version("events@0")
            assert (recovered.operation, recovered.created_by, recovered.source_name) == \
                (first.operation, first.created_by, first.source_name)
            assert recovered.contract_version == first.contract_version
            assert recovered.source_hash is not None and recovered.source_hash != first.source_hash
            assert ws.data.profile("events@1")["rows"] == recovered.row_count
        after = ws.data.ingest(ws.data.read_arrow("events@0").slice(0, 10).to_pandas().assign(batch_id="b2",
                                                                                              batch_rows=10), "events")
        assert after.version.version == (2 if committed else 1)
        check_row_ids(ws, "events")
        if mode == "quarantine":
            q_added = check_every_version(ws, quarantine, whole={"b0": bad_rows(2500), "b1": bad_rows(3000)})
            assert set(q_added) <= {"b0", "b1"}
            check_row_ids(ws, quarantine)


def test_sigkill_between_quarantine_and_table_commit_leaves_no_quarantine_rows(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    keel.init(root).close()
    kill_at(root, "before-table-commit", "quarantine")
    with keel.open(root) as ws:
        table = batch_counts(ws.data.read_arrow("events"))
        quarantined = batch_counts(ws.data.read_arrow("events" + QUARANTINE_SUFFIX))
    assert "b1" not in table
    assert "b1" not in quarantined, f"{quarantined['b1'][0]} rows of an ingest that never committed are quarantined"


@pytest.mark.parametrize("point", ["after-table-commit", "in-metadata-transaction"])
def test_a_recovered_version_keeps_its_lineage(tmp_path: Path, point: str) -> None:
    root = tmp_path / "ws"
    keel.init(root).close()
    kill_at(root, point, "quarantine")
    with keel.open(root) as ws:
        recovered, first = ws.data.version("events@1"), ws.data.version("events@0")
        assert edge_relations(ws, first.ref) == {"ingested_from", "validated_by", "quarantine_of"}
        assert edge_relations(ws, recovered.ref) == {"ingested_from", "validated_by", "quarantine_of", "next_version"}
