"""Datasets: ingest, contracts, validation, quarantine, profiles, leakage-safe splits."""

from keel.data.contracts import ColumnSpec, Contract
from keel.data.model import IngestResult, SplitInfo, TableInfo, TableVersion, VacuumResult, ValidationReport
from keel.data.service import DataService

__all__ = [
    "ColumnSpec",
    "Contract",
    "DataService",
    "IngestResult",
    "SplitInfo",
    "TableInfo",
    "TableVersion",
    "VacuumResult",
    "ValidationReport",
]
