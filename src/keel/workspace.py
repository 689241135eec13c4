"""The Workspace: the composition root. It builds the stores from Settings and exposes capabilities.

Nothing else constructs stores; every surface (SDK, CLI, REST, UI) goes through a Workspace.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url as sa_make_url

from keel.audit import AuditLog
from keel.data.service import DataService
from keel.errors import Conflict, InvalidInput, NotFound
from keel.features.frames import FrameCache
from keel.features.service import FeatureService
from keel.features.shared import SharedState
from keel.gates.service import GateService
from keel.lineage import LineageService
from keel.models.service import ModelService
from keel.monitoring.incidents import IncidentService
from keel.monitoring.service import MonitorService
from keel.pipelines.service import PipelineService
from keel.refs import parse_ref
from keel.retraining.service import RetrainService
from keel.serving.batch import PredictionService
from keel.serving.service import DeploymentService
from keel.settings import CONFIG_FILE, STATE_DIR, Settings, find_workspace_root
from keel.storage.artifacts import ArtifactStore
from keel.storage.db import Database
from keel.storage.online import OnlineStore, open_online_store
from keel.storage.tables import TableStore
from keel.tokens import TokenService
from keel.tracking.autolog import Autolog
from keel.tracking.autolog import autolog as _autolog
from keel.tracking.buffer import MetricBuffer
from keel.tracking.service import RunService
from keel.users import UserService

__all__ = ["Workspace", "autolog", "init", "open_for_step", "open_workspace"]

_CONFIG_TEMPLATE = """\
# keel workspace settings. Precedence: arguments > KEEL_* environment > this file > defaults.
[keel]
# metadata_url = "postgresql+psycopg://user@host:5432/keel"   # default: SQLite in .keel/keel.db
# data_url = "s3://bucket/keel/data"                           # default: .keel/data
# artifacts_url = "s3://bucket/keel/artifacts"                 # default: .keel/artifacts
"""


class Workspace:
    """One keel workspace: ``ws.data``, ``ws.features``, ``ws.runs``, ``ws.models``, ``ws.gates``,
    ``ws.deployments``, ``ws.predictions``, ``ws.monitors``, ``ws.incidents``, ``ws.pipelines``, ``ws.retraining``,
    ``ws.users``,
    ``ws.tokens``,
    ``ws.lineage``, ``ws.audit``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings.metadata_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
        self.db.migrate()
        self.tables = TableStore(settings.data_url, settings.storage_options)
        self.artifacts = ArtifactStore(settings.artifacts_url, settings.storage_options)
        self.lineage = LineageService(self.db)
        self.audit = AuditLog(self.db)
        self._features = SharedState(FrameCache(settings.feature_cache_mb * 1024 * 1024), _registry_id(self.db.url))
        self._online: list[OnlineStore] = []  # opened on first use, shared by every view of the workspace
        self._wire(settings.user)

    def _wire(self, user: str, buffer: MetricBuffer | None = None) -> None:
        """The capability services, acting as ``user``, over this workspace's stores."""
        self.data = DataService(self.db, self.tables, self.artifacts, self.lineage, self.audit, user)
        self.features = FeatureService(self.db, self.data, self.lineage, self.audit, user, self.settings.root,
                                       self._features, self.online_store)
        self.runs = RunService(self.db, self.artifacts, self.lineage, self.audit, user, self.canonical_ref,
                               self.settings.root, self.data, buffer)
        self.users = UserService(self.db, self.audit, user)
        self.tokens = TokenService(self.db, self.audit, user)
        self.models = ModelService(self.db, self.artifacts, self.lineage, self.audit, self.users, self.runs, user,
                                   self.settings.root)
        self.runs.model_logger = self.models.log_model
        self.gates = GateService(self.db, self.data, self.models, self.runs, self.lineage, self.audit, self.users,
                                 user, self.settings.root)
        self.models.release_check = self.gates.release_check
        self.deployments = DeploymentService(self.db, self.models, self.lineage, self.audit, self.users, user,
                                             self.data, self.runs)
        self.predictions = PredictionService(self.db, self.data, self.models, self.lineage, self.audit, user)
        self.monitors = MonitorService(self.db, self.data, self.models, self.runs, self.deployments, self.artifacts,
                                       self.lineage, self.audit, user,
                                       allow_private_webhooks=self.settings.webhook_allow_private)
        self.incidents = IncidentService(self.db, self.models, self.runs, self.deployments, self.lineage, self.audit,
                                         user)
        self.pipelines = PipelineService(self.db, self.lineage, self.audit, user, self.canonical_ref, lambda: self,
                                         open_for_step, self.settings.model_dump(mode="json"))
        self.retraining = RetrainService(self.db, self.data, self.models, self.gates, self.deployments, self.monitors,
                                         self.pipelines, self.runs, self.lineage, self.audit, self.users, user)

    def acting_as(self, user: str) -> Workspace:
        """The same workspace (database, stores, metric buffer) with ``user`` acting: audit rows, approvals and
        ``created_by`` name them. The server makes one per authenticated user; closing it closes nothing."""
        view = object.__new__(Workspace)
        view.settings = self.settings.model_copy(update={"user": user})
        view.db, view.tables, view.artifacts = self.db, self.tables, self.artifacts
        view.lineage, view.audit = self.lineage, self.audit
        view._features = self._features
        view._online = self._online
        view._wire(user, self.runs._buffer)
        view._view_of = self
        return view

    def online_store(self) -> OnlineStore:
        """The online feature store ``online_url`` names (SQLite in .keel/online.db by default)."""
        if not self._online:
            url = self.settings.online_url or f"sqlite:///{self.settings.root / STATE_DIR / 'online.db'}"
            self._online.append(open_online_store(url))
        return self._online[0]

    @property
    def root(self) -> Path:
        return self.settings.root

    @property
    def user(self) -> str:
        return self.settings.user

    def canonical_ref(self, text: str) -> str:
        """The lineage form of a user's ref: ``listings`` → ``table:listings@7`` (the latest version)."""
        ref = parse_ref(text)
        if ref.kind in (None, "table") and self.data.catalog.dataset(ref.name) is not None:
            return self.data.version(ref).ref
        if ref.kind in (None, "split"):
            try:
                return self.data.split_info(ref).ref
            except NotFound:
                if ref.kind == "split":
                    raise
        if ref.kind in (None, "model") and ref.timestamp is None and self.models.exists(ref.name):
            return self.models.resolve(text)
        if ref.kind is None:
            raise NotFound(f"nothing is named {text!r}: no table, split or model of that name")
        return str(ref)

    def close(self) -> None:
        if getattr(self, "_view_of", None) is not None:
            self.runs.flush()  # a view shares its owner's buffer and database: the owner closes them
            return
        self.runs.close()  # buffered metric points reach the database
        for store in self._online:
            store.close()
        self._online.clear()
        self.db.dispose()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"


def _registry_id(metadata_url: str) -> str:
    """A short, stable name for the metadata store (without its credentials): the online store keeps each
    registry's rows apart, so workspaces may share one Redis."""
    url = sa_make_url(metadata_url).render_as_string(hide_password=True) if "://" in metadata_url else metadata_url
    return hashlib.sha256(url.encode()).hexdigest()[:12]


def init(path: str | Path = ".", *, exist_ok: bool = False, **settings: Any) -> Workspace:
    """Create ``keel.toml`` and ``.keel/`` at ``path`` and open the new workspace."""
    root = Path(path).resolve()
    if root.exists() and not root.is_dir():
        raise InvalidInput(f"{root} exists and is not a folder")
    config = root / CONFIG_FILE
    if config.exists() and not exist_ok:
        raise Conflict(f"{root} is a keel workspace already ({CONFIG_FILE} exists); open it with keel.open()")
    root.mkdir(parents=True, exist_ok=True)
    (root / STATE_DIR).mkdir(mode=0o700, exist_ok=True)
    if not config.exists():
        config.write_text(_CONFIG_TEMPLATE, encoding="utf-8")
        os.chmod(config, 0o600)
    return Workspace(Settings.load(root, **settings))


def open_workspace(path: str | Path | None = None, *, token: str | None = None, **settings: Any) -> Workspace:
    """Open the workspace at ``path``, else $KEEL_WORKSPACE, else the nearest one above the cwd.

    A server URL (``path``, else $KEEL_URL) opens a ``keel.remote.RemoteWorkspace`` instead, as the user of
    ``token`` (else $KEEL_TOKEN): same services, same methods, over HTTP.
    """
    url = path if isinstance(path, str) else os.environ.get("KEEL_URL") if path is None else None
    if url and url.startswith(("http://", "https://")):
        from keel.remote import RemoteWorkspace  # imported only when used: httpx stays out of embedded imports

        return RemoteWorkspace(url, token=token, **settings)  # type: ignore[return-value]
    return Workspace(Settings.load(find_workspace_root(path), **settings))


def open_for_step(**settings: Any) -> Workspace:
    """The workspace a pipeline step opens in a worker process, from its caller's settings (keel.pipelines)."""
    return Workspace(Settings(**settings))


def autolog(workspace: Workspace | None = None, **options: Any) -> Autolog:
    """Log every scikit-learn fit as a run (params, metrics, model; evaluation and importance with ``split=``).

    Options: ``experiment`` ("autolog"), ``model_name`` (default: the experiment), ``split`` (a split ref),
    ``log_models``, ``evaluate``, ``importance`` (all True). Returns a handle: ``.disable()`` or ``with``.
    """
    return _autolog((workspace or open_workspace()).runs, **options)
