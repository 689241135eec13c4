"""Batch scoring (``ws.predictions``): a registered model over a table version, written as one new version of an
output table, a chunk in memory at a time, with lineage from both the input version and the model version.

Order, so that a failure never leaves anything half-written: check everything that can be checked before
reading a row (model and input resolved to exact versions, names, the signature against the input's columns,
the kept columns); score the first chunk before writing anything (a schema that does not fit the output table,
or a frame the model refuses, fails here); then stream every chunk into ``data.write_batches``, which stages
them locally and commits them as one Delta version. A model that fails on the last chunk leaves no version.

Output columns: the kept input columns, ``input_row_id`` (the row's id in the input version, so every prediction
joins back to exactly the row it was made from), ``prediction``, ``proba_<class>`` for a classifier, ``model``
(the exact version, e.g. ``price/4``) and ``scored_at`` (UTC, one instant per job).
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from keel.audit import AuditLog
from keel.data.arrow_types import unify_strings
from keel.data.model import ROW_ID, TableVersion
from keel.data.schemas import align_to_table
from keel.data.service import DataService
from keel.errors import InvalidInput, KeelError, SchemaMismatch, SignatureMismatch
from keel.lineage import Edge, LineageService
from keel.logs import get_logger
from keel.models.loaded import LoadedModel
from keel.models.service import ModelService
from keel.refs import check_name
from keel.storage.db import Database

__all__ = ["OUTPUT_COLUMNS", "PredictionService", "ScoringResult"]

log = get_logger("keel.serving")

INPUT_ROW_ID = "input_row_id"
OUTPUT_COLUMNS = (INPUT_ROW_ID, "prediction", "model", "scored_at")  # plus proba_<class> for a classifier
PROBA_PREFIX = "proba_"
MODES = ("append", "overwrite")
RESERVED = "_keel_"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True)
class ScoringResult:
    """What a batch scoring job did: which model version scored which input version into which output version."""

    model: str  # price/4
    input: str  # table:listings@3
    output: str  # table:listings_scored@0
    rows: int
    chunks: int
    seconds: float
    columns: list[str]
    mode: str
    scored_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Plan:
    """A job after every check and before any row is read."""

    loaded: LoadedModel
    source: TableVersion
    output: str
    keep: list[str]
    features: list[str]
    classes: list[Any] | None
    chunk_rows: int
    scored_at: datetime


class PredictionService:
    """Score tables with registered models: ``ws.predictions.score(model, input=..., output=...)``."""

    def __init__(self, db: Database, data: DataService, models: ModelService, lineage: LineageService,
                 audit: AuditLog, user: str) -> None:
        self._db, self._data, self._models = db, data, models
        self._lineage, self._audit, self._user = lineage, audit, user

    def score(self, model: str, *, input: str, output: str, chunk_rows: int = 50_000,
              keep: list[str] | None = None, mode: Literal["append", "overwrite"] = "append",
              trusted: bool = False, reason: str | None = None) -> ScoringResult:
        """Predict every row of the table version ``input`` names with the model version ``model`` names, and
        commit the predictions as one new version of table ``output``, holding about ``chunk_rows`` rows in
        memory. ``keep``: the input columns to carry over (default: every column the model does not read)."""
        started = time.perf_counter()
        plan = self._plan(model, input, output, chunk_rows, keep, mode, trusted)
        chunks = _Counter()
        scored = self._scored(plan, chunks)
        first = next(scored, None)  # scored before anything is written: a frame the model refuses fails here
        if first is None:
            raise InvalidInput(f"{plan.source.ref} has no rows; nothing to score")
        schema_change = self._schema_change(first, output, mode)
        version = self._data.write_batches(itertools.chain([first], scored), output, mode=mode,
                                           schema_change=schema_change, source_name="batch scoring",
                                           reason=reason or f"predictions of {plan.loaded.ref}")
        model_ref = f"model:{plan.loaded.ref}"
        with self._db.transaction() as conn:
            self._lineage.add(conn, [Edge(plan.source.ref, version.ref, "input_of"),
                                     Edge(model_ref, version.ref, "predicted")])
            self._audit.record(conn, actor=self._user, action="predictions.score", target=version.ref, reason=reason,
                               details={"model": plan.loaded.ref, "input": plan.source.ref, "rows": version.rows_added,
                                        "chunks": chunks.n, "mode": mode, "keep": plan.keep})
        result = ScoringResult(plan.loaded.ref, plan.source.ref, version.ref, version.rows_added, chunks.n,
                               round(time.perf_counter() - started, 3), list(first.column_names), mode,
                               plan.scored_at)
        log.info("predictions.scored", model=result.model, input=result.input, output=result.output, rows=result.rows,
                 chunks=result.chunks, seconds=result.seconds, user=self._user)
        return result

    # -- internals ---------------------------------------------------------------------------------------

    def _plan(self, model: str, source: str, output: str, chunk_rows: int, keep: list[str] | None, mode: str,
              trusted: bool) -> _Plan:
        """Every check that needs no row of the input, cheapest first."""
        if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
            raise InvalidInput(f"chunk_rows is a whole number of rows of at least 1, not {chunk_rows!r}")
        if mode not in MODES:
            raise InvalidInput(f"invalid mode {mode!r}; use one of {', '.join(MODES)}")
        check_name(output, "output table name")
        if keep is not None and (isinstance(keep, str) or not all(isinstance(c, str) for c in keep)):
            raise InvalidInput("keep is a list of column names, e.g. ['listing_id', 'price']")
        version = self._models.version(model)  # NotFound before the input is even looked at
        table = self._data.version(source)
        if table.table == output:
            raise InvalidInput(f"the output table must differ from the input table ({output!r}); name a new table "
                               f"for the predictions, e.g. {output}_scored")
        if not table.row_count:
            raise InvalidInput(f"{table.ref} has no rows; nothing to score")
        loaded = self._models.load(version.name, trusted=trusted)  # the exact version resolved above
        features = loaded.signature.columns
        columns = [c for c in table.schema if not c.startswith(RESERVED)]  # keel's own (row ids): never kept
        missing = [c for c in features if c not in table.schema]
        if missing:
            raise SignatureMismatch(
                f"{table.ref} lacks the column(s) {', '.join(missing)} that {loaded.ref} was trained on; it has "
                f"{', '.join(columns)}", details={"missing": missing, "expected": features})
        kept = [c for c in columns if c not in set(features)] if keep is None else list(keep)
        _check_keep(kept, columns, keep is None, table.ref)
        classes = _classes(loaded)
        taken = {*OUTPUT_COLUMNS, *(_proba_names(classes, loaded.ref) if classes is not None else [])}
        clash = [c for c in kept if c in taken]
        if clash:
            hint = "pass keep= (--keep) naming the columns to carry over" if keep is None else "leave them out of keep"
            raise InvalidInput(f"kept column(s) {', '.join(clash)} would clash with the output's own columns "
                               f"({', '.join(sorted(taken))}); {hint}")
        return _Plan(loaded, table, output, kept, features, classes, chunk_rows, datetime.now(UTC))

    def _scored(self, plan: _Plan, chunks: _Counter) -> Iterator[pa.Table]:
        """The output rows, a chunk at a time: the chunk's kept columns beside the model's answers."""
        wanted = list(dict.fromkeys([*plan.keep, *plan.features]))
        source = f"{plan.source.table}@{plan.source.version}"
        types: dict[str, pa.DataType] = {}
        start = 0
        for chunk in self._data.read_batches(source, columns=wanted, rows=plan.chunk_rows, with_row_ids=True):
            chunks.n += 1
            answers = self._predict(plan, chunk, chunks.n, start)
            columns = {c: chunk[c] for c in plan.keep}
            columns[INPUT_ROW_ID] = chunk[ROW_ID]
            for name, values in answers.items():
                columns[name] = _typed(values, types.setdefault(name, values.type), name, plan.loaded.ref)
            n = chunk.num_rows
            columns["model"] = pa.repeat(pa.scalar(plan.loaded.ref, pa.string()), n)
            columns["scored_at"] = pa.repeat(pa.scalar(plan.scored_at, pa.timestamp("us", tz="UTC")), n)
            start += n
            yield unify_strings(pa.table(columns))

    def _predict(self, plan: _Plan, chunk: pa.Table, index: int, start: int) -> dict[str, pa.Array]:
        """``prediction`` (and ``proba_<class>``) for one chunk, vectorised; a model that raises is named."""
        loaded, n = plan.loaded, chunk.num_rows
        frame = loaded.prepare(chunk.select(plan.features).to_pandas())  # SignatureMismatch names every problem
        try:
            out = {"prediction": _one_per_row(loaded.model.predict(frame), n, loaded.ref)}
            if plan.classes is not None:
                proba = np.asarray(loaded.model.predict_proba(frame), dtype="float64")
                if proba.shape != (n, len(plan.classes)):
                    raise InvalidInput(f"{loaded.ref}: predict_proba gave shape {proba.shape} for {n} rows and "
                                       f"{len(plan.classes)} classes")
                for i, name in enumerate(_proba_names(plan.classes, loaded.ref)):
                    out[name] = pa.array(proba[:, i])
        except KeelError:
            raise
        except Exception as exc:  # the model's own failure: say which model, which rows, and that nothing was written
            rows = f"rows {start}-{start + n - 1} of {plan.source.ref}"
            raise KeelError(f"{loaded.ref} failed on chunk {index} ({rows}): {type(exc).__name__}: {exc}; nothing "
                            "was written") from exc
        return out

    def _schema_change(self, first: pa.Table, output: str, mode: str) -> Literal["overwrite"] | None:
        """Refuse an append whose columns differ from the output table's now, before scoring the rest; an
        overwrite may change them (recorded as a schema change in the audit log)."""
        latest = self._data.catalog.latest(output)
        if latest is None:
            return None
        try:
            align_to_table(first.schema.empty_table(), latest.schema, mode=mode, schema_change=None, table=output)
        except SchemaMismatch:
            if mode == "append":
                raise
            return "overwrite"
        return None


@dataclass
class _Counter:
    n: int = 0


def _check_keep(kept: list[str], columns: list[str], default: bool, ref: str) -> None:
    if default:
        return
    unknown = [c for c in kept if c not in columns]
    if unknown:
        raise InvalidInput(f"{ref} has no column(s) {', '.join(unknown)} to keep; it has {', '.join(columns)}")
    twice = sorted({c for c in kept if kept.count(c) > 1})
    if twice:
        raise InvalidInput(f"keep names column(s) {', '.join(twice)} more than once")


def _classes(loaded: LoadedModel) -> list[Any] | None:
    """A classifier's classes (from its package, else the model), when it can give probabilities."""
    if not hasattr(loaded.model, "predict_proba"):
        return None
    classes = loaded.manifest.metadata.get("classes")
    if classes is None:
        classes = getattr(loaded.model, "classes_", None)
    return None if classes is None else list(classes)


def _proba_names(classes: list[Any], ref: str) -> list[str]:
    """``proba_<class>``, with characters a column name cannot hold replaced by ``_``."""
    names = [PROBA_PREFIX + _UNSAFE.sub("_", str(c)) for c in classes]
    if len(set(names)) < len(names):
        raise InvalidInput(f"{ref}: the classes {classes} do not make distinct column names ({names})")
    return names


def _one_per_row(values: Any, n: int, ref: str) -> pa.Array:
    array = np.asarray(values)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1 or len(array) != n:
        raise InvalidInput(f"{ref} returned predictions of shape {array.shape} for {n} rows; batch scoring writes "
                           "one prediction per row")
    try:
        return pa.array(array)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise InvalidInput(f"{ref} returned predictions Arrow cannot store ({exc})") from None


def _typed(values: pa.Array, kind: pa.DataType, name: str, ref: str) -> pa.Array:
    """Every chunk's column has the first chunk's type (a chunk of whole floats must not become integers)."""
    if values.type == kind:
        return values
    try:
        return values.cast(kind)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise InvalidInput(f"{ref} returned {name} of type {values.type} for one chunk and {kind} for the first; "
                           "a column has one type") from None
