"""``ws.runs``: start runs, and find, show and compare them.

Tags and artifacts are written when logged (they are few); params and metric points go through the
MetricBuffer, and a run's end is written with its last batch. A run's inputs (table versions, splits)
become lineage edges into the run, in the same transaction that creates it (with its first tags), so a
run never exists without knowing what it was trained on.

The hot writes (a run's start, its end, metric batches) run compiled-once statements straight on the
driver (``Database.writes``), and a listing is one cached statement read straight from the driver
(``Database.rows``): SQLAlchemy's per-call work would otherwise cost more than SQLite's.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from keel.audit import AuditLog
from keel.data.service import DataService
from keel.errors import Conflict, InvalidInput, NotFound
from keel.lineage import Edge, LineageService
from keel.refs import check_name
from keel.storage.artifacts import ArtifactInfo, ArtifactStore
from keel.storage.db import Database, Prepared, Writes
from keel.storage.schema import run_artifacts, run_latest_metrics, run_metrics, run_params, run_tags, runs
from keel.tracking.buffer import MetricBuffer
from keel.tracking.environment import capture_environment
from keel.tracking.model import RUN_STATUSES, RunInfo
from keel.tracking.run import Run, _key
from keel.tracking.search import search_query, search_runs, sqlite_prints_floats_exactly, stored_utc

__all__ = ["RunService"]

_decode = json.JSONDecoder().raw_decode  # json.loads less its checks around the value; the text is ours

# built once: building a statement costs more than running it
_INSERT_RUN = Prepared(runs.insert(), ("id", "experiment", "name", "parent_id", "status", "created_by", "started_at",
                                        "environment"))
_INSERT_TAGS = Prepared(run_tags.insert(), ("run_id", "key", "value"))
_END_RUN = Prepared(runs.update().where(runs.c.id == sa.bindparam("run")).values(
    status=sa.bindparam("new_status"), error=sa.bindparam("new_error"), ended_at=sa.bindparam("new_ended_at")),
    ("run", "new_status", "new_error", "new_ended_at"))


_new = object.__new__


def _listed(row: Sequence[Any]) -> RunInfo:
    """A ``search_runs`` row (the run's columns less its environment, then the JSON text [params, tags,
    metrics]) as a RunInfo.

    Filled without ``RunInfo.__init__``: a frozen dataclass sets each field through ``object.__setattr__``,
    which for a hundred runs costs as much as reading them. ``test_listed_runs_equal_what_get_returns``
    checks the result equals a constructed one.
    """
    run_id, experiment, name, parent_id, status, error, created_by, started_at, ended_at, data = row
    params, tags, metrics = _decode(data)[0]
    info = _new(RunInfo)
    info.__dict__.update({
        "id": run_id, "experiment": experiment, "name": name, "parent_id": parent_id, "status": status,
        "error": error, "created_by": created_by, "started_at": stored_utc(started_at),
        "ended_at": stored_utc(ended_at), "environment": None, "params": params, "tags": tags,
        "metrics": metrics, "artifacts": {}, "inputs": [],
    })
    return info


class RunService:
    """Every tracking operation; the CLI, REST API and UI call exactly these methods."""

    # ``run.log_model`` calls this; the Workspace sets it to ``ws.models.log_model`` (models sit above tracking)
    model_logger: Callable[..., Any] | None = None

    def __init__(self, db: Database, artifacts: ArtifactStore, lineage: LineageService, audit: AuditLog,
                 user: str, resolve_ref: Callable[[str], str], root: Path, data: DataService,
                 buffer: MetricBuffer | None = None) -> None:
        self._db, self._artifacts, self._lineage, self._audit = db, artifacts, lineage, audit
        self._user, self._resolve, self._root, self._data = user, resolve_ref, root, data
        self._buffer = buffer or MetricBuffer(db)  # shared by every user's view of one workspace (the server)

    # -- runs ----------------------------------------------------------------------------------------

    def start(self, experiment: str, *, name: str | None = None, inputs: Iterable[str] = (),
              tags: Mapping[str, Any] | None = None, parent: str | Run | None = None) -> Run:
        """Create a running run; use it as a context manager so it ends with the right status."""
        check_name(experiment, "experiment name")
        parent_id = parent.id if isinstance(parent, Run) else parent
        if parent_id is not None:
            self.get(parent_id)
        input_refs = [self._resolve(ref) for ref in inputs]  # NotFound before anything is written
        run_id = uuid.uuid4().hex
        environment = capture_environment(self._root)
        tag_rows = [(run_id, _key(k), str(v)) for k, v in (tags or {}).items()]
        edges = [Edge(ref, f"run:{run_id}", "input_of") for ref in input_refs]
        if parent_id is not None:
            edges.append(Edge(f"run:{parent_id}", f"run:{run_id}", "parent_of"))
        with self._db.writes() as writes:  # the run, its tags and its lineage: all or nothing
            writes.run(_INSERT_RUN, [(run_id, experiment, name, parent_id, "running", self._user, datetime.now(UTC),
                                      environment)])
            writes.run(_INSERT_TAGS, tag_rows)
            if edges:
                self._lineage.add(writes, edges)
        return Run(self, run_id, experiment, parent_id)

    def get(self, run_id: str) -> RunInfo:
        """A run with everything logged to it (metrics as their latest values)."""
        run_id = run_id.removeprefix("run:")
        self._buffer.flush()
        with self._db.read() as conn:
            row = conn.execute(sa.select(runs).where(runs.c.id == run_id)).first()
            if row is None:
                raise NotFound(f"unknown run {run_id!r}; `keel runs list` lists the runs")
            params = dict(conn.execute(sa.select(run_params.c.key, run_params.c.value)
                                       .where(run_params.c.run_id == run_id)).all())
            tags = dict(conn.execute(sa.select(run_tags.c.key, run_tags.c.value)
                                     .where(run_tags.c.run_id == run_id)).all())
            metrics = dict(conn.execute(sa.select(run_latest_metrics.c.key, run_latest_metrics.c.value)
                                        .where(run_latest_metrics.c.run_id == run_id)).all())
            artifacts = dict(conn.execute(sa.select(run_artifacts.c.name, run_artifacts.c.sha256)
                                          .where(run_artifacts.c.run_id == run_id)).all())
        inputs = [e.src for e in self._lineage.edges(f"run:{run_id}") if e.relation == "input_of"]
        return RunInfo(**dict(row._mapping), params=params, tags=tags, metrics=metrics, artifacts=artifacts,
                       inputs=inputs)

    def handle(self, run_id: str) -> Run:
        """A handle on a running run started elsewhere (another process, a remote client), to log to it."""
        info = self.get(run_id)
        if info.status != "running":
            raise Conflict(f"run {info.id} has ended ({info.status}); start a new run to log more")
        run = Run(self, info.id, info.experiment, info.parent_id)
        run._params.update(info.params)  # params stay immutable across handles
        with self._db.read() as conn:  # another process (a server worker, a restart) may have logged to it
            stored = dict(conn.execute(sa.select(run_metrics.c.key, sa.func.max(run_metrics.c.seq))
                                       .where(run_metrics.c.run_id == info.id).group_by(run_metrics.c.key)).all())
        self._buffer.start_run(info.id, stored)
        return run

    def list(self, *, experiment: str | None = None, filter: str | None = None, sort: str | list[str] | None = None,
             status: str | None = None, limit: int = 100) -> list[RunInfo]:
        """Runs matching ``filter`` ("metrics.rmse < 3 and params.max_depth = 5"), in ``sort`` order
        ("-metrics.rmse"; newest first by default). One statement selects the runs with their params,
        tags and latest metrics (not their environment: ``get(id)`` has it)."""
        self._buffer.flush()
        if self._db.dialect == "sqlite" and not sqlite_prints_floats_exactly():
            query = search_query(filter, sort, experiment=experiment, status=status, limit=limit)
            with self._db.read() as conn:
                return self._load([row[0] for row in conn.execute(query)])
        query = search_runs(filter, sort, experiment=experiment, status=status, limit=limit)
        return [_listed(row) for row in self._db.rows(query)]

    def compare(self, run_ids: Iterable[str]) -> dict[str, Any]:
        """Params and metrics of several runs side by side, with the keys whose values differ."""
        infos = [self.get(r) for r in run_ids]
        if len(infos) < 2:
            raise InvalidInput("compare needs at least two runs")
        table: dict[str, Any] = {"runs": [i.id for i in infos]}
        for section in ("params", "metrics", "tags"):
            keys = sorted({k for i in infos for k in getattr(i, section)})
            rows = {k: [getattr(i, section).get(k) for i in infos] for k in keys}
            table[section] = rows
            table[f"{section}_differ"] = [k for k, values in rows.items() if len({repr(v) for v in values}) > 1]
        return table

    def _load(self, ids: list[str]) -> list[RunInfo]:
        """Many runs with their params, tags and latest metrics, in ``ids`` order, in two queries: the
        listing where SQLite cannot print doubles exactly (see ``search.sqlite_prints_floats_exactly``)."""
        if not ids:
            return []
        columns = [c for c in runs.c if c.name != "environment"]
        text_none, number_none = sa.cast(sa.null(), sa.Text), sa.cast(sa.null(), sa.Float)
        extras = sa.union_all(
            sa.select(sa.literal("params"), run_params.c.run_id, run_params.c.key, run_params.c.value, number_none)
            .where(run_params.c.run_id.in_(ids)),
            sa.select(sa.literal("tags"), run_tags.c.run_id, run_tags.c.key, run_tags.c.value, number_none)
            .where(run_tags.c.run_id.in_(ids)),
            sa.select(sa.literal("metrics"), run_latest_metrics.c.run_id, run_latest_metrics.c.key, text_none,
                      run_latest_metrics.c.value).where(run_latest_metrics.c.run_id.in_(ids)),
        )
        found: dict[str, dict[str, Any]] = {i: {"params": {}, "tags": {}, "metrics": {}} for i in ids}
        with self._db.read() as conn:
            rows = {r.id: r._mapping for r in conn.execute(sa.select(*columns).where(runs.c.id.in_(ids)))}
            for section, run_id, key, text, number in conn.execute(extras):
                found[run_id][section][key] = number if section == "metrics" else text
        return [RunInfo(**rows[i], environment=None, **found[i]) for i in ids]

    # -- training helpers (scikit-learn and matplotlib are imported only when used) -------------------

    def fit(self, estimator: Any, data: Any, **options: Any) -> Any:
        """Fit ``estimator`` on the training part only; see ``keel.tracking.evaluation.fit``."""
        from keel.tracking.evaluation import fit
        return fit(self._data, estimator, data, **options)

    def evaluate(self, model: Any, data: Any, **options: Any) -> Any:
        """Metrics per part and slice beside a dummy baseline; see ``keel.tracking.evaluation.evaluate``."""
        from keel.tracking.evaluation import evaluate
        return evaluate(self._data, model, data, **options)

    def importance(self, model: Any, data: Any, **options: Any) -> Any:
        """Built-in, permutation and SHAP importance; see ``keel.tracking.importance.importance``."""
        from keel.tracking.importance import importance
        return importance(self._data, model, data, **options)

    def metric_history(self, run_id: str, key: str) -> list[tuple[int | None, float | None]]:
        """Every point of one metric, in logging order: (step, value)."""
        self._buffer.flush()
        with self._db.read() as conn:
            return [tuple(r) for r in conn.execute(
                sa.select(run_metrics.c.step, run_metrics.c.value)
                .where(run_metrics.c.run_id == run_id.removeprefix("run:"), run_metrics.c.key == key)
                .order_by(run_metrics.c.seq))]

    def flush(self) -> int:
        """Write buffered metric points now (runs' ends and interpreter exit do it anyway)."""
        return self._buffer.flush()

    def close(self) -> None:
        self._buffer.close()

    # -- writes used by Run --------------------------------------------------------------------------

    def _write_tags(self, run_id: str, tags: dict[str, str]) -> None:
        with self._db.transaction() as conn:
            conn.execute(run_tags.delete().where(run_tags.c.run_id == run_id, run_tags.c.key.in_(list(tags))))
            conn.execute(run_tags.insert(), [{"run_id": run_id, "key": k, "value": v} for k, v in tags.items()])

    def _write_artifact(self, run_id: str, name: str, *, data: bytes | None = None, path: Path | None = None) -> str:
        key = self.artifact_key(run_id, name)
        stored = self._artifacts.put_bytes(key, data) if data is not None else self._artifacts.put_file(key, path)
        return self.attach_artifact(run_id, name, stored)

    @staticmethod
    def artifact_key(run_id: str, name: str) -> str:
        """Where a run's artifact lives in the artifact store."""
        return f"runs/{run_id}/artifacts/{name}"

    def attach_artifact(self, run_id: str, name: str, stored: ArtifactInfo) -> str:
        """Record bytes already stored at ``artifact_key(run_id, name)`` (the server streams them there)."""
        with self._db.transaction() as conn:
            conn.execute(run_artifacts.delete().where(run_artifacts.c.run_id == run_id, run_artifacts.c.name == name))
            conn.execute(run_artifacts.insert().values(run_id=run_id, name=name, artifact_key=stored.key,
                                                       sha256=stored.sha256, size=stored.size,
                                                       created_at=datetime.now(UTC)))
        return stored.sha256

    def _end(self, run_id: str, status: str, error: str | None) -> None:
        if status not in RUN_STATUSES or status == "running":
            raise InvalidInput(f"a run ends as finished, failed or killed, not {status!r}")
        ended_at = datetime.now(UTC)

        def mark_ended(writes: Writes) -> None:
            writes.run(_END_RUN, [(run_id, status, error, ended_at)])

        # one transaction: everything logged to the run is stored, and the run is marked ended
        self._buffer.flush(then=mark_ended)
