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
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml: ~10x faster, same safe subset
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
    try:
        raw = yaml.load(data, Loader=_Loader)  # a safe loader (libyaml's when present)
        manifest = Manifest(**raw)
    except (yaml.YAMLError, TypeError) as exc:
        raise TamperedPackage(f"{MANIFEST} cannot be read: {exc}") from None
    flavor_named(manifest.flavor)  # an unknown flavor is refused here, with the list of known ones
    if manifest.model_file not in manifest.files:
        raise TamperedPackage(f"{MANIFEST} does not list the model file {manifest.model_file!r}")
    return manifest


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
