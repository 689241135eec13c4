"""Data contracts: what a table's columns must look like, checked before anything is written.

A contract is YAML or the same Python object. Column-level problems (a missing column, a type that
cannot be cast) reject the whole batch; row-level problems (nulls, ranges, allowed values, duplicate
keys) are counted per check with example rows, and either reject the batch or send those rows to
quarantine with the reason per row. All checks are vectorised (Arrow compute, pandas hashing).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from keel.data.arrow_types import DTYPES, NUMERIC_DTYPES, cast_column
from keel.data.model import CheckResult, ValidationReport
from keel.errors import ContractError, ValidationFailed

__all__ = ["ColumnSpec", "Contract", "RowCheck", "check_rows", "conform", "load_contract"]

MAX_EXAMPLES = 5


class ColumnSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dtype: Literal[tuple(DTYPES)] | None = None  # type: ignore[valid-type]
    nullable: bool = True
    min: float | None = None
    max: float | None = None
    allowed: list[Any] | None = None
    unique: bool = False
    description: str | None = None

    @model_validator(mode="after")
    def _ranges_are_numeric(self) -> ColumnSpec:
        if (self.min is not None or self.max is not None) and self.dtype not in (None, *NUMERIC_DTYPES):
            raise ValueError(f"min/max apply to numeric dtypes only, not {self.dtype}")
        return self


class Contract(BaseModel):
    """Columns with dtype, nullability, ranges, allowed values and uniqueness; the key and target."""

    model_config = ConfigDict(extra="forbid")

    table: str | None = None
    target: str | None = None
    key: list[str] = []
    time_column: str | None = None
    allow_extra_columns: bool = True
    columns: dict[str, ColumnSpec]

    @model_validator(mode="after")
    def _names_are_declared(self) -> Contract:
        for what, names in (("key", self.key), ("target", [self.target] if self.target else []),
                            ("time_column", [self.time_column] if self.time_column else [])):
            undeclared = [n for n in names if n not in self.columns]
            if undeclared:
                raise ValueError(f"{what} column(s) {', '.join(undeclared)} not declared under columns")
        return self

    @classmethod
    def from_yaml(cls, text: str, source: str = "contract") -> Contract:
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            detail = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
            raise ContractError(f"{source} is not valid YAML: {detail}") from None
        return cls.from_dict(doc, source)

    @classmethod
    def from_dict(cls, doc: Any, source: str = "contract") -> Contract:
        if not isinstance(doc, dict):
            raise ContractError(f"{source} must be a mapping with a 'columns' section")
        try:
            return cls.model_validate(doc)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(top level)"
            raise ContractError(f"{source}: {where}: {first['msg']}") from None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True, exclude_defaults=True)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def spec_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()


def load_contract(source: Contract | dict | str | Path) -> Contract:
    """A Contract from an object, a dict, or a YAML file path."""
    if isinstance(source, Contract):
        return source
    if isinstance(source, dict):
        return Contract.from_dict(source)
    path = Path(source)
    if not path.is_file():
        raise ContractError(f"contract file {path} does not exist")
    return Contract.from_yaml(path.read_text(encoding="utf-8"), source=str(path))


def conform(table: pa.Table, contract: Contract) -> pa.Table:
    """Cast declared columns to their dtypes; a missing or uncastable column rejects the batch."""
    missing = [c for c in contract.columns if c not in table.column_names]
    extra = [c for c in table.column_names if c not in contract.columns]
    problems = []
    if missing:
        problems.append(CheckResult("missing_column", ", ".join(missing), table.num_rows))
    if extra and not contract.allow_extra_columns:
        problems.append(CheckResult("unexpected_column", ", ".join(extra), table.num_rows))
    for name, spec in contract.columns.items():
        if name in missing or spec.dtype is None:
            continue
        try:
            table = table.set_column(table.column_names.index(name), name, cast_column(table[name], spec.dtype))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
            detail = str(exc).splitlines()[0]
            problems.append(CheckResult("dtype", name, table.num_rows, [{"expected": spec.dtype, "error": detail}]))
    if problems:
        report = ValidationReport(table.num_rows, table.num_rows, problems)
        raise ValidationFailed(f"data does not fit the contract: {report.summary()}", report=report,
                               details=report.to_dict())
    return table


class RowCheck:
    """The outcome of row-level checks: a boolean mask of bad rows and the reason for each."""

    def __init__(self, table: pa.Table, failures: list[tuple[CheckResult, np.ndarray]]) -> None:
        self.rows = table.num_rows
        self.bad = np.zeros(self.rows, dtype=bool)
        for _, mask in failures:
            self.bad |= mask
        reasons = np.full(self.rows, "", dtype=object)
        for result, mask in failures:
            label = f"{result.check}({result.column})" if result.column else result.check
            reasons[mask] = reasons[mask] + np.where(reasons[mask] == "", "", "; ") + label
        self.reasons = reasons[self.bad]
        self.report = ValidationReport(self.rows, int(self.bad.sum()), [r for r, _ in failures])


def check_rows(table: pa.Table, contract: Contract, existing_keys: pa.Table | None = None) -> RowCheck:
    """Run every row-level check of the contract over ``table`` (already conformed)."""
    failures: list[tuple[CheckResult, np.ndarray]] = []

    def add(check: str, column: str | None, mask: np.ndarray) -> None:
        count = int(mask.sum())
        if count:
            examples = table.filter(pa.array(mask)).slice(0, MAX_EXAMPLES).to_pylist()
            failures.append((CheckResult(check, column, count, _jsonable(examples)), mask))

    for name, spec in contract.columns.items():
        column = table[name]
        _spec_fits(name, spec, column.type)
        nulls = _mask(pc.is_null(column, nan_is_null=True))
        if not spec.nullable:
            add("not_null", name, nulls)
        if spec.min is not None:
            add("min", name, _mask(pc.less(column, spec.min)))
        if spec.max is not None:
            add("max", name, _mask(pc.greater(column, spec.max)))
        if spec.allowed is not None:
            allowed = pa.array(spec.allowed).cast(column.type)
            add("allowed", name, _mask(pc.invert(pc.is_in(column, value_set=allowed))) & ~nulls)
        if spec.unique and contract.key != [name]:
            add("unique", name, _duplicated(table, [name], existing_keys))
    if contract.key:
        add("unique_key", ",".join(contract.key), _duplicated(table, contract.key, existing_keys))
    return RowCheck(table, failures)


def _spec_fits(name: str, spec: ColumnSpec, kind: pa.DataType) -> None:
    """Rules that cannot apply to the column's actual type are a contract error, not a crash."""
    numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)
    if (spec.min is not None or spec.max is not None) and not numeric:
        raise ContractError(f"column {name!r}: min/max need a numeric column, but the data has {kind}; "
                            "declare a numeric dtype or drop the range")
    if spec.allowed is not None:
        try:
            pa.array(spec.allowed).cast(kind)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            raise ContractError(
                f"column {name!r}: allowed values {spec.allowed!r} do not fit its type {kind}") from None


def _duplicated(table: pa.Table, columns: list[str], existing: pa.Table | None) -> np.ndarray:
    """Rows whose key repeats an earlier row of the batch or a row already in the table."""
    keys = table.select(columns).to_pandas()
    has_null = keys.isna().any(axis=1).to_numpy()  # as SQL UNIQUE: a null key equals nothing
    mask = keys.duplicated(keep="first").to_numpy() & ~has_null
    if existing is not None and existing.num_rows and all(c in existing.column_names for c in columns):
        known = pd.MultiIndex.from_frame(existing.select(columns).to_pandas())
        mask |= pd.MultiIndex.from_frame(keys).isin(known) & ~has_null
    return mask


def _mask(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(values, False).to_numpy(zero_copy_only=False), dtype=bool)


def _jsonable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return json.loads(json.dumps(rows, default=str))
