"""The pipeline scheduler (issue 9): triggers turned into runs, under a lease, each event at most once.

Time is simulated: ``tick(now=...)`` evaluates schedules at the given instant. A cron schedule fires the times
that are on time (within two minutes of now) and follows its catch-up policy for older ones, in its own time zone;
OnData fires once per new table version, OnGit once per new commit on its branch. One scheduler leads at a time;
when two evaluate the same event anyway (threads ticking at once, a lost cursor, a lease taken over), the event's
idempotency key keeps it to one run, on SQLite and on PostgreSQL. A scheduler killed with SIGKILL mid-step leaves
its run ``running``; once the heartbeat is stale another scheduler resumes it without executing finished steps.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

import keel
from keel.code import load_module
from keel.errors import Conflict, StorageError
from keel.pipelines import OnData, OnGit, Pipeline, Schedule
from keel.pipelines import service as pipeline_service
from keel.pipelines.scheduler import Scheduler, Tick
from keel.storage.schema import trigger_cursors, trigger_fires

DEFS = Path(__file__).parent / "pipeline_defs"
T0 = datetime(2026, 3, 2, 10, 1, tzinfo=UTC)  # one minute after a five-minute mark
EVERY_5 = "*/5 * * * *"


def steps() -> Any:
    """pipeline_defs/triggered.py: ``note`` (appends to the file ``trace``) and ``pin`` (returns its Table)."""
    return load_module(DEFS / "triggered.py")


def keys(tick: Tick) -> list[str]:
    return sorted(f["key"] for f in tick.fired)


def fire_times(ws: keel.Workspace, pipeline: str) -> list[str]:
    """The schedule times of a pipeline's runs, oldest first."""
    return [r.trigger["at"] for r in reversed(ws.pipelines.runs(pipeline))]


@pytest.fixture
def schedulers() -> Iterator[Callable[..., Scheduler]]:
    """Make schedulers (inline executor, no canaries); each is closed (lease released) at the end."""
    made: list[Scheduler] = []

    def make(ws: keel.Workspace, holder: str, **options: Any) -> Scheduler:
        made.append(Scheduler(ws, holder=holder, executor="inline", canaries=False, **options))
        return made[-1]

    yield make
    for scheduler in made:
        scheduler.close()


def drain(scheduler: Scheduler, ws: keel.Workspace, now: datetime) -> None:
    """Tick (at ``now``, firing nothing new) until no queued run is left."""
    for _ in range(10):
        if not ws.pipelines.claimable():
            return
        scheduler.tick(now, wait=True)
    raise AssertionError(f"runs still queued: {ws.pipelines.claimable()}")


# -- triggers -----------------------------------------------------------------------------------------


def test_schedule_fires_on_time_and_follows_its_catchup_policy(ws: keel.Workspace, schedulers: Callable) -> None:
    note = steps().note
    ws.pipelines.apply([Pipeline("skip", [note], triggers=[Schedule(EVERY_5)]),
                        Pipeline("once", [note], triggers=[Schedule(EVERY_5, catchup="once")])])
    a = schedulers(ws, "a")
    first = a.tick(T0, wait=True)  # the first look: fire times of the last two minutes are on time
    assert first.leader and first.errors == []
    assert keys(first) == ["schedule:once:0:2026-03-02T10:00:00+00:00", "schedule:skip:0:2026-03-02T10:00:00+00:00"]
    assert len(first.started) == 1  # one run per tick; the other waits
    assert a.tick(T0 + timedelta(seconds=40), wait=True).fired == []
    # the scheduler was away 10:01:40-11:03: 10:05 ... 11:00 were missed (11:00 is three minutes old)
    late = a.tick(datetime(2026, 3, 2, 11, 3, tzinfo=UTC), wait=True)
    assert keys(late) == ["schedule:once:0:2026-03-02T11:00:00+00:00"]  # skip: none; once: one run for all
    back = a.tick(datetime(2026, 3, 2, 11, 5, 30, tzinfo=UTC), wait=True)
    assert keys(back) == ["schedule:once:0:2026-03-02T11:05:00+00:00", "schedule:skip:0:2026-03-02T11:05:00+00:00"]
    drain(a, ws, datetime(2026, 3, 2, 11, 5, 40, tzinfo=UTC))

    assert fire_times(ws, "skip") == ["2026-03-02T10:00:00+00:00", "2026-03-02T11:05:00+00:00"]
    assert fire_times(ws, "once") == ["2026-03-02T10:00:00+00:00", "2026-03-02T11:00:00+00:00",
                                      "2026-03-02T11:05:00+00:00"]
    caught_up = ws.pipelines.runs("once")[1].trigger
    assert caught_up["missed"] == 12 and "catching up 12 missed" in caught_up["what"]
    assert caught_up["kind"] == "schedule" and caught_up["by"] == "scheduler a"
    assert {r.status for r in ws.pipelines.runs()} == {"succeeded"}


def test_a_schedule_keeps_its_local_time_across_daylight_saving(ws: keel.Workspace, schedulers: Callable) -> None:
    ws.pipelines.apply(Pipeline("berlin", [steps().note], triggers=[Schedule("0 3 * * *", timezone="Europe/Berlin")]))
    a = schedulers(ws, "a")
    winter = a.tick(datetime(2026, 1, 5, 2, 1, tzinfo=UTC), wait=True)  # 03:01 in Berlin (UTC+1)
    assert keys(winter) == ["schedule:berlin:0:2026-01-05T02:00:00+00:00"]
    assert a.tick(datetime(2026, 1, 5, 3, 1, tzinfo=UTC), wait=True).fired == []  # 04:01 in Berlin
    summer = a.tick(datetime(2026, 7, 6, 1, 1, tzinfo=UTC), wait=True)  # 03:01 in Berlin (UTC+2)
    assert keys(summer) == ["schedule:berlin:0:2026-07-06T01:00:00+00:00"]  # the days between: missed, skipped
    assert a.tick(datetime(2026, 7, 6, 2, 1, tzinfo=UTC), wait=True).fired == []  # 02:00 UTC is 04:00 there now
    assert len(ws.pipelines.runs("berlin")) == 2


def test_a_daily_schedule_runs_once_on_the_day_the_clocks_go_back(ws: keel.Workspace, schedulers: Callable) -> None:
    """02:30 happens twice in Berlin on 25 October 2026 (in CEST, then in CET): a schedule for 02:30 every day runs
    once that day, as cron runs a job at a fixed time once when the hour repeats."""
    ws.pipelines.apply(Pipeline("nightly", [steps().note],
                                triggers=[Schedule("30 2 * * *", timezone="Europe/Berlin")]))
    a = schedulers(ws, "a")
    first = a.tick(datetime(2026, 10, 25, 0, 31, tzinfo=UTC), wait=True)  # 02:31 CEST
    assert keys(first) == ["schedule:nightly:0:2026-10-25T00:30:00+00:00"]
    again = a.tick(datetime(2026, 10, 25, 1, 31, tzinfo=UTC), wait=True)  # 02:31 once more, now CET
    assert again.fired == [], again
    next_day = a.tick(datetime(2026, 10, 26, 1, 31, tzinfo=UTC), wait=True)
    assert keys(next_day) == ["schedule:nightly:0:2026-10-26T01:30:00+00:00"]
    assert len(ws.pipelines.runs("nightly")) == 2


def test_on_data_fires_once_per_new_table_version(ws: keel.Workspace, schedulers: Callable) -> None:
    ws.pipelines.apply(Pipeline("on-events", [steps().pin], triggers=[OnData("events")]))
    a = schedulers(ws, "a")
    events = pd.DataFrame({"k": [1, 2], "v": [0.5, 0.7]})
    nothing = a.tick(wait=True)
    assert nothing.leader and nothing.fired == [] and nothing.errors == []  # no table yet
    ws.data.ingest(events, "events")
    assert a.tick(wait=True).fired == []  # the first look at the table records events@0
    ws.data.ingest(events, "events")
    news = a.tick(wait=True)
    assert keys(news) == ["data:on-events:table:events@1"] and news.started == [news.fired[0]["run"]]
    assert a.tick(wait=True).fired == []  # events@1 fired already

    b = schedulers(ws, "b")
    later = datetime.now(UTC) + timedelta(seconds=61)  # a's lease has expired: b leads, with the shared cursor
    taken = b.tick(later, wait=True)
    assert taken.leader and taken.fired == []
    ws.data.ingest(events, "events")
    assert keys(b.tick(later + timedelta(seconds=1), wait=True)) == ["data:on-events:table:events@2"]

    runs = list(reversed(ws.pipelines.runs("on-events")))
    assert [r.trigger["source"] for r in runs] == ["table:events@1", "table:events@2"]
    assert [r.output("pin") for r in runs] == ["table:events@1", "table:events@2"]  # the Table was pinned
    assert [r.trigger["by"] for r in runs] == ["scheduler a", "scheduler b"]


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), "-c", "user.email=ci@example.com", "-c", "user.name=CI", "-c",
                           "commit.gpgsign=false", *args], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_on_git_fires_once_per_new_commit_on_its_branch(ws: keel.Workspace, schedulers: Callable,
                                                        tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "commit", "-q", "--allow-empty", "-m", "one")
    ws.pipelines.apply(Pipeline("on-git", [steps().note], triggers=[OnGit(str(repo))]))
    assert ws.pipelines.get("on-git").triggers == [{"kind": "git", "path": str(repo.resolve()), "branch": "main"}]
    a = schedulers(ws, "a")
    assert a.tick(wait=True).fired == []  # the first look records the tip
    git(repo, "commit", "-q", "--allow-empty", "-m", "two")
    two = git(repo, "rev-parse", "HEAD")
    assert keys(a.tick(wait=True)) == [f"git:on-git:{repo.resolve()}:main:{two}"]
    assert a.tick(wait=True).fired == []
    git(repo, "checkout", "-q", "-b", "feature")
    git(repo, "commit", "-q", "--allow-empty", "-m", "elsewhere")
    assert a.tick(wait=True).fired == []  # another branch
    git(repo, "checkout", "-q", "main")
    git(repo, "commit", "-q", "--allow-empty", "-m", "three")
    three = git(repo, "rev-parse", "HEAD")
    assert len(a.tick(wait=True).fired) == 1
    commits = [(r.trigger["kind"], r.trigger["commit"], r.trigger["branch"]) for r in ws.pipelines.runs("on-git")]
    assert commits == [("git", three, "main"), ("git", two, "main")]

    # the repository is gone: the trigger's error is reported, the tick (and the other pipelines) go on
    ws.pipelines.apply(Pipeline("every5", [steps().note], triggers=[Schedule(EVERY_5)]))
    shutil.rmtree(repo)
    broken = a.tick(T0, wait=True)
    assert broken.leader and keys(broken) == ["schedule:every5:0:2026-03-02T10:00:00+00:00"]
    assert broken.errors == [f"on-git trigger 0 (git): git trigger: {repo.resolve()} is not a folder"]


def test_an_event_whose_run_could_not_be_created_fires_at_the_next_tick(ws: keel.Workspace, schedulers: Callable,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The metadata store failed for a moment while the 10:00 run was created: the next tick, still on time,
    must start it (its idempotency key makes evaluating it again safe)."""
    ws.pipelines.apply(Pipeline("every5", [steps().note], triggers=[Schedule(EVERY_5)]))
    real, calls = ws.pipelines.fire, []

    def fire_once_failing(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        if len(calls) == 1:
            raise StorageError("metadata store went away for a moment")
        return real(*args, **kwargs)

    monkeypatch.setattr(ws.pipelines, "fire", fire_once_failing)
    a = schedulers(ws, "a")
    broken = a.tick(T0, wait=True)
    assert broken.fired == [] and "went away" in broken.errors[0]
    healed = a.tick(T0 + timedelta(seconds=20), wait=True)
    assert keys(healed) == ["schedule:every5:0:2026-03-02T10:00:00+00:00"], (healed, calls)
    assert fire_times(ws, "every5") == ["2026-03-02T10:00:00+00:00"]


# -- leadership and idempotency -------------------------------------------------------------------------


def test_one_scheduler_leads_and_any_executes_queued_runs(ws: keel.Workspace, schedulers: Callable,
                                                          tmp_path: Path) -> None:
    a, b = schedulers(ws, "a", lease_s=60), schedulers(ws, "b", lease_s=60)
    assert a.lease(T0)
    assert not b.lease(T0 + timedelta(seconds=30))
    assert a.lease(T0 + timedelta(seconds=50))  # renewed until T0+110 s
    assert not b.lease(T0 + timedelta(seconds=100))
    assert b.lease(T0 + timedelta(seconds=111))  # a stopped renewing: b takes over
    assert not a.lease(T0 + timedelta(seconds=112))
    assert b.lease(T0 + timedelta(seconds=200))  # until T0+260 s

    ws.pipelines.apply(Pipeline("every5", [steps().note], triggers=[Schedule(EVERY_5)],
                                params={"trace": str(tmp_path / "trace")}))
    queued = ws.pipelines.enqueue("every5")
    follower = a.tick(T0 + timedelta(seconds=240), wait=True)  # 10:05:00, a fire time, but b leads
    assert not follower.leader and follower.fired == []
    assert follower.started == [queued.id] and ws.pipelines.show(queued.id).status == "succeeded"
    leader = b.tick(T0 + timedelta(seconds=245), wait=True)
    assert leader.leader and keys(leader) == ["schedule:every5:0:2026-03-02T10:05:00+00:00"]
    assert leader.started == [leader.fired[0]["run"]]
    b.close()  # a stopped scheduler releases its lease at once
    assert a.lease(T0 + timedelta(seconds=250))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def shared_root(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A workspace folder on SQLite or on a fresh PostgreSQL database, with ``every5`` (a five-minute schedule
    whose step appends to ``tmp_path/trace``) applied. Each scheduler of a test opens it on its own."""
    root = tmp_path / "ws"
    root.mkdir()
    lines = ["[keel]"]
    if request.param == "postgresql":
        if not os.environ.get("KEEL_TEST_POSTGRES_URL"):
            pytest.skip("the PostgreSQL variant needs KEEL_TEST_POSTGRES_URL "
                        "(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)")
        lines.append(f'metadata_url = "{request.getfixturevalue("postgres_url")}"')
    (root / "keel.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with keel.open(root) as ws:
        ws.pipelines.apply(Pipeline("every5", [steps().note], triggers=[Schedule(EVERY_5)],
                                    params={"trace": str(tmp_path / "trace")}))
    return root


def test_schedulers_racing_start_each_event_once(shared_root: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    n = 4
    workspaces = [keel.open(shared_root) for _ in range(n)]
    racers = [Scheduler(w, holder=f"s{i}", interval_s=0.1, lease_s=1, executor="inline", canaries=False)
              for i, w in enumerate(workspaces)]
    try:
        # 1. four schedulers, each with its own connection pool, tick at once, two seconds apart in simulated time.
        # Their leases are taken in turn (each one's 1 s lease has expired for the next), so all four lead; all
        # read the schedule's cursor before any records one, so all four see 10:00 as due and fire it together.
        turn, order, gathered = threading.Condition(), [0], threading.Barrier(n, timeout=60)

        def in_turn(i: int, real: Callable[..., bool]) -> Callable[..., bool]:
            def lease(now: datetime | None = None) -> bool:
                with turn:
                    assert turn.wait_for(lambda: order[0] == i, timeout=60)
                    try:
                        return real(now)
                    finally:
                        order[0] += 1
                        turn.notify_all()
            return lease

        def together(real: Callable[..., Any]) -> Callable[..., Any]:
            def cursor(*args: Any) -> Any:
                found = real(*args)
                gathered.wait()
                return found
            return cursor

        attempts: list[tuple[str, bool]] = []  # (key, whether a run was made) of every fire

        def counted(real: Callable[..., Any]) -> Callable[..., Any]:
            def fire(name: str, key: str, *args: Any, **kwargs: Any) -> Any:
                made = real(name, key, *args, **kwargs)
                attempts.append((key, made is not None))
                return made
            return fire

        for i, racer in enumerate(racers):
            monkeypatch.setattr(racer, "lease", in_turn(i, racer.lease))
            monkeypatch.setattr(racer, "_cursor", together(racer._cursor))
            monkeypatch.setattr(workspaces[i].pipelines, "fire", counted(workspaces[i].pipelines.fire))
        with ThreadPoolExecutor(n) as pool:
            ticks = list(pool.map(lambda i: racers[i].tick(T0 + timedelta(seconds=2 * i), wait=True), range(n)))
        assert all(t.leader and t.errors == [] for t in ticks), ticks
        fired = [f for t in ticks for f in t.fired]
        assert [f["key"] for f in fired] == ["schedule:every5:0:2026-03-02T10:00:00+00:00"], ticks
        assert sorted(attempts) == [(fired[0]["key"], False)] * (n - 1) + [(fired[0]["key"], True)]  # all tried
        ws = workspaces[0]
        (run,) = ws.pipelines.runs("every5")
        assert run.id == fired[0]["run"] and ws.pipelines.fired(fired[0]["key"]) == run.id
        assert [i for t in ticks for i in t.started] == [run.id]  # claimed by one scheduler
        assert ws.pipelines.show(run.id).status == "succeeded"
        assert (tmp_path / "trace").read_text().split() == ["note"]  # executed once

        # 2. the cursors are lost (as if the scheduler that fired had died before recording what it saw); a
        # scheduler that takes over the expired lease evaluates 10:00 again: no second run
        with ws.db.transaction() as conn:
            conn.execute(trigger_cursors.delete())
        monkeypatch.undo()
        late = Scheduler(workspaces[1], holder="late", lease_s=1, interval_s=0.1, executor="inline", canaries=False)
        racers.append(late)
        again = late.tick(T0 + timedelta(seconds=30), wait=True)  # (09:59:30, 10:01:30] holds 10:00
        assert again.leader and again.fired == [] and again.errors == [] and again.started == []
        with ws.db.read() as conn:
            assert conn.execute(sa.select(trigger_cursors.c.cursor)).scalar_one() == {
                "at": (T0 + timedelta(seconds=30)).isoformat()}  # it did evaluate the schedule
        assert len(ws.pipelines.runs("every5")) == 1

        # 3. the same event fired from every workspace at once: one run
        barrier = threading.Barrier(n, timeout=60)

        def fire(i: int) -> Any:
            barrier.wait()
            return workspaces[i].pipelines.fire("every5", "test:same-event", {"kind": "manual", "what": f"by {i}"})

        with ThreadPoolExecutor(n) as pool:
            made = [m for m in pool.map(fire, range(n)) if m is not None]
        assert len(made) == 1 and ws.pipelines.fired("test:same-event") == made[0].id
        with ws.db.read() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(trigger_fires)
                                .where(trigger_fires.c.key == "test:same-event")).scalar_one() == 1
        assert len(ws.pipelines.runs("every5")) == 2
    finally:
        for racer in racers:
            racer.close()
        for w in workspaces:
            w.close()


# -- kill and resume ------------------------------------------------------------------------------------


def test_a_run_of_a_killed_scheduler_resumes_without_repeating_finished_steps(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, side = tmp_path / "ws", tmp_path / "side"
    side.mkdir()
    with keel.init(root) as ws:
        ws.pipelines.apply(DEFS / "resumable.py")
        run = ws.pipelines.enqueue("resumable", {"folder": str(side)})
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEEL_")}
        with (tmp_path / "scheduler.log").open("wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "keel.cli.main", "-w", str(root), "scheduler",
                                     "--interval", "0.5", "--executor", "inline"], cwd=tmp_path, env=env,
                                    stdout=log, stderr=subprocess.STDOUT)
            try:
                deadline = time.monotonic() + 60
                while not (side / "second").exists():  # step 2 started: it waits for side/go
                    assert proc.poll() is None, (tmp_path / "scheduler.log").read_text()
                    assert time.monotonic() < deadline, "the scheduler never reached step 2"
                    time.sleep(0.05)
                mid = ws.pipelines.show(run.id)
                assert mid.status == "running" and mid.step("first").status == "succeeded"
            finally:
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
        assert proc.returncode == -signal.SIGKILL

        left = ws.pipelines.show(run.id)
        assert (left.status, left.attempt, left.ended_at) == ("running", 1, None)
        assert {s.step: s.status for s in left.steps} == {"first": "succeeded", "second": "running"}
        assert ws.pipelines.claimable() == []  # its heartbeat is recent: its process may still be alive
        with pytest.raises(Conflict, match="its process is alive"):
            ws.pipelines.execute(run.id, executor="inline")

        (side / "go").touch()
        monkeypatch.setattr(pipeline_service, "STALE_AFTER_S", 1.0)  # instead of waiting 30 s
        deadline = time.monotonic() + 15
        while run.id not in ws.pipelines.claimable():
            assert time.monotonic() < deadline, "the run's heartbeat never went stale"
            time.sleep(0.1)
        rescuer = Scheduler(ws, holder="rescuer", executor="inline", canaries=False)
        try:
            tick = rescuer.tick(wait=True)
        finally:
            rescuer.close()
        assert tick.started == [run.id]
        done = ws.pipelines.show(run.id)
        assert (done.status, done.attempt, done.error) == ("succeeded", 2, None)
        assert {s.step: s.status for s in done.steps} == {"first": "succeeded", "second": "succeeded"}
        assert done.output("second") == {"first": 1}
        assert (side / "first").read_text() == "1"  # step 1 was not executed again
        assert (side / "second").read_text() == "2"  # step 2 was: once before the kill, once after
