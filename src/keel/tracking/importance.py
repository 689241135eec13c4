"""Feature importance three ways, and which features could go: more features is not a better model.

Built-in importance (``feature_importances_`` or mean ``|coef_|``) is free but only covers some models
and is measured on training data. Permutation importance on the validation part measures what each
feature is worth to predictions on rows the model has not seen; SHAP (the ``explain`` extra) adds
per-row attributions. The removal rule: a feature whose permutation importance is within two standard
deviations of zero (``mean - 2 * std <= 0``) is a removal candidate — shuffling it does not measurably
hurt the score. Correlated pairs (|Pearson r| >= threshold on the train part) say the same thing twice.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from keel.errors import InvalidInput
from keel.tracking.frames import Dataset, check_fitted, explain_fit_error, resolve
from keel.tracking.reports import ImportanceReport

__all__ = ["ImportanceReport", "correlated_pairs", "importance", "removal_candidates"]

SHAP_ROWS = 500  # rows explained by TreeExplainer
GENERIC_SHAP_ROWS = 100  # rows explained by the model-agnostic permutation explainer (costly per row)
SHAP_BACKGROUND = 50


def importance(
    data_service: Any, model: Any, data: Any, *, label: str | None = None, features: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None, part: str = "validation", n_repeats: int = 5, seed: int = 0,
    shap: bool | None = None, correlation_threshold: float = 0.9, scoring: str | None = None, run: Any = None,
) -> ImportanceReport:
    """Built-in, permutation (on ``part``) and SHAP importance, removal candidates and correlated pairs.

    ``shap=None`` uses SHAP when it is installed, ``True`` requires it, ``False`` skips it.
    ``scoring`` is a scikit-learn scorer name; None uses the model's ``score`` (R² or accuracy).
    """
    from sklearn.inspection import permutation_importance

    check_fitted(model)
    if isinstance(n_repeats, bool) or not isinstance(n_repeats, int) or n_repeats < 2:
        raise InvalidInput(f"n_repeats must be an integer >= 2 (the removal rule needs a std), not {n_repeats!r}")
    if not 0 < correlation_threshold <= 1:
        raise InvalidInput(f"correlation_threshold must be in (0, 1], not {correlation_threshold!r}")
    dataset = resolve(data_service, data, parts=[part], label=label, features=features, exclude=exclude, model=model)
    notes: list[str] = []
    rows = dataset.parts[part]
    try:
        result = permutation_importance(model, dataset.model_input(model, part), rows.y, n_repeats=n_repeats,
                                        random_state=seed, scoring=scoring)
    except (ValueError, TypeError) as exc:
        error = explain_fit_error(model, rows.X, exc)
        if error is None:
            raise
        raise error from exc
    mean = dict(zip(dataset.features, map(float, result.importances_mean), strict=True))
    std = dict(zip(dataset.features, map(float, result.importances_std), strict=True))
    builtin, kind = _builtin(model, dataset.features, notes)
    shap_values = _shap(model, dataset, part, seed, shap, notes)
    train = _train_features(data_service, data, dataset, part, label, features, exclude, model, notes)
    report = ImportanceReport(
        part=part, rows=len(rows.y), features=dataset.features, scoring=scoring or _default_scoring(model),
        builtin=builtin, builtin_kind=kind, permutation_mean=mean, permutation_std=std, shap=shap_values,
        removal_candidates=removal_candidates(mean, std), correlation_threshold=correlation_threshold,
        correlated_pairs=correlated_pairs(train, correlation_threshold), notes=notes)
    if run is not None:
        report = _log(report, run)
    return report


def removal_candidates(mean: dict[str, float], std: dict[str, float]) -> list[str]:
    """Features whose permutation importance is indistinguishable from zero: mean - 2·std <= 0."""
    return [f for f in mean if mean[f] - 2 * std[f] <= 0]


def correlated_pairs(frame: pd.DataFrame, threshold: float) -> list[tuple[str, str, float]]:
    """Numeric column pairs with |Pearson r| >= threshold, strongest first (one DataFrame.corr pass)."""
    numeric = frame.select_dtypes(include=["number", "bool"]).astype(float)
    if numeric.shape[1] < 2:
        return []
    corr = numeric.corr().to_numpy()
    i, j = np.triu_indices(len(numeric.columns), k=1)
    r = corr[i, j]
    keep = np.flatnonzero(np.abs(np.nan_to_num(r)) >= threshold)
    keep = keep[np.argsort(-np.abs(r[keep]), kind="stable")]
    names = [str(c) for c in numeric.columns]
    return [(names[i[k]], names[j[k]], float(r[k])) for k in keep]


def _train_features(data_service: Any, data: Any, dataset: Dataset, part: str, label: str | None,
                    features: Sequence[str] | None, exclude: Sequence[str] | None, model: Any,
                    notes: list[str]) -> pd.DataFrame:
    if part == "train":
        return dataset.parts[part].X
    if "train" not in dataset.available:
        notes.append(f"no train part: correlations are computed on {part}")
        return dataset.parts[part].X
    return resolve(data_service, data, parts=["train"], label=label, features=features, exclude=exclude,
                   model=model).parts["train"].X


def _builtin(model: Any, features: list[str], notes: list[str]) -> tuple[dict[str, float] | None, str | None]:
    """The final estimator's own importance, named by what it sees (a Pipeline's transformed features)."""
    steps = getattr(model, "steps", None)
    final = steps[-1][1] if steps else model
    if hasattr(final, "feature_importances_"):
        values, kind = np.asarray(final.feature_importances_, dtype=float), "feature_importances_"
    elif hasattr(final, "coef_"):
        coef = np.abs(np.asarray(final.coef_, dtype=float))
        values, kind = (coef.mean(axis=0) if coef.ndim == 2 else coef), "mean |coef_|"
    else:
        return None, None
    names: list[str] | None = features
    if steps and len(steps) > 1:
        try:
            names = [str(n) for n in model[:-1].get_feature_names_out()]
        except Exception:  # a transform without feature names: importance cannot be named
            names = None
    if names is None or len(names) != values.size:
        notes.append(f"built-in importance left out: {type(final).__name__}'s {values.size} inputs do not map to "
                     "feature names")
        return None, None
    return dict(zip(names, map(float, values.ravel()), strict=True)), kind


def _shap(model: Any, dataset: Dataset, part: str, seed: int, wanted: bool | None,
          notes: list[str]) -> dict[str, float] | None:
    """Mean |SHAP value| per feature on a bounded sample; None (with a note) when shap is not available."""
    if wanted is False:
        return None
    try:
        import shap
    except ImportError:
        if wanted:
            raise InvalidInput("shap=True needs SHAP, the explain extra: pip install 'keel[explain]'") from None
        notes.append("SHAP left out: shap is not installed (pip install 'keel[explain]')")
        return None
    X = dataset.parts[part].X
    try:
        values = _tree_shap(shap, model, dataset, X, seed)
        if values is None:
            values = _generic_shap(shap, model, dataset, X, seed)
    except Exception as exc:  # SHAP cannot explain every model; say so rather than fail the whole report
        if wanted:
            raise InvalidInput(f"SHAP could not explain {type(model).__name__}: {exc}") from exc
        notes.append(f"SHAP left out: {type(exc).__name__}: {exc}")
        return None
    magnitude = np.abs(np.stack(values, axis=-1) if isinstance(values, list) else np.asarray(values))
    per_feature = magnitude.mean(axis=tuple(a for a in range(magnitude.ndim) if a != 1))
    return dict(zip(dataset.features, map(float, per_feature), strict=True))


def _tree_shap(shap: Any, model: Any, dataset: Dataset, X: pd.DataFrame, seed: int) -> Any:
    if getattr(model, "steps", None) is not None:
        return None
    try:
        explainer = shap.TreeExplainer(model)
    except Exception:  # not a tree model shap knows
        return None
    sample = X.sample(n=min(SHAP_ROWS, len(X)), random_state=seed)
    return explainer.shap_values(sample if dataset.named else sample.to_numpy(), check_additivity=False)


def _generic_shap(shap: Any, model: Any, dataset: Dataset, X: pd.DataFrame, seed: int) -> Any:
    """Model-agnostic permutation SHAP with one permutation per row: 2·features+1 evaluations a row."""
    from sklearn.base import is_classifier

    dtypes = X.dtypes.to_dict()
    method = model.predict_proba if is_classifier(model) and hasattr(model, "predict_proba") else model.predict

    def predict(array: np.ndarray) -> np.ndarray:
        frame = pd.DataFrame(array, columns=X.columns).astype(dtypes)
        return method(dataset.model_input(model, part=None, frame=frame))

    background = shap.maskers.Independent(X.sample(n=min(SHAP_BACKGROUND, len(X)), random_state=seed))
    explainer = shap.explainers.Permutation(predict, background, seed=seed)
    sample = X.sample(n=min(GENERIC_SHAP_ROWS, len(X)), random_state=seed + 1)
    return explainer(sample, max_evals=2 * X.shape[1] + 1, silent=True).values


def _default_scoring(model: Any) -> str:
    from sklearn.base import is_classifier, is_regressor

    return "accuracy (model.score)" if is_classifier(model) else "r2 (model.score)" if is_regressor(model) \
        else "model.score"


def _log(report: ImportanceReport, run: Any) -> ImportanceReport:
    from keel.tracking.plots import importance_figure

    table = report.to_frame()
    payload = {"part": report.part, "rows": report.rows, "scoring": report.scoring,
               "rule": "removal candidate when permutation mean - 2*std <= 0",
               "table": table.reset_index().to_dict(orient="records"), "builtin": report.builtin,
               "builtin_kind": report.builtin_kind, "removal_candidates": report.removal_candidates,
               "correlated_pairs": [{"a": a, "b": b, "r": r} for a, b, r in report.correlated_pairs],
               "correlation_threshold": report.correlation_threshold, "notes": report.notes}
    names = ["importance/importance.json", "importance/importance.png"]
    run.log_artifact(json.dumps(payload, indent=1, default=str).encode(), names[0])
    run.log_figure(importance_figure(table, f"feature importance ({report.part})"), names[1])
    return report.with_artifacts(names)
