"""What ``keel models show`` and ``keel models diff`` print: a version's whole story, or two side by side."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from keel.lineage import LineageService
from keel.models.signature import Signature
from keel.tracking.environment import diff_environments

if TYPE_CHECKING:
    from keel.models.service import ModelService
    from keel.tracking.service import RunService

__all__ = ["describe_version", "diff_versions"]

DATA_KINDS = ("table:", "split:", "file:", "trainingset:")


def describe_version(models: ModelService, runs: RunService, lineage: LineageService, ref: str) -> dict[str, Any]:
    """Run, params, metrics, training data, environment, package hashes, aliases, environments and history."""
    version = models.version(ref)
    run = runs.get(version.run_id) if version.run_id else None
    upstream = lineage.upstream(version.ref)
    manifest = models.manifest(version.name)
    registered = models.get(version.model)
    card = models.card(version.model)
    env = (run.environment if run else None) or {}
    return {
        "ref": version.ref,
        "model": version.model,
        "version": version.version,
        "flavor": version.flavor,
        "model_class": version.model_class,
        "description": version.description,
        "created_at": version.created_at.isoformat(),
        "created_by": version.created_by,
        "aliases": version.aliases,
        "environments": {e: v for e, v in registered.aliases.items() if e in ("staging", "production")},
        "run": None if run is None else {
            "id": run.id, "experiment": run.experiment, "status": run.status, "params": run.params,
            "metrics": run.metrics, "started_at": run.started_at.isoformat(),
            "ended_at": run.ended_at.isoformat() if run.ended_at else None},
        "training_data": [r for r in dict.fromkeys(upstream.refs()) if r.startswith(DATA_KINDS)],
        "environment": {
            "python": manifest["python_version"], "keel": manifest["keel_version"],
            "platform": (env.get("platform") or {}).get("platform"), "git": env.get("git"),
            "hostname": env.get("hostname"), "user": env.get("user"),
            "flavor_library": f"{manifest['flavor']} {manifest['flavor_version']}"},
        "package": {"key": version.package_key, "size": version.size, "manifest_sha256": version.manifest_sha256,
                    "files": manifest["files"]},
        "signature": version.signature,
        "approvals": [_plain(asdict(a)) for a in models.approvals(version.model, version.version)],
        "history": [_plain(asdict(e)) for e in models.alias_history(version.model)],
        "card": None if card is None else {"version": card.version, **card.card},
        "lineage": upstream.to_dict(),
    }


def diff_versions(models: ModelService, runs: RunService, a: str, b: str) -> dict[str, Any]:
    """What changed from version ``a`` to ``b``: params, metrics (with deltas), data, signature, packages."""
    va, vb = models.version(a), models.version(b)
    ra = runs.get(va.run_id) if va.run_id else None
    rb = runs.get(vb.run_id) if vb.run_id else None
    params_a, params_b = (ra.params if ra else {}), (rb.params if rb else {})
    metrics_a, metrics_b = (ra.metrics if ra else {}), (rb.metrics if rb else {})
    return {
        "a": va.name, "b": vb.name,
        "flavor": [va.flavor, vb.flavor], "model_class": [va.model_class, vb.model_class],
        "params": {k: [params_a.get(k), params_b.get(k)] for k in sorted(params_a.keys() | params_b.keys())
                   if params_a.get(k) != params_b.get(k)},
        "metrics": {k: {"a": metrics_a.get(k), "b": metrics_b.get(k),
                        "delta": _delta(metrics_a.get(k), metrics_b.get(k))}
                    for k in sorted(metrics_a.keys() | metrics_b.keys())},
        "inputs": {"a": ra.inputs if ra else [], "b": rb.inputs if rb else []},
        "signature": Signature.from_dict(va.signature).diff(Signature.from_dict(vb.signature)),
        "packages": {k: list(v) for k, v in diff_environments((ra.environment if ra else None) or {},
                                                               (rb.environment if rb else None) or {}).items()},
    }


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else b - a


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in d.items()}
