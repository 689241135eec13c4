"""Triggers: when a pipeline runs by itself. Each is declared on the pipeline, stored as JSON, and evaluated by the
scheduler into events, each with an idempotency key: the same event always has the same key, so it fires at most
once however many schedulers look at it (keel.pipelines.scheduler).

- ``Schedule("0 3 * * 1", timezone="Europe/Berlin", catchup="skip")``: cron, in the given zone. A fire time missed
  while no scheduler ran is skipped (``skip``), or run once for all of them (``once``).
- ``OnData("listings")`` / ``OnData("features:host_stats")``: a new version of a table or feature view.
- ``OnGit("/path/to/repo", branch="main")``: a new commit at the tip of a branch.
- ``Api()`` and ``Manual()`` are always possible (``POST /api/v1/pipelines/{name}/runs``, ``keel pipelines run``);
  declaring them documents intent. Retraining triggers live on retraining policies (keel.retraining).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from keel.errors import InvalidInput

__all__ = ["CATCHUP", "Api", "Event", "Manual", "OnData", "OnGit", "Schedule", "cron_times", "git_head",
           "trigger_from_json"]

CATCHUP = ("skip", "once")
ON_TIME = timedelta(minutes=2)  # a fire time this close behind now is on time, not missed


@dataclass(frozen=True)
class Event:
    """Something that happened and should start a run: its idempotency key, what it was, and the new cursor."""

    key: str
    what: str
    detail: dict[str, Any]


@dataclass(frozen=True)
class Schedule:
    cron: str
    timezone: str = "UTC"
    catchup: str = "skip"

    def to_json(self) -> dict[str, Any]:
        check_cron(self.cron, self.timezone)
        if self.catchup not in CATCHUP:
            raise InvalidInput(f"catchup {self.catchup!r}: use skip (missed fire times are skipped) or once (one run "
                               "for all of them)")
        return {"kind": "schedule", "cron": self.cron, "timezone": self.timezone, "catchup": self.catchup}


@dataclass(frozen=True)
class OnData:
    source: str

    def to_json(self) -> dict[str, Any]:
        kind, _, name = self.source.rpartition(":")
        if kind not in ("", "table", "features") or not name or "@" in name:
            raise InvalidInput(f"OnData({self.source!r}): name a table (listings) or a feature view "
                               "(features:host_stats), without a version")
        return {"kind": "data", "source": f"{kind or 'table'}:{name}"}


@dataclass(frozen=True)
class OnGit:
    path: str
    branch: str = "main"

    def to_json(self) -> dict[str, Any]:
        folder = str(Path(self.path).expanduser().resolve())
        git_head(folder, self.branch)  # refused now, not at the first tick
        return {"kind": "git", "path": folder, "branch": self.branch}


@dataclass(frozen=True)
class Api:
    def to_json(self) -> dict[str, Any]:
        return {"kind": "api"}


@dataclass(frozen=True)
class Manual:
    def to_json(self) -> dict[str, Any]:
        return {"kind": "manual"}


_KINDS = {"schedule": lambda d: Schedule(d["cron"], d.get("timezone", "UTC"), d.get("catchup", "skip")),
          "data": lambda d: OnData(d["source"]), "git": lambda d: OnGit(d["path"], d.get("branch", "main")),
          "api": lambda d: Api(), "manual": lambda d: Manual()}


def trigger_from_json(spec: Any) -> dict[str, Any]:
    """A declared trigger (one of the classes here, or its JSON) checked and in its stored form."""
    if hasattr(spec, "to_json"):
        return spec.to_json()
    if not isinstance(spec, dict) or spec.get("kind") not in _KINDS:
        kind = spec.get("kind") if isinstance(spec, dict) else spec
        raise InvalidInput(f"unknown trigger {kind!r}; use one of {', '.join(_KINDS)}")
    try:
        return _KINDS[spec["kind"]](spec).to_json()
    except KeyError as exc:
        raise InvalidInput(f"a {spec['kind']} trigger needs {exc.args[0]!r}") from None


def check_cron(expression: str, timezone: str = "UTC") -> ZoneInfo:
    if not isinstance(expression, str) or not croniter.is_valid(expression):
        raise InvalidInput(f"{expression!r} is not a cron expression (five fields: minute hour day month weekday, "
                           "e.g. '0 3 * * 1')")
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"unknown time zone {timezone!r}; use an IANA name such as Europe/Berlin or UTC") from None


def cron_times(expression: str, timezone: str, after: datetime, until: datetime, *, limit: int = 10_000
               ) -> list[datetime]:
    """The fire times in (after, until], in UTC; computed in the schedule's zone, so 03:00 stays 03:00 local
    across a daylight-saving change, and a fixed-hour time the clocks pass twice fires once."""
    zone = check_cron(expression, timezone)
    times = croniter(expression, after.astimezone(zone))
    fixed_hour = expression.split()[1] != "*"
    out: list[datetime] = []
    while len(out) < limit:
        at = times.get_next(datetime).astimezone(UTC)
        if at > until:
            break
        if fixed_hour and at.astimezone(zone).fold == 1:
            continue  # the clocks went back: 02:30 happened twice, a daily 02:30 job runs once (as cron does)
        out.append(at)
    return out


def schedule_events(pipeline: str, index: int, spec: dict[str, Any], cursor: datetime | None,
                    now: datetime) -> list[Event]:
    """The schedule's events since ``cursor`` (the last time it was evaluated; None: first evaluation, nothing is
    missed). A fire time within ON_TIME of now is on time; older ones were missed and follow the catch-up policy."""
    if cursor is None:
        cursor = now - ON_TIME
    due = cron_times(spec["cron"], spec["timezone"], cursor, now)
    if not due:
        return []
    on_time = [t for t in due if now - t <= ON_TIME]
    missed = [t for t in due if now - t > ON_TIME]
    fire = list(on_time)
    if missed and spec.get("catchup") == "once" and not on_time:
        fire = [missed[-1]]
    return [Event(f"schedule:{pipeline}:{index}:{t.isoformat()}", f"schedule {spec['cron']} ({spec['timezone']}) "
                  f"at {t.isoformat()}" + (f", catching up {len(missed)} missed" if t in missed else ""),
                  {"at": t.isoformat(), "missed": len(missed)}) for t in fire]


def git_head(path: str, branch: str) -> str:
    """The commit at the tip of ``branch`` in the repository at ``path``; InvalidInput when it is not one."""
    if not Path(path).is_dir():
        raise InvalidInput(f"git trigger: {path} is not a folder")
    try:
        done = subprocess.run(["git", "-C", path, "rev-parse", "--verify", "--quiet",
                               f"refs/heads/{branch}^{{commit}}"], capture_output=True, text=True, timeout=30,
                              check=False)
        inside = subprocess.run(["git", "-C", path, "rev-parse", "--is-inside-work-tree"], capture_output=True,
                                text=True, timeout=30, check=False)
    except FileNotFoundError:
        raise InvalidInput("git trigger: the git command is not installed") from None
    if inside.returncode != 0:
        raise InvalidInput(f"git trigger: {path} is not a git repository")
    if done.returncode != 0 or not done.stdout.strip():
        raise InvalidInput(f"git trigger: the repository at {path} has no branch {branch!r}")
    return done.stdout.strip()
