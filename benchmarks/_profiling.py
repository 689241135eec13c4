"""Profiling helpers shared by the benchmarks' ``--profile`` modes: a wall-clock breakdown of keel's
own functions and a cProfile report. Not used by the measured runs."""

from __future__ import annotations

import cProfile
import pstats
import sys
import time
from pathlib import Path
from typing import Any

from deltalake import DeltaTable, write_deltalake

PEER_METHODS = {DeltaTable: ("__init__", "update_incremental", "history", "to_pyarrow_dataset", "load_as_version")}


class Breakdown:
    """Wall time of every keel function, found by wrapping them all (µs per call, no profiler).

    Every function and method defined in a loaded ``keel.*`` module is wrapped wherever it is bound
    (so ``from x import f`` names are caught), plus ``write_deltalake`` and a few ``DeltaTable``
    methods. Nothing is listed by name, so the breakdown follows the code as it is refactored.
    ``inclusive`` counts a function's whole call (outermost call only, when recursive); ``self`` leaves
    out the time spent in other wrapped functions, so the self times add up to the total.
    """

    def __init__(self) -> None:
        self.inclusive: dict[str, float] = {}
        self.own: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._undo: list[tuple[Any, str, Any]] = []
        self._wrappers: dict[int, Any] = {}
        self._stack: list[list[Any]] = []  # [label, child seconds]
        self._depth: dict[str, int] = {}

    def install(self) -> None:
        import inspect

        for name, module in list(sys.modules.items()):
            if module is None or not (name == "keel" or name.startswith("keel.")):
                continue
            for attr, value in list(vars(module).items()):
                if inspect.isfunction(value) and _is_keel(value):
                    self._patch(module, attr, value, f"{value.__module__.removeprefix('keel.')}.{value.__qualname__}")
                elif value is write_deltalake:
                    self._patch(module, attr, value, "deltalake.write_deltalake")
                elif inspect.isclass(value) and _is_keel(value) and value.__module__ == name:
                    self._patch_class(value)
        for cls, methods in PEER_METHODS.items():
            for method in methods:
                self._patch(cls, method, cls.__dict__[method], f"deltalake.{cls.__name__}.{method}")

    def _patch_class(self, cls: type) -> None:
        import enum
        import inspect

        if issubclass(cls, enum.Enum) or any(b.__module__.startswith("pydantic") for b in cls.__mro__):
            return
        for attr, value in list(vars(cls).items()):
            if attr.startswith("__"):
                continue
            if isinstance(value, staticmethod | classmethod) and inspect.isfunction(value.__func__):
                label = f"{cls.__module__.removeprefix('keel.')}.{value.__func__.__qualname__}"
                self._patch(cls, attr, value, label, wrap_kind=type(value))
            elif inspect.isfunction(value):
                self._patch(cls, attr, value, f"{cls.__module__.removeprefix('keel.')}.{value.__qualname__}")

    def _patch(self, owner: Any, attr: str, original: Any, label: str, wrap_kind: type | None = None) -> None:
        func = original.__func__ if wrap_kind is not None else original
        wrapper = self._wrappers.get(id(func))
        if wrapper is None:
            wrapper = self._wrappers[id(func)] = self._wrap(func, label)
        self._undo.append((owner, attr, original))
        setattr(owner, attr, wrap_kind(wrapper) if wrap_kind is not None else wrapper)

    def _wrap(self, func: Any, label: str) -> Any:
        import functools

        stack, depth, inclusive, own, calls = self._stack, self._depth, self.inclusive, self.own, self.calls

        @functools.wraps(func)
        def wrapper(*a: Any, **k: Any) -> Any:
            frame = [label, 0.0]
            stack.append(frame)
            depth[label] = depth.get(label, 0) + 1
            start = time.perf_counter()
            try:
                return func(*a, **k)
            finally:
                elapsed = time.perf_counter() - start
                stack.pop()
                depth[label] -= 1
                if depth[label] == 0:
                    inclusive[label] = inclusive.get(label, 0.0) + elapsed
                own[label] = own.get(label, 0.0) + elapsed - frame[1]
                calls[label] = calls.get(label, 0) + 1
                if stack:
                    stack[-1][1] += elapsed

        return wrapper

    def uninstall(self) -> None:
        for owner, attr, original in reversed(self._undo):
            setattr(owner, attr, original)
        self._undo.clear()
        self._wrappers.clear()

    def reset(self) -> None:
        self.inclusive.clear()
        self.own.clear()
        self.calls.clear()

    def report(self, title: str, ops: int, top: int = 30) -> dict[str, dict[str, float]]:
        """Print and return the functions with the most self time, with their inclusive time."""
        total = sum(self.own.values())
        rows = sorted(self.own.items(), key=lambda kv: kv[1], reverse=True)
        print(f"\n== {title}: wall-clock breakdown over {ops} op(s), {total * 1000 / ops:.1f} ms per op in all")
        print(f"{'self ms/op':>10} {'incl ms/op':>10} {'calls/op':>9}  function")
        out = {}
        for label, secs in rows:
            out[label] = {"self_ms": secs * 1000 / ops, "inclusive_ms": self.inclusive.get(label, 0.0) * 1000 / ops,
                          "calls": self.calls[label] / ops}
        for label, v in list(out.items())[:top]:
            print(f"{v['self_ms']:10.2f} {v['inclusive_ms']:10.2f} {v['calls']:9.1f}  {label}")
        self.reset()
        return out


def _is_keel(obj: Any) -> bool:
    module = getattr(obj, "__module__", None) or ""
    return module == "keel" or module.startswith("keel.")


def report_profile(prof: cProfile.Profile, what: str, ops: int, path: Path, top: int = 25) -> None:
    """The functions with the most self time (any package), then keel's own by cumulative time."""
    prof.dump_stats(path)
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    rows = []
    for (filename, line, func), (_cc, ncalls, tottime, cumtime, _callers) in stats.items():
        short = filename.split("/src/")[-1] if "/src/keel/" in filename else filename.split("site-packages/")[-1]
        rows.append((tottime, cumtime, ncalls, f"{short}:{line}({func})", "/src/keel/" in filename))
    print(f"\n== keel {what}: cProfile over {ops} op(s), ms per op (profiler overhead included)")
    print(f"{'self ms/op':>10} {'cum ms/op':>10} {'calls/op':>9}  function (most self time, any package)")
    for self_, cum, n, name, _ in sorted(rows, reverse=True)[:top]:
        print(f"{self_ * 1000 / ops:10.3f} {cum * 1000 / ops:10.3f} {n / ops:9.1f}  {name}")
    print(f"{'cum ms/op':>10} {'self ms/op':>10} {'calls/op':>9}  keel function (by cumulative time)")
    keel_rows = sorted(((cum, self_, n, name) for self_, cum, n, name, k in rows if k), reverse=True)[:top]
    for cum, self_, n, name in keel_rows:
        print(f"{cum * 1000 / ops:10.3f} {self_ * 1000 / ops:10.3f} {n / ops:9.1f}  {name}")
    print(f"(full profile: {path}; `python -m pstats {path}`, or snakeviz)")


