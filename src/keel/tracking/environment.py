"""Environment capture for runs: what ran, where, and with which package versions.

A metric is only reproducible if the environment that produced it is known, and a model only behaves in
production as it did in development if the package versions match. Every run therefore records Python,
platform, installed distributions, keel's version, the git state of the working folder and who ran it
where; `requirements_text` turns that into a pip requirements file and `diff_environments` shows what
differs between two runs (or between training and serving).

Capture is cheap by design: the static parts (Python, platform, the installed distributions, keel's
version) are read once per process and cached, because scanning site-packages costs tens of milliseconds
and distributions do not change during a run. Code that installs packages mid-process and wants them
seen must call `clear_cache()`. The only per-call subprocess is a single `git status`.
"""

from __future__ import annotations

import functools
import getpass
import importlib.metadata
import os
import platform
import re
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

GIT_TIMEOUT_SECONDS = 2.0
_NORMALIZE = re.compile(r"[-_.]+")
_GIT_STATUS = ("status", "--porcelain=v2", "--branch", "--untracked-files=no")


def normalize_name(name: str) -> str:
    """PEP 503 normalised distribution name, so `Scikit_Learn` and `scikit-learn` are one package."""
    return _NORMALIZE.sub("-", name).lower()


@functools.lru_cache(maxsize=1)
def _static() -> tuple[tuple[tuple[str, str], ...], dict[str, str], dict[str, str], str]:
    """Per-process snapshot of what cannot change during a run (see module docstring)."""
    packages: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name, version = dist.metadata["Name"], dist.version
        if name and version:
            packages.setdefault(normalize_name(name), version)  # first on sys.path wins, as for import
    python = {"version": platform.python_version(), "implementation": platform.python_implementation()}
    plat = {"platform": platform.platform(), "machine": platform.machine()}
    return tuple(sorted(packages.items())), python, plat, _keel_version()


def clear_cache() -> None:
    """Forget the cached snapshot, e.g. after installing packages in this process."""
    _static.cache_clear()
    _git_seen.clear()


def _keel_version() -> str:
    try:
        return importlib.metadata.version("keel")
    except importlib.metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown (not installed)"


def _user() -> str | None:
    try:
        return getpass.getuser()
    except Exception:  # no USER/LOGNAME and no passwd entry (containers): fall back to the uid
        return f"uid:{os.getuid()}" if hasattr(os, "getuid") else None


def git_state(folder: str | Path | None = None) -> dict[str, Any] | None:
    """Commit, branch and dirty flag of the work tree holding `folder`; None if there is none or git is missing.

    One `git status --porcelain=v2 --branch` call gives all three. The branch is None on a detached HEAD
    and the commit is None before the first commit. Untracked files do not make a tree dirty.
    """
    cmd = ["git", "-c", "core.fsmonitor=false", "-C", str(folder or os.getcwd()), *_GIT_STATUS]
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}  # never take the index lock of a user's repo
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=GIT_TIMEOUT_SECONDS, env=env, check=False)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    if proc.returncode != 0:
        return None
    commit: str | None = None
    branch: str | None = None
    dirty = False
    for line in proc.stdout.splitlines():
        if line.startswith("# branch.oid "):
            oid = line.removeprefix("# branch.oid ").strip()
            commit = None if oid == "(initial)" else oid
        elif line.startswith("# branch.head "):
            head = line.removeprefix("# branch.head ").strip()
            branch = None if head == "(detached)" else head
        elif line and not line.startswith("#"):
            dirty = True
    return {"commit": commit, "branch": branch, "dirty": dirty}


GIT_REUSE_SECONDS = 5.0
_git_seen: dict[str, tuple[float, dict[str, Any] | None]] = {}


def _recent_git_state(folder: str) -> dict[str, Any] | None:
    """git_state, re-used for a few seconds: a sweep starting hundreds of runs should not spawn git for
    each, and a commit made between runs is still seen by runs started seconds later."""
    now = time.monotonic()
    seen = _git_seen.get(folder)
    if seen is None or now - seen[0] > GIT_REUSE_SECONDS:
        seen = _git_seen[folder] = (now, git_state(folder))
    return dict(seen[1]) if seen[1] is not None else None


def capture_environment(folder: str | Path | None = None) -> dict[str, Any]:
    """JSON-serialisable description of this process's environment; `folder` (default: cwd) is used for git."""
    packages, python, plat, keel_version = _static()
    try:
        hostname = socket.gethostname()
    except OSError:
        hostname = platform.node()
    return {
        "python": dict(python),
        "platform": dict(plat),
        "packages": dict(packages),
        "keel_version": keel_version,
        "git": _recent_git_state(str(folder or os.getcwd())),
        "hostname": hostname,
        "user": _user(),
        "pid": os.getpid(),
        "cwd": os.getcwd(),
    }


def requirements_text(environment: dict[str, Any]) -> str:
    """The environment's installed distributions as a pip requirements file (`name==version`, sorted)."""
    packages = environment.get("packages") or {}
    return "".join(f"{name}=={packages[name]}\n" for name in sorted(packages))


def diff_environments(a: dict[str, Any], b: dict[str, Any]) -> dict[str, tuple[str | None, str | None]]:
    """What differs from `a` to `b`: {package: (version in a, version in b)}, None where absent, plus "python"."""
    pa, pb = a.get("packages") or {}, b.get("packages") or {}
    names = sorted(pa.keys() | pb.keys())
    diff = {name: (pa.get(name), pb.get(name)) for name in names if pa.get(name) != pb.get(name)}
    va, vb = (a.get("python") or {}).get("version"), (b.get("python") or {}).get("version")
    if va != vb:
        diff["python"] = (va, vb)
    return diff
