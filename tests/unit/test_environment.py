"""tracking/environment.py: what a run records about its environment, as requirements, diffs and git state."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from keel.tracking.environment import (
    capture_environment,
    clear_cache,
    diff_environments,
    git_state,
    normalize_name,
    requirements_text,
)

KEYS = {"python", "platform", "packages", "keel_version", "git", "hostname", "user", "pid", "cwd"}


def _git(folder: Path, *args: str) -> str:
    config = ["-c", "user.name=Test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false"]
    cmd = ["git", *config, "-C", str(folder), *args]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh git repo on branch `trunk` with one committed file, isolated from /work/main's repo."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    folder = tmp_path / "repo"
    folder.mkdir()
    _git(folder, "init", "-q", "-b", "trunk")
    (folder / "train.py").write_text("print('v1')\n")
    _git(folder, "add", "train.py")
    _git(folder, "commit", "-q", "-m", "first")
    return folder


def test_keys_present_and_json_serialisable(tmp_path: Path) -> None:
    env = capture_environment(tmp_path)
    assert set(env) == KEYS
    assert json.loads(json.dumps(env)) == env
    assert env["pid"] == os.getpid()
    assert env["cwd"] == os.getcwd()
    assert env["hostname"]
    assert env["user"]
    assert env["platform"]["machine"]
    assert env["platform"]["platform"]


def test_python_version_matches_interpreter() -> None:
    env = capture_environment()
    major, minor, micro = sys.version_info[:3]
    assert env["python"]["version"] == f"{major}.{minor}.{micro}"
    assert env["python"]["implementation"] == sys.implementation.name.replace("cpython", "CPython")


def test_packages_have_installed_versions_and_normalised_names() -> None:
    packages = capture_environment()["packages"]
    assert packages["numpy"] == importlib.metadata.version("numpy")
    assert packages["pyarrow"] == importlib.metadata.version("pyarrow")
    assert packages["sqlalchemy"] == importlib.metadata.version("SQLAlchemy")  # published as "SQLAlchemy"
    assert packages["pyyaml"] == importlib.metadata.version("PyYAML")
    assert all(name == normalize_name(name) for name in packages)
    assert normalize_name("Zope.Interface__x") == "zope-interface-x"


def test_keel_version_recorded() -> None:
    env = capture_environment()
    assert env["keel_version"] == importlib.metadata.version("keel")
    assert env["packages"]["keel"] == env["keel_version"]


def test_requirements_text_is_a_sorted_pin_per_package() -> None:
    env = capture_environment()
    lines = requirements_text(env).splitlines()
    pins = [re.fullmatch(r"([a-z0-9][a-z0-9-]*)==(\S+)", line) for line in lines]
    assert all(pins), [line for line, pin in zip(lines, pins, strict=True) if not pin]
    names = [pin.group(1) for pin in pins if pin]
    assert names == sorted(names)
    assert f"keel=={env['keel_version']}" in lines
    assert {pin.group(1): pin.group(2) for pin in pins if pin} == env["packages"]


def test_git_commit_branch_and_dirty_flag(repo: Path) -> None:
    git = capture_environment(repo)["git"]
    assert git == {"commit": _git(repo, "rev-parse", "HEAD"), "branch": "trunk", "dirty": False}

    (repo / "notes.txt").write_text("untracked files do not count\n")
    assert git_state(repo)["dirty"] is False

    (repo / "train.py").write_text("print('v2')\n")
    assert git_state(repo)["dirty"] is True


def test_git_detached_head_and_empty_repo(repo: Path, tmp_path: Path) -> None:
    _git(repo, "checkout", "-q", "--detach")
    assert git_state(repo) == {"commit": _git(repo, "rev-parse", "HEAD"), "branch": None, "dirty": False}

    empty = tmp_path / "empty"
    empty.mkdir()
    _git(empty, "init", "-q", "-b", "main")
    assert git_state(empty) == {"commit": None, "branch": "main", "dirty": False}


def test_git_uses_cwd_by_default(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo)
    assert capture_environment()["git"]["commit"] == _git(repo, "rev-parse", "HEAD")


def test_git_is_none_outside_a_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    folder = tmp_path / "plain"
    folder.mkdir()
    assert capture_environment(folder)["git"] is None
    assert capture_environment(tmp_path / "does-not-exist")["git"] is None


def test_git_is_none_when_git_is_missing(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    assert capture_environment(repo)["git"] is None


def test_diff_reports_changed_added_removed_and_python() -> None:
    a = {"python": {"version": "3.11.7"}, "packages": {"numpy": "1.26.4", "pandas": "2.2.0", "scipy": "1.13.0"}}
    b = {"python": {"version": "3.12.1"}, "packages": {"numpy": "2.0.0", "pandas": "2.2.0", "polars": "1.0.0"}}
    assert diff_environments(a, b) == {
        "numpy": ("1.26.4", "2.0.0"),
        "polars": (None, "1.0.0"),
        "scipy": ("1.13.0", None),
        "python": ("3.11.7", "3.12.1"),
    }
    assert diff_environments(a, a) == {}
    env = capture_environment()
    assert diff_environments(env, capture_environment()) == {}


def test_second_capture_is_fast(repo: Path) -> None:
    capture_environment(repo)
    start = time.perf_counter()
    env = capture_environment(repo)
    elapsed = time.perf_counter() - start
    assert env["git"] is not None  # the timed call included the git subprocess
    assert elapsed < 0.1, f"second capture took {elapsed * 1000:.1f} ms"


def test_capture_returns_copies_of_the_cached_snapshot() -> None:
    env = capture_environment()
    env["packages"]["numpy"] = "0.0.0"
    env["python"]["version"] = "0.0.0"
    again = capture_environment()
    assert again["packages"]["numpy"] == importlib.metadata.version("numpy")
    assert again["python"]["version"] != "0.0.0"


def test_packages_are_scanned_once_per_process_until_cleared(monkeypatch: pytest.MonkeyPatch) -> None:
    scans = []
    real = importlib.metadata.distributions

    def counting() -> object:
        scans.append(1)
        return real()

    monkeypatch.setattr(importlib.metadata, "distributions", counting)
    clear_cache()
    capture_environment()
    capture_environment()
    assert len(scans) == 1
    clear_cache()
    assert capture_environment()["packages"]["numpy"] == importlib.metadata.version("numpy")
    assert len(scans) == 2
