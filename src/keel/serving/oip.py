"""The Open Inference Protocol (KServe V2) over keel deployments, so V2 clients (KServe, Triton, Seldon MLServer
tooling) work unchanged.

A request's ``inputs`` are either one named 1-D tensor per column (``{"name": "rooms", "shape": [2], "datatype":
"INT64", "data": [3, 4]}``) or a single 2-D tensor ``[rows, columns]`` whose columns follow the model signature's
order. The answer is one output tensor, ``predict``, as KServe's scikit-learn server names it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from keel.errors import InvalidInput

__all__ = ["frame_from_infer", "infer_response", "model_metadata"]

_DATATYPES = {"BOOL": "bool", "INT8": "int8", "INT16": "int16", "INT32": "int32", "INT64": "int64", "UINT8": "uint8",
              "UINT16": "uint16", "UINT32": "uint32", "UINT64": "uint64", "FP16": "float16", "FP32": "float32",
              "FP64": "float64", "BYTES": "object"}
_KEEL_TYPES = {"float": "FP64", "integer": "INT64", "boolean": "BOOL", "string": "BYTES", "datetime": "BYTES"}


def frame_from_infer(payload: Any, columns: list[str]) -> pd.DataFrame:
    """The rows of a V2 inference request; ``columns``: the signature's inputs, for a 2-D tensor."""
    if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), list) or not payload["inputs"]:
        raise InvalidInput('a V2 inference request is {"inputs": [{"name", "shape", "datatype", "data"}, ...]}')
    tensors = [_tensor(i, item) for i, item in enumerate(payload["inputs"])]
    if len(tensors) == 1 and tensors[0][1].ndim == 2:
        name, values = tensors[0]
        if values.shape[1] != len(columns):
            raise InvalidInput(f"input {name!r} has {values.shape[1]} columns; the model takes {len(columns)}: "
                               + ", ".join(columns))
        frame = pd.DataFrame(values, columns=columns)
    else:
        lengths = {name: len(values) for name, values in tensors}
        if any(values.ndim != 1 for _, values in tensors):
            raise InvalidInput("send one 1-D tensor per column, or one 2-D tensor [rows, columns]")
        if len(set(lengths.values())) != 1:
            raise InvalidInput(f"every input tensor needs the same number of rows: {lengths}")
        frame = pd.DataFrame({name: values for name, values in tensors})
    if frame.empty:
        raise InvalidInput("the batch is empty: send at least one row")
    return frame


def infer_response(name: str, version: str, request_id: str, predictions: np.ndarray) -> dict[str, Any]:
    values = np.asarray(predictions)
    kind = values.dtype.kind
    datatype = "FP64" if kind == "f" else "INT64" if kind in "iu" else "BOOL" if kind == "b" else "BYTES"
    data = values.astype(object).tolist() if datatype == "BYTES" else values.tolist()
    return {"model_name": name, "model_version": version, "id": request_id,
            "outputs": [{"name": "predict", "shape": list(values.shape), "datatype": datatype,
                         "data": np.ravel(np.asarray(data, dtype=object)).tolist() if values.ndim > 1 else data}]}


def model_metadata(name: str, versions: list[str], signature: Any) -> dict[str, Any]:
    """What ``GET /v2/models/{name}`` answers: the inputs a client sends, the output it gets."""
    inputs = [{"name": c.name, "datatype": _KEEL_TYPES.get(c.type, "BYTES"), "shape": [-1]}
              for c in (signature.inputs if signature is not None else [])]
    return {"name": name, "versions": versions, "platform": "keel", "inputs": inputs,
            "outputs": [{"name": "predict", "datatype": "FP64", "shape": [-1]}]}


def _tensor(index: int, item: Any) -> tuple[str, np.ndarray]:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise InvalidInput(f"input {index} must be an object with a name, shape, datatype and data")
    name, shape, datatype, data = item["name"], item.get("shape"), item.get("datatype"), item.get("data")
    if datatype not in _DATATYPES:
        raise InvalidInput(f"input {name!r} has datatype {datatype!r}; use one of {', '.join(_DATATYPES)}")
    if not isinstance(shape, list) or not shape or not all(isinstance(d, int) and d >= 0 for d in shape) \
            or len(shape) > 2:
        raise InvalidInput(f"input {name!r} needs a shape of one or two non-negative sizes, e.g. [rows] or "
                           "[rows, columns]")
    if not isinstance(data, list):
        raise InvalidInput(f"input {name!r} needs its data as a list")
    try:
        values = np.asarray(data, dtype=_DATATYPES[datatype])
        values = values.reshape(shape)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"input {name!r} does not hold {datatype} data of shape {shape}: {exc}") from None
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    return name, values
