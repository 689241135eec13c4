"""Deployments (``ws.deployments``): named endpoints whose routing policy changes only through these methods,
each change a new version with who, when and why, audited.

Only model versions that may be released can be routed to: their release gates passed (#6), and for a
production endpoint an approval too; an approver can override the approval with a reason (audited). Policies
name exact versions (``price/4``): an alias is resolved when the policy is set, so what an endpoint serves never
changes behind its back. The data plane (``keel serve``) reads the current version.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from keel.audit import AuditLog
from keel.data.service import DataService
from keel.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from keel.lineage import Edge, LineageService
from keel.models.service import ModelService
from keel.refs import check_name
from keel.serving.baseline import baseline_of
from keel.serving.canary import CanaryDecision, arm_stats, decide, parse_guardrail
from keel.serving.feedback import LOG_SCHEMA, LOG_TABLE, committed_log, feedback_records, feedback_table
from keel.serving.model import Deployment, DeploymentVersion, policy_of
from keel.serving.report import LOG_COLUMNS, build_report, parse_since
from keel.storage.db import Database
from keel.storage.schema import deployment_versions, deployments
from keel.tracking.service import RunService
from keel.users import UserService, role_allows

__all__ = ["DeploymentService", "check_canary_plan"]

BASELINE = "baseline"  # a fallback that is not a model: the train part's mean / prior, served by the data plane


class DeploymentService:
    """Create endpoints and change how they route: shadow, A/B, canary, interleave, promote, rollback, pause."""

    def __init__(self, db: Database, models: ModelService, lineage: LineageService, audit: AuditLog,
                 users: UserService, user: str, data: DataService | None = None, runs: RunService | None = None
                 ) -> None:
        self._db, self._models, self._lineage, self._audit = db, models, lineage, audit
        self._users, self._user, self._data, self._runs = users, user, data, runs

    # -- reading ---------------------------------------------------------------------------------------

    def get(self, name: str) -> Deployment:
        with self._db.read() as conn:
            row = conn.execute(sa.select(deployments).where(deployments.c.name == name)).first()
            if row is None or row.deleted_at is not None:
                raise NotFound(f"no deployment {name!r}; `keel deploy list` lists them")
            current = conn.execute(sa.select(deployment_versions).where(
                deployment_versions.c.deployment == name,
                deployment_versions.c.version == row.latest_version)).one()
        return _deployment(row, _version(current))

    def list(self) -> list[Deployment]:
        with self._db.read() as conn:
            names = conn.execute(sa.select(deployments.c.name).where(deployments.c.deleted_at.is_(None))
                                 .order_by(deployments.c.name)).scalars().all()
        return [self.get(n) for n in names]

    def versions(self) -> dict[str, int]:
        """Every live deployment's current policy version, in one query: what a data plane polls to notice a
        change without reading the policies."""
        with self._db.read() as conn:
            rows = conn.execute(sa.select(deployments.c.name, deployments.c.latest_version)
                                .where(deployments.c.deleted_at.is_(None))).all()
        return {r.name: r.latest_version for r in rows}

    def history(self, name: str) -> list[DeploymentVersion]:
        """Every version of the policy, oldest first."""
        self.get(name)
        with self._db.read() as conn:
            rows = conn.execute(sa.select(deployment_versions).where(deployment_versions.c.deployment == name)
                                .order_by(deployment_versions.c.version)).all()
        return [_version(r) for r in rows]

    # -- changing ----------------------------------------------------------------------------------------

    def create(self, name: str, model: str, *, fallbacks: list[str] | None = None, production: bool = False,
               strict_requirements: bool = False, override: bool = False, reason: str | None = None) -> Deployment:
        """A new endpoint serving ``model``; ``fallbacks`` answer, in order, when it fails or times out.
        ``strict_requirements``: the data plane refuses to load a model packaged with another version of its
        library than the one installed (by default it reports the difference and serves)."""
        check_name(name, "deployment name")
        primary = self._deployable(model, production, override, reason)
        chain = [self._fallback(f) for f in fallbacks or []]
        policy = {"kind": "single", "arms": [{"name": "primary", "model": primary, "weight": 1.0}],
                  "fallbacks": chain}
        if strict_requirements:
            policy["strict_requirements"] = True
        if BASELINE in chain:
            if self._data is None or self._runs is None:
                raise InvalidInput("a baseline fallback is computed from the training data; this workspace has none")
            policy["baseline"] = baseline_of(self._models, self._runs, self._data, primary)
        now = datetime.now(UTC)
        seed = secrets.token_hex(8)
        policy_of(policy, seed)

        def insert(conn: sa.Connection) -> None:
            found = conn.execute(sa.select(deployments.c.deleted_at).where(deployments.c.name == name)).first()
            if found is not None:
                raise Conflict(f"deployment {name!r} exists" + (" (deleted; choose another name)"
                                                                 if found.deleted_at else ""))
            conn.execute(deployments.insert().values(name=name, production=production, seed=seed, latest_version=1,
                                                     created_at=now, created_by=self._user))
            self._write_version(conn, name, 1, policy, "active", "create", reason, now)

        self._db.retrying(insert)
        return self.get(name)

    def shadow(self, name: str, candidate: str, *, sample: float = 1.0, reason: str | None = None) -> Deployment:
        """Call ``candidate`` beside the primary for a ``sample`` of requests; the client gets the primary's."""
        current = self.get(name)
        primary = current.current.policy["arms"][0]  # the stable version of a canary, the first of an A/B
        policy = _policy(current, "shadow", [{**primary, "name": "primary"}],
                         shadows=[self._deployable(candidate, False, False, None)], sample=sample)
        return self._change(current, policy, "shadow", reason)

    def ab(self, name: str, variants: dict[str, tuple[str, float]], *, sticky_key: str | None = None,
           override: bool = False, reason: str | None = None) -> Deployment:
        """Split traffic between ``variants`` ({"a": ("price/4", 50), "b": ("price/5", 50)}), sticky per key."""
        current = self.get(name)
        arms = [{"name": arm, "model": self._deployable(ref, current.production, override, reason),
                 "weight": float(weight)} for arm, (ref, weight) in variants.items()]
        policy = _policy(current, "ab", arms, sticky_key=sticky_key)
        return self._change(current, policy, "ab", reason)

    def interleave(self, name: str, variants: dict[str, str], *, item_key: str | None = None, override: bool = False,
                   reason: str | None = None) -> Deployment:
        """Merge the rankings of two models per request (team-draft); feedback credits the model drafting the
        chosen item. A request's rows are the candidate items; ``item_key`` names the column identifying them (by
        default their position in the request)."""
        if len(variants) != 2:
            raise InvalidInput(f"interleaving compares two ranking models, not {len(variants)}")
        current = self.get(name)
        arms = [{"name": arm, "model": self._deployable(ref, current.production, override, reason), "weight": 1.0}
                for arm, ref in variants.items()]
        if item_key is not None and (not isinstance(item_key, str) or not item_key.strip()):
            raise InvalidInput("item_key names the column that identifies a request's items, e.g. listing_id")
        policy = _policy(current, "interleave", arms, sticky_key=None, item_key=item_key)
        return self._change(current, policy, "interleave", reason)

    def canary(self, name: str, candidate: str, *, steps: list[float], interval_s: float,
               guardrails: list[str] | None = None, override: bool = False, reason: str | None = None) -> Deployment:
        """Roll ``candidate`` out over ``steps`` (percent of traffic), one step per ``interval_s`` while the
        ``guardrails`` hold; the stable version serves the rest."""
        current = self.get(name)
        check_canary_plan(steps, interval_s, guardrails)
        stable = current.current.policy["arms"][0]
        arm = {"name": "canary", "model": self._deployable(candidate, current.production, override, reason),
               "weight": 1.0}
        policy = _policy(current, "canary", [{**stable, "name": "stable"}, arm], steps=[s / 100 for s in steps],
                         step=steps[0] / 100, step_index=0, interval_s=interval_s, guardrails=list(guardrails or []))
        return self._change(current, policy, "canary", reason)

    def holdout(self, name: str, share: float, *, reason: str | None = None) -> Deployment:
        """Answer ``share`` of the keys (sticky, at most half) with the baseline instead of any model: outcomes
        the model did not influence, logged on arm ``holdout``, for retraining's feedback-loop guard. 0 ends it."""
        current = self.get(name)
        if not isinstance(share, int | float) or isinstance(share, bool) or not 0 <= share <= 0.5:
            raise InvalidInput(f"a holdout is a share of traffic from 0 to 0.5, not {share!r}")
        if share and BASELINE not in current.current.policy.get("fallbacks", []):
            raise InvalidInput(f"deployment {name!r} has no baseline to answer its holdout; recreate it with "
                               "--fallback baseline (the train part's mean or majority class)")
        return self._change(current, {**current.current.policy, "holdout": float(share)}, "holdout", reason)

    def check_canary(self, name: str, *, now: datetime | None = None, min_requests: int = 20) -> CanaryDecision:
        """The canary controller's step: once the interval has passed, judge the guardrails on the requests
        since the step began (the prediction log) and advance, promote, or roll back to the stable version,
        recording why. Run it on a schedule (the scheduler of #9, or cron)."""
        current = self.get(name)
        policy = current.current.policy
        if policy["kind"] != "canary" or current.state != "active":
            raise InvalidInput(f"deployment {name!r} is not an active canary ({current.state} {policy['kind']})")
        now = now or datetime.now(UTC)
        since = current.current.at
        waited = (now - since).total_seconds()
        if waited < float(policy["interval_s"]):
            return CanaryDecision("wait", f"{waited:.0f} s of the {policy['interval_s']:.0f} s interval have passed",
                                  float(policy["step"]))
        decision = decide(policy, arm_stats(self.log(name, since, columns=["arm", "reason", "latency_ms", "output"])),
                          min_requests=min_requests)
        if decision.action == "advance":
            self._change(current, {**policy, "step": decision.step, "step_index": int(policy["step_index"]) + 1},
                         "advance", decision.reason)
        elif decision.action == "promote":
            self.promote(name, reason=decision.reason)
        elif decision.action == "rollback":
            stable = {**policy["arms"][0], "name": "primary"}
            single = {"kind": "single", "arms": [stable], "fallbacks": policy.get("fallbacks", []),
                      "sticky_key": policy.get("sticky_key"), "rolled_back": policy["arms"][1]["model"]}
            self._change(current, single, "rollback", decision.reason)
        return decision

    def log(self, name: str | None, since: datetime, until: datetime | None = None, *,
            columns: list[str] | None = None, kinds: tuple[str, ...] = ("primary",),
            version: int | None = None) -> pa.Table:
        """The prediction log's rows of deployment ``name`` and ``kinds`` logged in [since, until], from the log
        table's ``version`` (default: its latest); an empty table when nothing was ever logged. ``name`` None: the
        rows of no deployment (the serving processes' heartbeats, ``kinds=("health",)``)."""
        columns = columns or LOG_SCHEMA.names
        latest = committed_log(self._data) if version is None else None
        if self._data is None or (version is None and latest is None):
            return LOG_SCHEMA.empty_table().select(columns)
        if name is not None:
            check_name(name, "deployment name")  # the safe alphabet: no quote can end the literal below
        where = ["deployment IS NULL" if name is None else f"deployment = '{name}'",
                 "kind IN (" + ", ".join(f"'{k}'" for k in kinds) + ")", f"\"at\" >= TIMESTAMPTZ '{_stamp(since)}'"]
        if until is not None:
            where.append(f"\"at\" <= TIMESTAMPTZ '{_stamp(until)}'")
        return self._data.read_arrow(f"{LOG_TABLE}@{latest.version if version is None else version}",
                                     columns=columns, where=" AND ".join(where))

    # -- reports and feedback ------------------------------------------------------------------------------

    def report(self, name: str, since: datetime | str | None = None) -> dict[str, Any]:
        """What the arms serve and how well: traffic, latency, fallbacks, predictions, metrics from feedback
        with confidence intervals and tests against the control, the sample ratio check, shadow agreement and
        the interleaving preference (``keel.serving.report``). ``since``: a time, ISO text or a duration back
        from now (``6h``); by default the start of the current policy (what the arms serve now)."""
        current = self.get(name)
        now = datetime.now(UTC)
        policy_since = self._policy_start(current)
        start = policy_since if since is None else parse_since(since, now)
        rows = self.log(name, start, now, columns=LOG_COLUMNS, kinds=("primary", "shadow", "feedback"))
        return build_report(name=name, policy=current.current.policy, version=current.current.version, rows=rows,
                            since=start, until=now, policy_since=policy_since)

    def feedback(self, name: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        """Record what was true (``label``), what it was worth (``outcome``) or what the user picked from an
        interleaved list (``chosen``) for answered requests, by request id, in the prediction log: the report
        joins them. Ids the log does not hold (yet) are accepted; the report counts them as unmatched."""
        self.get(name)
        records = feedback_records(name, items)
        if self._data is None:
            raise InvalidInput("this workspace has no tables to keep feedback in")
        info = committed_log(self._data)
        table = feedback_table(records, list(info.schema) if info is not None else None)
        self._data.write_batches([table], LOG_TABLE, reason=f"feedback for deployment {name}")
        return {"deployment": name, "accepted": len(records)}

    def _policy_start(self, current: Deployment) -> datetime:
        """When the current policy began: versions that kept it (pause, resume) do not restart it."""
        start = current.current.at
        for version in reversed(self.history(current.name)[:-1]):
            if version.policy != current.current.policy:
                break
            start = version.at
        return start

    def promote(self, name: str, *, reason: str | None = None) -> Deployment:
        """The candidate of a canary or a shadow becomes the one primary; the version it replaces becomes the
        first fallback."""
        current = self.get(name)
        policy = current.current.policy
        if policy["kind"] == "canary":
            winner = policy["arms"][1]["model"]
        elif policy["kind"] == "shadow":
            winner = policy["shadows"][0]
        else:
            raise InvalidInput(f"deployment {name!r} routes {policy['kind']}: only a canary or a shadow has a "
                               "candidate to promote")
        previous = policy["arms"][0]["model"]
        chain = [previous, *[f for f in policy.get("fallbacks", []) if f not in (previous, winner)]]
        single = {"kind": "single", "arms": [{"name": "primary", "model": winner, "weight": 1.0}],
                  "fallbacks": chain, "sticky_key": policy.get("sticky_key")}
        return self._change(current, single, "promote", reason)

    def rollback(self, name: str, *, reason: str | None = None) -> Deployment:
        """Back to the policy before the current one (what the canary controller does on a failed guardrail)."""
        history = self.history(name)
        if len(history) < 2:
            raise InvalidInput(f"deployment {name!r} has no earlier policy to roll back to")
        current = self.get(name)
        return self._change(current, history[-2].policy, "rollback", reason)

    def pause(self, name: str, *, reason: str | None = None) -> Deployment:
        current = self.get(name)
        if current.state == "paused":
            raise InvalidInput(f"deployment {name!r} is paused already")
        return self._change(current, current.current.policy, "pause", reason, state="paused")

    def resume(self, name: str, *, reason: str | None = None) -> Deployment:
        current = self.get(name)
        if current.state != "paused":
            raise InvalidInput(f"deployment {name!r} is not paused")
        return self._change(current, current.current.policy, "resume", reason, state="active")

    def delete(self, name: str, *, reason: str | None = None) -> None:
        current = self.get(name)
        now = datetime.now(UTC)

        def write(conn: sa.Connection) -> None:
            self._write_version(conn, name, current.current.version + 1, current.current.policy, "deleted",
                                "delete", reason, now)
            conn.execute(deployments.update().where(deployments.c.name == name)
                         .values(deleted_at=now, latest_version=current.current.version + 1))

        self._db.retrying(write)

    # -- internals ---------------------------------------------------------------------------------------

    def _deployable(self, ref: str, production: bool, override: bool, reason: str | None) -> str:
        """The exact version ``ref`` names, once it may be released: gates passed; approved for production."""
        version = self._models.version(ref)
        check = self._models.release_check
        if check is not None:
            check(version, "production" if production else "staging")
        if production and not self._models.approvals(version.model, version.version, environment="production"):
            if not override:
                raise PermissionDenied(f"{version.name} has no production approval; a production endpoint serves "
                                       f"approved versions (`keel models approve {version.name}`), or an approver "
                                       "overrides with a reason")
            role = self._users.get(self._user).role
            if not role_allows(role, "approver"):
                raise PermissionDenied(f"user {self._user!r} has the {role} role; overriding needs the approver role")
            if not reason or not reason.strip():
                raise InvalidInput("an override needs a reason")
        return version.name

    def _fallback(self, ref: str) -> str:
        return BASELINE if ref == BASELINE else self._models.version(ref).name

    def check_canaries(self, *, now: datetime | None = None, min_requests: int = 20) -> dict[str, CanaryDecision]:
        """One pass of the canary controller over every active canary (what ``keel deploy watch`` runs on a
        schedule); a deployment changed meanwhile is judged at the next pass."""
        decisions = {}
        for deployment in self.list():
            if deployment.kind == "canary" and deployment.state == "active":
                try:
                    decisions[deployment.name] = self.check_canary(deployment.name, now=now, min_requests=min_requests)
                except Conflict as exc:
                    decisions[deployment.name] = CanaryDecision("wait", exc.message, float(
                        deployment.current.policy.get("step", 0.0)))
        return decisions

    def _change(self, current: Deployment, policy: dict[str, Any], action: str, reason: str | None,
                state: str | None = None) -> Deployment:
        if current.state == "paused" and action not in ("resume", "rollback", "pause"):
            raise Conflict(f"deployment {current.name!r} is paused; resume it first")
        if BASELINE in policy.get("fallbacks", []) and "baseline" not in policy:
            policy = {**policy, "baseline": current.current.policy.get("baseline")}  # computed once, at create
        if current.current.policy.get("strict_requirements") and "strict_requirements" not in policy:
            policy = {**policy, "strict_requirements": True}  # the endpoint's setting, whatever routes
        if current.current.policy.get("holdout") and "holdout" not in policy:
            policy = {**policy, "holdout": current.current.policy["holdout"]}  # so is its holdout
        policy_of(policy, current.seed)  # refused here, before anything is written, if it does not route
        now = datetime.now(UTC)
        number = current.current.version + 1

        def write(conn: sa.Connection) -> None:
            latest = conn.execute(sa.select(deployments.c.latest_version).where(
                deployments.c.name == current.name)).scalar_one()
            if latest != current.current.version:
                raise Conflict(f"deployment {current.name!r} changed meanwhile (now version {latest}); try again")
            conn.execute(deployments.update().where(deployments.c.name == current.name).values(latest_version=number))
            self._write_version(conn, current.name, number, policy, state or current.state, action, reason, now)

        self._db.retrying(write)
        return self.get(current.name)

    def _write_version(self, conn: sa.Connection, name: str, number: int, policy: dict[str, Any], state: str,
                       action: str, reason: str | None, now: datetime) -> None:
        conn.execute(deployment_versions.insert().values(deployment=name, version=number, policy=policy, state=state,
                                                         action=action, reason=reason, at=now, by=self._user))
        ref = f"deployment:{name}@{number}"
        models = {a["model"] for a in policy["arms"]} | set(policy.get("shadows", [])) | \
            {f for f in policy.get("fallbacks", []) if f != BASELINE}
        self._lineage.add(conn, [Edge(f"model:{m}", ref, "deployed_to") for m in sorted(models)])
        self._audit.record(conn, actor=self._user, action=f"deployment.{action}", target=ref, reason=reason,
                           details={"kind": policy["kind"], "state": state, "models": sorted(models)})


def _stamp(at: datetime) -> str:
    """A TIMESTAMPTZ literal (isoformat: strftime writes year 1 as '1', which no parser reads)."""
    return at.astimezone(UTC).isoformat(sep=" ", timespec="microseconds")


def check_canary_plan(steps: list[float], interval_s: float, guardrails: list[str] | None) -> None:
    """Refuse a canary plan now, not at its first check: rising steps in (0, 100], a positive interval, guardrails
    that parse."""
    if not steps or any(not 0 < s <= 100 for s in steps) or sorted(steps) != list(steps):
        raise InvalidInput(f"canary steps are rising percentages in (0, 100], e.g. 5,25,50,100; not {steps}")
    if not isinstance(interval_s, int | float) or interval_s <= 0:
        raise InvalidInput("a canary interval must be positive (e.g. 10m)")
    for text in guardrails or []:
        parse_guardrail(text)


def _policy(current: Deployment, kind: str, arms: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A new policy of ``kind``: the endpoint's fallbacks and sticky key carry over, nothing else of the old one
    (a canary's steps do not linger in an A/B test); ``extra`` sets the kind's own keys (and may reset the key)."""
    old = current.current.policy
    return {"kind": kind, "arms": arms, "fallbacks": list(old.get("fallbacks", [])),
            "sticky_key": old.get("sticky_key"), **extra}


def _version(row: Any) -> DeploymentVersion:
    return DeploymentVersion(row.deployment, row.version, dict(row.policy), row.state, row.action, row.reason, row.at,
                             row.by)


def _deployment(row: Any, current: DeploymentVersion) -> Deployment:
    policy = current.policy
    models = [a["model"] for a in policy["arms"]] + list(policy.get("shadows", [])) + \
        [f for f in policy.get("fallbacks", []) if f != BASELINE]
    return Deployment(row.name, row.production, row.seed, current, row.created_at, row.created_by,
                      list(dict.fromkeys(models)))
