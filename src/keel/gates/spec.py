"""The checklist: which tests a model version must pass, declared in YAML (``gates.yaml``) or Python.

Each test is a pydantic model picked by its ``kind``; unknown keys, kinds, metrics and malformed conditions
are refused when the checklist is read, with the test's name and the field in the message. Columns are
checked later, against the model's signature and data (``check_columns``), since they depend on both.

    data: listings-split        # a split or table ref; default: the split the model's run was fitted on
    part: test                  # the part the tests read (default test, else validation)
    against: production         # the alias whose version is the champion
    tests:
      - kind: metric
        conditions: ["rmse <= 0.95 * champion", "rmse <= baseline - 5"]
      - kind: directional
        column: accommodates
        delta: 1
        expect: non_decreasing
        required: false         # nice-to-have: reported, never blocks
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from keel import code
from keel.errors import InvalidInput
from keel.gates.conditions import Condition, parse_condition

__all__ = [
    "BudgetTest",
    "Case",
    "Checklist",
    "CustomTest",
    "DirectionalTest",
    "FairnessTest",
    "GateTest",
    "InvarianceTest",
    "LeakageTest",
    "MetricTest",
    "MinimumFunctionalityTest",
    "Perturbation",
    "SliceTest",
    "SmokeTest",
    "custom_gate",
    "load_checklist",
]

PARTS = ("train", "validation", "test")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class _Test(_Spec):
    name: str | None = Field(default=None, description="unique in the checklist; default: the kind")
    required: bool = Field(default=True, description="false: nice-to-have, reported but never blocking")
    description: str | None = None


class _Conditions(_Test):
    conditions: list[str] = Field(min_length=1, description='e.g. "rmse <= 0.95 * champion"')
    min_change: float = Field(default=0.0, ge=0, description="against champion or baseline: better by at least this")

    @field_validator("conditions")
    @classmethod
    def _parse(cls, value: list[str]) -> list[str]:
        for text in value:
            parse_condition(text)
        return value

    def parsed(self) -> list[Condition]:
        return [parse_condition(text) for text in self.conditions]


class MetricTest(_Conditions):
    """Metrics of the part (or a stored evaluation set) against absolute bounds, the champion and the baseline."""

    kind: Literal["metric"] = "metric"


class SliceTest(_Conditions):
    """The same conditions in every slice of ``by`` (values of a column; quartile bins of a numeric one)."""

    kind: Literal["slice"] = "slice"
    by: list[str] = Field(min_length=1)
    min_rows: int = Field(default=20, ge=1, description="smaller slices are reported, never judged")

    @field_validator("by", mode="before")
    @classmethod
    def _listed(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class SmokeTest(_Test):
    """Random rows of the data and synthetic rows from its profile all predict: finite, in range, right shape."""

    kind: Literal["smoke"] = "smoke"
    rows: int = Field(default=100, ge=0, le=100_000)
    synthetic: int = Field(default=100, ge=0, le=100_000)
    range: tuple[float, float] | None = Field(default=None, description="[low, high] every output must be within")
    seed: int = 0

    @model_validator(mode="after")
    def _some_rows(self) -> SmokeTest:
        if self.rows + self.synthetic == 0:
            raise ValueError("rows and synthetic are both 0: nothing to predict")
        if self.range is not None and self.range[0] > self.range[1]:
            raise ValueError(f"range {list(self.range)} has its low end above its high end")
        return self


class Perturbation(_Spec):
    """How an input is changed: ``noise`` (numeric: + normal noise of ``scale`` x the column's std),
    ``swap`` (categorical: values shuffled among rows of the same ``within`` group, or all rows),
    ``shuffle`` (any column: values permuted across rows), ``set`` (every row gets ``value``)."""

    column: str
    how: Literal["noise", "swap", "shuffle", "set"]
    scale: float = Field(default=0.1, gt=0)
    within: str | None = None
    value: Any = None

    @model_validator(mode="after")
    def _fits(self) -> Perturbation:
        if self.how == "set" and self.value is None:
            raise ValueError("how: set needs a value")
        if self.within is not None and self.how != "swap":
            raise ValueError("within applies to how: swap only")
        return self


class InvarianceTest(_Test):
    """A perturbation that must not matter: outputs move by at most ``tolerance`` for ``min_fraction`` of rows
    (a classifier's predicted class must not change; with ``tolerance`` its probabilities are compared)."""

    kind: Literal["invariance"] = "invariance"
    perturb: Perturbation
    tolerance: float = Field(default=0.0, ge=0)
    min_fraction: float = Field(default=1.0, gt=0, le=1)
    seed: int = 0


class Case(_Spec):
    """One easy case: its inputs (columns left out take the data's typical value) and what it must give."""

    input: dict[str, Any] = Field(min_length=1)
    expect: Any = None
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _expects(self) -> Case:
        if self.expect is None and self.min is None and self.max is None:
            raise ValueError("a case needs expect, min or max")
        return self


class MinimumFunctionalityTest(_Test):
    """A small table of easy cases with the outputs they must give."""

    kind: Literal["minimum_functionality"] = "minimum_functionality"
    cases: list[Case] = Field(min_length=1)
    tolerance: float = Field(default=0.0, ge=0, description="for a numeric expect: allowed absolute error")
    min_fraction: float = Field(default=1.0, gt=0, le=1)


class DirectionalTest(_Test):
    """Increasing ``column`` by ``delta`` must not move the output the wrong way (beyond ``tolerance``)."""

    kind: Literal["directional"] = "directional"
    column: str
    delta: float
    expect: Literal["non_decreasing", "non_increasing"] = "non_decreasing"
    tolerance: float = Field(default=0.0, ge=0)
    min_fraction: float = Field(default=1.0, gt=0, le=1)
    steps: int = Field(default=5, ge=1, le=50, description="points of the curve in the report")

    @field_validator("delta")
    @classmethod
    def _nonzero(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("delta must be positive: the test increases the column (use expect to say which way "
                             "the output must go)")
        return value


class LeakageTest(_Test):
    """The stored split, checked again: no duplicate rows or groups across train and test, test later in time."""

    kind: Literal["leakage"] = "leakage"
    test_part: Literal["validation", "test"] = "test"


class BudgetTest(_Test):
    """Size, memory and latency limits: package size, peak memory to load, single-row and batch-1,000 predict
    latency (median of ``repeats``), CPU time per 1,000 predictions, number of input features."""

    kind: Literal["budget"] = "budget"
    max_package_mb: float | None = Field(default=None, gt=0)
    max_load_mb: float | None = Field(default=None, gt=0)
    max_single_ms: float | None = Field(default=None, gt=0)
    max_batch_ms: float | None = Field(default=None, gt=0)
    max_cpu_ms_per_1000: float | None = Field(default=None, gt=0)
    max_features: int | None = Field(default=None, gt=0)
    repeats: int = Field(default=20, ge=3, le=1000)

    @model_validator(mode="after")
    def _a_limit(self) -> BudgetTest:
        if not any(v is not None for k, v in self.__dict__.items() if k.startswith("max_")):
            raise ValueError("a budget needs at least one max_* limit")
        return self


class FairnessTest(_Test):
    """Group metrics over a sensitive column and their gaps, as Fairlearn computes them."""

    kind: Literal["fairness"] = "fairness"
    sensitive: str
    positive: Any = Field(default=None, description="the favourable class (classification); default: the last")
    max_demographic_parity_difference: float | None = Field(default=None, ge=0)
    max_equalized_odds_difference: float | None = Field(default=None, ge=0)
    max_error_rate_gap: float | None = Field(default=None, ge=0, description="error rate (classification) or "
                                                                            "MAE (regression), max - min over groups")
    min_group_rows: int = Field(default=20, ge=1)

    @model_validator(mode="after")
    def _a_limit(self) -> FairnessTest:
        if not any(v is not None for k, v in self.__dict__.items() if k.startswith("max_")):
            raise ValueError("a fairness test needs at least one max_* limit")
        return self


class CustomTest(_Test):
    """A function decorated with ``@keel.custom_gate``: ``fn(ctx) -> GateOutcome``. In YAML,
    ``function: module:name`` (importable) or ``function: checks.py:name`` (a file in the workspace)."""

    kind: Literal["custom"] = "custom"
    function: Any
    params: dict[str, Any] = Field(default_factory=dict, description="passed to the function as keywords")


GateTest = Annotated[
    MetricTest | SliceTest | SmokeTest | InvarianceTest | MinimumFunctionalityTest | DirectionalTest
    | LeakageTest | BudgetTest | FairnessTest | CustomTest,
    Field(discriminator="kind"),
]


class Checklist(_Spec):
    """A model's release checklist: the tests, and the data and champion they are run against."""

    tests: list[GateTest] = Field(min_length=1)
    data: str | None = Field(default=None, description="a split or table ref; default: the run's training split")
    part: Literal["validation", "test"] | None = None
    label: str | None = None
    against: str = "production"

    @model_validator(mode="after")
    def _unique_names(self) -> Checklist:
        seen: set[str] = set()
        for name in self.names():
            if name in seen:
                raise ValueError(f"two tests are named {name!r}; give each a unique name")
            seen.add(name)
        return self

    def names(self) -> list[str]:
        """Each test's name: its own, else its kind (numbered when the kind repeats)."""
        names, counts = [], dict[str, int]()
        for test in self.tests:
            counts[test.kind] = counts.get(test.kind, 0) + 1
            names.append(test.name or (test.kind if counts[test.kind] == 1 else f"{test.kind}-{counts[test.kind]}"))
        return names


def custom_gate(function: Callable[..., Any]) -> Callable[..., Any]:
    """Mark ``function(ctx, **params) -> GateOutcome`` as a gate test. Only marked functions can be named
    from a checklist, so a YAML file cannot make keel call any function it can import."""
    if not callable(function):
        raise InvalidInput("@custom_gate decorates a function fn(ctx) -> GateOutcome")
    function.__keel_gate__ = True  # type: ignore[attr-defined]
    return function


def load_checklist(source: Checklist | dict[str, Any] | str | Path, root: Path) -> tuple[Checklist, dict[str, Any]]:
    """The checklist and its canonical JSON (custom functions recorded by module, name and source hash).

    ``source`` is a Checklist, a dict, a path to a YAML file, or YAML text. Relative paths (the file, and
    custom functions' files) are taken from the workspace ``root``.
    """
    if isinstance(source, Checklist):
        checklist = source
    else:
        raw = _raw(source, root)
        try:
            checklist = Checklist.model_validate(raw)
        except ValidationError as exc:
            raise InvalidInput(f"the checklist is not valid: {_first_error(exc, raw)}",
                               details={"errors": json.loads(exc.json(include_url=False, include_input=False))}) \
                from None
    spec = checklist.model_dump(mode="json", exclude_none=True)
    for test, stored in zip(checklist.tests, spec["tests"], strict=True):
        if isinstance(test, CustomTest):
            stored["function"] = code.function_json(_custom_function(test.function, root), "custom gate test")
    return checklist, spec


def fingerprint(spec: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


def resolve_custom(stored: dict[str, Any], known: dict[str, Callable[..., Any]]) -> Callable[..., Any]:
    """A stored custom test's function, refused if its source changed since the checklist was stored."""
    function = code.resolve_function(stored, f"custom gate test {stored['name']!r}", known,
                                     changed="store the checklist again (`keel gates set`)")
    if not getattr(function, "__keel_gate__", False):
        raise InvalidInput(f"{stored['module']}:{stored['name']} is not marked @keel.custom_gate")
    return function


def _raw(source: dict[str, Any] | str | Path, root: Path) -> Any:
    if isinstance(source, dict):
        return source
    text = str(source)
    is_path = isinstance(source, Path) or (("\n" not in text) and text.endswith((".yaml", ".yml")))
    if is_path:
        path = Path(text)
        path = path if path.is_absolute() else root / path
        if not path.is_file():
            raise InvalidInput(f"no checklist file at {path}")
        text = path.read_text(encoding="utf-8")
    try:
        raw = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError, AttributeError, RecursionError) as exc:  # PyYAML raises all of these
        raise InvalidInput(f"the checklist is not valid YAML: {(str(exc).splitlines() or [type(exc).__name__])[0]}") \
            from None
    if not isinstance(raw, dict):
        raise InvalidInput("a checklist is a YAML mapping with a 'tests' list")
    return raw


def _first_error(exc: ValidationError, raw: Any) -> str:
    """The first problem, placed by test name ("tests[2] (slice-rooms).by: ...")."""
    error = exc.errors(include_url=False)[0]
    loc = list(error["loc"])
    where = ".".join(str(p) for p in loc) or "checklist"
    if len(loc) >= 2 and loc[0] == "tests" and isinstance(loc[1], int):
        tests = raw.get("tests") if isinstance(raw, dict) else None
        test = tests[loc[1]] if isinstance(tests, list) and loc[1] < len(tests) else None
        kind = test.get("kind") if isinstance(test, dict) else None
        label = (test.get("name") or kind) if isinstance(test, dict) else None
        rest = [str(p) for p in loc[2:] if p != kind]
        where = f"tests[{loc[1]}]" + (f" ({label})" if label else "") + ("." + ".".join(rest) if rest else "")
        if error["type"] == "union_tag_invalid":
            return f"{where}: unknown kind {kind!r}; kinds are {', '.join(_KINDS)}"
        if error["type"] == "union_tag_not_found":
            return f"{where}: a test needs a kind ({', '.join(_KINDS)})"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}"


def _custom_function(function: Any, root: Path) -> Callable[..., Any]:
    if isinstance(function, str):
        module_name, _, name = function.rpartition(":")
        if not module_name or not name:
            raise InvalidInput(f"custom test function {function!r}: write it as module:function or file.py:function")
        if module_name.endswith(".py"):
            path = Path(module_name)
            module = code.load_module(path if path.is_absolute() else root / path)
        else:
            import importlib

            try:
                module = importlib.import_module(module_name)
            except ImportError as exc:
                raise InvalidInput(f"custom test function {function!r}: cannot import {module_name}: {exc}") from None
        found = getattr(module, name, None)
        if not callable(found):
            raise InvalidInput(f"custom test function {function!r}: {module_name} has no function {name}")
        function = found
    if not callable(function):
        raise InvalidInput(f"a custom test's function must be a function or 'module:function', not {function!r}")
    if not getattr(function, "__keel_gate__", False):
        raise InvalidInput(f"{getattr(function, '__qualname__', function)!r} is not marked @keel.custom_gate; "
                           "only marked functions can be gate tests")
    return function


_KINDS = ("metric", "slice", "smoke", "invariance", "minimum_functionality", "directional", "leakage", "budget",
          "fairness", "custom")
