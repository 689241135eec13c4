"""keel: an end-to-end MLOps system. A model is not the product; the system is the product.

    import keel
    ws = keel.init("my-project")            # or keel.open() inside a workspace
    ws.data.ingest("listings.csv", table="listings", contract="contract.yaml", on_bad_rows="quarantine")
    split = ws.data.split("listings", target="price", time_column="listed_at")
"""

from keel.data import ColumnSpec, Contract, IngestResult, SplitInfo, TableInfo, TableVersion, ValidationReport
from keel.errors import KeelError
from keel.settings import Settings
from keel.workspace import Workspace, init
from keel.workspace import open_workspace as open

__version__ = "0.1.0"

__all__ = [
    "ColumnSpec",
    "Contract",
    "IngestResult",
    "KeelError",
    "Settings",
    "SplitInfo",
    "TableInfo",
    "TableVersion",
    "ValidationReport",
    "Workspace",
    "__version__",
    "init",
    "open",
]
