"""Training helpers that follow the talk: fit on the train part only; evaluate beside a dumb baseline.

``fit`` is how keel makes "fit the scaler before the split" impossible: a Pipeline's scalers and
imputers only ever see the train part. ``evaluate`` reports every part (train too, to show overfitting)
and every slice next to a DummyClassifier(prior) / DummyRegressor(mean) fitted on the same train
part, so "better than trivial" is visible. Metrics come from ``keel.tracking.scoring`` (vectorised);
the report and its printing live in ``keel.tracking.reports``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from keel.errors import InvalidInput
from keel.tracking.frames import Dataset, check_fitted, check_task, explain_fit_error, resolve
from keel.tracking.reports import EvaluationReport
from keel.tracking.scoring import (
    CLASSIFICATION_METRICS,
    HIGHER_IS_BETTER,
    REGRESSION_METRICS,
    classification_metrics,
    regression_metrics,
)

__all__ = ["EvaluationReport", "evaluate", "fit", "flat_params"]

QUANTILE_BINS = 4  # numeric slice columns with more than BIN_ABOVE distinct values are cut into quartiles
BIN_ABOVE = 10
MISSING = "(missing)"
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]{0,63}")


def fit(data_service: Any, estimator: Any, data: Any, *, label: str | None = None,
        features: Sequence[str] | None = None, exclude: Sequence[str] | None = None, run: Any = None) -> Any:
    """Fit ``estimator`` (a Pipeline too) on the train part only, so no preprocessing sees other parts."""
    if not hasattr(estimator, "fit"):
        raise InvalidInput(f"{type(estimator).__name__} has no fit method; pass a scikit-learn-compatible estimator")
    dataset = resolve(data_service, data, parts=["train"], label=label, features=features, exclude=exclude)
    train = dataset.parts["train"]
    started = time.perf_counter()
    try:
        estimator.fit(dataset.model_input(None, "train"), train.y)
    except (ValueError, TypeError) as exc:
        error = explain_fit_error(estimator, train.X, exc)
        if error is None:
            raise
        raise error from exc
    if run is not None:
        run.log_params(flat_params(estimator))
        run.set_tags({"model.class": _qualified(estimator), "fit.label": dataset.label,
                      "fit.data": dataset.source or "frames", "fit.features": ",".join(dataset.features)})
        run.log_metrics({"fit.seconds": time.perf_counter() - started, "fit.rows": float(len(train.y))})
    return estimator


def evaluate(
    data_service: Any, model: Any, data: Any, *, task: str | None = None, label: str | None = None,
    features: Sequence[str] | None = None, exclude: Sequence[str] | None = None,
    parts: Iterable[str] | None = None, slices: str | Sequence[str] = (), baseline: bool = True,
    run: Any = None, plots: bool = True, business_metric: Callable[..., float] | tuple[str, Callable] | None = None,
    pos_label: Any = None, min_slice_rows: int = 20,
) -> EvaluationReport:
    """Metrics per part and slice, beside a dummy baseline; logged to ``run`` when given.

    ``parts`` defaults to every part the data has, train included. Slices smaller than
    ``min_slice_rows`` are reported but never named the worst (one row is always extreme).
    """
    check_fitted(model)
    if isinstance(min_slice_rows, bool) or not isinstance(min_slice_rows, int) or min_slice_rows < 1:
        raise InvalidInput(f"min_slice_rows must be a positive integer, not {min_slice_rows!r}")
    slice_columns = [slices] if isinstance(slices, str) else list(slices)
    business = _business(business_metric)
    wanted = None if parts is None else ([parts] if isinstance(parts, str) else list(parts))
    loaded = resolve(data_service, data, parts=wanted, label=label, features=features, exclude=exclude,
                     model=model, keep=slice_columns)
    if baseline and "train" in loaded.available and "train" not in loaded.parts:  # the baseline is fit on train
        loaded = resolve(data_service, data, parts=[*loaded.parts, "train"], label=label, features=features,
                         exclude=exclude, model=model, keep=slice_columns)
    evaluated = [p for p in loaded.parts if wanted is None or p in wanted]
    task = check_task(model, pd.concat([p.y for p in loaded.parts.values()], ignore_index=True), task)
    scorer = _Scorer(loaded, task, business)
    outputs = {p: scorer.predict(model, p) for p in evaluated}
    scorer.set_classes(model, outputs, pos_label)
    notes: list[str] = []
    metrics = {p: scorer.metrics(outputs[p], p, notes) for p in evaluated}
    baseline_metrics = {}
    if baseline and "train" in loaded.parts:
        dummy = scorer.dummy()
        baseline_metrics = {p: scorer.metrics(scorer.predict(dummy, p), p, []) for p in evaluated}
    elif baseline:
        notes.append("no train part: the baseline was not fitted")
    slice_rows, worst = scorer.slices(outputs, slice_columns, min_slice_rows)
    report = EvaluationReport(
        task=task, label=loaded.label, features=loaded.features, source=loaded.source,
        primary_metric=scorer.primary(outputs), rows={p: len(loaded.parts[p].y) for p in evaluated},
        metrics=metrics, baseline=baseline_metrics, slices=slice_rows, worst_slices=worst,
        class_imbalance_ratio=scorer.imbalance("train") if task == "classification" else None,
        classes=scorer.class_list(), figures=[], notes=notes)
    if run is not None:
        figures = _plot(scorer, outputs, run) if plots else []
        report = report.with_figures(figures)
        _log(report, run)
    return report


class _Scorer:
    """Predictions and their metrics for one dataset and task, with the class coding shared by all parts."""

    def __init__(self, dataset: Dataset, task: str, business: tuple[str, Callable, bool | None] | None) -> None:
        self.dataset, self.task, self.business = dataset, task, business
        self.classes: pd.Index | None = None

    def predict(self, model: Any, part: str) -> dict[str, Any]:
        X = self.dataset.model_input(model, part)
        try:
            pred = np.asarray(model.predict(X))
            proba = model.predict_proba(X) if self.task == "classification" and hasattr(model, "predict_proba") \
                else None
        except (ValueError, TypeError) as exc:
            error = explain_fit_error(model, self.dataset.parts[part].X, exc)
            if error is None:
                raise
            raise error from exc
        pred = pred.ravel() if pred.ndim == 2 and pred.shape[1] == 1 else pred
        out = {"pred": pred, "proba": None, "raw_proba": proba, "model_classes": getattr(model, "classes_", None)}
        if self.classes is not None:
            self._encode(out, part)
        return out

    def set_classes(self, model: Any, outputs: dict[str, dict[str, Any]], pos_label: Any) -> None:
        """One class coding for every part and the baseline: the model's classes and every label seen."""
        if self.task != "classification":
            return
        values = [np.asarray(p.y) for p in self.dataset.parts.values()] + [o["pred"] for o in outputs.values()]
        known = getattr(model, "classes_", None)
        classes = pd.Index(np.concatenate([*values, *([np.asarray(known)] if known is not None else [])])).unique()
        classes = classes.sort_values()
        if len(classes) < 2:
            raise InvalidInput(f"the labels hold one class only ({classes[0]!r}); classification needs two or more")
        if pos_label is not None:
            if pos_label not in classes:
                raise InvalidInput(f"pos_label {pos_label!r} is not a class; classes: {list(classes)}")
            if len(classes) == 2:
                classes = pd.Index([c for c in classes if c != pos_label] + [pos_label])
        self.classes = classes
        for part, out in outputs.items():
            self._encode(out, part)

    def _encode(self, out: dict[str, Any], part: str) -> None:
        assert self.classes is not None
        out["truth"] = pd.Categorical(self.dataset.parts[part].y, categories=self.classes).codes.astype(np.int64)
        out["codes"] = pd.Categorical(out["pred"], categories=self.classes).codes.astype(np.int64)
        if (out["codes"] < 0).any():
            raise InvalidInput("the model predicts values that are not classes of the labels")
        raw, known = out["raw_proba"], out["model_classes"]
        if raw is not None and known is not None and np.shape(raw) == (len(out["pred"]), len(known)):
            proba = np.zeros((len(out["pred"]), len(self.classes)))
            proba[:, self.classes.get_indexer(np.asarray(known))] = raw
            out["proba"] = proba

    def metrics(self, out: dict[str, Any], part: str, notes: list[str]) -> dict[str, float | None]:
        values = self._grouped(out, np.zeros(len(out["pred"]), dtype=np.int64), 1, part)
        result = {k: _number(v[0]) for k, v in values.items() if k != "mape_rows"}
        if self.task == "regression":
            skipped = len(out["pred"]) - int(values["mape_rows"][0])
            if skipped:
                notes.append(f"mape on {part} leaves out {skipped} row(s) whose target is 0")
        else:
            result["class_imbalance_ratio"] = self.imbalance(part)
        return result

    def _grouped(self, out: dict[str, Any], groups: np.ndarray, n: int, part: str) -> dict[str, np.ndarray]:
        y = self.dataset.parts[part].y.to_numpy()
        if self.task == "regression":
            values = regression_metrics(y, out["pred"], groups, n)
        else:
            assert self.classes is not None
            values = classification_metrics(out["truth"], out["codes"], out["proba"], len(self.classes), groups, n)
        if self.business is not None:
            name, fn, _ = self.business
            index = pd.Series(np.arange(len(groups))).groupby(groups).indices
            values[name] = np.array([float(fn(y[index[g]], out["pred"][index[g]])) if g in index else np.nan
                                     for g in range(n)])
        return values

    def dummy(self) -> Any:
        from sklearn.dummy import DummyClassifier, DummyRegressor

        train = self.dataset.parts["train"]
        model = DummyClassifier(strategy="prior") if self.task == "classification" else DummyRegressor(strategy="mean")
        return model.fit(train.X, train.y)

    def imbalance(self, part: str) -> float | None:
        if part not in self.dataset.parts:
            return None
        counts = self.dataset.parts[part].y.value_counts()
        return float(counts.max() / counts.min()) if len(counts) else None

    def primary(self, outputs: dict[str, dict[str, Any]]) -> str:
        if self.task == "regression":
            return "rmse"
        return "roc_auc" if all(o["proba"] is not None for o in outputs.values()) else "f1"

    def class_list(self) -> list[Any] | None:
        return None if self.classes is None else self.classes.tolist()

    def directions(self) -> dict[str, bool]:
        names = REGRESSION_METRICS if self.task == "regression" else CLASSIFICATION_METRICS
        directions = {m: HIGHER_IS_BETTER[m] for m in names}
        if self.business is not None and self.business[2] is not None:
            directions[self.business[0]] = self.business[2]
        return directions

    def slices(self, outputs: dict[str, dict[str, Any]], columns: list[str],
               min_rows: int) -> tuple[list[dict[str, Any]], dict[str, dict[str, dict[str, Any]]]]:
        """Metrics per value of each slice column, per part, and the worst big-enough slice per metric."""
        rows: list[dict[str, Any]] = []
        worst: dict[str, dict[str, dict[str, Any]]] = {}
        directions = self.directions()
        for part, out in outputs.items():
            for column in columns:
                codes, labels = slice_codes(self.dataset.parts[part].frame[column])
                counts = np.bincount(codes, minlength=len(labels))
                values = self._grouped(out, codes, len(labels), part)
                for g, value in enumerate(labels):
                    if counts[g]:
                        rows.append({"part": part, "column": column, "value": value, "rows": int(counts[g]),
                                     **{m: _number(values[m][g]) for m in directions if m in values}})
            found = _worst([r for r in rows if r["part"] == part and r["rows"] >= min_rows], directions)
            if found:
                worst[part] = found
        return rows, worst


def _worst(rows: list[dict[str, Any]], directions: dict[str, bool]) -> dict[str, dict[str, Any]]:
    """Per metric, the slice that scores worst (highest error, lowest score)."""
    worst = {}
    for metric, higher in directions.items():
        eligible = [r for r in rows if r.get(metric) is not None]
        if eligible:
            pick = (min if higher else max)(eligible, key=lambda r, m=metric: r[m])
            worst[metric] = {"slice": f"{pick['column']}={pick['value']}", "column": pick["column"],
                             "value": pick["value"], "rows": pick["rows"], "score": pick[metric]}
    return worst


def slice_codes(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Group codes for a slice column: its values, or quartile bins when numeric with many values."""
    numeric = pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype)
    timelike = pd.api.types.is_datetime64_any_dtype(values.dtype)
    if (numeric or timelike) and values.nunique() > BIN_ABOVE:
        binned = pd.qcut(values, QUANTILE_BINS, duplicates="drop")
        codes, labels = binned.cat.codes.to_numpy().astype(np.int64), [_interval(c) for c in binned.cat.categories]
    else:
        raw, uniques = pd.factorize(values, sort=True)
        codes, labels = raw.astype(np.int64), [str(u) for u in uniques]
    if (codes < 0).any():
        codes = np.where(codes < 0, len(labels), codes)
        labels.append(MISSING)
    return codes, labels


def _interval(interval: pd.Interval) -> str:
    def show(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float | np.floating) else str(v)

    return f"({show(interval.left)}, {show(interval.right)}]"


def _number(value: Any) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def _business(spec: Any) -> tuple[str, Callable, bool | None] | None:
    """(name, fn, greater_is_better or None) from a named function or a (name, fn) pair."""
    if spec is None:
        return None
    name, fn = spec if isinstance(spec, tuple) and len(spec) == 2 else (getattr(spec, "__name__", ""), spec)
    if not callable(fn):
        raise InvalidInput("business_metric must be a function fn(y_true, y_pred) -> float, or (name, fn)")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidInput(f"business_metric needs a name of letters, digits, '_', '.', '-' (not {name!r}); "
                           "pass ('revenue', fn) for a lambda")
    if name in HIGHER_IS_BETTER or name in ("rows", "class_imbalance_ratio"):
        raise InvalidInput(f"business_metric name {name!r} is a standard metric's; choose another")
    higher = getattr(fn, "greater_is_better", None)
    return name, fn, None if higher is None else bool(higher)


def _plot(scorer: _Scorer, outputs: dict[str, dict[str, Any]], run: Any) -> list[str]:
    from keel.tracking import plots

    shown = [p for p in outputs if p != "train"] or list(outputs)
    names: list[str] = []
    for part in shown:
        out, figures = outputs[part], {}
        if scorer.task == "regression":
            y = scorer.dataset.parts[part].y.to_numpy(dtype=float)
            pred = out["pred"].astype(float)
            figures["residuals"] = plots.residuals_figure(y, pred, f"residuals ({part})")
            figures["predicted_vs_actual"] = plots.predicted_vs_actual_figure(y, pred, f"predicted vs actual ({part})")
        else:
            classes = scorer.class_list() or []
            figures["confusion_matrix"] = plots.confusion_matrix_figure(out["truth"], out["codes"], classes,
                                                                        f"confusion matrix ({part})")
            if out["proba"] is not None:
                figures["roc_curve"] = plots.roc_curve_figure(out["truth"], out["proba"], classes, f"ROC ({part})")
                figures["pr_curve"] = plots.pr_curve_figure(out["truth"], out["proba"], classes,
                                                            f"precision-recall ({part})")
        for kind, figure in figures.items():
            name = f"evaluation/{part}_{kind}.png"
            run.log_figure(figure, name)
            names.append(name)
    return names


def _log(report: EvaluationReport, run: Any) -> None:
    """Whole-part metrics as run metrics; slices and the full report as JSON artifacts."""
    metrics: dict[str, float] = {}
    for part, values in report.metrics.items():
        metrics[f"{part}.rows"] = float(report.rows[part])
        metrics.update({f"{part}.{k}": v for k, v in values.items() if v is not None})
    for part, values in report.baseline.items():
        metrics.update({f"baseline.{part}.{k}": v for k, v in values.items() if v is not None})
    run.log_metrics(metrics)
    run.set_tags({"evaluation.task": report.task, "evaluation.primary_metric": report.primary_metric,
                  "evaluation.data": report.source or "frames"})
    if report.slices:
        payload = {"slices": report.slices, "worst": report.worst_slices}
        run.log_artifact(json.dumps(payload, indent=1, default=str).encode(), "evaluation/slices.json")
    run.log_artifact(json.dumps(report.to_dict(), indent=1, default=str).encode(), "evaluation/report.json")


def flat_params(estimator: Any, prefix: str = "") -> dict[str, str]:
    """get_params(deep=False) as text, nested estimators and Pipeline steps flattened as ``step.param``."""
    out: dict[str, str] = {}
    for key, value in estimator.get_params(deep=False).items():
        name = f"{prefix}{key}"
        if _is_estimator(value):
            out[name] = type(value).__name__
            out.update(flat_params(value, f"{name}."))
        elif key in ("steps", "transformers", "transformer_list") and isinstance(value, list):
            for item in value:
                if not (isinstance(item, tuple) and len(item) >= 2 and isinstance(item[0], str)):
                    out[name] = _text(value)
                    break
                step, inner = f"{prefix}{item[0]}", item[1]
                out[step] = type(inner).__name__ if _is_estimator(inner) else _text(inner)
                if _is_estimator(inner):
                    out.update(flat_params(inner, f"{step}."))
                if len(item) == 3:
                    out[f"{step}.columns"] = _text(item[2])
        else:
            out[name] = _text(value)
    return {k: v for k, v in out.items() if len(k) <= 250}


def _is_estimator(value: Any) -> bool:
    return hasattr(value, "get_params") and not isinstance(value, type)


def _text(value: Any) -> str:
    if callable(value) and not _is_estimator(value):
        return getattr(value, "__name__", None) or str(value)
    return str(value)


def _qualified(model: Any) -> str:
    kind = type(model)
    return f"{kind.__module__}.{kind.__qualname__}"
