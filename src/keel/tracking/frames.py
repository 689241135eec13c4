"""One shape for what users pass as ``data`` to the training helpers, checked before any model sees it.

``data`` is a split ref (``"listings-split"``, ``"listings-split@2"``), a dict of frames per part
(``{"train": df, "validation": df}``, with ``label=``), or a dict of ``(X, y)`` tuples per part. Every
form becomes a :class:`Dataset`: the label, the feature columns and, per part, ``X``, ``y`` and the
whole frame (slices may name columns that are not features).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from keel.data.model import SPLIT_PARTS
from keel.errors import InvalidInput

__all__ = ["TASKS", "Dataset", "Part", "check_fitted", "check_task", "explain_fit_error", "resolve"]

TASKS = ("classification", "regression")
MAX_CLASSES = 20  # integer labels with more distinct values are taken as a regression target


@dataclass(frozen=True)
class Part:
    """One part of the data: features, labels and the full frame they came from."""

    name: str
    X: pd.DataFrame
    y: pd.Series
    frame: pd.DataFrame


@dataclass(frozen=True)
class Dataset:
    """The parts asked for, with the label and features every helper uses."""

    label: str
    features: list[str]
    parts: dict[str, Part]
    available: tuple[str, ...]
    source: str | None = None  # the split's ref when data was a ref
    named: bool = True  # False when X came as a numpy array: the model is given arrays too

    def model_input(self, model: Any, part: str | None, frame: pd.DataFrame | None = None) -> pd.DataFrame | np.ndarray:
        """X of ``part`` (or ``frame``) as the model expects it: with names, or an array for a model fitted without."""
        X = self.parts[part].X if frame is None else frame
        fitted_without_names = hasattr(model, "n_features_in_") and not hasattr(model, "feature_names_in_")
        return X.to_numpy() if not self.named or fitted_without_names else X


def resolve(
    data_service: Any, data: Any, *, parts: Iterable[str] | None, label: str | None = None,
    features: Sequence[str] | None = None, exclude: Sequence[str] | None = None, model: Any = None,
    keep: Sequence[str] = (),
) -> Dataset:
    """Load and check the parts asked for (all available when ``parts`` is None); ``keep`` are slice columns."""
    if isinstance(features, str) or isinstance(exclude, str):
        raise InvalidInput("features= and exclude= take a list of column names, not a single string")
    if isinstance(data, str):
        return _from_split(data_service, data, parts, label, features, exclude, model, keep)
    if isinstance(data, Mapping):
        return _from_mapping(data, parts, label, features, exclude, model, keep)
    raise InvalidInput(f"data must be a split ref ('listings-split@2'), a dict of DataFrames per part or a dict "
                       f"of (X, y) tuples per part, not {type(data).__name__}")


def _wanted(parts: Iterable[str] | None, available: Sequence[str], where: str) -> list[str]:
    if isinstance(parts, str):
        parts = [parts]
    wanted = list(available) if parts is None else list(dict.fromkeys(parts))
    for part in wanted:
        if part not in SPLIT_PARTS:
            raise InvalidInput(f"unknown part {part!r}; parts are {', '.join(SPLIT_PARTS)}")
        if part not in available:
            raise InvalidInput(f"{where} has no {part} part; it has {', '.join(available) or 'none'}")
    if not wanted:
        raise InvalidInput("no parts to use; pass at least one of " + ", ".join(available))
    return [p for p in SPLIT_PARTS if p in wanted]


def _from_split(data_service: Any, ref: str, parts: Iterable[str] | None, label: str | None,
                features: Sequence[str] | None, exclude: Sequence[str] | None, model: Any,
                keep: Sequence[str]) -> Dataset:
    info = data_service.split_info(ref)  # NotFound for an unknown split
    pinned = f"{info.name}@{info.version}"  # every part from the same split version
    available = tuple(p for p in SPLIT_PARTS if info.counts.get(p))
    wanted = _wanted(parts, available, f"split {info.ref}")
    label = label or info.params.get("target")
    if not label:
        raise InvalidInput(f"split {info.ref} records no target; pass label=")
    explicit = list(features) if features is not None else _model_features(model)
    schema = data_service.version(info.source_ref).schema
    wanted_columns = [label, *keep, *(explicit or ())]
    absent = [c for c in dict.fromkeys(wanted_columns) if c not in schema]
    if absent:
        what = "label column" if absent[0] == label else "column(s)"
        raise InvalidInput(f"{what} {', '.join(map(repr, absent))} not in split {info.ref}; columns: "
                           f"{', '.join(c for c in schema if not c.startswith('_keel'))}")
    columns = None if explicit is None else list(dict.fromkeys(wanted_columns))
    frames = {part: data_service.read_split(pinned, part, columns=columns) for part in wanted}
    return _build(frames, available, label, features, exclude, model, keep, source=info.ref, known=list(schema))


def _from_mapping(data: Mapping[str, Any], parts: Iterable[str] | None, label: str | None,
                  features: Sequence[str] | None, exclude: Sequence[str] | None, model: Any,
                  keep: Sequence[str]) -> Dataset:
    for key in data:
        if key not in SPLIT_PARTS:
            raise InvalidInput(f"unknown part {key!r} in data; parts are {', '.join(SPLIT_PARTS)}")
    available = tuple(p for p in SPLIT_PARTS if p in data)
    wanted = _wanted(parts, available, "the data")
    values = {p: data[p] for p in wanted}
    if all(isinstance(v, pd.DataFrame) for v in values.values()):
        if not label:
            raise InvalidInput("label= is required with a dict of frames: which column holds the labels?")
        return _build(values, available, label, features, exclude, model, keep)
    if all(isinstance(v, tuple | list) and len(v) == 2 for v in values.values()):
        return _from_tuples(values, available, label, features, exclude, model, keep)
    raise InvalidInput("each part must be a DataFrame (with label=) or an (X, y) tuple, all of the same kind")


def _from_tuples(values: dict[str, Any], available: tuple[str, ...], label: str | None,
                 features: Sequence[str] | None, exclude: Sequence[str] | None, model: Any,
                 keep: Sequence[str]) -> Dataset:
    named = all(isinstance(X, pd.DataFrame) for X, _ in values.values())
    frames = {}
    for part, (X, y) in values.items():
        if not named:
            array = np.asarray(X)
            if array.ndim != 2:
                raise InvalidInput(f"X of the {part} part must be two-dimensional, not shape {array.shape}")
            X = pd.DataFrame(array, columns=[f"x{i}" for i in range(array.shape[1])])
        y = pd.Series(np.asarray(y) if not isinstance(y, pd.Series) else y.to_numpy())
        if len(y) != len(X):
            raise InvalidInput(f"the {part} part has {len(X)} rows of X but {len(y)} labels")
        name = label or "label"
        if name in X.columns:
            raise InvalidInput(f"X of the {part} part already has a column {name!r}; pass another label=")
        frames[part] = X.reset_index(drop=True).assign(**{name: y.to_numpy()})
    dataset = _build(frames, available, label or "label", features, exclude, model if named else None, keep)
    return Dataset(dataset.label, dataset.features, dataset.parts, available, None, named)


def _build(frames: dict[str, pd.DataFrame], available: tuple[str, ...], label: str,
           features: Sequence[str] | None, exclude: Sequence[str] | None, model: Any, keep: Sequence[str],
           source: str | None = None, known: list[str] | None = None) -> Dataset:
    """Choose the features and check every part; ``known`` are all the columns (a split reads only some)."""
    first = next(iter(frames.values()))
    columns = list(first.columns)
    if label not in columns:
        raise InvalidInput(f"label column {label!r} is not in the data; columns: {', '.join(map(str, columns))}")
    names = _model_features(model)
    if features is not None:
        chosen = list(features)
        if names is not None and set(chosen) != set(names):
            raise InvalidInput(f"the model was fitted on {', '.join(names)}; features= names {', '.join(chosen)}")
    else:
        chosen = names if names is not None else [c for c in columns if c != label]
    excluded = list(exclude or ())
    unknown = [c for c in excluded if c not in (known or columns)]
    if unknown:
        raise InvalidInput(f"exclude= names unknown column(s) {', '.join(unknown)}")
    chosen = [c for c in chosen if c not in excluded]
    if names is not None:
        if set(chosen) != set(names):
            raise InvalidInput(f"the model was fitted on {', '.join(names)}; exclude= leaves out "
                               f"{', '.join(c for c in names if c not in chosen)}, which it needs")
        chosen = names  # the model's column order
    if label in chosen:
        raise InvalidInput(f"the label {label!r} cannot also be a feature")
    if not chosen:
        raise InvalidInput("no feature columns are left; check features= and exclude=")
    n_in = getattr(model, "n_features_in_", None)
    if names is None and isinstance(n_in, int) and n_in != len(chosen):
        raise InvalidInput(f"the model was fitted on {n_in} features; the data gives {len(chosen)}")
    parts = {}
    for part, frame in frames.items():
        missing = [c for c in [*chosen, label, *keep] if c not in frame.columns]
        if missing:
            raise InvalidInput(f"the {part} part has no column(s) {', '.join(map(str, missing))}")
        if len(frame) == 0:
            raise InvalidInput(f"the {part} part has no rows")
        y = frame[label].reset_index(drop=True)
        if y.isna().any():
            raise InvalidInput(f"{int(y.isna().sum())} rows of the {part} part have no label ({label!r} is null); "
                               "drop or fix them before training")
        frame = frame.reset_index(drop=True)
        parts[part] = Part(part, frame[chosen], y, frame)
    return Dataset(label, chosen, parts, available, source)


def _model_features(model: Any) -> list[str] | None:
    names = getattr(model, "feature_names_in_", None) if model is not None else None
    return [str(n) for n in names] if names is not None else None


def check_fitted(model: Any) -> None:
    """A model that was never fitted is refused before anything is computed."""
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    if not hasattr(model, "predict"):
        raise InvalidInput(f"{type(model).__name__} has no predict method; pass a fitted model")
    try:
        check_is_fitted(model)
    except NotFittedError:
        raise InvalidInput(f"{type(model).__name__} is not fitted; fit it first (ws.runs.fit fits on the "
                           "train part only)") from None
    except TypeError:  # not a scikit-learn estimator: trust its predict
        pass


def check_task(model: Any, y: pd.Series, task: str | None) -> str:
    """The task asked for (or inferred from the model, then the labels), refused when it cannot fit them."""
    from sklearn.base import is_classifier, is_regressor

    if task is not None and task not in TASKS:
        raise InvalidInput(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
    classifier, regressor = _safe(is_classifier, model), _safe(is_regressor, model)
    if task is None:
        task = "classification" if classifier else "regression" if regressor else \
            "classification" if _categorical(y) else "regression"
    if task == "classification":
        if regressor:
            raise InvalidInput(f"task='classification' but {type(model).__name__} is a regressor")
        if pd.api.types.is_float_dtype(y.dtype) and not np.all(np.mod(y.to_numpy(), 1) == 0):
            raise InvalidInput("task='classification' but the labels are continuous numbers; use task='regression'")
    else:
        if classifier:
            raise InvalidInput(f"task='regression' but {type(model).__name__} is a classifier")
        if not pd.api.types.is_numeric_dtype(y.dtype) or pd.api.types.is_bool_dtype(y.dtype):
            raise InvalidInput(f"task='regression' needs numeric labels; the labels are {y.dtype}")
    return task


def _safe(check: Any, model: Any) -> bool:
    try:
        return bool(check(model))
    except Exception:  # an object outside scikit-learn's tag system
        return False


def _categorical(y: pd.Series) -> bool:
    if not pd.api.types.is_numeric_dtype(y.dtype) or pd.api.types.is_bool_dtype(y.dtype):
        return True
    values = y.to_numpy()
    integral = pd.api.types.is_integer_dtype(y.dtype) or bool(np.all(np.mod(values, 1) == 0))
    return integral and y.nunique() <= MAX_CLASSES


def explain_fit_error(model: Any, X: pd.DataFrame, exc: Exception) -> InvalidInput | None:
    """Turn a model's refusal of the data into a keel error that says which columns and what to do."""
    kinds = {c: str(X[c].dtype) for c in X.columns
             if not (pd.api.types.is_numeric_dtype(X[c].dtype) or pd.api.types.is_bool_dtype(X[c].dtype))}
    name = type(model).__name__
    if kinds:
        listed = ", ".join(f"{c} ({k})" for c, k in kinds.items())
        return InvalidInput(f"{name} cannot take the non-numeric feature(s) {listed}: {exc}. Leave them out with "
                            "exclude=[...] or features=[...], or encode them inside a Pipeline (e.g. a "
                            "ColumnTransformer with OneHotEncoder), which is fitted on the train part only",
                            details={"columns": kinds})
    nulls = [c for c in X.columns if X[c].isna().any()]
    if nulls:
        return InvalidInput(f"{name} cannot take missing values (in {', '.join(nulls)}): {exc}. Put a SimpleImputer "
                            "in a Pipeline before it (fitted on the train part only)", details={"columns": nulls})
    return None
