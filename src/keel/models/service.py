"""``ws.models``: package and register models, resolve refs, load safely, move aliases, approve, promote.

Version numbers come from a counter on the registered model's row, incremented in the same transaction
that inserts the version: the row lock (PostgreSQL) or the write lock (SQLite) serialises concurrent
registrations, so versions are 1, 2, 3… with no duplicates and no gaps. The package is uploaded first,
under a random key, so a failed registration leaves no version behind (only unreferenced bytes).
"""

from __future__ import annotations

import hashlib
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from keel.audit import AuditLog
from keel.errors import InvalidInput, InvalidRef, NotFound, PermissionDenied
from keel.lineage import Edge, LineageService
from keel.models.describe import describe_version, diff_versions
from keel.models.flavors import flavor_for, flavor_named
from keel.models.loaded import LoadedModel
from keel.models.model import (
    CARD_FIELDS,
    ENVIRONMENTS,
    AliasEvent,
    Approval,
    ModelCard,
    ModelVersion,
    RegisteredModel,
)
from keel.models.package import MANIFEST, Manifest, read_manifest, verify_files, verify_folder, write_package
from keel.models.signature import Signature, infer_signature, probe_missing, to_frame
from keel.refs import Ref, check_name, parse_ref
from keel.storage.artifacts import ArtifactStore
from keel.storage.db import Database, insert_ignoring_duplicates
from keel.storage.schema import (
    model_alias_history,
    model_aliases,
    model_approvals,
    model_cards,
    model_versions,
    registered_models,
)
from keel.tracking.environment import capture_environment
from keel.users import UserService, role_allows

if TYPE_CHECKING:
    from keel.tracking.run import Run
    from keel.tracking.service import RunService

__all__ = ["ModelService", "package_model"]

RESERVED_ALIASES = frozenset({"latest"})


class ModelService:
    """Every registry operation; the CLI, REST API and UI call exactly these methods."""

    def __init__(self, db: Database, artifacts: ArtifactStore, lineage: LineageService, audit: AuditLog,
                 users: UserService, runs: RunService, user: str, root: Path) -> None:
        self._db, self._artifacts, self._lineage, self._audit = db, artifacts, lineage, audit
        self._users, self._runs, self._user, self._root = users, runs, user, root
        self._environments: dict[str, dict[str, Any]] = {}
        # What a promotion to staging or production asks first (the Workspace wires the release gates in):
        # (version, environment) -> a summary for the audit row, or raises GatesFailed.
        self.release_check: Callable[[ModelVersion, str], dict[str, Any] | None] | None = None

    # -- registration --------------------------------------------------------------------------------

    def log_model(self, run: Run | str, model: Any, name: str, **options: Any) -> ModelVersion:
        """``run.log_model(...)``: register ``model`` as a version produced by ``run``."""
        return self.register(model, name, run=run, **options)

    def register(self, model: Any, name: str, *, run: Run | str | None = None, input_example: Any = None,
                 signature: Signature | dict | None = None, flavor: str | None = None,
                 description: str | None = None) -> ModelVersion:
        """Package ``model`` (hashes, signature, requirements) and store it as the next version of ``name``."""
        check_name(name, "model name")
        run_id = None if run is None else (run if isinstance(run, str) else run.id).removeprefix("run:")
        environment = self._run_environment(run_id) if run_id else capture_environment(self._root)
        with tempfile.TemporaryDirectory(prefix="keel-model-") as tmp:
            manifest, manifest_sha = package_model(model, Path(tmp), flavor=flavor, input_example=input_example,
                                                   signature=signature, environment=environment, run_id=run_id)
            return self._store(Path(tmp), name, manifest, manifest_sha, run_id, description)

    def register_package(self, folder: Path, name: str, *, run: str | None = None,
                         description: str | None = None) -> ModelVersion:
        """Store a package written elsewhere (a remote client's upload) as the next version of ``name``.

        Only the manifest (a safe YAML subset) is parsed and every file hashed against it; nothing in the
        package is deserialised, so an uploaded pickle never runs here.
        """
        check_name(name, "model name")
        data = (folder / MANIFEST).read_bytes() if (folder / MANIFEST).is_file() else b""
        if not data:
            raise InvalidInput(f"the package has no {MANIFEST}")
        manifest = read_manifest(data, None)
        verify_folder(manifest, folder)
        run_id = None if run is None else run.removeprefix("run:")
        if run_id != manifest.run_id:
            raise InvalidInput(f"the package was made by run {manifest.run_id!r}, not {run_id!r}")
        if run_id is not None:
            self._runs.get(run_id)  # NotFound before anything is stored
        return self._store(folder, name, manifest, hashlib.sha256(data).hexdigest(), run_id, description)

    def _store(self, folder: Path, name: str, manifest: Manifest, manifest_sha: str, run_id: str | None,
               description: str | None) -> ModelVersion:
        """Upload a verified package under a fresh key, then take the next version number in one transaction."""
        prefix = f"models/{name}/packages/{uuid.uuid4().hex}"
        size = sum(self._artifacts.put_file(f"{prefix}/{p.name}", p).size for p in sorted(folder.iterdir()))

        def insert(conn: sa.Connection) -> ModelVersion:
            now = datetime.now(UTC)
            insert_ignoring_duplicates(conn, registered_models, [
                {"name": name, "latest_version": 0, "created_at": now, "created_by": self._user}])
            conn.execute(registered_models.update().where(registered_models.c.name == name)
                         .values(latest_version=registered_models.c.latest_version + 1))
            number = conn.execute(sa.select(registered_models.c.latest_version)
                                  .where(registered_models.c.name == name)).scalar_one()
            version = ModelVersion(model=name, version=number, run_id=run_id, flavor=manifest.flavor,
                                   model_class=manifest.model_class, package_key=prefix,
                                   manifest_sha256=manifest_sha, signature=manifest.signature, size=size,
                                   description=description, created_at=now, created_by=self._user)
            conn.execute(model_versions.insert().values(
                model=name, version=number, run_id=run_id, flavor=manifest.flavor, model_class=manifest.model_class,
                package_key=prefix, manifest_sha256=manifest_sha, signature=version.signature, size=size,
                description=description, created_at=now, created_by=self._user))
            if run_id:
                self._lineage.add(conn, [Edge(f"run:{run_id}", version.ref, "produced")])
            self._audit.record(conn, actor=self._user, action="model.register", target=version.ref,
                               details={"flavor": manifest.flavor, "run": run_id, "manifest_sha256": manifest_sha})
            return version

        try:
            return self._db.retrying(insert)
        except BaseException:
            for key in self._artifacts.list(prefix + "/"):
                self._artifacts.delete(key)
            raise

    def _run_environment(self, run_id: str) -> dict[str, Any]:
        """A run's environment (it never changes), kept for the next version the same run registers."""
        if run_id not in self._environments:
            if len(self._environments) >= 32:
                self._environments.pop(next(iter(self._environments)))
            self._environments[run_id] = self._runs.get(run_id).environment or {}
        return self._environments[run_id]

    # -- reading -------------------------------------------------------------------------------------

    def list(self) -> list[RegisteredModel]:
        with self._db.read() as conn:
            rows = conn.execute(sa.select(registered_models).order_by(registered_models.c.name)).all()
            aliases = conn.execute(
                sa.select(model_aliases.c.model, model_aliases.c.alias, model_aliases.c.version)).all()
        by_model: dict[str, dict[str, int]] = {}
        for model, alias, version in aliases:
            by_model.setdefault(model, {})[alias] = version
        return [RegisteredModel(**r._mapping, aliases=by_model.get(r.name, {})) for r in rows]

    def get(self, name: str) -> RegisteredModel:
        with self._db.read() as conn:
            return self._registered(conn, name)

    def versions(self, name: str) -> list[ModelVersion]:
        with self._db.read() as conn:
            self._registered(conn, name)
            rows = conn.execute(sa.select(model_versions).where(model_versions.c.model == name)
                                .order_by(model_versions.c.version)).all()
            aliases = self._aliases_by_version(conn, name)
        return [ModelVersion(**r._mapping, aliases=aliases.get(r.version, [])) for r in rows]

    def version(self, ref: str) -> ModelVersion:
        """Resolve ``price/3``, ``price@champion``, ``price@production``, ``price@latest`` or ``price``."""
        with self._db.read() as conn:
            return self._version(conn, ref)

    def resolve(self, ref: str) -> str:
        """The lineage ref a model ref names: ``price@champion`` → ``model:price/3``."""
        return self.version(ref).ref

    def exists(self, name: str) -> bool:
        with self._db.read() as conn:
            return conn.execute(sa.select(registered_models.c.name).where(registered_models.c.name == name)).first() \
                is not None

    def load(self, ref: str, *, trusted: bool = False, extra: str = "drop") -> LoadedModel:
        """The model, after checking every file of its package against the hashes pinned at registration."""
        version = self.version(ref)
        files = self.package_bytes(version)
        manifest = read_manifest(files.get(MANIFEST, b""), version.manifest_sha256)
        verify_files(manifest, files)
        model = flavor_named(manifest.flavor).load(files[manifest.model_file], manifest.metadata, trusted=trusted)
        return LoadedModel(version.name, manifest, model, extra=extra)

    def package_bytes(self, version: ModelVersion) -> dict[str, bytes]:
        """Every file of a version's package, by name (what ``load`` verifies)."""
        prefix = version.package_key + "/"
        return {key[len(prefix):]: self._artifacts.get_bytes(key) for key in self._artifacts.list(prefix)}

    def manifest(self, ref: str) -> dict[str, Any]:
        """The verified ``keel-model.yaml`` of a version, as a dict."""
        version = self.version(ref)
        data = self._artifacts.get_bytes(f"{version.package_key}/{MANIFEST}")
        return asdict(read_manifest(data, version.manifest_sha256))

    def show(self, ref: str) -> dict[str, Any]:
        """A version end to end: run, params, metrics, training data, environment, hashes, aliases, history."""
        return describe_version(self, self._runs, self._lineage, ref)

    def diff(self, a: str, b: str) -> dict[str, Any]:
        """What changed between two versions: params, metrics, data, signature, package versions."""
        return diff_versions(self, self._runs, a, b)

    # -- aliases and environments ----------------------------------------------------------------------

    def set_alias(self, ref: str, alias: str, *, reason: str | None = None) -> ModelVersion:
        """Point ``alias`` (``champion``, ``challenger``, any name) at a version; staging/production use promote."""
        _check_alias(alias)
        if alias in ENVIRONMENTS:
            raise InvalidInput(f"{alias!r} is an environment; use `keel models promote REF {alias}` (promote())")
        return self._move(ref, alias, reason, "model.alias")

    def remove_alias(self, name: str, alias: str, *, reason: str | None = None) -> None:
        def remove(conn: sa.Connection) -> None:
            self._registered(conn, name)
            old = self._alias_version(conn, name, alias)
            if old is None:
                raise NotFound(f"model {name!r} has no alias {alias!r}")
            conn.execute(model_aliases.delete().where(model_aliases.c.model == name, model_aliases.c.alias == alias))
            self._record_move(conn, name, alias, None, old, reason, "model.alias.remove")

        self._db.retrying(remove)

    def promote(self, ref: str, environment: str, *, reason: str | None = None, override: bool = False) -> ModelVersion:
        """Move ``staging`` or ``production`` to a version that passed its release gates; production also needs
        an approval of that version.

        ``override=True`` promotes without an approval: only an admin may, with a reason, and it is audited as
        such. Failed gates are overridden on the gate report (``ws.gates.override``), by an approver.
        """
        if environment not in ENVIRONMENTS:
            raise InvalidInput(f"unknown environment {environment!r}; use one of {', '.join(ENVIRONMENTS)}")
        action = "model.promote"
        version = self.version(ref)
        gates = self.release_check(version, environment) if self.release_check is not None else None
        if environment == "production" and not self.approvals(version.model, version.version,
                                                              environment="production"):
            if not override:
                raise PermissionDenied(
                    f"{version.name} has no approval for production; an approver runs "
                    f"`keel models approve {version.name} --reason ...` first")
            self._require_role("admin", "override the approval of a production promotion")
            if not reason:
                raise InvalidInput("an override needs a reason (--reason)")
            action = "model.promote.override"
        return self._move(version.name, environment, reason, action, {"gates": gates} if gates else None)

    def approve(self, ref: str, *, reason: str, environment: str = "production") -> Approval:
        """Record that the acting user, an approver, approves this version for ``environment``."""
        if environment not in ENVIRONMENTS:
            raise InvalidInput(f"unknown environment {environment!r}; use one of {', '.join(ENVIRONMENTS)}")
        if not reason or not reason.strip():
            raise InvalidInput("an approval needs a reason (--reason): what was checked")
        role = self._require_role("approver", "approve a model version")
        return self._record_approval(ref, environment, self._user, role, reason, "model.approve",
                                     {"environment": environment, "role": role})

    def approve_automatically(self, ref: str, *, policy: str, reason: str) -> Approval:
        """Record a production approval made by a retraining policy that was explicitly allowed to approve
        (keel.retraining): ``approved_by`` is ``policy:NAME``, the role ``policy``, the audit action its own."""
        return self._record_approval(ref, "production", f"policy:{policy}", "policy", reason,
                                     "model.approve.automatic", {"environment": "production",
                                                                 "on_behalf_of": self._user})

    def _record_approval(self, ref: str, environment: str, by: str, role: str, reason: str, action: str,
                         details: dict[str, Any]) -> Approval:
        now = datetime.now(UTC)

        def insert(conn: sa.Connection) -> Approval:
            version = self._version(conn, ref)
            conn.execute(model_approvals.insert().values(
                model=version.model, version=version.version, environment=environment, approved_by=by, role=role,
                at=now, reason=reason))
            self._audit.record(conn, actor=by, action=action, target=version.ref, reason=reason, details=details)
            return Approval(version.model, version.version, environment, by, role, now, reason)

        return self._db.retrying(insert)

    def approvals(self, name: str, version: int | None = None, *, environment: str | None = None) -> list[Approval]:
        query = sa.select(model_approvals).where(model_approvals.c.model == name).order_by(model_approvals.c.id)
        if version is not None:
            query = query.where(model_approvals.c.version == version)
        if environment is not None:
            query = query.where(model_approvals.c.environment == environment)
        with self._db.read() as conn:
            return [Approval(**{k: v for k, v in r._mapping.items() if k != "id"}) for r in conn.execute(query)]

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        """Every move of the model's aliases and environments, oldest first."""
        query = sa.select(model_alias_history).where(model_alias_history.c.model == name) \
            .order_by(model_alias_history.c.id)
        if alias is not None:
            query = query.where(model_alias_history.c.alias == alias)
        with self._db.read() as conn:
            self._registered(conn, name)
            return [AliasEvent(**{k: v for k, v in r._mapping.items() if k != "id"}) for r in conn.execute(query)]

    # -- cards ---------------------------------------------------------------------------------------

    def card(self, name: str, version: int | None = None) -> ModelCard | None:
        """The model card (latest, or one of its versions); None if none was written yet."""
        query = sa.select(model_cards).where(model_cards.c.model == name)
        query = query.where(model_cards.c.version == version) if version else \
            query.order_by(model_cards.c.version.desc()).limit(1)
        with self._db.read() as conn:
            self._registered(conn, name)
            row = conn.execute(query).first()
        if row is None and version is not None:
            raise NotFound(f"model {name!r} has no card version {version}")
        return None if row is None else ModelCard(**row._mapping)

    def card_history(self, name: str) -> list[ModelCard]:
        with self._db.read() as conn:
            self._registered(conn, name)
            rows = conn.execute(sa.select(model_cards).where(model_cards.c.model == name)
                                .order_by(model_cards.c.version)).all()
        return [ModelCard(**r._mapping) for r in rows]

    def update_card(self, name: str, *, reason: str | None = None, **fields: Any) -> ModelCard:
        """Store a new card version: the previous card with ``fields`` changed (None removes a field)."""
        unknown = sorted(set(fields) - set(CARD_FIELDS))
        if unknown:
            raise InvalidInput(f"unknown model card field(s) {', '.join(unknown)}; use {', '.join(CARD_FIELDS)}")
        if not fields:
            raise InvalidInput(f"nothing to change on the card; give one of {', '.join(CARD_FIELDS)}")
        if isinstance(fields.get("consumers"), str):
            fields["consumers"] = [c.strip() for c in fields["consumers"].split(",") if c.strip()]
        now = datetime.now(UTC)

        def insert(conn: sa.Connection) -> ModelCard:
            self._registered(conn, name)
            latest = conn.execute(sa.select(model_cards.c.version, model_cards.c.card)
                                  .where(model_cards.c.model == name)
                                  .order_by(model_cards.c.version.desc()).limit(1)).first()
            card = {**(latest.card if latest else {}), **fields}
            card = {k: v for k, v in card.items() if v is not None}
            number = (latest.version if latest else 0) + 1
            conn.execute(model_cards.insert().values(model=name, version=number, card=card, created_at=now,
                                                     created_by=self._user))
            self._audit.record(conn, actor=self._user, action="model.card", target=f"model:{name}", reason=reason,
                               details={"card_version": number, "changed": sorted(fields)})
            return ModelCard(name, number, card, now, self._user)

        return self._db.retrying(insert)

    # -- helpers -------------------------------------------------------------------------------------

    def _require_role(self, needed: str, what: str) -> str:
        user = self._users.get(self._user)
        if not role_allows(user.role, needed):
            raise PermissionDenied(
                f"user {self._user!r} has the {user.role} role; to {what} needs the {needed} role "
                f"(an admin runs `keel users set-role {self._user} {needed}`)")
        return user.role

    def _move(self, ref: str, alias: str, reason: str | None, action: str,
              details: dict[str, Any] | None = None) -> ModelVersion:
        def move(conn: sa.Connection) -> ModelVersion:
            version = self._version(conn, ref)
            old = self._alias_version(conn, version.model, alias)
            now = datetime.now(UTC)
            if old is None:
                conn.execute(model_aliases.insert().values(model=version.model, alias=alias, version=version.version,
                                                           updated_at=now, updated_by=self._user))
            else:
                conn.execute(model_aliases.update()
                             .where(model_aliases.c.model == version.model, model_aliases.c.alias == alias)
                             .values(version=version.version, updated_at=now, updated_by=self._user))
            self._record_move(conn, version.model, alias, version.version, old, reason, action, details)
            return version

        moved = self._db.retrying(move)
        return self.version(moved.name)

    def _record_move(self, conn: sa.Connection, name: str, alias: str, version: int | None, old: int | None,
                     reason: str | None, action: str, details: dict[str, Any] | None = None) -> None:
        now = datetime.now(UTC)
        conn.execute(model_alias_history.insert().values(model=name, alias=alias, version=version,
                                                         previous_version=old, at=now, actor=self._user,
                                                         reason=reason))
        target = f"model:{name}/{version}" if version is not None else f"model:{name}"
        self._audit.record(conn, actor=self._user, action=action, target=target, reason=reason,
                           details={"alias": alias, "from": old, "to": version, **(details or {})})

    def _registered(self, conn: sa.Connection, name: str) -> RegisteredModel:
        row = conn.execute(sa.select(registered_models).where(registered_models.c.name == name)).first()
        if row is None:
            raise NotFound(f"unknown model {name!r}; `keel models list` lists the registered models")
        aliases = conn.execute(sa.select(model_aliases.c.alias, model_aliases.c.version)
                               .where(model_aliases.c.model == name)).all()
        return RegisteredModel(**row._mapping, aliases=dict(aliases))

    def _version(self, conn: sa.Connection, text: str) -> ModelVersion:
        ref = _model_ref(text)
        registered = self._registered(conn, ref.name)
        number = ref.version
        if ref.alias is not None and ref.alias != "latest":
            number = registered.aliases.get(ref.alias)
            if number is None:
                known = ", ".join(sorted(registered.aliases)) or "none yet"
                raise NotFound(f"model {ref.name!r} has no alias {ref.alias!r} (aliases: {known})")
        elif number is None:
            number = registered.latest_version
        row = conn.execute(sa.select(model_versions).where(model_versions.c.model == ref.name,
                                                           model_versions.c.version == number)).first()
        if row is None:
            raise NotFound(f"model {ref.name!r} has no version {number} (versions 1..{registered.latest_version})")
        aliases = sorted(a for a, v in registered.aliases.items() if v == number)
        return ModelVersion(**row._mapping, aliases=aliases)

    def _aliases_by_version(self, conn: sa.Connection, name: str) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for alias, version in conn.execute(sa.select(model_aliases.c.alias, model_aliases.c.version)
                                           .where(model_aliases.c.model == name).order_by(model_aliases.c.alias)):
            out.setdefault(version, []).append(alias)
        return out

    @staticmethod
    def _alias_version(conn: sa.Connection, name: str, alias: str) -> int | None:
        return conn.execute(sa.select(model_aliases.c.version)
                            .where(model_aliases.c.model == name, model_aliases.c.alias == alias)).scalar()


def package_model(model: Any, folder: Path, *, flavor: str | None = None, input_example: Any = None,
                  signature: Signature | dict | None = None, environment: dict[str, Any] | None = None,
                  run_id: str | None = None) -> tuple[Manifest, str]:
    """Write ``model``'s package into ``folder`` (flavor, signature from the example, requirements, hashes);
    the embedded registry and a remote client package models the same way."""
    chosen = flavor_for(model, flavor)
    sig = _signature(chosen.as_predictor(model), input_example, signature)
    return write_package(model, folder, flavor=chosen, signature=sig, environment=environment or {}, run_id=run_id,
                         input_example=input_example)


def _signature(model: Any, example: Any, signature: Signature | dict | None) -> Signature:
    if signature is not None:
        _check_fitted(model)
        return signature if isinstance(signature, Signature) else Signature.from_dict(signature)
    if example is None:
        raise InvalidInput("registering a model needs input_example= (a few training rows; the signature is "
                           "inferred from them) or signature=")
    frame = to_frame(example)
    if frame.empty:
        raise InvalidInput("the input example has no rows; pass a few rows of the training frame")
    try:
        predictions = model.predict(frame.head(5))
    except Exception as exc:  # the user's model: any failure means it cannot be packaged as is
        raise InvalidInput(f"the model cannot predict on its input example ({type(exc).__name__}: {exc}); "
                           "is it fitted, and is the example the training frame's columns?") from None
    return probe_missing(model, frame, infer_signature(frame, predictions))


def _check_fitted(model: Any) -> None:
    """Without an example to predict on, scikit-learn's own check is what tells a fitted model apart."""
    try:
        from sklearn.base import BaseEstimator
        from sklearn.exceptions import NotFittedError
        from sklearn.utils.validation import check_is_fitted
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        return
    if isinstance(model, BaseEstimator):
        try:
            check_is_fitted(model)
        except NotFittedError:
            raise InvalidInput(f"the {type(model).__name__} is not fitted; fit it before registering") from None


def _model_ref(text: str) -> Ref:
    ref = parse_ref(text, kind="model") if isinstance(text, str) else text
    if ref.kind not in (None, "model"):
        raise InvalidRef(f"{text!r} is a {ref.kind} ref, not a model ref (price, price/3, price@champion)")
    if ref.timestamp is not None:
        raise InvalidRef(f"models are named by version or alias (price/3, price@champion), not by time: {text!r}")
    return ref


def _check_alias(alias: str) -> None:
    check_name(alias, "alias")
    if alias in RESERVED_ALIASES or alias.isdigit() or not (alias[0].isalpha() or alias[0] == "_"):
        raise InvalidInput(f"invalid alias {alias!r}: it must start with a letter and not be 'latest' or a number")


