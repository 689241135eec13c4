"""Pipelines: Python-defined DAGs of ``@step`` functions over keel refs, with cached steps, lineage, retries,
triggers and a scheduler (DESIGN.md, issue 9)."""

from keel.pipelines.definition import Pipeline, Step, step
from keel.pipelines.execute import StepContext
from keel.pipelines.model import PipelineInfo, PipelineRun, StepRun
from keel.pipelines.triggers import Api, Manual, OnData, OnGit, Schedule
from keel.pipelines.types import (
           Deployment,
           FeatureView,
           GateReport,
           Model,
           MonitorReport,
           Run,
           Split,
           Table,
           TrainingSet,
)

__all__ = ["Api", "Deployment", "FeatureView", "GateReport", "Manual", "Model", "MonitorReport", "OnData", "OnGit",
           "Pipeline", "PipelineInfo", "PipelineRun", "Run", "Schedule", "Split", "Step", "StepContext", "StepRun",
           "Table", "TrainingSet", "step"]
