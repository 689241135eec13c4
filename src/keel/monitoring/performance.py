"""Concept drift as the model's own metrics: labels that arrive later (feedback in the prediction log, by request
id and row) joined to the window's predictions, scored per window and per slice with the same metric code as
training-time evaluation (keel.tracking.scoring: one bincount pass for every slice), next to the metrics the
version's run recorded at training time."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from keel.monitoring.window import LABEL, PREDICTION, ROW, duckdb_type
from keel.numbers import finite_or_none
from keel.storage.tables import query_arrow
from keel.tracking.scoring import HIGHER_IS_BETTER, classification_metrics, regression_metrics

__all__ = ["LABEL", "labelled_rows", "performance", "training_metrics"]

_PARTS = ("test", "validation", "train")  # which recorded metric a window is compared with, in order of preference


def labelled_rows(rows: pa.Table, feedback: pa.Table, label_type: str) -> tuple[pa.Table, int]:
    """The window's rows with a ``label`` column (null where none arrived); and how many feedback labels matched
    no row of the window. A request's label is a value (one row) or a list (one per row); the latest feedback
    wins."""
    kind = duckdb_type(label_type) or "DOUBLE"
    if feedback.num_rows == 0 or rows.num_rows == 0:
        return rows.slice(0, 0).append_column(LABEL, pa.nulls(0, _ARROW[kind])), 0
    labels = query_arrow(f"""
        WITH f AS (
            SELECT request_id, "at", json_extract(output, '$.label') AS value FROM feedback
            WHERE json_extract(output, '$.label') IS NOT NULL),
        latest AS (SELECT request_id, arg_max(value, "at") AS value FROM f GROUP BY request_id),
        lists AS (SELECT request_id, CASE WHEN json_type(value) = 'ARRAY' THEN from_json(value, '["{kind}"]')
                                          ELSE [from_json(value, '"{kind}"')] END AS items FROM latest)
        SELECT request_id, unnest(range(len(items)::BIGINT)) AS {ROW}, unnest(items) AS {LABEL} FROM lists""",
                         feedback=feedback)
    joined = query_arrow(f"""SELECT r.*, l.{LABEL} FROM rows r LEFT JOIN labels l
                             ON r.request_id = l.request_id AND r.{ROW} = l.{ROW}""", rows=rows, labels=labels)
    matched = joined.num_rows - joined[LABEL].null_count
    return joined, max(0, labels.num_rows - labels[LABEL].null_count - matched)


def performance(rows: pa.Table, task: str, slices: list[str], training: dict[str, float]) -> dict[str, Any]:
    """Metrics of the labelled ``rows`` (a ``prediction`` and a ``label`` column; rows without a label are left
    out): overall, per value of each slice column, and each overall metric's change against ``training``."""
    rows = rows.filter(pc.is_valid(rows[LABEL]))
    if rows.num_rows == 0:
        return {"status": "no_labels", "rows": 0, "metrics": {}, "training": training, "slices": {}}
    groups = [("overall", None, np.zeros(rows.num_rows, dtype=np.int64), ["all"])]
    for column in slices:
        if column in rows.column_names:
            values = pc.cast(rows[column], pa.string()).fill_null("(missing)")
            encoded = pc.dictionary_encode(values).combine_chunks()
            groups.append(("slice", column, encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64),
                           encoded.dictionary.to_pylist()))
    out: dict[str, Any] = {"status": "ok", "rows": rows.num_rows, "task": task, "training": training, "slices": {}}
    for scope, column, codes, names in groups:
        scores = _scores(rows, task, codes, len(names))
        counts = np.bincount(codes, minlength=len(names))
        per = [{"value": name, "rows": int(counts[i]), **{k: finite_or_none(v[i]) for k, v in scores.items()}}
               for i, name in enumerate(names)]
        if scope == "overall":
            out["metrics"] = {k: v for k, v in per[0].items() if k not in ("value", "rows")}
        else:
            out["slices"][column] = per
    out["change"] = {name: {"training": training[name], "window": out["metrics"].get(name),
                            "ratio": _ratio(out["metrics"].get(name), training[name]),
                            "worse": _worse(name, out["metrics"].get(name), training[name])}
                     for name in training if name in out["metrics"]}
    return out


def training_metrics(run_metrics: dict[str, float | None], task: str) -> dict[str, float]:
    """The metrics the version's run recorded for its held-out part (test, else validation, else train)."""
    names = ("rmse", "mae", "r2", "mape") if task == "regression" else ("accuracy", "precision", "recall", "f1")
    for part in _PARTS:
        found = {n: float(v) for n in names if (v := run_metrics.get(f"{part}.{n}")) is not None}
        if found:
            return found
    return {}


def _scores(rows: pa.Table, task: str, codes: np.ndarray, n: int) -> dict[str, np.ndarray]:
    if task == "regression":
        truth = rows[LABEL].to_numpy(zero_copy_only=False).astype(float)
        predicted = rows[PREDICTION].to_numpy(zero_copy_only=False).astype(float)
        found = regression_metrics(truth, predicted, codes, n)
        return {k: v for k, v in found.items() if k != "mape_rows"}
    both = pa.chunked_array(pc.cast(rows[LABEL], pa.string()).chunks + pc.cast(rows[PREDICTION], pa.string()).chunks)
    encoded = pc.dictionary_encode(both).combine_chunks()
    classes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    truth, predicted = classes[:rows.num_rows], classes[rows.num_rows:]
    found = classification_metrics(truth, predicted, None, max(2, len(encoded.dictionary)), codes, n)
    return {k: v for k, v in found.items() if k not in ("roc_auc", "log_loss")}  # the log keeps no probabilities


def _ratio(window: float | None, training: float) -> float | None:
    return None if window is None or training == 0 else window / training


def _worse(name: str, window: float | None, training: float) -> bool | None:
    if window is None:
        return None
    return window < training if HIGHER_IS_BETTER.get(name, True) else window > training


_ARROW = {"BIGINT": pa.int64(), "DOUBLE": pa.float64(), "BOOLEAN": pa.bool_(), "VARCHAR": pa.string()}
