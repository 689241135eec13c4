"""Runs end to end through ws.runs: lifecycle, params, buffered metrics, artifacts, lineage, failures."""

from __future__ import annotations

import dataclasses
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest

import keel
from keel.errors import Conflict, InvalidInput, NotFound
from keel.tracking import service as service_module

WORKER = Path(__file__).with_name("workers") / "metric_logger.py"


def test_a_run_records_what_was_logged_and_ends_finished(any_ws: keel.Workspace) -> None:
    any_ws.data.ingest(pa.table({"x": [1, 2, 3]}), "t")
    with any_ws.runs.start("price", inputs=["t"], tags={"team": "pricing"}) as run:
        run.log_params({"max_depth": 5, "lr": 0.1})
        run.log_param("max_depth", 5)  # the same value again is fine
        for step in range(100):
            run.log_metric("loss", 1 / (step + 1), step=step)
        run.log_metrics({"rmse": 2.5, "mae": 1.5})
        sha = run.log_artifact(b"hello", "notes.txt")
    info = any_ws.runs.get(run.id)
    assert info.status == "finished" and info.ended_at is not None and info.error is None
    assert info.params == {"max_depth": "5", "lr": "0.1"} and info.tags == {"team": "pricing"}
    assert info.metrics == {"loss": pytest.approx(0.01), "rmse": 2.5, "mae": 1.5}
    assert info.artifacts == {"notes.txt": sha}
    assert info.inputs == ["table:t@0"]
    losses = [v for _, v in any_ws.runs.metric_history(run.id, "loss")]
    assert losses == pytest.approx([1 / (s + 1) for s in range(100)])
    assert info.environment["python"] and "pyarrow" in info.environment["packages"]


def test_a_failing_block_marks_the_run_failed_with_the_message(ws: keel.Workspace) -> None:
    with pytest.raises(ValueError), ws.runs.start("price") as run:
        run.log_metric("partial", 1.0)
        raise ValueError("the data was wrong")
    info = ws.runs.get(run.id)
    assert info.status == "failed" and info.error == "ValueError: the data was wrong"
    assert info.metrics == {"partial": 1.0}  # what was logged before the failure is kept


def test_keyboard_interrupt_marks_the_run_killed(ws: keel.Workspace) -> None:
    with pytest.raises(KeyboardInterrupt), ws.runs.start("price") as run:
        raise KeyboardInterrupt
    assert ws.runs.get(run.id).status == "killed"


def test_nested_runs_know_their_parent(ws: keel.Workspace) -> None:
    with ws.runs.start("price") as parent, parent.start(name="fold-1") as child:
        child.log_metric("rmse", 3.0)
    assert ws.runs.get(child.id).parent_id == parent.id
    assert ws.lineage.downstream(parent.ref).refs() == [parent.ref, child.ref]


def test_bad_input_is_refused(ws: keel.Workspace) -> None:
    with ws.runs.start("price") as run:
        run.log_param("lr", 0.1)
        with pytest.raises(Conflict, match="immutable"):
            run.log_param("lr", 0.2)
        for bad in (math.nan, math.inf, "1.0", None, True):
            with pytest.raises(InvalidInput, match="metric 'x'"):
                run.log_metric("x", bad)
        run.log_metric("x", math.nan, allow_nan=True)
        with pytest.raises(InvalidInput, match="step"):
            run.log_metric("y", 1.0, step=1.5)
        with pytest.raises(InvalidInput, match="64 bits"):
            run.log_metrics({"y": 1.0}, step=2**70)  # refused before it could block the batch it joins
        run.log_metric("z", 2.0, step=2**63 - 1)
    with pytest.raises(Conflict, match="has ended"):
        run.log_metric("late", 1.0)
    with pytest.raises(NotFound, match="unknown run"):
        ws.runs.get("nope")
    with pytest.raises(NotFound, match="nothing is named 'missing'"):
        ws.runs.start("price", inputs=["missing"])
    assert ws.runs.metric_history(run.id, "x") == [(None, None)]  # the explicit NaN, stored as null
    assert ws.runs.metric_history(run.id, "z") == [(2**63 - 1, 2.0)]


def test_log_metric_is_buffered_not_a_round_trip(ws: keel.Workspace) -> None:
    with ws.runs.start("price") as run:
        run.log_metric("warm", 0.0)
        start = time.perf_counter()
        for i in range(5000):
            run.log_metric("fast", float(i))
        per_call = (time.perf_counter() - start) / 5000
    assert per_call < 0.0005  # a database round trip costs milliseconds; a buffered call microseconds
    assert len(ws.runs.metric_history(run.id, "fast")) == 5000


def test_points_reach_the_database_at_interpreter_exit(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    keel.init(root).close()
    code = (f"import keel; ws = keel.open({str(root)!r}); run = ws.runs.start('x'); "
            "[run.log_metric('m', float(i)) for i in range(2500)]; print(run.id)")  # no end, no close
    run_id = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    with keel.open(root) as ws:
        assert len(ws.runs.metric_history(run_id, "m")) == 2500


def test_sigkill_loses_no_acknowledged_point_and_others_lose_nothing(tmp_path: Path) -> None:
    """4 processes log 10k points each; one is SIGKILLed mid-way: every acknowledged point is there once."""
    root = tmp_path / "ws"
    keel.init(root).close()
    procs = [subprocess.Popen([sys.executable, str(WORKER), str(root), str(w), "10000", "hang" if w == 0 else "end"],
                              stdout=subprocess.PIPE, text=True) for w in range(4)]
    victim = procs[0]
    run_ids, acknowledged = {}, 0
    for line in victim.stdout:
        if line.startswith("RUN "):
            run_ids[0] = line.split()[1]
        elif line.startswith("FLUSHED "):
            acknowledged = int(line.split()[1])
            if acknowledged >= 3000:
                victim.send_signal(signal.SIGKILL)
                break
    victim.wait(timeout=60)
    for w, proc in enumerate(procs[1:], start=1):
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0 and "DONE" in out
        run_ids[w] = out.split()[1]
    with keel.open(root) as ws:
        for w, run_id in run_ids.items():
            points = ws.runs.metric_history(run_id, "m")
            steps = [s for s, _ in points]
            assert len(steps) == len(set(steps)), f"worker {w}: a point stored twice"
            if w == 0:
                assert acknowledged <= len(points) < 10_000 and steps[:acknowledged] == list(range(acknowledged))
                assert ws.runs.get(run_id).status == "running"  # killed: nobody could end it
            else:
                assert steps == list(range(10_000)) and ws.runs.get(run_id).status == "finished"


def test_compare_and_the_cli_show_what_differs(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    ids = []
    with keel.init(root) as ws:
        for depth in (3, 5):
            with ws.runs.start("price") as run:
                run.log_params({"max_depth": depth, "lr": 0.1})
                run.log_metric("rmse", 10.0 / depth)
            ids.append(run.id)
        result = ws.runs.compare(ids)
    assert result["params"] == {"lr": ["0.1", "0.1"], "max_depth": ["3", "5"]}
    assert result["params_differ"] == ["max_depth"] and result["metrics_differ"] == ["rmse"]
    cli = [sys.executable, "-m", "keel.cli.main", "-w", str(root), "runs"]
    out = subprocess.run([*cli, "compare", *ids], capture_output=True, text=True, check=True).stdout
    assert "params.max_depth *" in out and "params.lr *" not in out
    shown = subprocess.run([*cli, "show", ids[0]], capture_output=True, text=True, check=True).stdout
    assert f"run:{ids[0]} price: finished" in shown and "max_depth" in shown
    missing = subprocess.run([*cli, "show", "nope"], capture_output=True, text=True, check=False)
    assert missing.returncode == 2 and missing.stderr.startswith("error: unknown run 'nope'")


def test_list_filters_and_sorts_in_the_database(any_ws: keel.Workspace) -> None:
    made = {}
    for depth, rmse in ((3, 4.0), (5, 2.5), (5, 3.5), (8, 1.0)):
        with any_ws.runs.start("price", name=f"d{depth}-{rmse}") as run:
            run.log_params({"max_depth": depth})
            run.log_metric("rmse", rmse)
        made[run.id] = rmse
    with any_ws.runs.start("other") as other:
        other.log_metric("rmse", 0.5)
    found = any_ws.runs.list(experiment="price", filter="metrics.rmse < 3.6 and params.max_depth = 5",
                             sort="-metrics.rmse")
    assert [r.metrics["rmse"] for r in found] == [3.5, 2.5]
    best = any_ws.runs.list(experiment="price", sort="metrics.rmse", limit=2)
    assert [r.name for r in best] == ["d8-1.0", "d5-2.5"] and best[0].params == {"max_depth": "8"}
    assert {r.id for r in any_ws.runs.list(experiment="price")} == set(made)
    assert any_ws.runs.list(filter="metrics.rmse < 1")[0].id == other.id
    with pytest.raises(InvalidInput, match="position"):
        any_ws.runs.list(filter="metrics.rmse <")


@pytest.mark.parametrize("exact_float_text", [True, False])
def test_listed_runs_equal_what_get_returns(any_ws: keel.Workspace, monkeypatch: pytest.MonkeyPatch,
                                            exact_float_text: bool) -> None:
    """list() reads every run in one statement (or, where SQLite cannot print doubles exactly, in two
    queries); either way each RunInfo equals get()'s, less the environment, artifacts and inputs."""
    monkeypatch.setattr(service_module, "sqlite_prints_floats_exactly", lambda: exact_float_text)
    any_ws.data.ingest(pa.table({"x": [1, 2, 3]}), "t")
    odd = {"third": 1 / 3, "tiny": 5e-324, "huge": -1.7976931348623157e308, "inf": math.inf, "nan": math.nan}
    with any_ws.runs.start("price", name="odd", inputs=["t"], tags={"note": 'say "hi"\n', "ü": "∑"}) as parent:
        parent.log_params({"lr": 0.1, "key with spaces": "it's"})
        parent.log_metrics(odd, allow_nan=True)
        parent.log_artifact(b"x", "x.bin")
        with parent.start(name="child") as child:
            child.log_metric("rmse", 2.5)
    with any_ws.runs.start("price", name="failed") as failed:
        failed.end("failed", "boom")
    listed = any_ws.runs.list(experiment="price", sort="run.name")
    assert [r.name for r in listed] == ["child", "failed", "odd"]
    for info in listed:
        expected = dataclasses.replace(any_ws.runs.get(info.id), environment=None, artifacts={}, inputs=[])
        assert info == expected
    odd_run = listed[2]
    assert odd_run.metrics["nan"] is None and odd_run.metrics["inf"] == math.inf
    assert {k: v for k, v in odd_run.metrics.items() if k != "nan"} == {k: v for k, v in odd.items() if k != "nan"}
    assert odd_run.params == {"lr": "0.1", "key with spaces": "it's"} and odd_run.tags["note"] == 'say "hi"\n'
    assert listed[0].parent_id == parent.id and listed[1].error == "boom" and listed[1].ended_at is not None
    assert listed[0].duration_s is not None and listed[0].started_at.tzinfo is not None


def test_cli_list_with_filter_and_sort(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    with keel.init(root) as ws:
        for depth in (3, 5, 8):
            with ws.runs.start("price", name=f"depth-{depth}") as run:
                run.log_params({"max_depth": depth})
                run.log_metric("rmse", 10.0 / depth)
    cli = [sys.executable, "-m", "keel.cli.main", "-w", str(root), "runs", "list", "--experiment", "price"]
    out = subprocess.run([*cli, "--filter", "params.max_depth > 3", "--sort", "metrics.rmse"],
                         capture_output=True, text=True, check=True).stdout
    assert "2 run(s)" in out and out.index("depth-8") < out.index("depth-5") and "depth-3" not in out
    bad = subprocess.run([*cli, "--filter", "metrics.rmse <"], capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("error:")


def test_a_run_is_created_with_its_tags_and_inputs_or_not_at_all(ws: keel.Workspace) -> None:
    ws.data.ingest(pa.table({"x": [1]}), "t")
    with pytest.raises(InvalidInput, match="invalid key"):
        ws.runs.start("price", inputs=["t"], tags={"ok": 1, "": "empty key"})
    assert ws.runs.list(experiment="price") == []  # refused before anything was written
    run = ws.runs.start("price", inputs=["t"], tags={"team": "pricing", "n": 3})
    info = ws.runs.get(run.id)
    assert info.tags == {"team": "pricing", "n": "3"} and info.inputs == ["table:t@0"] and info.status == "running"
    run.end()


def test_a_run_resumed_by_another_process_continues_its_sequence_numbers(tmp_path: Path) -> None:
    """Two server workers (or a restarted server) log to one run in turn: no point is lost or refused."""
    first = keel.init(tmp_path / "ws")
    run = first.runs.start("price")
    first.runs.handle(run.id).log_metrics({"loss": 1.0}, step=0)
    first.runs.flush()
    second = keel.open(tmp_path / "ws")  # another process's view: its own buffer, its own counters
    try:
        second.runs.handle(run.id).log_metrics({"loss": 0.5}, step=1)
        second.runs.flush()
        first.runs.handle(run.id).log_metrics({"loss": 0.25}, step=2)
        first.runs.flush()
        assert second.runs.metric_history(run.id, "loss") == [(0, 1.0), (1, 0.5), (2, 0.25)]
    finally:
        second.close()
        first.close()
