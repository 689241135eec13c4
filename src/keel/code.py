"""User code named by stored definitions (feature transforms, custom gate tests): where it lives and its hash.

A definition stores a function as its module, qualified name, file and the sha256 of its source, so the
registry can show it without importing it, and a later process finds the very same code again: importing
the module (or the file it came from) and refusing a function whose source changed since it was stored.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from keel.errors import InvalidInput

__all__ = ["function_json", "load_module", "resolve_function"]


def function_json(function: Callable[..., Any], owner: str) -> dict[str, Any]:
    """``{module, name, file, sha256}`` of a top-level function; ``owner`` names what uses it, for errors."""
    module, name = getattr(function, "__module__", None), getattr(function, "__qualname__", "")
    if not module or "<lambda>" in name or "<locals>" in name:
        raise InvalidInput(f"{owner}: the function must be defined at the top level of a module "
                           f"(got {name or function!r}), so keel can find it again")
    try:
        source = textwrap.dedent(inspect.getsource(function))
    except (OSError, TypeError) as exc:
        raise InvalidInput(f"{owner}: cannot read the source of {name}: {exc}") from None
    path = getattr(sys.modules.get(module), "__file__", None)
    return {"module": module, "name": name, "file": path, "sha256": hashlib.sha256(source.encode()).hexdigest()}


def resolve_function(spec: dict[str, Any], owner: str, known: dict[str, Callable[..., Any]], *,
                     changed: str) -> Callable[..., Any]:
    """The function ``spec`` names: one of ``known`` (by ``module:name``), else imported again; its source
    must still be the one stored (``changed`` says what to do when it is not). A function found and checked once
    is kept in ``known`` beside its hash: reading and hashing its source again costs more than most calls of it."""
    key = f"{spec['module']}:{spec['name']}"
    function = known.get(key)
    checked = known.get(f"{key}@sha256:{spec['sha256']}")
    if checked is not None and (function is None or function is checked):
        return checked
    if function is None:
        module = sys.modules.get(spec["module"])
        if module is None:
            try:
                module = importlib.import_module(spec["module"])
            except ImportError:
                if not spec.get("file") or not Path(spec["file"]).exists():
                    raise InvalidInput(f"{owner}: cannot import {spec['module']!r} to find {spec['name']}; run "
                                       "from where it is importable") from None
                module = load_module(spec["file"], spec["module"])
        function = module
        for part in spec["name"].split("."):
            function = getattr(function, part, None)
        if not callable(function):
            raise InvalidInput(f"{owner}: {spec['module']} has no function {spec['name']} any more; {changed}")
        function = inspect.unwrap(function)  # a decorated function (a pipeline @step, functools.wraps) is its own
    if function_json(function, owner)["sha256"] != spec["sha256"]:
        raise InvalidInput(f"{owner}: {spec['name']} changed since it was stored; {changed}")
    known[f"{key}@sha256:{spec['sha256']}"] = function
    return function


def load_module(path: str | Path, name: str | None = None) -> ModuleType:
    """Import a Python file by path, as a module others can find by name (``sys.modules``)."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"no Python file at {path}")
    name = name or f"keel_user_{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise InvalidInput(f"cannot import {path} as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise InvalidInput(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
    return module
