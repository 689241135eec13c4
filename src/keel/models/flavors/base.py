"""The contract every flavor follows; tests/unit/test_flavors.py checks each flavor against it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

__all__ = ["Flavor", "class_name"]


class Flavor(Protocol):
    """Writes a model into a package folder and reads it back from the bytes that were hash-checked.

    ``load`` receives bytes, never a path: the package reader verifies the exact bytes it hands over,
    so a file swapped between the check and the load cannot be what gets loaded.
    """

    name: str  # stored in keel-model.yaml
    model_file: str  # the file the model is written to, inside the package folder
    automatic: bool  # chosen without being asked for by name

    def handles(self, model: Any) -> bool:
        """True if this flavor can write ``model``."""

    def save(self, model: Any, folder: Path) -> dict[str, Any]:
        """Write ``model_file`` into ``folder``; return flavor metadata for the manifest."""

    def load(self, data: bytes, metadata: dict[str, Any], *, trusted: bool) -> Any:
        """An object with ``predict`` (and ``predict_proba`` where the model has one)."""

    def version(self) -> str:
        """The version of the library that writes the format."""

    def as_predictor(self, model: Any) -> Any:
        """The in-memory model as ``load`` would return it (predict on a frame), to check it before saving."""


def class_name(model: Any) -> str:
    cls = type(model)
    return f"{cls.__module__}.{cls.__qualname__}"
