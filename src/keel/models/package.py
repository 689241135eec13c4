"""Model packages: a folder with ``keel-model.yaml``, the model in a safe format, requirements, an example.

The manifest records the flavor, the signature, the Python and package versions of the run that trained
the model, keel's version, the run id and the sha256 of every other file. The registry stores the
manifest's own sha256, so one hash pins the whole package: a changed, missing or added file is refused
at load, before any of it is deserialised.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from keel.errors import TamperedPackage
from keel.models.flavors import Flavor, flavor_named
from keel.models.flavors.base import class_name
from keel.models.signature import Signature, to_frame
from keel.tracking.environment import requirements_text

__all__ = ["EXAMPLE_FILE", "FORMAT_VERSION", "MANIFEST", "Manifest", "file_sha256", "read_manifest", "verify_files",
           "verify_folder", "write_package"]

MANIFEST = "keel-model.yaml"
REQUIREMENTS = "requirements.txt"
EXAMPLE_FILE = "input_example.parquet"
FORMAT_VERSION = 1
EXAMPLE_ROWS = 5
_CHUNK = 1024 * 1024
MAX_MANIFEST_BYTES = 1024 * 1024
_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "flavor": str, "flavor_version": str, "model_class": str, "model_file": str, "signature": dict,
    "python_version": (str, type(None)), "keel_version": (str, type(None)), "run_id": (str, type(None)),
    "created_at": str, "files": dict, "metadata": dict, "format_version": int}


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]  # libyaml: ~10x faster
    """Never anchors and aliases: a manifest with an alias is refused when read."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Manifest:
    """What ``keel-model.yaml`` says about the package."""

    flavor: str
    flavor_version: str
    model_class: str
    model_file: str
    signature: dict[str, Any]
    python_version: str | None
    keel_version: str | None
    run_id: str | None
    created_at: str
    files: dict[str, str]  # file name -> sha256, every file but the manifest
    metadata: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def to_yaml(self) -> bytes:
        return yaml.dump(asdict(self), Dumper=_Dumper, sort_keys=False).encode("utf-8")

    @property
    def signature_obj(self) -> Signature:
        return Signature.from_dict(self.signature)


def write_package(model: Any, folder: Path, *, flavor: Flavor, signature: Signature, environment: dict[str, Any],
                  run_id: str | None, input_example: Any = None) -> tuple[Manifest, str]:
    """Write the package into an empty ``folder``; returns the manifest and its sha256."""
    folder.mkdir(parents=True, exist_ok=True)
    metadata = flavor.save(model, folder)
    (folder / REQUIREMENTS).write_text(requirements_text(environment), encoding="utf-8")
    if input_example is not None:
        to_frame(input_example).head(EXAMPLE_ROWS).to_parquet(folder / EXAMPLE_FILE, index=False)
    files = {p.name: _sha256(p.read_bytes()) for p in sorted(folder.iterdir()) if p.name != MANIFEST}
    manifest = Manifest(
        flavor=flavor.name, flavor_version=flavor.version(), model_class=class_name(model),
        model_file=flavor.model_file, signature=signature.to_dict(),
        python_version=(environment.get("python") or {}).get("version"), keel_version=environment.get("keel_version"),
        run_id=run_id, created_at=datetime.now(UTC).isoformat(), files=files, metadata=metadata)
    data = manifest.to_yaml()
    (folder / MANIFEST).write_bytes(data)
    return manifest, _sha256(data)


def read_manifest(data: bytes, expected_sha256: str | None) -> Manifest:
    """Parse the manifest after checking it is the one that was registered."""
    if expected_sha256 is not None and _sha256(data) != expected_sha256:
        raise TamperedPackage(f"{MANIFEST} changed since the model was registered (sha256 mismatch); "
                              "the package is refused")
    if len(data) > MAX_MANIFEST_BYTES:
        raise TamperedPackage(f"{MANIFEST} is larger than {MAX_MANIFEST_BYTES // 1024} KiB; keel writes small ones")
    try:
        # keel never writes anchors, so an alias is refused before loading: expanding nested aliases costs 10^depth
        if any(isinstance(event, yaml.AliasEvent) for event in yaml.parse(data, Loader=_Loader)):
            raise TamperedPackage(f"{MANIFEST} uses YAML aliases, which keel never writes")
        raw = yaml.load(data, Loader=_Loader)  # a safe loader (libyaml's when present)
        manifest = Manifest(**_checked_fields(raw))
    except (yaml.YAMLError, TypeError) as exc:
        raise TamperedPackage(f"{MANIFEST} cannot be read: {exc}") from None
    flavor_named(manifest.flavor)  # an unknown flavor is refused here, with the list of known ones
    if manifest.model_file not in manifest.files:
        raise TamperedPackage(f"{MANIFEST} does not list the model file {manifest.model_file!r}")
    return manifest


def _checked_fields(raw: Any) -> dict[str, Any]:
    """The manifest's fields, each of the type keel writes; anything else is a forged or broken manifest."""
    if not isinstance(raw, dict):
        raise TamperedPackage(f"{MANIFEST} is not a mapping of fields")
    problems = [f"{name} should be {kind.__name__ if isinstance(kind, type) else ' or '.join(k.__name__ for k in kind)}"
                for name, kind in _FIELD_TYPES.items()
                if name in raw and not (isinstance(raw[name], kind) and not isinstance(raw[name], bool))]
    files = raw.get("files")
    if isinstance(files, dict) and not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        problems.append("files should map file names to sha256 strings")
    if problems:
        raise TamperedPackage(f"{MANIFEST} has fields of the wrong type: " + "; ".join(problems))
    return raw


def verify_files(manifest: Manifest, files: dict[str, bytes]) -> None:
    """Every listed file present with its recorded hash, and nothing else in the package."""
    _verify_digests(manifest, {name: _sha256(data) for name, data in files.items()})


def verify_folder(manifest: Manifest, folder: Path) -> None:
    """``verify_files`` for a package on disk, hashing each file in chunks (a package may not fit in memory)."""
    _verify_digests(manifest, {p.name: file_sha256(p) for p in folder.iterdir()})


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as src:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _verify_digests(manifest: Manifest, digests: dict[str, str]) -> None:
    problems = []
    for name, digest in manifest.files.items():
        if name not in digests:
            problems.append(f"{name} is missing")
        elif digests[name] != digest:
            problems.append(f"{name} changed (sha256 mismatch)")
    problems += [f"{name} was added" for name in sorted(digests.keys() - manifest.files.keys() - {MANIFEST})]
    if problems:
        raise TamperedPackage("the model package was modified since it was registered: " + "; ".join(problems)
                              + ". It is refused; register the model again from its run.",
                              details={"problems": problems})


def read_example(data: bytes) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(data))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
