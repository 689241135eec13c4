"""keel: an end-to-end MLOps system. A model is not the product; the system is the product.

    import keel
    ws = keel.init("my-project")            # or keel.open() inside a workspace
    ws.data.ingest("listings.csv", table="listings", contract="contract.yaml", on_bad_rows="quarantine")
    split = ws.data.split("listings", target="price", time_column="listed_at")
    with ws.runs.start("price", inputs=[split.ref]) as run:
        model = ws.runs.fit(LinearRegression(), split.ref, run=run)   # fits on the training part only
        run.log_model(model, "price", input_example=ws.data.read_split(split.ref, "train").head())
    ws.models.load("price@champion").predict(frame)                   # checked against the signature
"""

from keel.data import ColumnSpec, Contract, IngestResult, SplitInfo, TableInfo, TableVersion, ValidationReport
from keel.errors import KeelError
from keel.features.model import (
    Entity,
    Feature,
    FeatureView,
    FeatureViewInfo,
    OnDemandFeatureView,
    RequestField,
    TrainingSet,
    TrainingSetInfo,
)
from keel.gates import Checklist, GateContext, GateOutcome, GateReport, custom_gate
from keel.models.loaded import LoadedModel
from keel.models.model import ModelVersion, RegisteredModel
from keel.models.signature import Signature
from keel.monitoring.incidents import Incident
from keel.monitoring.model import DriftReport, Monitor
from keel.pipelines import Pipeline, PipelineRun, step
from keel.retraining import Retrain, RetrainPolicy
from keel.settings import Settings
from keel.tracking.model import RunInfo
from keel.tracking.reports import EvaluationReport, ImportanceReport
from keel.tracking.run import Run
from keel.workspace import Workspace, autolog, init
from keel.workspace import open_workspace as open

__version__ = "0.1.0"

__all__ = [
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
