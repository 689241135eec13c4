"""Model signatures: the input columns and types a model was trained on, checked before every predict.

A model handed a frame with a missing column, a string where it learned numbers, or its columns in another
order does not fail: it predicts garbage. The signature is inferred from the training frame when the model
is packaged, and ``check_frame`` turns any mismatch into a clear error before the model sees the data.

Types are coarse on purpose (integer, float, boolean, string, datetime): an int64 column where int32 was
trained is fine, and integers are accepted (and cast) where floats were trained, as every estimator would.
Floats where integers were trained are refused unless every value is whole: a silent truncation is a bug.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from keel.errors import InvalidInput, SignatureMismatch

__all__ = ["EXTRA_POLICIES", "ColumnType", "Signature", "check_frame", "check_values", "infer_signature",
           "probe_missing", "to_frame"]

EXTRA_POLICIES = ("drop", "error")
TYPES = ("integer", "float", "boolean", "string", "datetime")


@dataclass(frozen=True, slots=True)
class ColumnType:
    name: str
    type: str
    nullable: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "nullable": self.nullable}


@dataclass(frozen=True)
class Signature:
    """Inputs in training order; outputs as the model returned them for the example."""

    inputs: list[ColumnType]
    outputs: list[ColumnType] = field(default_factory=list)
    output_shape: list[int | None] = field(default_factory=list)  # e.g. [None] or [None, 3]

    @property
    def columns(self) -> list[str]:
        return [c.name for c in self.inputs]

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": [c.to_dict() for c in self.inputs], "outputs": [c.to_dict() for c in self.outputs],
                "output_shape": list(self.output_shape)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Signature:
        try:
            return cls(inputs=[ColumnType(**c) for c in data["inputs"]],
                       outputs=[ColumnType(**c) for c in data.get("outputs", [])],
                       output_shape=list(data.get("output_shape", [])))
        except (KeyError, TypeError) as exc:
            raise InvalidInput(f"malformed signature: {exc}; expected inputs: [{{name, type, nullable}}]") from None

    def diff(self, other: Signature) -> dict[str, Any]:
        """Columns added, removed, or whose type changed between two signatures."""
        mine, theirs = {c.name: c.type for c in self.inputs}, {c.name: c.type for c in other.inputs}
        return {"added": sorted(theirs.keys() - mine.keys()), "removed": sorted(mine.keys() - theirs.keys()),
                "changed": {k: [mine[k], theirs[k]] for k in sorted(mine.keys() & theirs.keys())
                            if mine[k] != theirs[k]}}


def column_type(series: pd.Series) -> str:
    """The coarse keel type of a pandas column."""
    return dtype_type(series.dtype, series.name)


def dtype_type(dtype: Any, name: Any = None) -> str:
    """The coarse keel type of a pandas dtype (``name``: the column's, for the error). Remembered per dtype: the
    request path asks it for every column of every request."""
    try:
        return _DTYPE_TYPES[dtype]
    except (KeyError, TypeError):
        pass
    found = _dtype_type(dtype, name)
    with contextlib.suppress(TypeError):  # an unhashable dtype is classified every time
        _DTYPE_TYPES[dtype] = found
    return found


_DTYPE_TYPES: dict[Any, str] = {}


def _dtype_type(dtype: Any, name: Any) -> str:
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(dtype) \
            or pd.api.types.is_object_dtype(dtype):
        return "string"
    raise InvalidInput(f"column {name!r} has type {dtype}, which a model signature cannot describe; "
                       "convert it to a number, boolean, string or datetime column")


def infer_signature(frame: Any, predictions: Any = None) -> Signature:
    """The signature of a training frame (and of the model's output on it, when given)."""
    frame = to_frame(frame)
    if frame.columns.duplicated().any():
        duplicated = list(frame.columns[frame.columns.duplicated()])
        raise InvalidInput(f"duplicate column names in the input example: {duplicated}")
    inputs = [ColumnType(str(name), column_type(frame[name]), bool(frame[name].isna().any())) for name in frame.columns]
    outputs, shape = [], []
    if predictions is not None:
        raw = predictions.to_numpy() if isinstance(predictions, pd.Series | pd.DataFrame) else predictions
        values = np.asarray(raw)
        shape = [None, *values.shape[1:]]
        outputs = [ColumnType("prediction", column_type(pd.Series(values.reshape(len(values), -1)[:, 0])))]
    return Signature(inputs, outputs, shape)


def to_frame(data: Any) -> pd.DataFrame:
    """A pandas frame from a frame, an Arrow table, a dict of columns or a list of records."""
    if isinstance(data, pd.DataFrame):
        return data
    if hasattr(data, "to_pandas") and hasattr(data, "schema"):  # pyarrow Table / RecordBatch
        return data.to_pandas()
    if isinstance(data, dict):
        try:
            return pd.DataFrame(data)
        except (ValueError, TypeError) as exc:  # scalars, or columns of different lengths
            raise InvalidInput(f"a dict of columns needs equal-length lists of values ({exc}); for one row pass a "
                               "list with one record: [{column: value, ...}]") from None
    if isinstance(data, list) and all(isinstance(r, dict) for r in data):
        return pd.DataFrame.from_records(data)
    raise InvalidInput(f"model input must be a table (pandas DataFrame, Arrow table, dict of columns or list of "
                       f"records), not {type(data).__name__}")


def check_frame(data: Any, signature: Signature, *, extra: str = "drop") -> pd.DataFrame:
    """The frame the model may see: signature columns, in training order, with compatible types.

    ``extra="drop"`` ignores columns the model was not trained on (a request may carry ids); ``"error"``
    refuses them. Every problem is reported at once, so a caller fixes their frame in one go.
    """
    if extra not in EXTRA_POLICIES:
        raise InvalidInput(f"unknown extra-columns policy {extra!r}; use one of {', '.join(EXTRA_POLICIES)}")
    frame = to_frame(data)
    problems: list[str] = []
    raw = frame.columns.tolist()  # one call: iterating pandas' Arrow-backed string index costs per element
    names = [c if isinstance(c, str) else str(c) for c in raw]  # the signature keeps names as strings (0, 1, ...)
    label = dict(zip(names, raw, strict=True))
    duplicated = sorted({n for n in names if names.count(n) > 1}) if len(label) < len(names) else []
    if duplicated:
        problems.append(f"duplicate column(s) {', '.join(duplicated)}")
    missing = [c.name for c in signature.inputs if c.name not in label]
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    extras = [n for n in names if n not in set(signature.columns)]
    if extras and extra == "error":
        problems.append(f"unexpected column(s) {', '.join(extras)} (the model was not trained on them)")
    casts: dict[Any, str] = {}
    dtypes = dict(zip(names, frame.dtypes, strict=True))  # a duplicated name keeps one; it is refused anyway
    for col in signature.inputs:
        if col.name in missing or col.name in duplicated:
            continue
        problem, cast = _check_column(frame, label[col.name], dtypes[col.name], col)
        if problem:
            problems.append(problem)
        elif cast:
            casts[label[col.name]] = cast
    if problems:
        raise SignatureMismatch("the input does not fit the model's signature: " + "; ".join(problems),
                                details={"problems": problems, "expected": signature.to_dict()["inputs"]})
    if names == signature.columns and not casts:
        return frame  # already the model's columns in the model's order (the request path's usual case): no copy
    out = frame[[label[name] for name in signature.columns]]
    return out.astype(casts) if casts else out


def _check_column(frame: pd.DataFrame, label: Any, dtype: Any, expected: ColumnType) -> tuple[str | None, str | None]:
    """(problem, cast to apply) for one column; its values are read only when its dtype alone cannot decide."""
    try:
        actual = dtype_type(dtype, label)
    except InvalidInput as exc:
        return exc.message, None
    if actual == expected.type:
        return None, None
    if expected.type == "float" and actual == "integer":
        return None, "float64"
    series = frame[label]
    if expected.type == "integer" and actual == "float":
        values = series.to_numpy(dtype="float64", na_value=np.nan)
        finite = values[~np.isnan(values)]
        if np.all(np.isfinite(finite)) and np.all(finite == np.round(finite)) \
                and np.all(np.abs(finite) < 2.0**63):  # inf or 1e300 cannot become an int64
            return None, ("Int64" if len(finite) < len(values) else "int64")
    if actual == "string" and len(series) and series.isna().all() and expected.nullable:
        return None, None  # an all-missing column carries no type of its own
    return f"column {expected.name!r} is {actual}, the model was trained on {expected.type}", None


def probe_missing(model: Any, frame: pd.DataFrame, signature: Signature) -> Signature:
    """The signature with each input declared ``nullable`` when the model takes a missing value there: the example
    had one, or the model predicts on its first row with that column blanked. What serving then enforces: a missing
    value where the model would fail is the client's error (422), not a crash to fall back from."""
    row = frame.head(1)
    inputs = []
    for col in signature.inputs:
        nullable = col.nullable
        if not nullable and col.name in row:
            blank = row.copy()
            blank[col.name] = np.nan if col.type in ("float", "integer") else None
            try:
                model.predict(blank)
                nullable = True
            except Exception:  # any failure means this model cannot take a missing value here
                nullable = False
        inputs.append(ColumnType(col.name, col.type, nullable))
    return Signature(inputs, signature.outputs, signature.output_shape)


def check_values(frame: pd.DataFrame, signature: Signature) -> None:
    """Refuse values a model cannot take, per its signature's declarations: a missing value (None, NaN) in a column
    not declared nullable, and +/-Inf in a numeric one. Vectorised over one array of the whole frame (the request
    path calls it for every request); a column of the wrong type is left to ``check_frame`` to name."""
    values = frame.to_numpy()
    missing = pd.isna(values).any(axis=0)
    position = {name: i for i, name in enumerate(frame.columns.tolist())}  # tolist: see check_frame
    numeric = [position[c.name] for c in signature.inputs if c.type in ("float", "integer") and c.name in position]
    infinite = np.zeros(len(position), dtype=bool)
    if numeric:
        with contextlib.suppress(ValueError, TypeError):  # not numbers at all: check_frame reports the type
            infinite[numeric] = np.isinf(values[:, numeric].astype("float64")).any(axis=0)
    problems = []
    for col in signature.inputs:
        where = position.get(col.name)
        if where is None:
            continue
        if missing[where] and not col.nullable:
            problems.append(f"column {col.name!r} has missing values, and the model does not take them there")
        elif infinite[where]:
            problems.append(f"column {col.name!r} has an infinite value")
    if problems:
        raise SignatureMismatch("the input does not fit the model's signature: " + "; ".join(problems),
                                details={"problems": problems})
