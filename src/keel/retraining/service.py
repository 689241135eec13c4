"""Retraining (``ws.retraining``): policies on deployments, retrains they start, and the people who decide.

A policy says *when* (conditions, keel.retraining.conditions), *what data* (a window, keel.retraining.windows),
*how* (from scratch or warm-started from the serving model) and with which pipeline. A retrain, once fired (at most
once per event: its idempotency key goes in with it), checks its window (empty: refused; nothing newer than what
the serving model was trained on: ``no_new_data``, nothing done) and the feedback-loop guard, then queues the
pipeline with ``where``, ``how`` and ``base_model``. When the run ends, the candidate (its last Model output) goes
through its release gates and waits for a person: ``review`` shows why it was triggered, the window, the gates and
the comparison with the serving model; ``approve`` starts a canary, ``reject`` leaves production untouched.
Automatic approval is for non-production deployments, or explicitly allowed per policy with canary guardrails;
it is recorded as the policy's decision.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from keel.audit import AuditLog
from keel.data.service import DataService
from keel.errors import Conflict, GatesFailed, InvalidInput, KeelError, NotFound, PermissionDenied
from keel.gates.service import GateService
from keel.lineage import Edge, LineageService
from keel.logs import get_logger
from keel.models.service import ModelService
from keel.models.signature import Signature
from keel.monitoring.service import MonitorService
from keel.pipelines.cursors import read_cursor, save_cursor
from keel.pipelines.service import PipelineService
from keel.pipelines.triggers import ON_TIME, cron_times
from keel.refs import check_name
from keel.retraining.conditions import Condition, parse_condition
from keel.retraining.model import HOW, OPEN, Retrain, RetrainPolicy
from keel.retraining.windows import influenced_share, parse_data, resolve_window
from keel.serving.baseline import training_source
from keel.serving.service import DeploymentService, check_canary_plan
from keel.storage.db import Database, is_unique_violation
from keel.storage.schema import retrain_policies, retrains, trigger_fires
from keel.storage.tables import query_arrow
from keel.tracking.service import RunService
from keel.users import UserService, role_allows

__all__ = ["RetrainService"]

log = get_logger("keel.retraining")

STALLED_S = 120.0  # a fired retrain whose pipeline was not queued this long after is prepared again
DEFAULT_CANARY = {"steps": [10.0, 50.0, 100.0], "interval_s": 600.0, "guardrails": ["error_rate < 0.01"]}


class RetrainService:
    """Policies (create, list, get, delete), retrains (evaluate, start, progress, list, get, review) and the
    decisions (approve, reject)."""

    def __init__(self, db: Database, data: DataService, models: ModelService, gates: GateService,
                 deployments: DeploymentService, monitors: MonitorService, pipelines: PipelineService,
                 runs: RunService, lineage: LineageService, audit: AuditLog, users: UserService, user: str) -> None:
        self._db, self._data, self._models, self._gates = db, data, models, gates
        self._deployments, self._monitors, self._pipelines, self._runs = deployments, monitors, pipelines, runs
        self._lineage, self._audit, self._users, self._user = lineage, audit, users, user

    # -- policies ----------------------------------------------------------------------------------------

    def create_policy(self, name: str, deployment: str, pipeline: str, *, when: list[str], data: str = "all",
                      how: str = "from_scratch", source: str | None = None, time_column: str | None = None,
                      monitor: str | None = None, canary: dict[str, Any] | None = None,
                      auto_approve: bool = False, allow_production_auto: bool = False,
                      max_influenced: float | None = 0.8, holdout: float | None = None,
                      reason: str | None = None) -> RetrainPolicy:
        """Attach a retraining policy to ``deployment``. ``source``: the table the window applies to (default:
        the one the serving model was trained from); ``holdout``: set the deployment's holdout share (the traffic
        the model does not influence) too."""
        check_name(name, "policy name")
        target = self._deployments.get(deployment)
        info = self._pipelines.get(pipeline)
        conditions = [parse_condition(w) for w in (when or [])]
        if not conditions:
            raise InvalidInput("a policy needs at least one condition (--when), e.g. drift(price, threshold=0.2) "
                               "or manual()")
        if how not in HOW:
            raise InvalidInput(f"how {how!r}: use from_scratch or warm_start")
        window = parse_data(data)
        params = {p for s in info.steps for p in s["params"]}
        if "where" not in params:
            raise InvalidInput(f"pipeline {pipeline!r} takes no 'where' parameter: a retraining pipeline filters its "
                               "source with the window's predicate (a step parameter named where)")
        if any(c.kind in ("drift", "performance") for c in conditions) or window["kind"] == "since_drift_start":
            monitor = self._monitor_of(deployment, monitor)
        source = source or self._trained_on_table(target)
        if source is None:
            raise InvalidInput("name the table the window applies to (--source): the serving model's training "
                               "table is not known from its lineage")
        if window["kind"] != "since_drift_start":  # known now: a window that holds nothing is refused now
            found = resolve_window(window, self._data, source, time_column, None, datetime.now(UTC))
            if found.rows == 0:
                raise InvalidInput(f"the data window {data!r} holds no rows of {found.to_dict()['version']}; a "
                                   "retrain on it would have nothing to learn from")
        else:
            self._data.version(source)
        plan = {**DEFAULT_CANARY, **(canary or {})}
        check_canary_plan(plan["steps"], plan["interval_s"], plan["guardrails"])
        if auto_approve and target.production and not (allow_production_auto and plan["guardrails"]):
            raise PermissionDenied(f"deployment {deployment!r} serves production: automatic approval there needs "
                                   "allow_production_auto and canary guardrails, explicitly")
        if max_influenced is not None and not 0 < max_influenced <= 1:
            raise InvalidInput("max_influenced is a share in (0, 1], or None to turn the feedback-loop guard off")
        spec = {"when": [c.to_dict() for c in conditions], "data": window, "how": how, "source": source,
                "time_column": time_column, "monitor": monitor, "canary": plan, "auto_approve": auto_approve,
                "allow_production_auto": allow_production_auto, "max_influenced": max_influenced,
                "holdout": holdout}
        if holdout is not None:
            self._deployments.holdout(deployment, holdout, reason=f"retraining policy {name}: unbiased labels")
        now = datetime.now(UTC)

        def write(conn: sa.Connection) -> None:
            exists = conn.execute(sa.select(retrain_policies.c.name).where(retrain_policies.c.name == name)).first()
            values = {"deployment": deployment, "pipeline": pipeline, "spec": spec, "updated_at": now}
            if exists:
                conn.execute(retrain_policies.update().where(retrain_policies.c.name == name).values(**values))
            else:
                conn.execute(retrain_policies.insert().values(name=name, created_at=now, created_by=self._user,
                                                              **values))
            self._audit.record(conn, actor=self._user, action="retrain.policy.set", target=f"retrain_policy:{name}",
                               reason=reason, details={"deployment": deployment, "pipeline": pipeline, **spec})

        self._db.retrying(write)
        return self.policy(name)

    def policy(self, name: str) -> RetrainPolicy:
        with self._db.read() as conn:
            row = conn.execute(sa.select(retrain_policies).where(retrain_policies.c.name == name)).first()
        if row is None:
            raise NotFound(f"no retraining policy {name!r}")
        return _policy(row)

    def policies(self, deployment: str | None = None) -> list[RetrainPolicy]:
        query = sa.select(retrain_policies).order_by(retrain_policies.c.name)
        if deployment is not None:
            query = query.where(retrain_policies.c.deployment == deployment)
        with self._db.read() as conn:
            return [_policy(r) for r in conn.execute(query)]

    def delete_policy(self, name: str, *, reason: str | None = None) -> None:
        """Remove a policy; refused while one of its retrains is open (running, pending review or being decided):
        finish or reject it first, so no retrain is left without the policy that decides it."""
        self.policy(name)
        open_ones = [r for r in self.list(name, limit=5) if r.status in OPEN]
        if open_ones:
            raise Conflict(f"{open_ones[0].ref} of policy {name!r} is {open_ones[0].status}; reject or finish it "
                           "before deleting the policy")

        def write(conn: sa.Connection) -> None:
            conn.execute(retrain_policies.delete().where(retrain_policies.c.name == name))
            self._audit.record(conn, actor=self._user, action="retrain.policy.delete",
                               target=f"retrain_policy:{name}", reason=reason)

        self._db.retrying(write)

    # -- retrains ----------------------------------------------------------------------------------------

    def evaluate(self, *, now: datetime | None = None, scheduler: str | None = None) -> list[Retrain]:
        """The scheduler's step: move running retrains on, then fire the conditions that hold (each event once;
        a policy with a retrain open waits for it)."""
        now = now or datetime.now(UTC)
        for open_one in self.list(status="running"):
            try:
                self.progress(open_one.id)
            except KeelError as exc:  # one retrain that cannot move on does not stop the others
                log.warning("retrain.progress_failed", retrain=open_one.id, error=exc.message)
        fired = []
        for policy in self.policies():
            if any(r.status in OPEN for r in self.list(policy.name, limit=5)):
                continue
            for index, condition in enumerate(_conditions(policy)):
                event = self._event(policy, index, condition, now)
                if event is None:
                    continue
                made = self._fire(policy, {**event, "by": f"scheduler {scheduler}" if scheduler else self._user})
                if made is not None:
                    fired.append(self._prepare(made, policy, now))
                    break
        return fired

    def start(self, policy: str, *, reason: str, override_guard: str | None = None, execute: bool = True,
              executor: str = "process") -> Retrain:
        """A manual retrain now (``keel retrain start``): prepared, and with ``execute`` its pipeline run here and
        the candidate gated; ``override_guard``: a reason to retrain although the feedback-loop guard refuses."""
        if not reason or not reason.strip():
            raise InvalidInput("a manual retrain needs a reason (--reason): why now")
        found = self.policy(policy)
        open_ones = [r for r in self.list(found.name, limit=5) if r.status in OPEN]
        if open_ones:
            raise Conflict(f"{open_ones[0].ref} of policy {policy!r} is {open_ones[0].status}; finish it first")
        now = datetime.now(UTC)
        made = self._fire(found, {"kind": "manual", "condition": "manual()", "why": reason, "by": self._user,
                                  "key": f"retrain:{policy}:manual:{now.isoformat()}",
                                  "override_guard": override_guard})
        assert made is not None
        made = self._prepare(made, found, now)
        if execute and made.status == "running" and made.pipeline_run is not None:
            self._pipelines.execute(made.pipeline_run, executor=executor)
            made = self.progress(made.id)
        return made

    def progress(self, retrain_id: int | str) -> Retrain:
        """A running retrain whose pipeline run ended: its candidate gated and put up for review (or failed)."""
        found = self.get(retrain_id)
        if found.status != "running":
            return found
        if found.pipeline_run is None:  # its process died between firing and queueing the pipeline
            stalled = found.updated_at is None or (datetime.now(UTC) - found.updated_at).total_seconds() > STALLED_S
            return self._prepare(found, self.policy(found.policy), datetime.now(UTC)) if stalled else found
        run = self._pipelines.show(found.pipeline_run)
        if run.status in ("queued", "running"):
            return found
        if run.status == "failed":
            return self._update(found, "failed", evidence={"error": run.error or "the pipeline failed"})
        policy = self.policy(found.policy)
        info = self._pipelines.get(run.pipeline, run.version)
        types = {s["name"]: s["output"] for s in info.steps}
        models = [s.output for s in run.steps if types.get(s.step) == "Model" and s.output]
        if not models:
            return self._update(found, "failed", evidence={"error": f"pipeline {run.pipeline!r} returned no Model: "
                                                                    "a retraining pipeline registers a candidate"})
        version = self._models.version(models[-1])
        candidate = version.name  # as deployments name it: price/4
        reports = [s.output for s in run.steps if types.get(s.step) == "GateReport" and s.output]
        try:
            report = self._gates.report(reports[-1].removeprefix("gate:")) if reports else \
                self._gates.run(candidate)
        except KeelError as exc:
            return self._update(found, "failed", candidate=candidate,
                                evidence={"error": f"the candidate's gates could not run: {exc.message}"})
        evidence = {"gates": {"ref": report.ref, "status": report.status, "releasable": report.releasable,
                              "blocking": [r.name for r in report.blocking], "counts": report.counts(),
                              "against": report.against_version},
                    "comparison": self._compare(candidate, found.trigger.get("base_model"))}
        how = self._how_used(candidate, found.how or {})
        with self._db.transaction() as conn:
            self._lineage.add(conn, [Edge(f"retrain:{found.id}", version.ref, "retrained as")])
        made = self._update(found, "pending_review", candidate=candidate, gate_report=report.ref, evidence=evidence,
                            how=how)
        log.info("retrain.pending_review", retrain=made.id, candidate=candidate, gates=report.status)
        if policy.spec.get("auto_approve") and report.releasable:
            made = self._decide(made, policy, approve=True, reason=f"automatic approval by policy {policy.name}",
                                automatic=True)
        return made

    def get(self, retrain_id: int | str) -> Retrain:
        number = _retrain_id(retrain_id)
        with self._db.read() as conn:
            row = conn.execute(sa.select(retrains).where(retrains.c.id == number)).first()
        if row is None:
            raise NotFound(f"no retrain {number}")
        return _retrain(row)

    def list(self, policy: str | None = None, *, status: str | None = None, limit: int = 50) -> list[Retrain]:
        query = sa.select(retrains).order_by(retrains.c.id.desc()).limit(limit)
        if policy is not None:
            query = query.where(retrains.c.policy == policy)
        if status is not None:
            query = query.where(retrains.c.status == status)
        with self._db.read() as conn:
            return [_retrain(r) for r in conn.execute(query)]

    def review(self, retrain_id: int | str) -> dict[str, Any]:
        """Everything an approver weighs: why it was triggered, the data window, how it was trained, the gate
        report and the comparison with the serving model, and what approving would do."""
        found = self.get(retrain_id)
        policy = self.policy(found.policy)
        out = found.to_dict()
        out["policy_spec"] = policy.spec
        out["serving"] = found.trigger.get("base_model")
        out["on_approve"] = (f"approve {found.candidate} for production and start a canary on deployment "
                             f"{found.deployment}: steps {policy.spec['canary']['steps']}, every "
                             f"{policy.spec['canary']['interval_s']:g} s, guardrails "
                             f"{', '.join(policy.spec['canary']['guardrails']) or 'none'}") if found.candidate else None
        if found.gate_report:
            out["gate_report"] = self._gates.report(found.gate_report.removeprefix("gate:")).to_dict()
        return out

    def approve(self, retrain_id: int | str, *, reason: str, override: bool = False) -> Retrain:
        """An approver releases the candidate: approved for production, and a canary starts on the deployment.
        A candidate that failed a required gate is refused unless ``override`` (recorded on its gate report)."""
        found = self.get(retrain_id)
        return self._decide(found, self.policy(found.policy), approve=True, reason=reason, override=override)

    def reject(self, retrain_id: int | str, *, reason: str) -> Retrain:
        """An approver turns the candidate down; the deployment is not touched."""
        found = self.get(retrain_id)
        return self._decide(found, self.policy(found.policy), approve=False, reason=reason)

    # -- internals: firing -------------------------------------------------------------------------------

    def _event(self, policy: RetrainPolicy, index: int, condition: Condition, now: datetime) -> dict[str, Any] | None:
        kind = condition.kind
        if kind in ("drift", "performance"):
            streak = self._streak(policy, condition)
            if streak is None:
                return None
            first, reports, quiet = streak
            return {"kind": kind, "condition": condition.text, "key": f"retrain:{policy.name}:{index}:"
                    f"{policy.spec['monitor']}/{first.number}",
                    "why": f"{condition.text} held over {len(reports)} report(s) since "
                           f"{first.window_start:%Y-%m-%d %H:%M} (from {first.ref})",
                    "reports": [r.ref for r in reports], "drift_start": first.window_start.isoformat(),
                    "quiet_until": quiet.window_end.isoformat() if quiet is not None else None,
                    "values": self._values(condition, reports)}
        if kind == "volume":
            since = self._volume_since(policy)
            labelled = self._labelled_since(policy.deployment, since)
            if labelled < condition.args["rows"]:
                return None
            return {"kind": kind, "condition": condition.text,
                    "key": f"retrain:{policy.name}:{index}:volume:{since.isoformat()}",
                    "why": f"{labelled} labelled rows since {since:%Y-%m-%d %H:%M} (>= {condition.args['rows']})",
                    "labelled": labelled}
        if kind == "schedule":
            subject, trigger = f"retrain_policy:{policy.name}", f"{index}:schedule"
            cursor = read_cursor(self._db, subject, trigger)
            after = datetime.fromisoformat(cursor["at"]) if cursor else now - ON_TIME
            due = [t for t in cron_times(condition.args["cron"], condition.args["timezone"], after, now)
                   if now - t <= ON_TIME]
            save_cursor(self._db, subject, trigger, {"at": now.isoformat()})
            if not due:
                return None
            return {"kind": kind, "condition": condition.text,
                    "key": f"retrain:{policy.name}:{index}:schedule:{due[-1].isoformat()}",
                    "why": f"scheduled ({condition.args['cron']} {condition.args['timezone']}) at "
                           f"{due[-1]:%Y-%m-%d %H:%M}"}
        return None  # manual: keel retrain start

    def _streak(self, policy: RetrainPolicy, condition: Condition) -> tuple[Any, list[Any], Any] | None:
        """The newest run of consecutive reports where the condition holds, when it is long enough: (its first
        report, its reports oldest first, the report just before it or None)."""
        reports = self._monitors.reports(policy.spec["monitor"], limit=100)
        held = []
        for report in reports:
            if not condition.holds(report.results, report.rows)[0]:
                break
            held.append(report)
        if len(held) < condition.windows:
            return None
        quiet = reports[len(held)] if len(held) < len(reports) else None  # the last report before the streak
        return held[-1], list(reversed(held)), quiet

    def _values(self, condition: Condition, reports: list[Any]) -> list[float | None]:
        return [condition.holds(r.results, r.rows)[1] for r in reports]

    def _fire(self, policy: RetrainPolicy, trigger: dict[str, Any]) -> Retrain | None:
        now = datetime.now(UTC)
        target = self._deployments.get(policy.deployment)
        base = target.current.policy["arms"][0]["model"]
        trigger = {**trigger, "base_model": base}
        try:
            with self._db.transaction() as conn:
                made = conn.execute(retrains.insert().values(
                    policy=policy.name, deployment=policy.deployment, status="running", trigger=trigger,
                    how={"asked": policy.spec["how"]}, evidence={}, created_at=now, created_by=self._user,
                    updated_at=now))
                number = int(made.inserted_primary_key[0])
                conn.execute(trigger_fires.insert().values(
                    key=trigger["key"], subject=f"retrain_policy:{policy.name}", kind=trigger["kind"],
                    what=str(trigger.get("why", ""))[:2000], fired_at=now, run=None))
                self._audit.record(conn, actor=self._user, action="retrain.fire", target=f"retrain:{number}",
                                   reason=trigger.get("why"), details={"policy": policy.name, "trigger": trigger})
                self._lineage.add(conn, [Edge(base, f"retrain:{number}", "retrained by"),
                                         *[Edge(r, f"retrain:{number}", "triggered")
                                           for r in trigger.get("reports", [])]])
        except IntegrityError as exc:
            if is_unique_violation(exc):
                return None  # this event fired already
            raise
        log.info("retrain.fired", retrain=number, policy=policy.name, why=trigger.get("why"))
        return self.get(number)

    def _prepare(self, made: Retrain, policy: RetrainPolicy, now: datetime) -> Retrain:
        """Window, new data and guard checked; the pipeline queued; or the retrain ended with why."""
        spec = policy.spec
        try:
            drift = made.trigger if made.trigger.get("drift_start") else self._drift_start(policy)
            window = resolve_window(spec["data"], self._data, spec["source"], spec.get("time_column"),
                                    _time(drift.get("drift_start")), now, _time(drift.get("quiet_until")))
        except KeelError as exc:
            return self._update(made, "refused", evidence={"error": exc.message})
        detail = window.to_dict()
        if window.rows == 0:
            return self._update(made, "refused", window=detail,
                                evidence={"error": f"the data window ({window.where or 'every row'}) on "
                                                   f"{detail['version']} holds no rows"})
        trained = self._trained_versions(made.trigger["base_model"], spec["source"])
        latest = self._data.version(spec["source"]).version
        if trained and latest <= max(trained):
            return self._update(made, "no_new_data", window=detail,
                                evidence={"message": f"{spec['source']} has no version newer than "
                                                     f"@{max(trained)}, which {made.trigger['base_model']} was "
                                                     "trained on: nothing to retrain on, nothing done"})
        guard = self._guard(policy, window, made)
        detail["guard"] = guard
        if guard.get("refused"):
            return self._update(made, "refused", window=detail, evidence={"error": guard["refused"]})
        info = self._pipelines.get(policy.pipeline)
        params = {p for s in info.steps for p in s["params"]}
        given = {"where": window.where or "TRUE", "how": spec["how"], "base_model": made.trigger["base_model"]}
        run = self._pipelines.enqueue(policy.pipeline, {k: v for k, v in given.items() if k in params},
                                      trigger={"kind": "retrain", "what": f"{made.ref}: {made.trigger.get('why')}",
                                               "retrain": made.id, "policy": policy.name, "by": self._user})
        with self._db.transaction() as conn:
            conn.execute(trigger_fires.update().where(trigger_fires.c.key == made.trigger["key"]).values(run=run.id))
        return self._update(made, "running", window=detail, pipeline_run=run.id)

    def _guard(self, policy: RetrainPolicy, window: Any, made: Retrain) -> dict[str, Any]:
        limit = policy.spec.get("max_influenced")
        if limit is None:
            return {"checked": False}
        since = window.log_since or datetime(1970, 1, 1, tzinfo=UTC)
        log_rows = self._deployments.log(policy.deployment, since, kinds=("primary", "feedback"),
                                         columns=["request_id", "kind", "arm", "output"])
        counts = influenced_share(log_rows)
        out = {"checked": True, "max_influenced": limit, **counts}
        share = counts["share"]
        if share is not None and share > limit:
            why = (f"{share:.0%} of the {counts['labelled']} labelled requests since {since:%Y-%m-%d %H:%M} were "
                   f"answered by the model (its own influence) > max_influenced {limit:.0%}: retraining on them "
                   "risks a degenerate feedback loop; raise the deployment's holdout, or override with a reason")
            override = made.trigger.get("override_guard")
            if override:
                out["overridden"] = {"by": made.trigger.get("by"), "reason": override}
            else:
                out["refused"] = why
        return out

    # -- internals: deciding -----------------------------------------------------------------------------

    def _decide(self, found: Retrain, policy: RetrainPolicy, *, approve: bool, reason: str, override: bool = False,
                automatic: bool = False) -> Retrain:
        if found.status != "pending_review":
            raise Conflict(f"{found.ref} is {found.status}; only a candidate pending review is approved or rejected")
        if not reason or not reason.strip():
            raise InvalidInput("a decision needs a reason (--reason): what was weighed")
        if not automatic:
            role = self._users.get(self._user).role
            if not role_allows(role, "approver"):
                raise PermissionDenied(f"{self._user} is a {role}; approving or rejecting a retrain is an approver's")
        now = datetime.now(UTC)
        decision: dict[str, Any] = {"approved": approve, "by": f"policy:{policy.name}" if automatic else self._user,
                                    "at": now.isoformat(), "reason": reason, "automatic": automatic,
                                    "override": False}
        self._claim(found)  # one decision: a second approver (or approve beside reject) gets Conflict here
        try:
            if approve:
                decision.update(self._release(found, policy, reason, override=override, automatic=automatic))
        except BaseException:
            self._update(found, "pending_review")  # nothing was decided: it waits again
            raise
        made = self._update(found, "approved" if approve else "rejected", decision=decision)
        with self._db.transaction() as conn:
            self._audit.record(conn, actor=decision["by"], action="retrain.approve" if approve else "retrain.reject",
                               target=found.ref, reason=reason,
                               details={"candidate": found.candidate, "override": decision["override"],
                                        "automatic": automatic})
        return made

    def _claim(self, found: Retrain) -> None:
        with self._db.transaction() as conn:
            moved = conn.execute(retrains.update().where(retrains.c.id == found.id,
                                                         retrains.c.status == "pending_review")
                                 .values(status="deciding", updated_at=datetime.now(UTC)))
        if moved.rowcount != 1:
            raise Conflict(f"{found.ref} is being decided or was decided meanwhile; look again")

    def _release(self, found: Retrain, policy: RetrainPolicy, reason: str, *, override: bool,
                 automatic: bool) -> dict[str, Any]:
        """The candidate's failed gates overridden (when asked and needed), its approval, and its canary."""
        assert found.candidate is not None and found.gate_report is not None
        report = self._gates.report(found.gate_report.removeprefix("gate:"))
        overridden = False
        if not report.releasable:
            if not override:
                raise GatesFailed(f"{found.candidate} failed required gate test(s) "
                                  f"{', '.join(r.name for r in report.blocking)} ({report.ref}); approve with "
                                  "--override and a reason to release it anyway", details={"report": report.ref})
            self._gates.override(report.id, reason=reason)
            overridden = True
        production = self._deployments.get(policy.deployment).production
        if not automatic:
            self._models.approve(found.candidate, reason=reason)
        elif production:  # allowed at create only with allow_production_auto and guardrails
            self._models.approve_automatically(found.candidate, policy=policy.name, reason=reason)
        plan = policy.spec["canary"]
        moved = self._deployments.canary(policy.deployment, found.candidate, steps=plan["steps"],
                                         interval_s=plan["interval_s"], guardrails=plan["guardrails"],
                                         reason=f"{found.ref} approved: {reason}")
        return {"override": overridden, "canary": moved.ref}

    # -- internals: reading ------------------------------------------------------------------------------

    def _monitor_of(self, deployment: str, monitor: str | None) -> str:
        if monitor is not None:
            found = self._monitors.get(monitor)
            if found.deployment != deployment:
                raise InvalidInput(f"monitor {monitor!r} watches {found.deployment!r}, not {deployment!r}")
            return monitor
        watching = self._monitors.list(deployment)
        if len(watching) != 1:
            raise InvalidInput(f"deployment {deployment!r} has {len(watching)} monitors; name one (--monitor) for "
                               "the drift and performance conditions" if watching else
                               f"deployment {deployment!r} has no monitor: drift and performance conditions read "
                               "its reports; create one first (keel monitor create)")
        return watching[0].name

    def _drift_start(self, policy: RetrainPolicy) -> dict[str, Any]:
        """When the newest drift streak of the policy's drift conditions began, and the quiet window before it
        closed (for since_drift_start when another condition fired)."""
        streaks = [s for c in _conditions(policy) if c.kind == "drift" for s in [self._streak(policy, c)] if s]
        if not streaks:
            return {}
        first, _, quiet = max(streaks, key=lambda s: s[0].window_start)
        return {"drift_start": first.window_start.isoformat(),
                "quiet_until": quiet.window_end.isoformat() if quiet is not None else None}

    def _trained_on_table(self, target: Any) -> str | None:
        tables = [r for r in self._upstream(target.current.policy["arms"][0]["model"]) if r.startswith("table:")]
        return tables[-1].removeprefix("table:").split("@")[0] if tables else None

    def _trained_versions(self, model: str, source: str) -> list[int]:
        prefix = f"table:{source}@"
        return [int(r.removeprefix(prefix)) for r in self._upstream(model)
                if r.startswith(prefix) and r.removeprefix(prefix).isdigit()]

    def _upstream(self, model: str) -> list[str]:
        """Every ref the version was made from: its lineage, and the data its run was fitted on (``fit.data``,
        a split or a table version) with that data's own lineage."""
        version = self._models.version(model)
        refs = self._lineage.upstream(version.ref).refs()
        try:
            fitted_on = training_source(self._models, self._runs, version.name)["data"]
        except KeelError:
            return refs
        try:
            split = self._data.split_info(fitted_on)
            table = f"table:{split.table}@{split.table_version}"
        except KeelError:
            try:
                table = self._data.version(fitted_on).ref
            except KeelError:
                return refs
        return [*refs, *self._lineage.upstream(table).refs()]

    def _volume_since(self, policy: RetrainPolicy) -> datetime:
        earlier = self.list(policy.name, limit=1)
        return earlier[0].created_at if earlier and earlier[0].created_at else policy.created_at

    def _labelled_since(self, deployment: str, since: datetime) -> int:
        rows = self._deployments.log(deployment, since, kinds=("feedback",), columns=["request_id", "kind", "arm",
                                                                                      "output"])
        if rows.num_rows == 0:
            return 0
        return int(query_arrow("""SELECT coalesce(sum(CASE WHEN json_type(json_extract(output, '$.label')) = 'ARRAY'
                                  THEN json_array_length(json_extract(output, '$.label')) ELSE 1 END), 0) AS n
                                  FROM f WHERE json_valid(output)""", f=rows)["n"][0].as_py())

    def _compare(self, candidate: str, serving: str | None) -> dict[str, Any]:
        """The candidate and the serving model scored on the same rows: the test part the candidate was fitted
        beside (the new data). Either's own run metrics are on different data, so they are not compared."""
        try:
            data = training_source(self._models, self._runs, candidate)["data"]
        except KeelError as exc:
            return {"candidate": candidate, "serving": serving, "on": None, "metrics": [], "note": exc.message}
        scores: dict[str, dict[str, float]] = {}
        notes = []
        for role, ref in (("candidate", candidate), ("serving", serving)):
            if not ref:
                continue
            try:
                loaded = self._models.load(ref)
                inputs = [c.name for c in Signature.from_dict(loaded.manifest.signature).inputs]
                report = self._runs.evaluate(loaded.model, data, features=inputs, parts=["test"], baseline=False,
                                             plots=False)
                scores[role] = {k: v for k, v in report.metrics.get("test", {}).items()
                                if isinstance(v, int | float) and k != "rows"}
            except KeelError as exc:
                notes.append(f"{ref}: {exc.message}")
        keys = sorted(set(scores.get("candidate", {})) | set(scores.get("serving", {})))
        return {"candidate": candidate, "serving": serving, "on": f"{data} (test part)",
                "metrics": [{"metric": k, "candidate": scores.get("candidate", {}).get(k),
                             "serving": scores.get("serving", {}).get(k)} for k in keys],
                **({"note": "; ".join(notes)} if notes else {})}

    def _how_used(self, candidate: str, asked: dict[str, Any]) -> dict[str, Any]:
        run_id = self._models.version(candidate).run_id
        tags = self._runs.get(run_id).tags if run_id else {}
        return {**asked, "used": tags.get("retrain.how", asked.get("asked")), "detail": tags.get("retrain.how_detail")}

    def _update(self, found: Retrain, status: str, **values: Any) -> Retrain:
        now = datetime.now(UTC)
        with self._db.transaction() as conn:
            conn.execute(retrains.update().where(retrains.c.id == found.id)
                         .values(status=status, updated_at=now, **values))
        if status not in OPEN:
            log.info("retrain.ended", retrain=found.id, status=status)
        return self.get(found.id)


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _conditions(policy: RetrainPolicy) -> list[Condition]:
    return [Condition(c["text"], c["kind"], c["args"]) for c in policy.spec["when"]]


def _policy(row: Any) -> RetrainPolicy:
    return RetrainPolicy(row.name, row.deployment, row.pipeline, dict(row.spec), row.created_at, row.created_by,
                         row.updated_at)


def _retrain(row: Any) -> Retrain:
    return Retrain(row.id, row.policy, row.deployment, row.status, dict(row.trigger), row.window, row.how,
                   row.pipeline_run, row.candidate, row.gate_report, dict(row.evidence or {}), row.decision,
                   row.created_at, row.created_by, row.updated_at)


def _retrain_id(value: int | str) -> int:
    text = str(value).removeprefix("retrain:")
    if not text.isdigit():
        raise InvalidInput(f"{value!r} is not a retrain id (a number, or retrain:N)")
    return int(text)

