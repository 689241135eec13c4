"""Model version numbers under many concurrent writers: 1, 2, 3... with no duplicates and no gaps.

8 processes x 50 ``log_model`` calls on one model must end with versions exactly 1..400, on SQLite and
on PostgreSQL; the registered model row does not exist before they start, so they also race to create it.
Workers are scripts in ``workers/`` that open the same workspace (its keel.toml names the metadata
database), wait at a barrier and register as fast as they can.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import keel

WORKERS = Path(__file__).parent / "workers"
PROCESSES = 8
CALLS = 50

pytestmark = pytest.mark.slow


@dataclass
class Worker:
    name: str
    returncode: int
    stdout: str
    stderr: str

    @property
    def versions(self) -> list[int]:
        return [int(v) for v in re.findall(r"^V (\d+)$", self.stdout, re.MULTILINE)]

    @property
    def run_id(self) -> str:
        return re.search(r"^RUN (\S+)$", self.stdout, re.MULTILINE).group(1)

    def describe(self) -> str:
        return f"{self.name}: exit {self.returncode}\n--- stdout\n{self.stdout[-2000:]}\n--- stderr\n{self.stderr}"


def register_together(root: Path, names: list[str], calls: int, scratch: Path, timeout: float = 300) -> list[Worker]:
    """One worker per entry of ``names``, released at the same instant; waits for all of them."""
    scratch.mkdir(parents=True, exist_ok=True)
    start = scratch / "start"
    ready = [scratch / f"ready-{i}" for i in range(len(names))]
    procs = [subprocess.Popen([sys.executable, str(WORKERS / "register_models.py"), str(root), str(ready[i]),
                               str(start), name, str(calls)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
             for i, name in enumerate(names)]
    try:
        deadline = time.monotonic() + timeout
        while not all(r.exists() for r in ready):
            if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
                break  # a worker died before the barrier: release the others, report below
            time.sleep(0.005)
        start.touch()
        workers = []
        for name, p in zip(names, procs, strict=True):
            stdout, stderr = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            workers.append(Worker(name, p.returncode, stdout, stderr))
        return workers
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


@pytest.fixture(params=["sqlite", "postgresql"])
def workspace(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A migrated workspace folder whose keel.toml points at SQLite (default) or a fresh PostgreSQL database."""
    root = tmp_path / "ws"
    root.mkdir()
    lines = ["[keel]"]
    if request.param == "postgresql":
        lines.append(f'metadata_url = "{request.getfixturevalue("postgres_url")}"')
    (root / "keel.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with keel.open(root):
        pass
    return root


def _check_workers(workers: list[Worker], calls: int) -> None:
    for worker in workers:
        assert worker.returncode == 0, worker.describe()
        assert len(worker.versions) == calls, worker.describe()
        assert worker.versions == sorted(worker.versions), "one writer's versions must increase"


def _expected_predictions() -> np.ndarray:
    frame = pd.DataFrame({"a": np.arange(10), "b": np.linspace(0.0, 1.0, 10)})
    return (frame["a"] * 2.0 + frame["b"]).to_numpy()


def _check_model(ws: keel.Workspace, name: str, total: int, runs: set[str]) -> None:
    versions = ws.models.versions(name)
    assert [v.version for v in versions] == list(range(1, total + 1))
    assert ws.models.get(name).latest_version == total
    assert ws.models.version(name).version == total
    assert len({v.package_key for v in versions}) == total, "every version has its own package"
    assert {v.run_id for v in versions} == runs
    packages = {key.rsplit("/", 1)[0] for key in ws.artifacts.list(f"models/{name}/")}
    assert packages == {v.package_key for v in versions}, "no orphaned or missing packages"
    frame = pd.DataFrame({"a": np.arange(10), "b": np.linspace(0.0, 1.0, 10)})
    sample = {1, total, *random.Random(total).sample(range(1, total + 1), 6)}
    for number in sorted(sample):
        loaded = ws.models.load(f"{name}/{number}")
        np.testing.assert_allclose(loaded.predict(frame), _expected_predictions(), atol=1e-9)


def test_8_processes_x_50_log_model_calls_give_versions_1_to_400(workspace: Path, tmp_path: Path) -> None:
    workers = register_together(workspace, ["price"] * PROCESSES, CALLS, tmp_path / "barrier")
    _check_workers(workers, CALLS)
    handed_out = Counter(v for w in workers for v in w.versions)
    assert sorted(handed_out) == list(range(1, PROCESSES * CALLS + 1)), "a gap in the numbers handed out"
    assert max(handed_out.values()) == 1, f"duplicates: {[v for v, n in handed_out.items() if n > 1]}"
    interleaved = sum(1 for w in workers if w.versions[-1] - w.versions[0] >= CALLS)
    assert interleaved >= 2, "the workers ran one after the other: this test proved nothing"
    with keel.open(workspace) as ws:
        _check_model(ws, "price", PROCESSES * CALLS, {w.run_id for w in workers})


def test_version_counters_are_per_model(workspace: Path, tmp_path: Path) -> None:
    names = ["price", "demand"] * 2
    workers = register_together(workspace, names, 25, tmp_path / "barrier")
    _check_workers(workers, 25)
    with keel.open(workspace) as ws:
        assert sorted(m.name for m in ws.models.list()) == ["demand", "price"]
        for name in ("price", "demand"):
            mine = [w for w in workers if w.name == name]
            assert sorted(v for w in mine for v in w.versions) == list(range(1, 51))
            _check_model(ws, name, 50, {w.run_id for w in mine})
