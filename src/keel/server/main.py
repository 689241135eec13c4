"""Run the server: ``keel server`` (CLI) calls ``serve``; uvicorn's workers call ``app_from_env``."""

from __future__ import annotations

import json
import os
import sys

from keel.errors import InvalidInput
from keel.server.app import create_app
from keel.server.security import HostGuard, is_loopback
from keel.workspace import open_workspace

__all__ = ["app_from_env", "serve"]

_ENV = "KEEL_SERVER_OPTIONS"


def serve(workspace_path: str | None, *, host: str = "127.0.0.1", port: int = 8080, workers: int = 1,
          auth: bool = True, allowed_hosts: list[str] | None = None, log_level: str = "info") -> None:
    """Serve until interrupted. Auth is on unless ``auth=False`` on a loopback host (one user, a laptop)."""
    if not auth and not is_loopback(host):
        raise InvalidInput(f"--no-auth is allowed only on a loopback address (127.0.0.1, ::1, localhost), not {host}")
    if workers < 1:
        raise InvalidInput("--workers must be at least 1")
    if not auth:
        print("warning: authentication is OFF; anyone who can reach this port acts as you", file=sys.stderr)
    import uvicorn

    hosts = [*(allowed_hosts or []), *([] if is_loopback(host) or host in ("0.0.0.0", "::") else [host])]
    os.umask(0o077)  # every file the server writes (Delta tables by deltalake too) is 0600, every folder 0700
    root = str(open_workspace(workspace_path).root)  # fail here, not in a worker, if there is no workspace
    os.environ[_ENV] = json.dumps({"workspace": root, "auth": auth, "allowed_hosts": hosts})
    uvicorn.run("keel.server.main:app_from_env", factory=True, host=host, port=port, workers=workers,
                log_level=log_level, proxy_headers=False, server_header=False)


def app_from_env() -> HostGuard:
    """The app for one uvicorn worker, from the options ``serve`` put in the environment."""
    options = json.loads(os.environ[_ENV])
    return create_app(open_workspace(options["workspace"]), auth=options["auth"],
                      allowed_hosts=options["allowed_hosts"])
