"""The data capability's records: what a table version, a split and a validation report are."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "CheckResult",
    "IngestResult",
    "SplitInfo",
    "TableInfo",
    "TableVersion",
    "VacuumResult",
    "ValidationReport",
]

ROW_ID = "_keel_row_id"
INGEST_ID = "_keel_ingest_id"  # on quarantined rows: which ingest they came from
QUARANTINE_SUFFIX = "__quarantine"
SPLIT_PARTS = ("train", "validation", "test")


@dataclass(frozen=True, slots=True)
class TableInfo:
    name: str
    location: str
    partition_by: list[str]
    time_column: str | None
    key_columns: list[str]
    created_at: datetime
    created_by: str
    latest_version: int | None


@dataclass(frozen=True, slots=True)
class TableVersion:
    """One committed Delta version, as the metadata store records it."""

    table: str
    version: int
    committed_at: datetime
    created_by: str
    operation: str
    row_count: int
    rows_added: int
    schema: dict[str, str]
    content_hash: str
    source_name: str | None
    source_hash: str | None
    contract_version: int | None
    details: dict[str, Any]
    vacuumed_at: datetime | None = None

    @property
    def ref(self) -> str:
        return f"table:{self.table}@{self.version}"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One failed contract check: which, where, how many rows, and a few example rows."""

    check: str
    column: str | None
    failed: int
    examples: list[dict[str, Any]] = field(default_factory=list)

    def describe(self) -> str:
        where = f" on {self.column}" if self.column else ""
        return f"{self.check}{where}: {self.failed} row(s)"


@dataclass(frozen=True, slots=True)
class ValidationReport:
    rows: int
    failed_rows: int
    failures: list[CheckResult]
    contract_version: int | None = None

    @property
    def passed(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        if self.passed:
            return f"all {self.rows} rows pass the contract"
        checks = "; ".join(f.describe() for f in self.failures)
        return f"{self.failed_rows} of {self.rows} rows fail the contract ({checks})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "failed_rows": self.failed_rows,
            "passed": self.passed,
            "contract_version": self.contract_version,
            "failures": [
                {"check": f.check, "column": f.column, "failed": f.failed, "examples": f.examples}
                for f in self.failures
            ],
        }


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What an ingest committed; ``rows_read == rows_written + rows_quarantined`` always."""

    version: TableVersion
    rows_read: int
    rows_written: int
    rows_quarantined: int
    quarantine_version: int | None
    report: ValidationReport | None


@dataclass(frozen=True, slots=True)
class SplitInfo:
    """A stored, reproducible split of one table version into train/validation/test."""

    name: str
    version: int
    table: str
    table_version: int
    method: str
    params: dict[str, Any]
    counts: dict[str, Any]
    artifact_key: str
    artifact_hash: str
    created_at: datetime
    created_by: str

    @property
    def ref(self) -> str:
        return f"split:{self.name}@{self.version}"

    @property
    def source_ref(self) -> str:
        return f"table:{self.table}@{self.table_version}"


@dataclass(frozen=True, slots=True)
class VacuumResult:
    table: str
    removed_files: list[str]
    kept_versions: dict[int, str]
    vacuumed_versions: list[int]
    dry_run: bool
