"""Declaring pipelines: ``@step`` functions and a ``Pipeline`` that names them, checked and stored as JSON.

A step's parameters say where its inputs come from: a parameter named after another step of the pipeline (or
mapped to one with ``@step(inputs={"split": "prepare"})``) takes that step's output, and every other parameter is a
pipeline parameter (its default, overridden per run with ``--param k=v``). A first parameter named ``ctx`` gets the
StepContext. The annotations are keel types (keel.pipelines.types): an input's annotation must match what the step
it comes from declares it returns; a cycle, an unknown step or a mismatch is refused when the pipeline is applied.
"""

from __future__ import annotations

import graphlib
import hashlib
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, get_type_hints

import orjson

from keel.code import function_json
from keel.errors import InvalidInput
from keel.pipelines.triggers import trigger_from_json
from keel.pipelines.types import REF_TYPES, type_name
from keel.refs import check_name

__all__ = ["ENGINES", "Pipeline", "Step", "definition_json", "order", "step"]

ENGINES = ("local", "spark")
CONTEXT = "ctx"


@dataclass(frozen=True)
class Step:
    """A function made a step: its name, where each input comes from, its parameters and declared types."""

    function: Callable[..., Any]
    name: str
    inputs: dict[str, str]  # parameter -> the step whose output it takes
    params: dict[str, Any]  # parameter -> default (a pipeline parameter)
    types: dict[str, str]  # parameter -> declared type name
    output: str
    engine: str = "local"
    retries: int = 0
    wants_context: bool = False
    description: str = ""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:  # still a plain function for tests and notebooks
        return self.function(*args, **kwargs)

    @property
    def __wrapped__(self) -> Callable[..., Any]:  # inspect.unwrap finds the function (keel.code.resolve_function)
        return self.function


def step(function: Callable[..., Any] | None = None, *, name: str | None = None, inputs: dict[str, str] | None = None,
         engine: str = "local", retries: int = 0) -> Any:
    """Make a top-level function a pipeline step. ``inputs`` maps parameters to the steps they take outputs from
    (default: a parameter named after a step); ``engine`` is where it runs (``local`` or ``spark``); ``retries`` how
    often a failure is retried before the step fails."""

    def wrap(fn: Callable[..., Any]) -> Step:
        if engine not in ENGINES:
            raise InvalidInput(f"step {fn.__name__}: engine {engine!r}; use one of {', '.join(ENGINES)}")
        if not isinstance(retries, int) or not 0 <= retries <= 10:
            raise InvalidInput(f"step {fn.__name__}: retries is a whole number from 0 to 10")
        signature = inspect.signature(fn)
        try:
            hints = get_type_hints(fn)
        except Exception:  # an annotation that does not resolve: read the names as written
            hints = {k: p.annotation for k, p in signature.parameters.items() if p.annotation is not p.empty}
            if signature.return_annotation is not signature.empty:
                hints["return"] = signature.return_annotation
        names = list(signature.parameters)
        wants_context = bool(names) and names[0] == CONTEXT
        mapping = dict(inputs or {})
        unknown = set(mapping) - set(names)
        if unknown:
            raise InvalidInput(f"step {fn.__name__}: inputs names parameters it does not have: {sorted(unknown)}")
        types, defaults = {}, {}
        for param in names[1:] if wants_context else names:
            spec = signature.parameters[param]
            if spec.kind in (spec.VAR_POSITIONAL, spec.VAR_KEYWORD):
                raise InvalidInput(f"step {fn.__name__}: *args and **kwargs cannot be wired; name each input")
            types[param] = type_name(hints.get(param))
            if spec.default is not spec.empty:
                defaults[param] = spec.default
        if "return" not in hints:
            raise InvalidInput(f"step {fn.__name__}: declare what it returns (-> Split, -> Model, -> dict, ...)")
        return Step(fn, check_name(name or fn.__name__, "step name"), mapping, defaults, types,
                    type_name(hints["return"]), engine, retries, wants_context, inspect.getdoc(fn) or "")

    return wrap(function) if function is not None else wrap


@dataclass
class Pipeline:
    """A named DAG of steps, with its triggers (keel.pipelines.triggers) and default parameters."""

    name: str
    steps: list[Step]
    triggers: list[Any] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        check_name(self.name, "pipeline name")


def definition_json(pipeline: Pipeline) -> dict[str, Any]:
    """The pipeline as stored: steps (function, inputs, params, types), triggers and defaults, checked: every input
    names a step of the pipeline with the type it declares, there is no cycle, every parameter has a value."""
    if not isinstance(pipeline, Pipeline):
        raise InvalidInput(f"not a Pipeline: {pipeline!r}")
    steps = list(pipeline.steps)
    if not steps:
        raise InvalidInput(f"pipeline {pipeline.name!r} has no steps")
    by_name: dict[str, Step] = {}
    for s in steps:
        if not isinstance(s, Step):
            raise InvalidInput(f"pipeline {pipeline.name!r}: {s!r} is not a @step function")
        if s.name in by_name:
            raise InvalidInput(f"pipeline {pipeline.name!r} has two steps named {s.name!r}")
        by_name[s.name] = s
    out_steps = []
    for s in steps:
        wired = {p: s.inputs.get(p, p) for p in s.types if s.inputs.get(p, p) in by_name}
        for param, source in s.inputs.items():
            if source not in by_name:
                raise InvalidInput(f"step {s.name!r}: input {param!r} comes from {source!r}, which is not a step of "
                                   f"pipeline {pipeline.name!r}")
        for param, source in wired.items():
            if source == s.name:
                raise InvalidInput(f"step {s.name!r} takes its own output ({param!r}): a cycle")
            want, made = s.types[param], by_name[source].output
            if want != "Any" and made != "Any" and want != made:
                raise InvalidInput(f"step {s.name!r} takes {param!r} as {want}, but step {source!r} returns {made}")
        params = {p: pipeline.params.get(p, s.params.get(p)) for p in s.types if p not in wired}
        missing = [p for p in params if p not in pipeline.params and p not in s.params]
        if missing:
            raise InvalidInput(f"step {s.name!r}: parameter(s) {', '.join(missing)} have no default; give them in "
                               "Pipeline(params=...) or name a step")
        out_steps.append({"name": s.name, "function": function_json(s.function, f"step {s.name!r}"),
                          "inputs": wired, "params": _json(params, s.name), "types": s.types, "output": s.output,
                          "engine": s.engine, "retries": s.retries, "context": s.wants_context,
                          "description": s.description})
    definition = {"name": pipeline.name, "description": pipeline.description, "steps": out_steps,
                  "triggers": [trigger_from_json(t) for t in pipeline.triggers]}
    order(definition)  # a cycle is refused here
    return definition


def order(definition: dict[str, Any]) -> list[str]:
    """The steps in an order where each comes after the steps it takes inputs from."""
    graph = {s["name"]: set(s["inputs"].values()) for s in definition["steps"]}
    try:
        return list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        cycle = " -> ".join(exc.args[1])
        raise InvalidInput(f"pipeline {definition['name']!r} has a cycle: {cycle}") from None


def fingerprint(definition: dict[str, Any]) -> str:
    """A definition's hash: a new pipeline version is stored only when it changed."""
    return hashlib.sha256(orjson.dumps(definition, option=orjson.OPT_SORT_KEYS)).hexdigest()


def ref_params(definition: dict[str, Any]) -> Iterable[tuple[str, str, str]]:
    """(step, parameter, type) of every pipeline parameter declared as a keel ref: resolved to a version per run."""
    for s in definition["steps"]:
        for param, declared in s["types"].items():
            if param not in s["inputs"] and declared in REF_TYPES:
                yield s["name"], param, declared


def _json(params: dict[str, Any], step_name: str) -> dict[str, Any]:
    try:
        return orjson.loads(orjson.dumps(params))
    except TypeError:
        raise InvalidInput(f"step {step_name!r}: parameter defaults must be JSON values (text, numbers, lists, "
                           "dicts)") from None
