"""Release gates (``ws.gates``): a versioned checklist per registered model, gate runs stored as reports, and
the rule the registry asks before a promotion: every required test passed, or an approver overrode it.

The CLI, REST API and UI call exactly these methods.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from keel.audit import AuditLog
from keel.data.service import DataService
from keel.errors import Conflict, GatesFailed, InvalidInput, NotFound, PermissionDenied
from keel.gates.checks.budget import measure_load_mb
from keel.gates.context import GateContext
from keel.gates.model import ChecklistInfo, GateReport, TestResult
from keel.gates.runner import run_tests
from keel.gates.spec import Checklist, fingerprint, load_checklist
from keel.gates.validation import check_checklist, check_columns
from keel.lineage import Edge, LineageService
from keel.logs import get_logger
from keel.models.model import ModelVersion
from keel.models.service import ModelService
from keel.refs import parse_ref
from keel.storage.db import Database
from keel.storage.schema import gate_checklists, gate_reports
from keel.tracking.frames import check_task
from keel.tracking.service import RunService
from keel.users import UserService, role_allows

__all__ = ["GateService"]

log = get_logger("keel.gates")

RELEASE_ENVIRONMENTS = ("staging", "production")  # promotions the gates guard


class GateService:
    """Checklists, gate runs and their reports; ``release_check`` is what a promotion asks."""

    def __init__(self, db: Database, data: DataService, models: ModelService, runs: RunService,
                 lineage: LineageService, audit: AuditLog, users: UserService, user: str, root: Path) -> None:
        self._db, self._data, self._models, self._runs = db, data, models, runs
        self._lineage, self._audit, self._users, self._user, self._root = lineage, audit, users, user, root
        self._functions: dict[str, Callable[..., Any]] = {}  # custom tests set in this process, by module:name

    # -- checklists ----------------------------------------------------------------------------------------

    def set_checklist(self, model: str, checklist: Checklist | dict[str, Any] | str | Path, *,
                      reason: str | None = None) -> ChecklistInfo:
        """Store ``checklist`` (a Checklist, a dict, YAML text or a YAML file) as the model's next version;
        the same checklist again returns the stored version. Columns are checked against the model's latest
        version and its data, when it has one."""
        self._models.get(model)  # NotFound for an unknown model
        parsed, spec = load_checklist(checklist, self._root)
        self._remember_functions(parsed)
        digest = fingerprint(spec)
        self._check_against_latest(model, parsed)
        now = datetime.now(UTC)

        def insert(conn: sa.Connection) -> ChecklistInfo:
            latest = conn.execute(sa.select(gate_checklists).where(gate_checklists.c.model == model)
                                  .order_by(gate_checklists.c.version.desc()).limit(1)).first()
            if latest is not None and latest.fingerprint == digest:
                return _checklist(latest)
            number = (latest.version if latest is not None else 0) + 1
            conn.execute(gate_checklists.insert().values(model=model, version=number, spec=spec, fingerprint=digest,
                                                         created_at=now, created_by=self._user))
            self._audit.record(conn, actor=self._user, action="gates.checklist", target=f"model:{model}",
                               reason=reason, details={"checklist_version": number, "tests": len(parsed.tests),
                                                       "required": sum(t.required for t in parsed.tests)})
            return ChecklistInfo(model, number, spec, digest, now, self._user)

        info = self._db.retrying(insert)
        log.info("gates.checklist", model=model, version=info.version, user=self._user)
        return info

    def checklist(self, model: str, version: int | None = None) -> ChecklistInfo:
        """A stored checklist version (default: the latest)."""
        query = sa.select(gate_checklists).where(gate_checklists.c.model == model)
        query = query.where(gate_checklists.c.version == version) if version is not None else \
            query.order_by(gate_checklists.c.version.desc()).limit(1)
        with self._db.read() as conn:
            row = conn.execute(query).first()
        if row is None:
            self._models.get(model)
            raise NotFound(f"model {model!r} has no checklist" + (f" version {version}" if version else "") +
                           f"; declare one with `keel gates set {model} gates.yaml`")
        return _checklist(row)

    def checklists(self, model: str) -> list[ChecklistInfo]:
        with self._db.read() as conn:
            rows = conn.execute(sa.select(gate_checklists).where(gate_checklists.c.model == model)
                                .order_by(gate_checklists.c.version)).all()
        return [_checklist(r) for r in rows]

    # -- runs and reports --------------------------------------------------------------------------------

    def run(self, ref: str, *, against: str | None = None, force: bool = False, trusted: bool = False) -> GateReport:
        """Run the model's latest checklist on a version and store the report. An earlier report of the same
        version, checklist version and champion is returned instead (``reused``) unless ``force``."""
        version = self._models.version(ref)
        info = self.checklist(version.model)
        checklist = Checklist.model_validate(info.spec)
        alias = against or checklist.against
        champion_version = self._champion(version, alias)
        if not force:
            found = self._find(version, info.version, champion_version)
            if found is not None:
                return found
        started = time.perf_counter()
        ctx = self._context(version, checklist, champion_version, trusted)
        check_checklist(ctx, checklist)
        results = run_tests(ctx, checklist, info.spec, self._functions)
        status = "failed" if any(r.blocking for r in results) else "passed"
        report = GateReport(id=uuid.uuid4().hex[:16], model=version.model, version=version.version,
                            checklist_version=info.version, status=status, against=alias,
                            against_version=champion_version.version if champion_version else None,
                            data=ctx.data, results=results, duration_s=time.perf_counter() - started,
                            created_at=datetime.now(UTC), created_by=self._user)
        self._store(report, ctx)
        log.info("gates.run", report=report.ref, model=version.name, status=status, user=self._user,
                 failed=[r.name for r in report.blocking], seconds=round(report.duration_s, 3))
        return report

    def report(self, report_id: str) -> GateReport:
        report_id = report_id.removeprefix("gate:")
        with self._db.read() as conn:
            row = conn.execute(sa.select(gate_reports).where(gate_reports.c.id == report_id)).first()
        if row is None:
            raise NotFound(f"no gate report {report_id!r}; `keel gates list MODEL` lists them")
        return _report(row)

    def reports(self, model: str | None = None, version: int | None = None, *, limit: int = 100) -> list[GateReport]:
        """Newest first."""
        query = sa.select(gate_reports).order_by(gate_reports.c.created_at.desc()).limit(limit)
        if model is not None:
            query = query.where(gate_reports.c.model == model)
        if version is not None:
            query = query.where(gate_reports.c.version == version)
        with self._db.read() as conn:
            return [_report(r) for r in conn.execute(query)]

    def latest(self, ref: str) -> GateReport | None:
        """The newest report of a version against its model's latest checklist (None: never run)."""
        version = self._models.version(ref)
        try:
            info = self.checklist(version.model)
        except NotFound:
            return None
        return self._latest(version, info.version)

    def html(self, report_id: str) -> str:
        """The report as a self-contained HTML page (plots inline)."""
        from keel.gates.html import render_report

        return render_report(self.report(report_id))

    def override(self, report_id: str, *, reason: str) -> GateReport:
        """An approver releases a version despite failed required tests, with a reason (audited)."""
        if not reason or not reason.strip():
            raise InvalidInput("an override needs a reason (--reason): why the failures are acceptable")
        role = self._users.get(self._user).role
        if not role_allows(role, "approver"):
            raise PermissionDenied(f"user {self._user!r} has the {role} role; overriding a failed gate needs the "
                                   "approver role")
        report = self.report(report_id)
        if report.status == "passed":
            raise InvalidInput(f"{report.ref} passed; there is nothing to override")
        if report.override is not None:
            raise Conflict(f"{report.ref} was already overridden by {report.override['by']} "
                           f"({report.override['reason']!r}); an override is recorded once")
        override = {"by": self._user, "role": role, "reason": reason, "at": datetime.now(UTC).isoformat()}

        def write(conn: sa.Connection) -> None:
            conn.execute(gate_reports.update().where(gate_reports.c.id == report.id).values(override=override))
            self._audit.record(conn, actor=self._user, action="gates.override", target=f"model:{report.model_ref}",
                               reason=reason, details={"report": report.ref,
                                                       "failed": [r.name for r in report.blocking]})

        self._db.retrying(write)
        return self.report(report.id)

    def release_check(self, version: ModelVersion, environment: str) -> dict[str, Any] | None:
        """What a promotion to ``environment`` asks: the report's summary when the version may be released (a
        model without a checklist is not gated, and the summary says so); GatesFailed when not."""
        if environment not in RELEASE_ENVIRONMENTS:
            return None
        try:
            info = self.checklist(version.model)
        except NotFound:
            return {"report": None, "status": "no checklist declared"}
        report = self._latest(version, info.version)
        if report is None:
            raise GatesFailed(f"{version.name} has not been through its release gates (checklist v{info.version}); "
                              f"run `keel gates run {version.name}` first")
        if not report.releasable:
            names = ", ".join(r.name for r in report.blocking)
            raise GatesFailed(f"{version.name} failed required gate test(s) {names} ({report.ref}); fix the model, "
                              f"or an approver overrides: `keel gates override {report.id} --reason ...`",
                              details={"report": report.ref, "failed": [r.name for r in report.blocking]})
        return {"report": report.ref, "status": report.status, "override": report.override is not None}

    # -- internals ---------------------------------------------------------------------------------------

    def _champion(self, version: ModelVersion, alias: str) -> ModelVersion | None:
        aliases = self._models.get(version.model).aliases
        number = aliases.get(alias)
        if number is None and alias == "production":
            number = aliases.get("champion")
        if number is None or number == version.version:
            return None
        return self._models.version(f"{version.model}/{number}")

    def _find(self, version: ModelVersion, checklist_version: int, champion: ModelVersion | None) -> GateReport | None:
        query = sa.select(gate_reports).where(
            gate_reports.c.model == version.model, gate_reports.c.version == version.version,
            gate_reports.c.checklist_version == checklist_version,
            gate_reports.c.against_version == champion.version if champion else
            gate_reports.c.against_version.is_(None)).order_by(gate_reports.c.created_at.desc()).limit(1)
        with self._db.read() as conn:
            row = conn.execute(query).first()
        return None if row is None else _report(row, reused=True)

    def _latest(self, version: ModelVersion, checklist_version: int) -> GateReport | None:
        query = sa.select(gate_reports).where(
            gate_reports.c.model == version.model, gate_reports.c.version == version.version,
            gate_reports.c.checklist_version == checklist_version).order_by(gate_reports.c.created_at.desc()).limit(1)
        with self._db.read() as conn:
            row = conn.execute(query).first()
        return None if row is None else _report(row)

    def _context(self, version: ModelVersion, checklist: Checklist, champion_version: ModelVersion | None,
                 trusted: bool) -> GateContext:
        run = self._runs.get(version.run_id) if version.run_id else None
        tags = run.tags if run else {}
        trained_on = tags.get("fit.data")
        split = self._split_or_none(trained_on)
        source = checklist.data or trained_on
        if not source:
            raise InvalidInput(f"{version.name} records no training data (its run has no fit.data); name the data "
                               "in the checklist (data: listings-split)")
        frames, data_ref, part, evaluated_split = self._frames(source, checklist.part, split)
        label = checklist.label or (evaluated_split.params.get("target") if evaluated_split else None) \
            or tags.get("fit.label")
        if not label:
            raise InvalidInput(f"which column is the label? name it in the checklist (label: ...) for {version.name}")
        if label not in frames[part]:
            raise InvalidInput(f"the data ({data_ref}) has no label column {label!r}")
        model = self._models.load(version.name, trusted=trusted)
        champion = self._models.load(champion_version.name, trusted=trusted) if champion_version else None
        task = check_task(model.model, frames[part][label], None)
        return GateContext(version=version, model=model, task=task, label=label, part=part, frames=frames,
                           data=data_ref, champion=champion, champion_version=champion_version, split=split,
                           package_size=version.size, services=self._data,
                           measure_load=lambda: self._measure_load(version, trusted))

    def _split_or_none(self, ref: str | None) -> Any:
        if not ref:
            return None
        try:
            return self._data.split_info(ref)
        except (NotFound, InvalidInput):
            return None

    def _frames(self, source: str, part: str | None, trained_split: Any
                ) -> tuple[dict[str, pd.DataFrame], str, str, Any]:
        """The evaluation part and the train part (for the baseline), from a split or a table ref."""
        split = self._split_or_none(source) if not source.startswith("table:") else None
        if split is not None:
            pinned = f"{split.name}@{split.version}"
            available = [p for p in ("validation", "test") if split.counts.get(p)]
            part = part or ("test" if "test" in available else available[0] if available else None)
            if part is None or part not in available:
                raise InvalidInput(f"split {split.ref} has no {part or 'validation or test'} part to test on")
            frames = {part: self._data.read_split(pinned, part)}
            if split.counts.get("train"):
                frames["train"] = self._data.read_split(pinned, "train")
            return frames, split.ref, part, split
        table = self._data.version(parse_ref(source, kind="table"))
        part = part or "test"
        frames = {part: self._data.read(table.ref)}
        if trained_split is not None:
            frames["train"] = self._data.read_split(f"{trained_split.name}@{trained_split.version}", "train")
        return frames, table.ref, part, None

    def _check_against_latest(self, model: str, checklist: Checklist) -> None:
        """At set time: the columns the tests name, against the latest version's features and data schema."""
        latest = self._models.get(model).latest_version
        if not latest:
            return
        version = self._models.version(f"{model}/{latest}")
        source = checklist.data
        if source is None and version.run_id:
            source = self._runs.get(version.run_id).tags.get("fit.data")
        if not source:
            return
        split = self._split_or_none(source)
        try:
            schema = self._data.version(split.source_ref if split else parse_ref(source, kind="table")).schema
        except (NotFound, InvalidInput):
            return
        problems = check_columns(checklist, list(schema))
        if problems:
            raise InvalidInput(f"the checklist does not fit {version.name}: {problems[0]}"
                               + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
                               details={"problems": problems})

    def _measure_load(self, version: ModelVersion, trusted: bool) -> float:
        with tempfile.TemporaryDirectory(prefix="keel-gates-") as tmp:
            for name, data in self._models.package_bytes(version).items():
                target = Path(tmp) / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            return measure_load_mb(Path(tmp), trusted)

    def _remember_functions(self, checklist: Checklist) -> None:
        for test in checklist.tests:
            function = getattr(test, "function", None)
            if callable(function):
                self._functions[f"{function.__module__}:{function.__qualname__}"] = function

    def _store(self, report: GateReport, ctx: GateContext) -> None:
        edges = [Edge(f"model:{report.model_ref}", report.ref, "gated_by")]
        if ctx.data:
            edges.append(Edge(ctx.data if ":" in ctx.data else f"table:{ctx.data}", report.ref, "input_of"))
        if ctx.champion_version is not None:
            edges.append(Edge(ctx.champion_version.ref, report.ref, "compared_in"))

        def insert(conn: sa.Connection) -> None:
            conn.execute(gate_reports.insert().values(
                id=report.id, model=report.model, version=report.version, checklist_version=report.checklist_version,
                status=report.status, against=report.against, against_version=report.against_version,
                data=report.data, results=[r.to_dict() for r in report.results], duration_s=report.duration_s,
                created_at=report.created_at, created_by=report.created_by, override=None))
            self._lineage.add(conn, edges)
            self._audit.record(conn, actor=self._user, action="gates.run", target=f"model:{report.model_ref}",
                               details={"report": report.ref, "status": report.status,
                                        "failed": [r.name for r in report.blocking]})

        self._db.retrying(insert)


def _checklist(row: Any) -> ChecklistInfo:
    return ChecklistInfo(row.model, row.version, row.spec, row.fingerprint, row.created_at, row.created_by)


def _report(row: Any, reused: bool = False) -> GateReport:
    m = dict(row._mapping)
    m["results"] = [TestResult(**r) for r in m["results"]]
    return GateReport(**m, reused=reused)
