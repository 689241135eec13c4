"""Pipelines (issue 9) with the SDK and the CLI: ``@step`` DAGs over real keel refs (a Table parameter pinned to a
version, a Split made by a step through ``ctx.ws``), outputs, logs and lineage; the step cache (same code and
inputs: ``cached``; new data, new code or ``force``: executed); a failed step skipping its dependants while the
other branch runs, and ``retry`` resuming from the failure without executing finished steps again; step retries,
wrong return types, bad definitions refused; queued runs and idempotent fires; the default process executor.

The test pipelines live in pipeline_defs/ and are loaded by file path. Every step appends its name to a trace
file: the trace, not the step statuses alone, proves which steps really executed.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_cli import concurrently, keel_cli, ok, user_error

import keel
from keel.code import load_module
from keel.errors import Conflict, InvalidInput, NotFound
from keel.pipelines import Manual, OnData, OnGit, Pipeline, PipelineRun, Schedule, step

DEFS = Path(__file__).parent / "pipeline_defs"
TRAINING = DEFS / "training.py"
INVALID = DEFS / "invalid.py"


def listings_frame(rows: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x": rng.normal(size=rows), "y": rng.integers(0, 2, rows)})


def traced(trace: Path) -> list[str]:
    """The steps that executed, in order."""
    return trace.read_text().split() if trace.exists() else []


def statuses(run: PipelineRun) -> dict[str, str]:
    return {s.step: s.status for s in run.steps}


@pytest.fixture
def train_ws(ws: keel.Workspace) -> keel.Workspace:
    """A workspace with listings@0 and the pipelines of pipeline_defs/training.py applied."""
    ws.data.ingest(listings_frame(), "listings")
    ws.pipelines.apply(TRAINING)
    return ws


@pytest.fixture
def train_any_ws(any_ws: keel.Workspace) -> keel.Workspace:
    """The same, on SQLite and on PostgreSQL (skipped when KEEL_TEST_POSTGRES_URL is not set)."""
    any_ws.data.ingest(listings_frame(), "listings")
    any_ws.pipelines.apply(TRAINING)
    return any_ws


# -- definitions --------------------------------------------------------------------------------------


def test_apply_stores_a_new_version_only_when_the_definition_changed(ws: keel.Workspace) -> None:
    first = ws.pipelines.apply(TRAINING)
    assert [(p.name, p.version) for p in first] == [("train", 1), ("flaky", 1), ("wrong", 1), ("procs", 1),
                                                    ("chain", 1)]
    assert [(p.name, p.version) for p in ws.pipelines.apply(TRAINING)] == [(p.name, 1) for p in first]
    info = ws.pipelines.get("train")
    assert info.ref == "pipeline:train@1" and info.applied_by == ws.user
    steps = {s["name"]: s for s in info.steps}
    assert list(steps) == ["prepare", "count", "check", "report", "independent"]
    assert steps["count"]["inputs"] == {"split": "prepare"}  # wired by @step(inputs=...)
    assert steps["check"]["inputs"] == {"count": "count"}  # wired by the parameter's name
    assert steps["prepare"]["types"]["table"] == "Table" and steps["prepare"]["output"] == "Split"
    assert steps["prepare"]["params"] == {"table": "listings", "trace": ""}
    assert steps["prepare"]["context"] is True and steps["check"]["context"] is False
    assert [t["kind"] for t in info.triggers] == ["manual", "api"]
    assert [s["retries"] for s in ws.pipelines.get("flaky").steps] == [1]

    defs = load_module(TRAINING)  # the same steps, another default: a new version of train alone
    changed = Pipeline("train", [defs.prepare, defs.count, defs.check, defs.report, defs.independent],
                       triggers=[Manual()], params={"trace": "elsewhere"})
    assert [p.ref for p in ws.pipelines.apply(changed)] == ["pipeline:train@2"]
    assert ws.pipelines.get("train").version == 2 and ws.pipelines.get("train", 1).triggers[1]["kind"] == "api"
    assert {s["name"]: s["params"].get("trace") for s in ws.pipelines.get("train").steps}["check"] == "elsewhere"
    assert [(p.name, p.version) for p in ws.pipelines.list()] == [("chain", 1), ("flaky", 1), ("procs", 1),
                                                                   ("train", 2), ("wrong", 1)]
    with pytest.raises(NotFound, match="no pipeline 'train' version 3"):
        ws.pipelines.get("train", 3)


def unannotated(x: int = 1):  # the point: no return annotation
    return x


def test_bad_definitions_are_refused_and_nothing_is_stored(ws: keel.Workspace, tmp_path: Path) -> None:
    defs = load_module(INVALID)
    with pytest.raises(InvalidInput, match="has a cycle"):
        ws.pipelines.apply(INVALID)
    with pytest.raises(InvalidInput, match="takes 'number' as Split, but step 'number' returns int"):
        ws.pipelines.apply(Pipeline("mismatch", [defs.number, defs.needs_split]))
    with pytest.raises(InvalidInput, match="declare what it returns"):
        step(unannotated)
    with pytest.raises(InvalidInput, match="retries"):
        step(retries=-1)(unannotated)
    with pytest.raises(InvalidInput, match="engine 'gpu'"):
        step(engine="gpu")(unannotated)
    with pytest.raises(InvalidInput, match="no default"):  # a is neither wired (b is missing) nor defaulted
        ws.pipelines.apply(Pipeline("alone", [defs.a]))
    not_a_repo = tmp_path / "plain"
    not_a_repo.mkdir()
    bad_triggers = [
        ({"kind": "webhook"}, "unknown trigger 'webhook'"),
        (Schedule("61 * * * *"), "is not a cron expression"),
        (Schedule("0 3 * * *", timezone="Mars/Olympus_Mons"), "unknown time zone 'Mars/Olympus_Mons'"),
        (Schedule("0 3 * * *", catchup="all"), "catchup 'all'"),
        ({"kind": "schedule"}, "needs 'cron'"),
        (OnGit(str(not_a_repo)), "is not a git repository"),
        (OnGit(str(tmp_path / "missing")), "is not a folder"),
        (OnData("table:listings@3"), "without a version"),
    ]
    for trigger, message in bad_triggers:
        with pytest.raises(InvalidInput, match=message):
            ws.pipelines.apply(Pipeline("triggered", [defs.number], triggers=[trigger]))
    assert ws.pipelines.list() == []
    with pytest.raises(NotFound, match="no pipeline 'cycle'"):
        ws.pipelines.run("cycle", executor="inline")


def test_run_parameters_are_checked_and_refs_pinned(train_ws: keel.Workspace) -> None:
    ws = train_ws
    with pytest.raises(InvalidInput, match="has no parameter learning_rate; its parameters: fail_if, table, trace"):
        ws.pipelines.run("train", {"learning_rate": 0.1}, executor="inline")
    with pytest.raises(NotFound):  # a table that does not exist
        ws.pipelines.enqueue("train", {"table": "nowhere"})
    ws.data.split("listings", target="y", name="other")
    with pytest.raises(InvalidInput, match="is a Table; 'split:other@1' is a split"):
        ws.pipelines.enqueue("train", {"table": "split:other@1"})
    assert ws.pipelines.runs("train") == []  # nothing was created by the refused calls
    ws.data.ingest(listings_frame(seed=1), "listings")
    queued = ws.pipelines.enqueue("train")
    old = ws.pipelines.enqueue("train", {"table": "listings@0"})
    assert queued.params["steps"]["prepare"]["table"] == "table:listings@1"  # the newest version, pinned
    assert old.params["steps"]["prepare"]["table"] == "table:listings@0"
    assert queued.params["given"] == {} and old.params["given"] == {"table": "listings@0"}
    ws.data.ingest(listings_frame(seed=2), "listings")  # a newer version does not move a created run
    done = ws.pipelines.execute(queued.id, executor="inline")
    assert done.step("prepare").inputs["table"] == "table:listings@1"
    assert ws.data.split_info(done.output("prepare")).table_version == 1


def test_a_refused_executor_creates_no_run(train_ws: keel.Workspace) -> None:
    """``run`` with an executor it does not know is bad input: refused before a run is queued, else the scheduler
    would execute a run nobody asked for (``keel pipelines run train --executor thread`` exits 2)."""
    with pytest.raises(InvalidInput, match="executor 'threads'"):
        train_ws.pipelines.run("train", executor="threads")
    assert train_ws.pipelines.runs("train") == [] and train_ws.pipelines.claimable() == []


# -- running ------------------------------------------------------------------------------------------


def test_run_outputs_logs_and_lineage(train_ws: keel.Workspace, tmp_path: Path) -> None:
    ws, trace = train_ws, tmp_path / "trace"
    run = ws.pipelines.run("train", {"trace": str(trace)}, executor="inline")
    assert run.status == "succeeded" and run.error is None and run.attempt == 1
    assert statuses(run) == dict.fromkeys(["prepare", "count", "check", "report", "independent"], "succeeded")
    assert sorted(traced(trace)) == ["check", "count", "independent", "prepare", "report"]
    assert traced(trace).index("prepare") < traced(trace).index("count") < traced(trace).index("check") \
        < traced(trace).index("report")
    assert run.trigger == {"kind": "manual", "by": ws.user} and run.created_by == ws.user
    assert sorted(run.edges) == [("check", "report"), ("count", "check"), ("prepare", "count")]
    split = run.output("prepare")
    assert split == "split:toy-split@1" and ws.data.split_info(split).table_version == 0
    assert run.step("prepare").inputs == {"table": "table:listings@0", "trace": str(trace)}
    assert run.step("count").inputs["split"] == split and run.output("count") == {"split": split, "rows": 100}
    assert run.output("check") == 100 and run.output("report") == {"checked": 100} and run.output("independent") == 7
    assert "splitting table:listings@0" in run.step("prepare").logs  # ctx.log, captured
    assert all(s.started_at and s.ended_at and s.seconds is not None for s in run.steps)

    made = {(e.src, e.relation) for e in ws.lineage.edges(split) if e.dst == split}
    assert ("table:listings@0", "pipeline train/prepare") in made
    assert (run.ref, "made by step prepare") in made
    assert {"table:listings@0", run.ref} <= set(ws.lineage.upstream(split).refs())
    # count returns a dict, not a ref: the run's only lineage is to the split it made
    assert [(e.dst, e.relation) for e in ws.lineage.edges(run.ref)] == [(split, "made by step prepare")]

    chained = ws.pipelines.run("chain", executor="inline")  # another pipeline: its own cache, a new split
    first, second = chained.output("prepare"), chained.output("resplit")
    assert (first, second) == ("split:toy-split@2", "split:second-split@1")
    assert (first, "pipeline chain/resplit") in {(e.src, e.relation) for e in ws.lineage.edges(second)}
    assert {first, "table:listings@0", chained.ref} <= set(ws.lineage.upstream(second).refs())

    shown = ws.pipelines.show(f"pipeline_run:{run.id}")
    assert shown.to_dict() == run.to_dict() and "splitting" in shown.to_dict()["steps"][0]["logs"]
    assert "logs" not in ws.pipelines.runs("train")[0].to_dict(logs=False)["steps"][0]
    with pytest.raises(InvalidInput, match="not a pipeline run id"):
        ws.pipelines.show("run:1")
    with pytest.raises(NotFound, match="no pipeline run 99"):
        ws.pipelines.show(99)


def test_cache_reuses_unchanged_steps_and_force_runs_them_again(train_ws: keel.Workspace, tmp_path: Path) -> None:
    ws, trace = train_ws, tmp_path / "trace"
    params = {"trace": str(trace)}
    first = ws.pipelines.run("train", params, executor="inline")
    again = ws.pipelines.run("train", params, executor="inline")
    assert again.status == "succeeded" and set(statuses(again).values()) == {"cached"}
    assert {s.cached_from for s in again.steps} == {first.id}
    assert [s.output for s in again.steps] == [s.output for s in first.steps]
    assert [s.cache_key for s in again.steps] == [s.cache_key for s in first.steps]
    assert len(traced(trace)) == 5  # nothing executed a second time

    ws.data.ingest(listings_frame(seed=1), "listings")  # new data: the steps downstream of it run again
    fresh = ws.pipelines.run("train", params, executor="inline")
    assert statuses(fresh) == {"prepare": "succeeded", "count": "succeeded", "check": "succeeded",
                               "report": "succeeded", "independent": "cached"}
    assert fresh.output("prepare") == "split:toy-split@2" and fresh.output("report") == {"checked": 101}
    assert fresh.step("prepare").inputs["table"] == "table:listings@1"
    assert traced(trace)[5:] == ["prepare", "count", "check", "report"]

    forced = ws.pipelines.run("train", params, force=True, executor="inline")
    assert forced.force and set(statuses(forced).values()) == {"succeeded"}
    assert {s.cached_from for s in forced.steps} == {None}
    assert sorted(traced(trace)[9:]) == ["check", "count", "independent", "prepare", "report"]
    assert forced.output("prepare") == "split:toy-split@3"  # executed: a new split

    other = ws.pipelines.run("train", {**params, "fail_if": str(tmp_path / "absent")}, executor="inline")
    assert statuses(other)["check"] == "succeeded" and statuses(other)["prepare"] == "cached"  # a new parameter


def test_changed_step_code_is_executed_again(ws: keel.Workspace, tmp_path: Path) -> None:
    ws.data.ingest(listings_frame(), "listings")
    copy = tmp_path / "training_copy.py"
    shutil.copy(TRAINING, copy)
    trace = tmp_path / "trace"
    ws.pipelines.apply(copy)
    before = ws.pipelines.run("train", {"trace": str(trace)}, executor="inline")
    assert before.output("independent") == 7
    copy.write_text(copy.read_text().replace("    return 7\n", "    return 7 + 1  # changed\n"))
    assert [p.ref for p in ws.pipelines.apply(copy)] == ["pipeline:train@2", "pipeline:flaky@1", "pipeline:wrong@1",
                                                        "pipeline:procs@1", "pipeline:chain@1"]
    after = ws.pipelines.run("train", {"trace": str(trace)}, executor="inline")
    assert after.version == 2 and after.output("independent") == 8
    assert statuses(after) == {"prepare": "cached", "count": "cached", "check": "cached", "report": "cached",
                               "independent": "succeeded"}
    assert traced(trace).count("independent") == 2 and traced(trace).count("prepare") == 1


def test_a_failed_step_skips_its_dependants_and_retry_resumes(train_any_ws: keel.Workspace, tmp_path: Path) -> None:
    ws, trace, flag = train_any_ws, tmp_path / "trace", tmp_path / "refuse"
    flag.touch()
    failed = ws.pipelines.run("train", {"trace": str(trace), "fail_if": str(flag)}, executor="inline")
    assert failed.status == "failed" and failed.ended_at is not None
    assert statuses(failed) == {"prepare": "succeeded", "count": "succeeded", "check": "failed",
                                "report": "skipped", "independent": "succeeded"}
    check = failed.step("check")
    assert check.error == f"RuntimeError: check refused: {flag} exists"
    assert "about to fail" in check.logs and "Traceback" in check.logs and "line" in check.logs
    assert failed.step("report").error == "a step it depends on failed" and failed.output("report") is None
    assert failed.error == f"check: {check.error}"
    assert sorted(traced(trace)) == ["check", "count", "independent", "prepare"]

    still = ws.pipelines.retry(failed.id, executor="inline")  # the flag is still there: fails again
    assert (still.id, still.status, still.attempt) == (failed.id, "failed", 2)
    assert traced(trace)[4:] == ["check"]  # only the failed step executed again; report is still skipped
    assert statuses(still)["report"] == "skipped" and statuses(still)["prepare"] == "succeeded"

    flag.unlink()
    done = ws.pipelines.retry(f"pipeline_run:{failed.id}", executor="inline")
    assert (done.id, done.status, done.attempt, done.error) == (failed.id, "succeeded", 3, None)
    assert statuses(done) == dict.fromkeys(["prepare", "count", "check", "report", "independent"], "succeeded")
    assert traced(trace)[5:] == ["check", "report"]  # prepare, count and independent kept their outputs
    assert done.output("prepare") == failed.output("prepare") == "split:toy-split@1"
    assert ws.data.split_info("toy-split").version == 1  # prepare made no second split
    assert done.output("report") == {"checked": 100}
    assert [r.id for r in ws.pipelines.runs("train")] == [failed.id]  # resumed, not a new run
    with pytest.raises(Conflict, match="only a failed run is retried"):
        ws.pipelines.retry(failed.id, executor="inline")


def test_step_retries_and_a_wrong_return_type(train_ws: keel.Workspace, tmp_path: Path) -> None:
    ws, counter = train_ws, tmp_path / "attempts"
    flaky = ws.pipelines.run("flaky", {"counter": str(counter)}, executor="inline")
    assert flaky.status == "succeeded" and counter.read_text() == "2"
    assert (flaky.step("flaky").attempts, flaky.output("flaky")) == (2, 2)

    wrong = ws.pipelines.run("wrong", executor="inline")
    assert wrong.status == "failed" and statuses(wrong) == {"wrong": "failed"}
    error = wrong.step("wrong").error
    assert "step 'wrong'" in error and "'table:listings@0'" in error and "not a Split" in error
    assert wrong.output("wrong") is None and wrong.error == f"wrong: {error}"
    assert ws.lineage.edges(wrong.ref) == []


def test_enqueue_fire_and_execute(train_ws: keel.Workspace, tmp_path: Path) -> None:
    ws = train_ws
    queued = ws.pipelines.enqueue("train", {"trace": str(tmp_path / "trace")})
    assert queued.status == "queued" and queued.started_at is None
    assert queued.trigger == {"kind": "api", "by": ws.user}
    assert set(statuses(queued).values()) == {"pending"}
    assert ws.pipelines.claimable() == [queued.id]

    made = ws.pipelines.fire("train", "test:event-1", {"kind": "data", "what": "something happened"})
    assert made is not None and made.trigger["key"] == "test:event-1" and made.trigger["kind"] == "data"
    assert ws.pipelines.fire("train", "test:event-1", {"kind": "data", "what": "again"}) is None
    assert ws.pipelines.fired("test:event-1") == made.id and ws.pipelines.fired("test:event-2") is None
    assert [r.id for r in ws.pipelines.runs("train")] == [made.id, queued.id]
    assert [r.id for r in ws.pipelines.runs(status="queued")] == [made.id, queued.id]
    assert ws.pipelines.claimable() == [queued.id, made.id]
    with pytest.raises(NotFound):
        ws.pipelines.runs("nope")

    done = ws.pipelines.execute(queued.id, executor="inline")
    assert done.status == "succeeded" and done.started_at is not None
    assert ws.pipelines.claimable() == [made.id]
    with pytest.raises(Conflict, match="is succeeded"):
        ws.pipelines.execute(queued.id, executor="inline")
    with pytest.raises(InvalidInput, match="executor 'threads'"):
        ws.pipelines.execute(made.id, executor="threads")


def test_the_process_executor_runs_each_step_in_its_own_process(train_ws: keel.Workspace) -> None:
    """The default executor: each step in a fresh interpreter that opens the workspace itself."""
    ws = train_ws
    run = ws.pipelines.run("procs", workers=2)  # prepare and where are independent: side by side
    assert run.status == "succeeded", run.error
    pid = run.output("where")["pid"]
    assert pid != os.getpid()
    split = run.output("prepare")  # made through ctx.ws inside the worker: in this workspace's store
    assert ws.data.split_info(split).table_version == 0
    assert "splitting table:listings@0" in run.step("prepare").logs
    assert (run.ref, "made by step prepare") in {(e.src, e.relation) for e in ws.lineage.edges(split)}
    again = ws.pipelines.run("procs")
    assert set(statuses(again).values()) == {"cached"} and again.output("where") == {"pid": pid}


# -- the command line ---------------------------------------------------------------------------------


@pytest.fixture
def cli_ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    with keel.init(root) as ws:
        ws.data.ingest(listings_frame(), "listings")
    return root


def pipelines(*args: object, root: Path) -> object:
    return keel_cli("-w", root, "pipelines", *args, cwd=root.parent)


def test_cli_apply_list_run_show_retry_and_scheduler_once(cli_ws: Path) -> None:
    """Every command as a subprocess, independent ones side by side (each spends seconds importing keel)."""
    root, here = cli_ws, cli_ws.parent
    trace, flag = here / "trace", here / "refuse"
    applied, cycle, unknown = concurrently(
        lambda: pipelines("apply", TRAINING, root=root),
        lambda: pipelines("apply", INVALID, root=root),
        lambda: pipelines("run", "nope", "--executor", "inline", root=root))
    assert "pipeline:train@1: 5 step(s), triggers: manual, api" in ok(applied).out and "pipeline:flaky@1" in applied.out
    user_error(cycle, "pipeline 'cycle' has a cycle")
    user_error(unknown, "no pipeline 'nope'")

    flag.touch()
    listed, succeeded, unknown_param = concurrently(
        lambda: pipelines("list", "--json", root=root),
        lambda: pipelines("run", "train", "--param", f"trace={trace}", "--executor", "inline", "--json",
                          root=root),
        lambda: pipelines("run", "flaky", "--param", "counter=c", "--param", "epochs=3", "--executor", "inline",
                          root=root))
    assert [p["name"] for p in json.loads(ok(listed).out)] == ["chain", "flaky", "procs", "train", "wrong"]
    good = json.loads(ok(succeeded).out)
    assert good["status"] == "succeeded" and good["trigger"]["kind"] == "manual"
    assert {s["step"]: s["status"] for s in good["steps"]} == dict.fromkeys(
        ["prepare", "independent", "count", "check", "report"], "succeeded")
    assert good["params"]["steps"]["prepare"]["table"] == "table:listings@0"
    user_error(unknown_param, "has no parameter epochs")

    bad, runs_table = concurrently(
        lambda: pipelines("run", "train", "--param", f"trace={trace}", "--param", f"fail_if={flag}", "--executor",
                          "inline", "--json", root=root),
        lambda: pipelines("runs", root=root))
    assert bad.code == 1, bad.err  # a failed run is an answer, not a usage error: exit 1
    refused = json.loads(bad.out)
    assert refused["status"] == "failed"
    assert {s["step"]: s["status"] for s in refused["steps"]} == {
        "prepare": "cached", "count": "cached", "check": "failed", "report": "skipped", "independent": "cached"}
    assert "pipeline runs" in ok(runs_table).out and "train@1" in runs_table.out

    flag.unlink()
    with keel.open(root) as ws:
        waiting = ws.pipelines.enqueue("flaky", {"counter": str(here / "attempts")})
    retried, shown = concurrently(
        lambda: pipelines("retry", str(refused["id"]), "--executor", "inline", "--json", root=root),
        lambda: pipelines("show", str(good["id"]), root=root))
    back = json.loads(ok(retried).out)
    assert (back["id"], back["status"], back["attempt"]) == (refused["id"], "succeeded", 2)
    text = ok(shown).out
    assert f"pipeline_run:{good['id']} of pipeline train@1: succeeded" in text
    assert "split:toy-split@1" in text and "prepare log" in text and "splitting table:listings@0" in text
    assert traced(trace).count("prepare") == 1 and traced(trace).count("check") == 3

    tick = json.loads(ok(keel_cli("-w", root, "scheduler", "--once", "--executor", "inline", cwd=here)).out)
    assert tick["leader"] is True and tick["started"] == [waiting.id] and tick["errors"] == []
    with keel.open(root) as ws:
        assert [(r.id, r.status) for r in ws.pipelines.runs("flaky")] == [(waiting.id, "succeeded")]
        assert [p.name for p in ws.pipelines.list()] == ["chain", "flaky", "procs", "train", "wrong"]  # no cycle
    assert (here / "attempts").read_text() == "2"


def test_a_retry_after_the_fix_is_applied_runs_the_fixed_code(ws: keel.Workspace, tmp_path: Path) -> None:
    module = tmp_path / "fixable.py"
    source = ("from keel.pipelines import Pipeline, step\n\n@step\ndef first() -> int:\n    return 20\n\n"
              "@step\ndef second(first: int) -> int:\n    return first // {divisor}\n\n"
              "fixable = Pipeline('fixable', [first, second])\n")
    module.write_text(source.format(divisor=0))
    ws.pipelines.apply(module)
    failed = ws.pipelines.run("fixable", executor="inline")
    assert failed.status == "failed" and "ZeroDivisionError" in failed.step("second").error
    module.write_text(source.format(divisor=4))
    assert ws.pipelines.apply(module)[0].version == 2
    fixed = ws.pipelines.retry(failed.id, executor="inline")
    assert fixed.status == "succeeded" and fixed.version == 2 and fixed.output("second") == 5
    assert fixed.step("first").attempts == 1  # the finished step was not run again


@pytest.mark.parametrize("executor", ["inline", "process"])
def test_a_queued_run_acts_as_whoever_started_it(ws: keel.Workspace, tmp_path: Path, executor: str) -> None:
    module = tmp_path / "whoami.py"
    module.write_text("from keel.pipelines import Pipeline, step\n\n@step\ndef who(ctx) -> str:\n"
                      "    return ctx.ws.user\n\nwhoami = Pipeline('whoami', [who])\n")
    ws.pipelines.apply(module)
    ws.users.add("dev", "developer")
    queued = ws.acting_as("dev").pipelines.enqueue("whoami")
    done = ws.pipelines.execute(queued.id, executor=executor)  # the scheduler's workspace, another user
    assert done.status == "succeeded" and done.output("who") == "dev" and done.created_by == "dev"
