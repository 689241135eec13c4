"""Release gates through a keel server: the same user code, embedded and remote, stores the same checklist,
gives the same verdicts and reads back the same records (``ChecklistInfo``, ``GateReport``, ``TestResult``);
overrides and promotions obey the same rules (issue 6).

A real uvicorn server on a free loopback port (``remote_server.start_team``), on SQLite and on PostgreSQL.
Custom tests are refused through the server (they name Python code), and so is ``trusted=True``.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from remote_server import Team, start_team

import keel
from gates_helpers import CHECKLIST, register, toy_world
from keel.errors import GatesFailed, InvalidInput, NotFound, PermissionDenied
from keel.gates.model import ChecklistInfo, GateReport, TestResult
from keel.gates.service import GateService
from keel.remote.gates import RemoteGateService

GOOD, BROKEN = "toy/1", "toy/2"


@pytest.fixture(params=["sqlite", "postgresql"])
def team(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Team]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    with start_team(tmp_path / "server", metadata_url=url) as started:
        split = toy_world(started.ws, 600)
        register(started.ws, split)
        register(started.ws, split, broken="anti_monotone")
        yield started


def user_code(ws: Any, *, force: bool = False) -> tuple[ChecklistInfo, GateReport, GateReport]:
    """What a data scientist writes, unchanged whichever workspace ``ws`` is."""
    info = ws.gates.set_checklist("toy", CHECKLIST, reason="the toy checklist")
    good = ws.gates.run(GOOD, force=force)
    broken = ws.gates.run(BROKEN, force=force)
    return info, good, broken


def verdicts(report: GateReport) -> list[tuple[str, str, bool]]:
    return [(r.name, r.status, r.required) for r in report.results]


def test_the_same_code_gives_the_same_checklist_and_verdicts(team: Team) -> None:
    embedded, remote = team.embedded("developer"), team.remote("developer")
    try:
        here = user_code(embedded)
        there = user_code(remote, force=True)  # without force: the reports of the identical runs, reused
        reused = user_code(remote)
    finally:
        remote.close()
    assert isinstance(there[0], ChecklistInfo) and there[0] == here[0]  # the same checklist: the same version
    assert there[0].created_at.tzinfo is not None
    for mine, theirs, again in zip(here[1:], there[1:], reused[1:], strict=True):
        assert isinstance(theirs, GateReport) and all(isinstance(r, TestResult) for r in theirs.results)
        assert verdicts(theirs) == verdicts(mine) and theirs.status == mine.status
        assert theirs.id != mine.id and not theirs.reused and theirs.created_by == "dev"
        assert isinstance(theirs.created_at, datetime) and theirs.created_at.tzinfo is not None
        assert again.reused and again.id == theirs.id
        assert [r.value for r in theirs.results] == pytest.approx([r.value for r in mine.results])
    assert (here[1].status, here[2].status) == ("passed", "failed")
    assert {r.name for r in there[2].blocking} == {r.name for r in here[2].blocking} >= {"directional"}
    directional = next(r for r in there[2].results if r.name == "directional")
    assert directional.evidence and directional.evidence_rows > 0 and not there[2].releasable


def test_the_records_are_the_same_embedded_and_remote(team: Team) -> None:
    embedded, remote = team.embedded("viewer"), team.remote("viewer")
    _, good, broken = user_code(team.embedded("developer"))
    try:
        for ws in (embedded, remote):
            assert ws.gates.checklist("toy") == embedded.gates.checklist("toy", 1)
            assert ws.gates.checklists("toy") == embedded.gates.checklists("toy")
            assert ws.gates.report(broken.id) == ws.gates.report(broken.ref) == embedded.gates.report(broken.id)
            assert ws.gates.reports() == embedded.gates.reports()
            assert ws.gates.reports("toy", 1, limit=5) == embedded.gates.reports("toy", 1) == [
                embedded.gates.report(good.id)]
            assert ws.gates.latest(BROKEN) == ws.gates.latest("toy") == embedded.gates.report(broken.id)
            assert ws.gates.latest("model:toy/1").id == good.id
            page = ws.gates.html(broken.id)
            assert page == embedded.gates.html(broken.id) and broken.id in page
    finally:
        remote.close()


def test_a_checklist_file_is_read_on_the_client_and_custom_tests_are_refused(team: Team, tmp_path: Path) -> None:
    remote = team.remote("developer")
    try:
        file = tmp_path / "client" / "gates.yaml"
        file.parent.mkdir()
        file.write_text(CHECKLIST)
        assert remote.gates.set_checklist("toy", file).version == 1
        assert remote.gates.set_checklist("toy", str(file)).version == 1  # a one-line str ending in .yaml: a file
        smoke_only = {"tests": [{"kind": "smoke", "range": [-50, 100]}]}
        assert remote.gates.set_checklist("toy", smoke_only).version == 2
        assert remote.gates.set_checklist("toy", keel.Checklist.model_validate(smoke_only)).version == 2
        with pytest.raises(InvalidInput, match="no checklist file"):
            remote.gates.set_checklist("toy", tmp_path / "missing.yaml")

        @keel.custom_gate
        def always(ctx: Any) -> keel.GateOutcome:
            return keel.GateOutcome(passed=True)

        custom = {"tests": [{"kind": "custom", "function": always}]}
        for checklist in (custom, keel.Checklist.model_validate(custom),
                          "tests:\n  - kind: custom\n    function: checks.py:always\n"):
            with pytest.raises(InvalidInput, match="custom tests name Python code"):
                remote.gates.set_checklist("toy", checklist)
        assert len(team.ws.gates.checklists("toy")) == 2
        with pytest.raises(InvalidInput, match="trusted"):
            remote.gates.run(GOOD, trusted=True)
    finally:
        remote.close()


def test_overrides_and_promotions_obey_the_same_rules(team: Team) -> None:
    developer, approver = team.remote("developer"), team.remote("approver")
    try:
        developer.gates.set_checklist("toy", CHECKLIST)
        failed = developer.gates.run(BROKEN)
        for ws in (developer, team.embedded("developer")):
            with pytest.raises(GatesFailed, match="directional"):
                ws.models.promote(BROKEN, "staging")
            with pytest.raises(PermissionDenied, match="approver"):
                ws.gates.override(failed.id, reason="ship it")
            with pytest.raises(NotFound):
                ws.gates.report("0123456789abcdef")
            with pytest.raises(NotFound):
                ws.gates.run("nope/1")
        with pytest.raises(InvalidInput, match="reason"):
            approver.gates.override(failed.id, reason=" ")
        overridden = approver.gates.override(failed.ref, reason="toys need not be monotone")
        assert overridden.releasable and overridden.override["by"] == "alice"
        assert overridden == team.ws.gates.report(failed.id)
        assert developer.models.promote(BROKEN, "staging").version == 2
        assert team.ws.audit.list(action="gates.override")[0].actor == "alice"
    finally:
        developer.close()
        approver.close()


def test_the_remote_service_has_every_method_of_the_embedded_one_with_the_same_parameters() -> None:
    def methods(cls: type) -> dict[str, list[str]]:
        return {name: list(inspect.signature(f).parameters) for name, f in vars(cls).items()
                if callable(f) and not name.startswith("_")}

    embedded = methods(GateService)
    del embedded["release_check"]  # what the registry asks before a promotion, inside the server
    assert methods(RemoteGateService) == embedded
