"""One typed Settings object, resolved as: arguments > KEEL_* environment > keel.toml > defaults.

Backends are chosen by URL, so the same code runs embedded (SQLite, local folders) or in team mode
(PostgreSQL, object storage) without a code change.
"""

from __future__ import annotations

import getpass
import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from keel.errors import InvalidInput, WorkspaceNotFound

CONFIG_FILE = "keel.toml"
STATE_DIR = ".keel"
ENV_PREFIX = "KEEL_"

__all__ = ["CONFIG_FILE", "STATE_DIR", "Settings", "find_workspace_root"]


class Settings(BaseModel):
    """Everything keel needs to know to open a workspace."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    root: Path
    metadata_url: str
    data_url: str
    artifacts_url: str
    user: str
    storage_options: dict[str, str] = {}
    sqlite_busy_timeout_ms: int = 30_000
    max_upload_mb: int = 10_240  # the server refuses larger request bodies (413) instead of filling its disk
    feature_cache_mb: int = 1024  # feature views' prepared rows kept in memory (per process), least used out first
    online_url: str | None = None  # the online feature store: default SQLite in .keel/online.db; redis://... in a team
    token_cache_seconds: float = 1.0  # a server re-checks a token it verified this long ago (0: every request)
    webhook_allow_private: bool = False  # alert webhooks may target private, loopback or link-local addresses
    log_level: str | None = None  # keel serve: keel's JSON events from this level to stderr (debug: every answer)

    @classmethod
    def defaults(cls, root: Path) -> dict[str, Any]:
        state = root / STATE_DIR
        return {
            "root": root,
            "metadata_url": f"sqlite:///{state / 'keel.db'}",
            "data_url": str(state / "data"),
            "artifacts_url": str(state / "artifacts"),
            "user": _default_user(),
        }

    @classmethod
    def load(cls, root: Path, env: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Resolve settings for the workspace at ``root`` in precedence order."""
        root = Path(root).resolve()
        values = cls.defaults(root)
        values.update(_read_toml(root / CONFIG_FILE))
        values.update(_from_env(os.environ if env is None else env))
        values.update({k: v for k, v in overrides.items() if v is not None})
        values["root"] = root
        for key in ("data_url", "artifacts_url"):
            values[key] = _absolute_if_local(str(values[key]), root)
        values["metadata_url"] = _absolute_sqlite(str(values["metadata_url"]), root)
        try:
            return cls(**values)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise InvalidInput(f"invalid setting {where!r}: {first['msg']}") from None


def find_workspace_root(start: Path | str | None = None, env: dict[str, str] | None = None) -> Path:
    """Find the workspace like git does: explicit path, then KEEL_WORKSPACE, then walk up from cwd."""
    env = os.environ if env is None else env
    if start is None and env.get("KEEL_WORKSPACE"):
        start = env["KEEL_WORKSPACE"]
        explicit = True
    else:
        explicit = start is not None
    here = Path(start or Path.cwd()).resolve()
    if explicit:
        if (here / CONFIG_FILE).is_file():
            return here
        raise WorkspaceNotFound(f"no keel workspace at {here} (no {CONFIG_FILE}); run `keel init {here}` first")
    for folder in (here, *here.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    raise WorkspaceNotFound(
        f"no keel workspace in {here} or any parent folder; run `keel init` or pass --workspace"
    )


def _default_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "unknown"


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as fh:
            doc = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{path} is not valid TOML: {exc}") from None
    section = doc.get("keel", doc)
    known = set(Settings.model_fields) - {"root"}
    unknown = sorted(set(section) - known)
    if unknown:
        raise InvalidInput(f"{path}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return dict(section)


def _from_env(env: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in Settings.model_fields:
        if field == "root":
            continue
        value = env.get(ENV_PREFIX + field.upper())
        if value is not None and field != "storage_options":
            out[field] = value
    return out


def _absolute_if_local(url: str, root: Path) -> str:
    """Relative local paths in keel.toml are relative to the workspace root, not the cwd."""
    if "://" in url:
        return url
    path = Path(url).expanduser()
    return str(path if path.is_absolute() else (root / path).resolve())


def _absolute_sqlite(url: str, root: Path) -> str:
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url == "sqlite:///:memory:":
        return url
    path = Path(url[len(prefix) :]).expanduser()
    return prefix + str(path if path.is_absolute() else (root / path).resolve())
