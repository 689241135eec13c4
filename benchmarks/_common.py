"""Helpers shared by the benchmark scripts: timing statistics, machine info, results, peer venvs.

Benchmarks are measurements, not tests: they print a table, write JSON to ``benchmarks/results/``
(gitignored) and exit 0 even when a target is missed. Numbers that go into docs/benchmarks.md come
from these files.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "BENCH_DIR",
    "RESULTS_DIR",
    "Timing",
    "fresh_dir",
    "keel_dependency_versions",
    "machine_info",
    "package_versions",
    "peer_venv",
    "summarize",
    "time_call",
    "write_results",
]

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"


# -- timing ------------------------------------------------------------------------------------------

class Timing(dict):
    """Summary of repeated timings in seconds: n, mean, median, min, max, p50, p95, total."""

    def ms(self, key: str = "median") -> float:
        return self[key] * 1000.0


def summarize(samples: Sequence[float]) -> Timing:
    """Statistics of timing samples (seconds); percentiles by linear interpolation."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    return Timing(
        n=len(ordered), total=sum(ordered), mean=statistics.fmean(ordered), median=statistics.median(ordered),
        min=ordered[0], max=ordered[-1], p50=_percentile(ordered, 50), p95=_percentile(ordered, 95),
        samples=list(samples),
    )


def _percentile(ordered: Sequence[float], q: float) -> float:
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def time_call(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Wall time of one call (``time.perf_counter``) and its result."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


@contextmanager
def fresh_dir(prefix: str, base: str | Path | None = None, keep: bool = False) -> Iterator[Path]:
    """A new empty folder, removed afterwards unless ``keep``."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)


# -- environment --------------------------------------------------------------------------------------

def package_versions(names: Iterable[str]) -> dict[str, str | None]:
    """Installed version of each distribution (None when absent)."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def keel_dependency_versions() -> dict[str, str | None]:
    """keel itself and every runtime dependency it declares (extras excluded), as installed."""
    names = ["keel"]
    for req in metadata.requires("keel") or []:
        if "extra ==" in req:
            continue
        name = req.split(";")[0].strip()
        for sep in "<>=!~[ (":
            name = name.split(sep)[0]
        names.append(name)
    return package_versions(dict.fromkeys(names))


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gb": _memory_gb(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
        "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }
    info["git"] = _git_state()
    return info


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _git_state() -> dict[str, Any] | None:
    """The commit measured, and whether src/ had uncommitted changes (numbers then describe no commit)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_DIR, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=REPO_DIR, capture_output=True,
                               text=True, check=True).stdout.strip() != ""
    except (OSError, subprocess.CalledProcessError):
        return None
    return {"commit": commit, "src_dirty": dirty}


# -- results ------------------------------------------------------------------------------------------

def write_results(name: str, payload: dict[str, Any], machine: dict[str, Any] | None = None) -> Path:
    """Write ``benchmarks/results/<name>.json`` with a timestamp and the machine info added.

    Pass ``machine`` as captured when the run started (the code and the load can change during a run).
    """
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    doc = {"benchmark": name, "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
           "machine": machine or machine_info(), **payload}
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
    return path


# -- peers in their own venv --------------------------------------------------------------------------

def peer_venv(name: str, requirements: Sequence[str], *, python: str | None = None,
              recreate: bool = False) -> Path:
    """A venv at ``benchmarks/.venv-<name>`` with ``requirements`` installed; returns its python.

    For peers whose pins clash with keel's (MLflow, Feast, Evidently): the benchmark runs the peer's
    side in a subprocess with this interpreter. The requirements are written to
    ``requirements.txt`` inside the venv after a successful install, and the install is skipped
    when they are unchanged. ``benchmarks/.venv*`` is gitignored.
    """
    venv = BENCH_DIR / f".venv-{name}"
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    exe = bindir / ("python.exe" if os.name == "nt" else "python")
    stamp = venv / "requirements.txt"
    wanted = "\n".join(requirements) + "\n"
    if recreate and venv.exists():
        shutil.rmtree(venv)
    if exe.exists() and stamp.exists() and stamp.read_text(encoding="utf-8") == wanted:
        return exe
    if not exe.exists():
        subprocess.run([python or sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(exe), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
    pending = venv / "requirements.pending.txt"
    pending.write_text(wanted, encoding="utf-8")
    subprocess.run([str(exe), "-m", "pip", "install", "--quiet", "-r", str(pending)], check=True)
    pending.replace(stamp)  # only a finished install counts as installed
    return exe
