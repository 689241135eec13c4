"""keel.__all__ is locked: changing the public API must be a deliberate edit of this list."""

from __future__ import annotations

import keel

PUBLIC_API = [
    "Checklist",
    "ColumnSpec",
    "Contract",
    "DriftReport",
    "Entity",
    "EvaluationReport",
    "Feature",
    "FeatureView",
    "FeatureViewInfo",
    "GateContext",
    "GateOutcome",
    "GateReport",
    "ImportanceReport",
    "Incident",
    "IngestResult",
    "KeelError",
    "LoadedModel",
    "ModelVersion",
    "Monitor",
    "OnDemandFeatureView",
    "Pipeline",
    "PipelineRun",
    "RegisteredModel",
    "RequestField",
    "Retrain",
    "RetrainPolicy",
    "Run",
    "RunInfo",
    "Settings",
    "Signature",
    "SplitInfo",
    "TableInfo",
    "TableVersion",
    "TrainingSet",
    "TrainingSetInfo",
    "ValidationReport",
    "Workspace",
    "__version__",
    "autolog",
    "custom_gate",
    "init",
    "open",
    "step",
]


def test_all_is_locked() -> None:
    assert keel.__all__ == PUBLIC_API


def test_all_is_sorted_and_unique() -> None:
    assert keel.__all__ == sorted(set(keel.__all__))


def test_every_public_name_resolves() -> None:
    for name in keel.__all__:
        assert getattr(keel, name, None) is not None, name


def test_star_import_gives_exactly_all() -> None:
    namespace: dict = {}
    exec("from keel import *", namespace)
    assert sorted(k for k in namespace if k != "__builtins__") == sorted(PUBLIC_API)


def test_open_and_init_are_callables() -> None:
    assert callable(keel.open)
    assert callable(keel.init)
    assert keel.open is not open  # the facade, not the builtin
    from keel.workspace import init, open_workspace

    assert keel.open is open_workspace
    assert keel.init is init


def test_version_is_a_string() -> None:
    assert isinstance(keel.__version__, str) and keel.__version__.count(".") >= 1


def test_public_types_are_classes() -> None:
    for name in keel.__all__:
        if name[0].isupper():
            assert isinstance(getattr(keel, name), type), name
    assert issubclass(keel.KeelError, Exception)
