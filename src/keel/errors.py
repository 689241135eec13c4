"""Every error keel raises on purpose, so each surface can answer it the same way.

The CLI prints ``error: <message>`` and exits with ``exit_code``; the server answers
``{"error": {"type", "message", "details"}}`` with ``http_status``. Callers compare classes,
never message strings.

    KeelError                       500 / exit 1   something keel could not do (a bug or the platform)
    ├── UserError                   400 / exit 2   the request itself is wrong; fix it and retry
    │   ├── InvalidRef              400            a ref that does not parse (``listings@@3``)
    │   ├── InvalidInput            400            a bad argument, file or option value
    │   │   └── UnreadableFile      400            missing, empty, ragged or undecodable input file
    │   ├── ContractError           400            a contract that does not parse or does not fit the data
    │   ├── ValidationFailed        422            data broke its contract; ``report`` says how
    │   ├── SchemaMismatch          409            an append whose schema differs from the table's
    │   ├── LeakageError            409            a split that would leak (duplicates across parts)
    │   ├── SignatureMismatch       422            a frame that does not fit a model's input signature
    │   ├── UnsupportedModel        400            a model class no flavor knows how to package
    │   ├── Unauthenticated         401            no credentials, or a bad, expired or revoked token
    │   ├── PermissionDenied        403            the user's role does not allow it (approve, promote)
    │   │   └── UntrustedModel      403            a package that would run code on load, not trusted
    │   ├── TamperedPackage         409            a model package whose files changed since it was stored
    │   ├── TooLarge                413            an upload over the server's max_upload_mb
    │   ├── TransformFailed         422            a feature view's transform raised; wraps the user's error
    │   ├── GatesFailed             409            a release blocked: a required gate failed or never ran
    │   └── Conflict                409            the object exists already / state does not allow it
    ├── NotFound                    404 / exit 2   unknown table, version, split, workspace, ...
    │   └── WorkspaceNotFound       404            no keel.toml here or above
    └── StorageError                500 / exit 1   the metadata DB, the tables or the artifacts failed
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "Conflict",
    "ContractError",
    "GatesFailed",
    "InvalidInput",
    "InvalidRef",
    "KeelError",
    "LeakageError",
    "NotFound",
    "PermissionDenied",
    "SchemaMismatch",
    "SignatureMismatch",
    "StorageError",
    "TamperedPackage",
    "TooLarge",
    "TransformFailed",
    "Unauthenticated",
    "UnreadableFile",
    "UnsupportedModel",
    "UntrustedModel",
    "UserError",
    "ValidationFailed",
    "WorkspaceNotFound",
]


class KeelError(Exception):
    """Base of the tree; carries what every surface needs to answer the error."""

    http_status = 500
    exit_code = 1

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        """The structured body the REST API returns."""
        return {"error": {"type": type(self).__name__, "message": self.message, "details": self.details}}


class UserError(KeelError):
    http_status = 400
    exit_code = 2


class InvalidRef(UserError):
    pass


class InvalidInput(UserError):
    pass


class UnreadableFile(InvalidInput):
    pass


class ContractError(UserError):
    pass


class ValidationFailed(UserError):
    """Raised with the validation report, so callers can show every failed check."""

    http_status = 422

    def __init__(self, message: str, *, report: Any = None, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details=details)
        self.report = report


class SchemaMismatch(UserError):
    http_status = 409


class LeakageError(UserError):
    http_status = 409


class SignatureMismatch(UserError):
    http_status = 422


class UnsupportedModel(UserError):
    pass


class PermissionDenied(UserError):
    http_status = 403


class UntrustedModel(PermissionDenied):
    pass


class TamperedPackage(UserError):
    http_status = 409


class TooLarge(UserError):
    http_status = 413


class GatesFailed(UserError):
    """A promotion refused: the version's gate report has failed required tests (or there is none)."""

    http_status = 409


class Conflict(UserError):
    http_status = 409


class TransformFailed(UserError):
    """A feature view's transform (the user's SQL or pandas function) failed; the cause is chained."""

    http_status = 422


class Unauthenticated(UserError):
    http_status = 401


class NotFound(KeelError):
    http_status = 404
    exit_code = 2


class WorkspaceNotFound(NotFound):
    pass


class StorageError(KeelError):
    pass
