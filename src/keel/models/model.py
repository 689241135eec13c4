"""The registry's records: registered models, their versions, aliases, approvals and cards."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["CARD_FIELDS", "ENVIRONMENTS", "AliasEvent", "Approval", "ModelCard", "ModelVersion", "RegisteredModel"]

ENVIRONMENTS = ("staging", "production")  # aliases with rules: production needs an approval
CARD_FIELDS = ("purpose", "owner", "consumers", "intended_use", "limitations", "latency_requirement",
               "business_metric", "notes")


@dataclass(frozen=True)
class ModelVersion:
    model: str
    version: int
    run_id: str | None
    flavor: str
    model_class: str
    package_key: str
    manifest_sha256: str
    signature: dict[str, Any]
    size: int
    description: str | None
    created_at: datetime
    created_by: str
    aliases: list[str] = field(default_factory=list)

    @property
    def ref(self) -> str:
        """The lineage ref: ``model:price/3``."""
        return f"model:{self.model}/{self.version}"

    @property
    def name(self) -> str:
        return f"{self.model}/{self.version}"


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    latest_version: int
    created_at: datetime
    created_by: str
    aliases: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class AliasEvent:
    model: str
    alias: str
    version: int | None  # None: removed
    previous_version: int | None
    at: datetime
    actor: str
    reason: str | None


@dataclass(frozen=True)
class Approval:
    model: str
    version: int
    environment: str
    approved_by: str
    role: str
    at: datetime
    reason: str


@dataclass(frozen=True)
class ModelCard:
    """Documentation is part of the system: what the model is for, who uses it, what it must meet."""

    model: str
    version: int  # the card's own version
    card: dict[str, Any]
    created_at: datetime
    created_by: str
