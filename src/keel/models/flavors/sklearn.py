"""scikit-learn models through skops, loaded only if every type in the file is on keel's own list.

skops refuses types it does not trust by default and lets the caller widen that list. keel never widens
it with a list read from the file: it asks skops which types the file needs beyond the defaults and
accepts them only if each belongs to scikit-learn, NumPy or SciPy (by module). Anything else (a user's
function, ``os.system``, a lambda) is refused before any object is built.

A module alone is not enough: those libraries also hold functions that run code
(``numpy.testing._private.utils.runstring`` execs a string), and skops *calls* the object a node names
for most node kinds. So the file's schema (plain JSON) is read too: a name skops would call must be a
class, a function may appear only as a reference (``FunctionNode``, e.g. a scorer), and a
constructor-with-arguments node (``ConstructorFromReduceNode``) is never accepted for these types.
"""

from __future__ import annotations

import importlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

from keel.errors import TamperedPackage, UnsupportedModel, UntrustedModel

__all__ = ["TRUSTED_MODULE_ROOTS", "SklearnFlavor", "trusted_by_keel"]

TRUSTED_MODULE_ROOTS = frozenset({"sklearn", "numpy", "scipy"})
# standard-library containers skops rebuilds from parts that are themselves nodes checked by the same rules:
# a partial's function is a node of its own (scikit-learn pipelines hold partial(check_array, ...))
STRUCTURAL_TYPES = {"functools.partial": frozenset({"PartialNode"})}


def trusted_by_keel(type_name: str) -> bool:
    """keel's rule: a type from scikit-learn, NumPy or SciPy (no lambdas, no local objects)."""
    parts = type_name.split(".")
    return parts[0] in TRUSTED_MODULE_ROOTS and "<" not in type_name \
        and not any(p.startswith("__") for p in parts)  # no __main__, __builtins__, ...


class SklearnFlavor:
    name = "sklearn"
    model_file = "model.skops"
    automatic = True

    def handles(self, model: Any) -> bool:
        try:
            from sklearn.base import BaseEstimator
        except ImportError:  # pragma: no cover - scikit-learn is a dependency
            return False
        return isinstance(model, BaseEstimator) and hasattr(model, "predict")

    def save(self, model: Any, folder: Path) -> dict[str, Any]:
        import skops.io as sio

        path = folder / self.model_file
        sio.dump(model, path)
        data = path.read_bytes()
        refused = _refused(data, sio.get_untrusted_types(data=data))
        if refused:  # refuse now, not at the first load: such a package could never be loaded
            raise UnsupportedModel(
                f"this {type(model).__name__} holds types keel will not load from a scikit-learn package "
                f"({', '.join(refused)}); package it with flavor='python' (loading it then needs trusted=True)",
                details={"types": refused})
        metadata: dict[str, Any] = {}
        if hasattr(model, "classes_"):
            metadata["classes"] = [_plain(c) for c in model.classes_]
        return metadata

    def load(self, data: bytes, metadata: dict[str, Any], *, trusted: bool) -> Any:
        import skops.io as sio

        try:
            needed = sio.get_untrusted_types(data=data)
        except Exception as exc:  # skops raises several types for a corrupt file
            raise TamperedPackage(f"the scikit-learn model file cannot be read: {exc}") from None
        refused = _refused(data, needed)
        if refused:
            raise UntrustedModel(
                f"the model file needs types keel does not trust ({', '.join(refused)}): only classes of "
                "scikit-learn, NumPy and SciPy (and their functions as references) are loaded. Package such a "
                "model with flavor='python' and load it with trusted=True if you trust its source.",
                details={"types": refused})
        try:
            return sio.loads(data, trusted=needed)
        except Exception as exc:
            raise TamperedPackage(f"the scikit-learn model file cannot be loaded: {exc}") from None

    def as_predictor(self, model: Any) -> Any:
        return model

    def version(self) -> str:
        import sklearn

        return sklearn.__version__


def _refused(data: bytes, needed: list[str]) -> list[str]:
    """The types of ``needed`` keel will not let skops build, judged by name and by how the file uses them."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            schema = json.loads(archive.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise TamperedPackage(f"the scikit-learn model file cannot be read: {exc}") from None
    uses: dict[str, set[str]] = {}
    targets: dict[str, tuple[str, str]] = {}
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "__loader__" in node:
                name = f"{node.get('__module__')}.{node.get('__class__')}"
                uses.setdefault(name, set()).add(str(node["__loader__"]))
                targets[name] = (str(node.get("__module__")), str(node.get("__class__")))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    refused = []
    for name in needed:
        loaders = uses.get(name)
        if name in STRUCTURAL_TYPES and loaders and loaders <= STRUCTURAL_TYPES[name]:
            continue
        if not trusted_by_keel(name) or not loaders or "ConstructorFromReduceNode" in loaders:
            refused.append(name)
        elif loaders != {"FunctionNode"} and not isinstance(_resolve(*targets[name]), type):
            refused.append(name)  # skops would call it: only a class may be called
    return refused


def _resolve(module: str, attribute: str) -> Any:
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError):
        return None


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
