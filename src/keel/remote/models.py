"""``ws.models`` over HTTP, with the embedded registry's safety on both ends.

Registering packages the model *here*, the way the embedded registry does (``package_model``: flavor,
signature from the example, requirements, a manifest with every file's sha256), and uploads the package
as one streamed tar; the server only hashes it against the manifest (it never deserialises an upload)
and takes the next version number. Loading downloads the package file by file to a private temporary
folder, checks the manifest against the ``manifest_sha256`` the registry pinned and every file against
the manifest, and only then hands the model file's (re-checked) bytes to the flavor.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel.errors import InvalidInput, NotFound, TamperedPackage
from keel.models.flavors import flavor_named
from keel.models.loaded import LoadedModel
from keel.models.model import AliasEvent, Approval, ModelCard, ModelVersion, RegisteredModel
from keel.models.package import MANIFEST, Manifest, read_manifest, verify_folder
from keel.models.service import package_model
from keel.models.signature import Signature
from keel.refs import check_name, parse_ref
from keel.remote.client import Client, join
from keel.remote.decode import decode, decode_list
from keel.tracking.environment import capture_environment

if TYPE_CHECKING:
    from keel.remote.runs import RemoteRunService
    from keel.tracking.run import Run

__all__ = ["RemoteModelService"]


def _split(ref: str) -> tuple[str, str]:
    """``price/3`` → (price, "3"); ``price@champion`` → (price, champion); ``price`` → (price, latest)."""
    parsed = parse_ref(ref, kind="model") if isinstance(ref, str) else ref
    if parsed.kind not in (None, "model") or parsed.timestamp is not None:
        raise InvalidInput(f"{ref!r} is not a model ref (price, price/3, price@champion)")
    if parsed.version is not None:
        return parsed.name, str(parsed.version)
    return parsed.name, parsed.alias or "latest"


class RemoteModelService:
    """The registry of a keel server: the embedded ``ModelService`` methods, over HTTP."""

    def __init__(self, client: Client, runs: RemoteRunService) -> None:
        self._client, self._runs = client, runs
        self._environments: dict[str, dict[str, Any]] = {}

    # -- registration -------------------------------------------------------------------------------------

    def log_model(self, run: Run | str, model: Any, name: str, **options: Any) -> ModelVersion:
        """``run.log_model(...)``: register ``model`` as a version produced by ``run``."""
        return self.register(model, name, run=run, **options)

    def register(self, model: Any, name: str, *, run: Run | str | None = None, input_example: Any = None,
                 signature: Signature | dict | None = None, flavor: str | None = None,
                 description: str | None = None) -> ModelVersion:
        """Package ``model`` here and register it on the server as the next version of ``name``."""
        check_name(name, "model name")
        run_id = None if run is None else (run if isinstance(run, str) else run.id).removeprefix("run:")
        environment = self._run_environment(run_id) if run_id else capture_environment(Path.cwd())
        with tempfile.TemporaryDirectory(prefix="keel-model-") as tmp:
            folder = Path(tmp) / "package"
            package_model(model, folder, flavor=flavor, input_example=input_example, signature=signature,
                          environment=environment, run_id=run_id)
            bundle = Path(tmp) / "package.tar"
            with tarfile.open(bundle, "w") as tar:
                for path in sorted(folder.iterdir()):
                    tar.add(path, arcname=path.name, recursive=False)
            answer = self._client.upload("POST", join("models", name, "versions"), bundle, run=run_id,
                                         description=description)
        return decode(ModelVersion, answer)

    def _run_environment(self, run_id: str) -> dict[str, Any]:
        """The run's environment (the package's requirements come from the run that trained the model)."""
        if run_id not in self._environments:
            if len(self._environments) >= 32:
                self._environments.pop(next(iter(self._environments)))
            self._environments[run_id] = self._runs.get(run_id).environment or {}
        return self._environments[run_id]

    # -- reading ------------------------------------------------------------------------------------------

    def list(self) -> list[RegisteredModel]:
        return decode_list(RegisteredModel, self._client.get("/models"))

    def get(self, name: str) -> RegisteredModel:
        return decode(RegisteredModel, self._client.get(join("models", name)))

    def versions(self, name: str) -> list[ModelVersion]:
        return decode_list(ModelVersion, self._client.get(join("models", name, "versions")))

    def version(self, ref: str) -> ModelVersion:
        """Resolve ``price/3``, ``price@champion``, ``price@production``, ``price@latest`` or ``price``."""
        name, which = _split(ref)
        return decode(ModelVersion, self._client.get(join("models", name, "versions", which, "info")))

    def resolve(self, ref: str) -> str:
        return self.version(ref).ref

    def exists(self, name: str) -> bool:
        try:
            self.get(name)
        except NotFound:
            return False
        return True

    def load(self, ref: str, *, trusted: bool = False, extra: str = "drop") -> LoadedModel:
        """The model, after checking every downloaded file against the hashes pinned at registration."""
        version = self.version(ref)
        files = join("models", version.model, "versions", version.version, "files")
        manifest = self._manifest(version)
        with tempfile.TemporaryDirectory(prefix="keel-load-") as tmp:
            folder = Path(tmp)
            for filename in manifest.files:
                with open(folder / _plain_name(filename), "xb") as out:
                    self._client.download(f"{files}/{join(filename)[1:]}", out)
            verify_folder(manifest, folder)
            data = (folder / manifest.model_file).read_bytes()
        if hashlib.sha256(data).hexdigest() != manifest.files[manifest.model_file]:  # the bytes that get loaded
            raise TamperedPackage(f"{manifest.model_file} changed while it was being loaded; it is refused")
        model = flavor_named(manifest.flavor).load(data, manifest.metadata, trusted=trusted)
        return LoadedModel(version.name, manifest, model, extra=extra)

    def manifest(self, ref: str) -> dict[str, Any]:
        """The verified ``keel-model.yaml`` of a version, as a dict."""
        return asdict(self._manifest(self.version(ref)))

    def _manifest(self, version: ModelVersion) -> Manifest:
        buffer = io.BytesIO()
        self._client.download(join("models", version.model, "versions", version.version, "files", MANIFEST), buffer)
        return read_manifest(buffer.getvalue(), version.manifest_sha256)

    def show(self, ref: str) -> dict[str, Any]:
        name, which = _split(ref)
        return self._client.get(join("models", name, "versions", which))

    def diff(self, a: str, b: str) -> dict[str, Any]:
        (name_a, which_a), (name_b, which_b) = _split(a), _split(b)
        if name_a != name_b:
            raise InvalidInput(f"a remote diff compares two versions of one model, not {name_a} and {name_b}")
        return self._client.get(join("models", name_a, "diff"), a=which_a, b=which_b)

    # -- aliases and environments ---------------------------------------------------------------------------

    def set_alias(self, ref: str, alias: str, *, reason: str | None = None) -> ModelVersion:
        name, which = _split(ref)
        number = int(which) if which.isdigit() else self.version(ref).version
        return decode(ModelVersion, self._client.post(join("models", name, "aliases"),
                                                      {"alias": alias, "version": number, "reason": reason}))

    def remove_alias(self, name: str, alias: str, *, reason: str | None = None) -> None:
        self._client.delete(join("models", name, "aliases", alias), reason=reason)

    def promote(self, ref: str, environment: str, *, reason: str | None = None, override: bool = False) -> ModelVersion:
        name, which = _split(ref)
        return decode(ModelVersion, self._client.post(join("models", name, "versions", which, "promote"),
                                                      {"environment": environment, "reason": reason,
                                                       "override": override}))

    def approve(self, ref: str, *, reason: str, environment: str = "production") -> Approval:
        name, which = _split(ref)
        return decode(Approval, self._client.post(join("models", name, "versions", which, "approve"),
                                                  {"reason": reason, "environment": environment}))

    def approvals(self, name: str, version: int | None = None, *, environment: str | None = None) -> list[Approval]:
        found = decode_list(Approval, self._client.get(join("models", name, "approvals"), version=version))
        return [a for a in found if environment is None or a.environment == environment]

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        return decode_list(AliasEvent, self._client.get(join("models", name, "history"), alias=alias))

    # -- cards ----------------------------------------------------------------------------------------------

    def card(self, name: str, version: int | None = None) -> ModelCard | None:
        found = self._client.get(join("models", name, "card"), version=version)
        return None if found is None else decode(ModelCard, found)

    def update_card(self, name: str, *, reason: str | None = None, **fields: Any) -> ModelCard:
        return decode(ModelCard, self._client.put(join("models", name, "card"), fields, reason=reason))


def _plain_name(name: str) -> str:
    """A manifest's file name as a name inside the download folder, never a path out of it."""
    if Path(name).name != name or name in ("", ".", ".."):
        raise TamperedPackage(f"the manifest lists {name!r}, which is not a plain file name; the package is refused")
    return name
