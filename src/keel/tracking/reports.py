"""What ``ws.runs.evaluate`` and ``ws.runs.importance`` return: plain data, a table view and a summary."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import pandas as pd

from keel.tracking.scoring import HIGHER_IS_BETTER

__all__ = ["EvaluationReport", "ImportanceReport"]


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class EvaluationReport:
    """Metrics per part and slice beside the dummy baseline's, for one model on one dataset.

    ``metrics[part][name]`` and ``baseline[part][name]`` are floats, or None where a metric is undefined
    (ROC AUC with one class present, R² of one row, log loss without ``predict_proba``). ``slices`` is a
    table (one dict per part, slice column and value, with its row count and metrics); ``worst_slices
    [part][metric]`` names the worst slice with at least ``min_slice_rows`` rows.
    """

    task: str
    label: str
    features: list[str]
    source: str | None
    primary_metric: str
    rows: dict[str, int]
    metrics: dict[str, dict[str, float | None]]
    baseline: dict[str, dict[str, float | None]]
    slices: list[dict[str, Any]]
    worst_slices: dict[str, dict[str, dict[str, Any]]]
    class_imbalance_ratio: float | None
    classes: list[Any] | None
    figures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def better_than_baseline(self) -> dict[str, bool | None]:
        """Per part: does the model beat the baseline on the primary metric (None when either is undefined)."""
        higher = HIGHER_IS_BETTER[self.primary_metric]
        verdict: dict[str, bool | None] = {}
        for part, values in self.metrics.items():
            mine, theirs = values.get(self.primary_metric), self.baseline.get(part, {}).get(self.primary_metric)
            verdict[part] = None if mine is None or theirs is None else bool(mine > theirs if higher else mine < theirs)
        return verdict

    def with_figures(self, figures: list[str]) -> EvaluationReport:
        return replace(self, figures=list(figures))

    def to_frame(self) -> pd.DataFrame:
        """One row per (part, model|baseline), one column per metric."""
        rows = []
        for part, values in self.metrics.items():
            rows.append({"part": part, "model": "model", "rows": self.rows[part], **values})
            if part in self.baseline:
                rows.append({"part": part, "model": "baseline", "rows": self.rows[part], **self.baseline[part]})
        return pd.DataFrame(rows).set_index(["part", "model"])

    def slices_frame(self) -> pd.DataFrame:
        """The slice table: one row per (part, column, value) with its rows and metrics."""
        if not self.slices:
            return pd.DataFrame(columns=["part", "column", "value", "rows"]).set_index(["part", "column", "value"])
        return pd.DataFrame(self.slices).set_index(["part", "column", "value"])

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "better_than_baseline": self.better_than_baseline}

    def summary(self) -> str:
        """A plain-text report: the metric table, the verdict against the baseline, the worst slices."""
        where = f" on {self.source}" if self.source else ""
        lines = [f"{self.task} of {self.label!r}{where} with {len(self.features)} feature(s); "
                 f"primary metric: {self.primary_metric}"]
        if self.class_imbalance_ratio is not None:
            lines.append(f"class imbalance on train (majority/minority): {self.class_imbalance_ratio:.3g}")
        lines += ["", self.to_frame().to_string(na_rep="-", float_format=lambda v: f"{v:.4g}"), ""]
        for part, better in self.better_than_baseline.items():
            mine = self.metrics[part].get(self.primary_metric)
            theirs = self.baseline.get(part, {}).get(self.primary_metric)
            word = {True: "better than", False: "NOT better than", None: "not comparable with"}[better]
            lines.append(f"{part}: {word} the baseline ({self.primary_metric} {_fmt(mine)} vs {_fmt(theirs)})")
        for part, worst in self.worst_slices.items():
            if self.primary_metric in worst:
                w = worst[self.primary_metric]
                lines.append(f"{part}: worst slice by {self.primary_metric} is {w['slice']} ({w['rows']} rows): "
                             f"{_fmt(w['score'])}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


@dataclass(frozen=True)
class ImportanceReport:
    """Feature importance three ways, with the features that could go and the pairs that say the same.

    ``builtin`` maps the names the model's last step sees (after a Pipeline's transforms) to
    ``feature_importances_`` or mean ``|coef_|``; ``permutation_mean``/``permutation_std`` and ``shap``
    map input features. ``removal_candidates`` are the features with permutation mean - 2·std <= 0;
    ``correlated_pairs`` are (a, b, r) with |Pearson r| >= ``correlation_threshold`` on the train part.
    """

    part: str
    rows: int
    features: list[str]
    scoring: str
    builtin: dict[str, float] | None
    builtin_kind: str | None
    permutation_mean: dict[str, float]
    permutation_std: dict[str, float]
    shap: dict[str, float] | None
    removal_candidates: list[str]
    correlated_pairs: list[tuple[str, str, float]]
    correlation_threshold: float
    notes: list[str] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)

    def to_frame(self) -> pd.DataFrame:
        """One row per input feature, most important (by permutation) first."""
        table = pd.DataFrame({"permutation_mean": pd.Series(self.permutation_mean, dtype=float),
                              "permutation_std": pd.Series(self.permutation_std, dtype=float)},
                             index=pd.Index(self.features, name="feature"))
        if self.builtin is not None and set(self.builtin) <= set(self.features):
            table["builtin"] = pd.Series(self.builtin, dtype=float)
        if self.shap is not None:
            table["shap_mean_abs"] = pd.Series(self.shap, dtype=float)
        table["removal_candidate"] = table.index.isin(self.removal_candidates)
        return table.sort_values("permutation_mean", ascending=False, kind="stable")

    def with_artifacts(self, names: list[str]) -> ImportanceReport:
        return replace(self, artifacts=list(names))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        lines = [f"importance on {self.part} ({self.rows} rows), permutation scored by {self.scoring}", "",
                 self.to_frame().to_string(na_rep="-", float_format=lambda v: f"{v:.4g}"), ""]
        if self.builtin is not None and not set(self.builtin) <= set(self.features):
            top = sorted(self.builtin.items(), key=lambda kv: -kv[1])[:10]
            lines.append(f"built-in ({self.builtin_kind}, transformed features): "
                         + ", ".join(f"{k} {v:.3g}" for k, v in top))
        lines.append("removal candidates (permutation mean - 2·std <= 0): "
                     + (", ".join(self.removal_candidates) or "none"))
        lines.append(f"correlated pairs (|r| >= {self.correlation_threshold}): "
                     + (", ".join(f"{a}~{b} ({r:+.3f})" for a, b, r in self.correlated_pairs) or "none"))
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)
