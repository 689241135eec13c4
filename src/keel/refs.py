"""Refs are how people name things in keel; this is the one place that parses and prints them.

Forms (``kind:`` is optional for users and always present in lineage edges):

    listings                      latest version of a table
    listings@3                    version 3
    listings@2024-05-01           as of a UTC date (midnight) — Delta's timestampAsOf
    listings@2024-05-01T12:00Z    as of a UTC instant (an offset is converted; no zone means UTC)
    price@champion                an alias
    price/4                       a model version
    table:listings@3              explicit kind (table, split, file, model, run, ...)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from keel.errors import InvalidRef

__all__ = ["KINDS", "Ref", "check_name", "file_ref", "parse_ref", "to_utc"]

KINDS = frozenset(
    {"table", "split", "file", "contract", "features", "trainingset", "run", "model", "gate",
     "deployment", "predictions", "report", "pipeline", "job"}
)
_NAME = r"[A-Za-z0-9_][A-Za-z0-9_.\-]*"
_NAME_RE = re.compile(rf"{_NAME}", re.ASCII)
_REF_RE = re.compile(
    rf"(?:(?P<kind>[a-z]+):)?(?P<name>{_NAME})(?:/(?P<slash>[0-9]+)|@(?P<at>[^@/\s]+))?", re.ASCII
)
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}([T ].*)?", re.ASCII)
_ALIAS_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*", re.ASCII)
_DIGITS_RE = re.compile(r"[0-9]+", re.ASCII)


@dataclass(frozen=True, slots=True)
class Ref:
    """A parsed ref; exactly one of version, timestamp, alias is set, or none (meaning latest)."""

    name: str
    kind: str | None = None
    version: int | None = None
    timestamp: datetime | None = None
    alias: str | None = None
    file_hash: str | None = None

    def __str__(self) -> str:
        if self.kind == "file":
            return f"file:{self.name}@sha256:{self.file_hash}"
        text = f"{self.kind}:{self.name}" if self.kind else self.name
        if self.kind == "model" and self.version is not None:
            return f"{text}/{self.version}"
        if self.version is not None:
            return f"{text}@{self.version}"
        if self.timestamp is not None:
            return f"{text}@{self.timestamp.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}"
        if self.alias is not None:
            return f"{text}@{self.alias}"
        return text

    @property
    def is_latest(self) -> bool:
        return self.version is None and self.timestamp is None and self.alias is None

    def with_kind(self, kind: str) -> Ref:
        return replace(self, kind=kind)

    def at_version(self, version: int) -> Ref:
        return replace(self, version=version, timestamp=None, alias=None)

    @property
    def unversioned(self) -> Ref:
        return Ref(name=self.name, kind=self.kind)


def parse_ref(text: str, *, kind: str | None = None) -> Ref:
    """Parse a user's ref; ``kind`` fills in the kind when the text does not name one."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidRef("empty ref; expected NAME, NAME@VERSION, NAME@TIMESTAMP, NAME@ALIAS or NAME/VERSION")
    text = text.strip()
    if text.startswith("file:"):
        return _parse_file_ref(text)
    match = _REF_RE.fullmatch(text)
    if not match:
        raise InvalidRef(
            f"malformed ref {text!r}; expected NAME, NAME@VERSION, NAME@2024-05-01T00:00Z, NAME@ALIAS "
            "or NAME/VERSION (names use letters, digits, '_', '-', '.')"
        )
    ref_kind = match["kind"] or kind
    if match["kind"] and match["kind"] not in KINDS:
        raise InvalidRef(f"unknown kind {match['kind']!r} in ref {text!r}; known: {', '.join(sorted(KINDS))}")
    name = match["name"]
    if match["slash"] is not None:
        return Ref(name=name, kind=ref_kind, version=int(match["slash"]))
    at = match["at"]
    if at is None:
        return Ref(name=name, kind=ref_kind)
    if _DIGITS_RE.fullmatch(at):
        return Ref(name=name, kind=ref_kind, version=int(at))
    if _DATE_RE.fullmatch(at):
        return Ref(name=name, kind=ref_kind, timestamp=_parse_timestamp(at, text))
    if _ALIAS_RE.fullmatch(at):
        return Ref(name=name, kind=ref_kind, alias=at)
    raise InvalidRef(f"malformed ref {text!r}: {at!r} is not a version number, an ISO timestamp or an alias")


def check_name(name: str, what: str = "name") -> str:
    """Names become folder names and ref parts: keep them to a safe alphabet."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or len(name) > 128:
        raise InvalidRef(
            f"invalid {what} {name!r}; use 1-128 letters, digits, '_', '-', '.' (not starting with '.' or '-')"
        )
    return name


def to_utc(value: datetime) -> datetime:
    """Timezone-aware UTC; a naive datetime is taken as UTC (documented, explicit)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _parse_timestamp(at: str, text: str) -> datetime:
    try:
        value = datetime.fromisoformat(at)
    except ValueError:
        raise InvalidRef(f"malformed timestamp {at!r} in ref {text!r}; use ISO 8601, e.g. 2024-05-01T00:00Z") from None
    return to_utc(value)


def _parse_file_ref(text: str) -> Ref:
    body = text[len("file:") :]
    name, _, digest = body.rpartition("@sha256:")
    bad_name = not name or name in (".", "..") or any(c in name for c in "/\\\x00")
    if bad_name or not re.fullmatch(r"[0-9a-f]{8,64}", digest):
        raise InvalidRef(f"malformed file ref {text!r}; expected file:NAME@sha256:HEX with NAME a base file name")
    return Ref(name=name, kind="file", file_hash=digest)


def file_ref(name: str, sha256: str) -> str:
    """The lineage ref of a source file: its base name and content hash."""
    return f"file:{name}@sha256:{sha256[:16]}"
