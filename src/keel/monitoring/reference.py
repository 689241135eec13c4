"""The trusted baseline a monitor compares windows with, as a stored sketch (keel.monitoring.sketch).

A baseline is the deployed version's training data (the train part of its run's ``fit.data``), a table version,
or a window of the prediction log. Its sketch is computed once per (baseline data, model version, columns,
slices) and kept in the artifact store, so every later run reads a few megabytes instead of the training data:
memory and time do not grow with the reference's size. The model's predictions on (a sample of) the training
rows are sketched too, as the reference of prediction drift.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from keel.errors import InvalidInput, KeelError
from keel.monitoring.sketch import ReferenceSketch, build_sketch
from keel.monitoring.window import LABEL, PREDICTION, duckdb_type
from keel.storage.schema import monitor_references

__all__ = ["MAX_SAMPLE", "MAX_SLICE_VALUES", "PREDICTION_ROWS", "Baseline", "store_baseline"]

MAX_SAMPLE = 20_000  # values kept per numeric column: exact KS / Wasserstein up to this many reference rows
PREDICTION_ROWS = 20_000  # training rows the model predicts on for the prediction reference
MAX_SLICE_VALUES = 20  # per slice column, the most frequent reference values get a sketch of their own
FORMAT = 1  # bump when the stored layout changes: old sketches are then recomputed, never misread


@dataclass(frozen=True)
class Baseline:
    """A stored reference: the whole data's sketch, one per slice value, and where it came from."""

    key: str
    source: str
    model: str | None
    rows: int
    overall: ReferenceSketch
    slices: dict[str, dict[str, ReferenceSketch]]  # column -> value -> sketch
    notes: list[str]

    def to_bytes(self) -> bytes:
        body = {"format": FORMAT, "source": self.source, "model": self.model, "rows": self.rows,
                "overall": self.overall.to_dict(), "notes": self.notes,
                "slices": {c: {v: s.to_dict() for v, s in values.items()} for c, values in self.slices.items()}}
        return gzip.compress(orjson.dumps(body), compresslevel=5)

    @classmethod
    def from_bytes(cls, key: str, data: bytes) -> Baseline:
        body = orjson.loads(gzip.decompress(data))
        return cls(key, body["source"], body["model"], body["rows"], ReferenceSketch.from_dict(body["overall"]),
                   {c: {v: ReferenceSketch.from_dict(s) for v, s in values.items()}
                    for c, values in body["slices"].items()}, body.get("notes", []))


def baseline_key(source: str, model: str | None, columns: dict[str, str], slices: list[str],
                 label: str | None = None) -> str:
    text = orjson.dumps({"format": FORMAT, "source": source, "model": model, "columns": columns,
                         "slices": sorted(slices), **({"label": label} if label else {})},
                        option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(text).hexdigest()[:32]


def store_baseline(db: Any, artifacts: Any, *, source: str, model: str | None, columns: dict[str, str],
                   slices: list[str], frame: Callable[[], pd.DataFrame],
                   predict: Callable[[pd.DataFrame], Any] | None, label: str | None = None) -> Baseline:
    """The stored baseline for these inputs, computed (``frame()`` read, ``predict`` called) only the first
    time. ``columns``: {name: signature type} of the model's inputs watched; ``label``: the frame's label column,
    sketched as ``label`` (what label drift compares the labels that arrive with)."""
    key = baseline_key(source, model, columns, slices, label)
    with db.read() as conn:
        stored = conn.execute(sa.select(monitor_references.c.artifact).where(monitor_references.c.key == key)
                              ).scalar()
    if stored is not None and artifacts.exists(stored):
        return Baseline.from_bytes(key, artifacts.get_bytes(stored))
    baseline = _compute(key, source, model, columns, slices, frame(), predict, label)
    artifact = f"monitoring/baselines/{key}.json.gz"
    artifacts.put_bytes(artifact, baseline.to_bytes())
    with db.transaction() as conn:
        conn.execute(sa.delete(monitor_references).where(monitor_references.c.key == key))  # a lost artifact
        conn.execute(monitor_references.insert().values(key=key, source=source, model=model, rows=baseline.rows,
                                                        artifact=artifact, created_at=datetime.now(UTC)))
    return baseline


def _compute(key: str, source: str, model: str | None, columns: dict[str, str], slices: list[str],
             data: pd.DataFrame, predict: Callable[[pd.DataFrame], Any] | None, label: str | None = None
             ) -> Baseline:
    watched = [c for c, kind in columns.items() if duckdb_type(kind) and c in data.columns]
    if not watched:
        raise InvalidInput(f"the baseline {source} has none of the model's input columns "
                           f"({', '.join(columns) or 'none'}): nothing to compare a window with")
    missing_slices = [s for s in slices if s not in data.columns]
    if missing_slices:
        raise InvalidInput(f"slice column(s) {', '.join(missing_slices)} are not in the baseline {source}; "
                           f"slice by a column the model reads: {', '.join(watched)}")
    notes: list[str] = []
    table = data[watched].copy()
    if predict is not None and len(table):
        sample = table.sample(n=min(len(table), PREDICTION_ROWS), random_state=0) if len(table) > PREDICTION_ROWS \
            else table
        try:
            predicted = pd.Series(list(predict(sample)), index=sample.index)
            table[PREDICTION] = predicted  # rows outside the sample have no reference prediction (missing)
        except KeelError as exc:
            notes.append(f"no prediction reference: {exc.message}")
        except Exception as exc:  # the model could not predict its own training rows: reported, drift goes on
            notes.append(f"no prediction reference: the model failed on its training rows ({type(exc).__name__}: "
                         f"{exc})"[:500])
    if label and label in data.columns and LABEL not in watched:  # after predicting: the model never sees it
        table[LABEL] = data[label]  # a reference for label drift, not an input: kept apart like the prediction
    kinds = {c: "categorical" for c in watched if columns[c] in ("string", "boolean")}  # numbers: by their values
    overall = build_sketch(pa.Table.from_pandas(table, preserve_index=False), kinds=kinds or None,
                           max_sample=MAX_SAMPLE)
    by_slice: dict[str, dict[str, ReferenceSketch]] = {}
    for column in slices:
        top = data[column].astype("string").value_counts().head(MAX_SLICE_VALUES).index
        values = data[column].astype("string")
        by_slice[column] = {str(v): build_sketch(pa.Table.from_pandas(table[values == v], preserve_index=False),
                                                 kinds=kinds or None, max_sample=MAX_SAMPLE) for v in top}
    return Baseline(key, source, model, len(data), overall, by_slice, notes)
