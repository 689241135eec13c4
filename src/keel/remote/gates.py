"""``ws.gates`` over HTTP: the embedded ``GateService`` methods, returning the same records (``ChecklistInfo``,
``GateReport`` with its ``TestResult`` list, times timezone-aware).

Two things stay where the code is. A checklist with custom tests names Python functions, which the server
never imports for a request: set it with ``keel.open(path)`` or ``keel gates set`` on the workspace's machine.
And the server loads models with ``trusted=False``; a model that needs trust is gated there too. A checklist
file named here is read here (relative to the current folder), and sent as its YAML text.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pydantic_core

from keel.errors import InvalidInput
from keel.gates.model import ChecklistInfo, GateReport
from keel.gates.spec import Checklist, CustomTest
from keel.refs import parse_ref
from keel.remote.client import Client, join
from keel.remote.decode import decode

__all__ = ["RemoteGateService"]

_CUSTOM = ("custom tests name Python code; set them from Python or the CLI on the workspace's machine "
           "(keel.open(path).gates.set_checklist or `keel gates set`), not through a server")


class RemoteGateService:
    """The release gates of a keel server: the embedded ``GateService`` methods, over HTTP."""

    def __init__(self, client: Client) -> None:
        self._client = client

    # -- checklists ----------------------------------------------------------------------------------------

    def set_checklist(self, model: str, checklist: Checklist | dict[str, Any] | str | Path, *,
                      reason: str | None = None) -> ChecklistInfo:
        """Store ``checklist`` (a Checklist, a dict, YAML text or a YAML file here) as the model's next version."""
        body = {**_body(checklist), "reason": reason}
        return _checklist(self._client.put(join("gates", "checklists", model), body))

    def checklist(self, model: str, version: int | None = None) -> ChecklistInfo:
        return _checklist(self._client.get(join("gates", "checklists", model), version=version))

    def checklists(self, model: str) -> list[ChecklistInfo]:
        return [_checklist(c) for c in self._client.get(join("gates", "checklists", model, "versions"))]

    # -- runs and reports ----------------------------------------------------------------------------------

    def run(self, ref: str, *, against: str | None = None, force: bool = False, trusted: bool = False) -> GateReport:
        """Run the model's latest checklist on the server and store the report there."""
        if trusted:
            raise InvalidInput("a server never loads a model that needs trust (trusted=True); run its gates where "
                               "its code is trusted: keel.open(path).gates.run(..., trusted=True)")
        return _report(self._client.post("/gates/run", {"model": str(ref), "against": against, "force": force}))

    def report(self, report_id: str) -> GateReport:
        return _report(self._client.get(join("gates", "reports", _id(report_id))))

    def reports(self, model: str | None = None, version: int | None = None, *, limit: int = 100) -> list[GateReport]:
        """Newest first."""
        return [_report(r) for r in self._client.get("/gates/reports", model=model, version=version, limit=limit)]

    def latest(self, ref: str) -> GateReport | None:
        """The newest report of a version against its model's latest checklist (None: never run)."""
        name, which = _version_parts(str(ref))
        found = self._client.get(join("gates", "latest", name, which))
        return None if found is None else _report(found)

    def html(self, report_id: str) -> str:
        """The report as a self-contained HTML page (plots inline)."""
        out = io.BytesIO()
        self._client.download(join("gates", "reports", _id(report_id), "html"), out)
        return out.getvalue().decode("utf-8")

    def override(self, report_id: str, *, reason: str) -> GateReport:
        """An approver releases a version despite failed required tests, with a reason (audited)."""
        if not reason or not reason.strip():
            raise InvalidInput("an override needs a reason (--reason): why the failures are acceptable")
        return _report(self._client.post(join("gates", "reports", _id(report_id), "override"), {"reason": reason}))


def _body(checklist: Checklist | dict[str, Any] | str | Path) -> dict[str, Any]:
    """The request body: the checklist as JSON, or YAML text (a file named here is read here)."""
    if isinstance(checklist, Checklist):
        if any(isinstance(t, CustomTest) for t in checklist.tests):
            raise InvalidInput(_CUSTOM)
        return checklist.model_dump(mode="json", exclude_none=True)
    if isinstance(checklist, dict):
        tests = checklist.get("tests")
        if isinstance(tests, list) and any(isinstance(t, dict) and t.get("kind") == "custom" for t in tests):
            raise InvalidInput(_CUSTOM)
        try:
            return pydantic_core.to_jsonable_python(checklist)  # dates and the like, as the YAML text would send them
        except pydantic_core.PydanticSerializationError as exc:
            raise InvalidInput(f"the checklist holds a value JSON cannot carry: {exc}") from None
    if not isinstance(checklist, str | Path):
        raise InvalidInput(f"a checklist is a Checklist, a dict, YAML text or a YAML file, not "
                           f"{type(checklist).__name__}")
    text = str(checklist)
    if isinstance(checklist, Path) or ("\n" not in text and text.endswith((".yaml", ".yml"))):
        path = Path(text).expanduser()
        if not path.is_file():
            raise InvalidInput(f"no checklist file at {path}")
        text = path.read_text(encoding="utf-8")
    return {"yaml": text}


def _id(report_id: str) -> str:
    return str(report_id).removeprefix("gate:")


def _version_parts(ref: str) -> tuple[str, str]:
    """``price/3`` -> (price, 3); ``price@champion`` -> (price, champion); ``price`` -> (price, latest)."""
    parsed = parse_ref(ref, kind="model")
    if parsed.kind not in (None, "model") or parsed.timestamp is not None:
        raise InvalidInput(f"{ref!r} is not a model version ref (price/3, price@champion)")
    return parsed.name, str(parsed.version) if parsed.version is not None else parsed.alias or "latest"


def _checklist(data: dict[str, Any]) -> ChecklistInfo:
    return decode(ChecklistInfo, data)


def _report(data: dict[str, Any]) -> GateReport:
    return decode(GateReport, data)
