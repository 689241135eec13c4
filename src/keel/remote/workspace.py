"""RemoteWorkspace: ``keel.open("http://host:8080", token=...)`` — a workspace whose services talk to a server.

It offers the embedded Workspace's services under the same names (``ws.data``, ``ws.features``, ``ws.runs``,
``ws.models``, ``ws.gates``, ``ws.deployments``, ``ws.predictions``, ``ws.lineage``, ``ws.audit``, ``ws.users``,
``ws.tokens``), with the same methods and return types for what the server exposes, so the same user code runs
embedded and remote. Every request acts as the user the token names; the server enforces that user's role.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from keel.errors import InvalidInput
from keel.remote.admin import RemoteAudit, RemoteLineage, RemoteTokens, RemoteUsers
from keel.remote.client import Client
from keel.remote.data import RemoteDataService
from keel.remote.deployments import RemoteDeploymentService
from keel.remote.features import RemoteFeatureService
from keel.remote.gates import RemoteGateService
from keel.remote.incidents import RemoteIncidentService
from keel.remote.models import RemoteModelService
from keel.remote.monitors import RemoteMonitorService
from keel.remote.pipelines import RemotePipelineService, RemoteRetrainService
from keel.remote.predictions import RemotePredictionService
from keel.remote.runs import RemoteRunService

__all__ = ["RemoteWorkspace"]


class RemoteWorkspace:
    """A keel server's workspace, as the user of ``token`` (``KEEL_TOKEN`` when not given)."""

    def __init__(self, url: str, *, token: str | None = None, timeout: float = 60.0,
                 max_points: int = 20_000, flush_interval_s: float = 1.0,
                 event_hooks: dict[str, list[Callable[..., Any]]] | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise InvalidInput(f"a server URL starts with http:// or https://, not {url!r}")
        token = token or os.environ.get("KEEL_TOKEN") or None
        self.url = url.rstrip("/")
        self._client = Client(self.url, token, timeout=timeout, event_hooks=event_hooks)
        self.data = RemoteDataService(self._client)
        self.features = RemoteFeatureService(self._client, self.data)
        self.runs = RemoteRunService(self._client, max_points=max_points, interval_s=flush_interval_s)
        self.models = RemoteModelService(self._client, self.runs)
        self.runs.model_logger = self.models.log_model
        self.gates = RemoteGateService(self._client)
        self.deployments = RemoteDeploymentService(self._client)
        self.predictions = RemotePredictionService(self._client)
        self.monitors = RemoteMonitorService(self._client)
        self.incidents = RemoteIncidentService(self._client)
        self.pipelines = RemotePipelineService(self._client)
        self.retraining = RemoteRetrainService(self._client)
        self.lineage = RemoteLineage(self._client)
        self.audit = RemoteAudit(self._client)
        self.users = RemoteUsers(self._client)
        self.tokens = RemoteTokens(self._client)
        self._user: str | None = None

    @property
    def user(self) -> str:
        """Who the token is (asked of the server once)."""
        if self._user is None:
            self._user = self.users.me().name
        return self._user

    @property
    def root(self) -> Any:
        raise InvalidInput(f"a remote workspace ({self.url}) has no local folder; its files live on the server")

    def check(self) -> RemoteWorkspace:
        """Fail now, with a clear error, if the server is unreachable or refuses the token."""
        self._user = self.users.me().name
        return self

    def close(self) -> None:
        """Send what is still buffered, then close the connections."""
        try:
            self.runs.close()
        finally:
            self._client.close()

    def __enter__(self) -> RemoteWorkspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RemoteWorkspace({self.url!r})"
