"""Incidents (issue 8) on a real data plane: a deployment's timeline shows, in time order, the data it was trained
on, its registry events, its policy versions (create, canary, rollback), an alert of its monitor, and the fallback
and latency spike a broken, slow canary caused in the prediction log; an incident records that timeline with
notes, lineage to the deployment versions and an audit row; bad input is refused with nothing stored."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

import keel
from gates_helpers import FEATURES, register, toy_frame, toy_world
from keel.errors import InvalidInput, NotFound
from keel.monitoring import timeline as timeline_module
from keel.serving.app import create_predictor_app


class SlowBrokenModel:
    """A bad candidate: predicts where it was registered; once loaded from its package, takes 0.1 s and raises."""

    def __init__(self) -> None:
        self.loaded = False

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, loaded=True)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        if self.loaded:
            time.sleep(0.1)
            raise RuntimeError("broken candidate: no column x3")
        return np.zeros(len(X))


def requests(ws: keel.Workspace, folder: Path, seed: int, *, chunks: int = 1, per_chunk: int = 30,
             pause_s: float = 1.05) -> None:
    """``chunks`` bursts of ``per_chunk`` one-row requests through the data plane, ``pause_s`` apart (each burst in a
    bucket of its own); its log is committed when the app stops."""
    rows = toy_frame(chunks * per_chunk, seed=seed)[FEATURES].to_dict(orient="records")
    app = create_predictor_app(ws, ["price"], log_folder=folder, trusted=True)
    with TestClient(app) as client:
        for chunk in range(chunks):
            if chunk:
                time.sleep(pause_s)
            for row in rows[chunk * per_chunk:(chunk + 1) * per_chunk]:
                reply = client.post("/v1/endpoints/price/predict", json={"records": [row]})
                assert reply.status_code == 200, reply.text


def gap() -> None:
    """Phases land in different buckets (1 s wide in these tests)."""
    time.sleep(1.1)


@pytest.fixture
def short_buckets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Buckets of 1 s whatever the range, so a test of seconds has many."""
    monkeypatch.setattr(timeline_module, "MIN_BUCKET_S", 1.0)
    monkeypatch.setattr(timeline_module, "BUCKETS", 1_000_000)


@pytest.fixture
def incident(ws: keel.Workspace, tmp_path: Path, short_buckets: None) -> dict:
    """A deployment's bad afternoon, with the times that separate its phases."""
    started = datetime.now(UTC)
    ws.data.ingest(pd.DataFrame({"k": [1, 2], "v": [0.5, 0.7]}), "unrelated")
    good = register(ws, toy_world(ws, n=600))
    ws.deployments.create("price", good.name, fallbacks=["baseline"], reason="first release")
    ws.monitors.create("watch", "price", window="1h", alerts=["rows < 1"])
    ws.monitors.run("watch", window="2020-01-01T00:00Z..2020-01-02T00:00Z")  # no rows: the rule fires
    with ws.runs.start("bad") as run:
        run.set_tags({"fit.data": "split:toy-split@1", "fit.label": "y"})
        bad = ws.models.register(SlowBrokenModel(), "price-candidate", flavor="python", run=run,
                                 input_example=toy_frame(2)[FEATURES])
    ws.models.set_alias(bad.name, "challenger", reason="try it")
    gap()
    requests(ws, tmp_path / "log-a", seed=1, chunks=6, per_chunk=12)  # healthy traffic, in many buckets
    gap()
    ws.deployments.canary("price", bad.name, steps=[90], interval_s=0.01, guardrails=["error_rate < 0.1"],
                          reason="try the candidate")
    broken_from = datetime.now(UTC)
    requests(ws, tmp_path / "log-b", seed=2)  # 90 % to the canary: slow, and the baseline answers
    broken_until = datetime.now(UTC)
    decision = ws.deployments.check_canary("price", min_requests=5)
    assert decision.action == "rollback", decision
    gap()
    requests(ws, tmp_path / "log-c", seed=3, chunks=6, per_chunk=12)  # healthy again
    return {"started": started, "good": good, "bad": bad, "broken": (broken_from, broken_until)}


def test_the_timeline_has_every_kind_in_time_order(ws: keel.Workspace, incident: dict) -> None:
    found = ws.incidents.timeline("price", incident["started"] - timedelta(seconds=1))
    at = [e.at for e in found.events]
    assert at == sorted(at) and all(e.at.tzinfo is not None for e in found.events)
    assert set(found.kinds()) == {"deployment", "registry", "data", "alert", "fallbacks", "latency"}
    assert found.versions == [1, 2, 3] and found.models == ["price-candidate/1", "toy/1"]
    assert found.traffic["requests"] == 2 * 72 + 30

    def first(kind: str, subject: str = "", action: str = "") -> int:
        return next(i for i, e in enumerate(found.events) if e.kind == kind and e.subject.startswith(subject)
                    and e.details.get("action", "").startswith(action))

    data = {e.subject: e for e in found.events if e.kind == "data"}
    assert data["table:toy@0"].details["upstream"]  # both versions were fitted on its split
    assert data["table:toy@0"].details["feeds"] == ["price-candidate/1", "toy/1"]
    assert not data["table:unrelated@0"].details["upstream"]  # committed in the range, feeding nothing served
    assert not any(s.startswith("table:predictions") for s in data)  # the log's own commits are not events
    order = [first("data", "table:toy@"), first("registry", "model:toy/1", "model.register"),
             first("deployment", "deployment:price@1"), first("alert", "monitor:watch"),
             first("registry", "model:price-candidate/1", "model.register"),
             first("registry", "model:price-candidate/1", "model.alias"),
             first("deployment", "deployment:price@2"), first("deployment", "deployment:price@3")]
    assert order == sorted(order), [found.events[i].summary for i in order]
    created, canary, rollback = (found.events[i] for i in (order[2], order[6], order[7]))
    assert (created.details["action"], created.details["reason"]) == ("create", "first release")
    assert canary.details["action"] == "canary" and "price-candidate/1 at 90%" in canary.summary
    assert rollback.details["action"] == "rollback" and "guardrail failed" in rollback.summary
    alert = found.events[order[3]]
    assert alert.summary.startswith("firing: rows < 1") and alert.details["report"] == "monitor_report:watch/1"
    assert "challenger None → 1" in found.events[order[5]].summary

    broken_from, broken_until = incident["broken"]
    spikes = [e for e in found.events if e.kind in ("fallbacks", "latency")]
    fallbacks = [e for e in spikes if e.kind == "fallbacks"]
    assert len(fallbacks) == 1, [e.summary for e in spikes]  # only the canary's phase, not the healthy ones
    spike = fallbacks[0]
    until = datetime.fromisoformat(spike.details["until"])
    assert spike.at <= broken_until and until >= broken_from and spike.at <= rollback.at
    assert spike.details["fallback_rate"] > 2 * spike.details["range_fallback_rate"]
    assert spike.details["served_by"] == "baseline" and "broken candidate" in spike.details["reason"]
    slow = [e for e in spikes if e.kind == "latency" and e.at <= broken_until
            and datetime.fromisoformat(e.details["until"]) >= broken_from]
    assert slow and slow[0].details["p99_ms"] >= 100 > 2 * found.traffic["median_p99_ms"]


def test_a_narrow_range_has_only_its_own_events(ws: keel.Workspace, incident: dict) -> None:
    broken_from, broken_until = incident["broken"]
    found = ws.incidents.timeline("price", broken_from.isoformat(), broken_until.isoformat())
    assert found.versions == [2]  # the canary's version was in effect throughout
    assert "registry" not in found.kinds() and "deployment" not in found.kinds()
    assert found.traffic["requests"] == 30
    old = ws.incidents.timeline("price", "2020-01-01T00:00Z", "2020-01-02T00:00Z")
    assert (old.events, old.versions, old.traffic["requests"]) == ([], [], 0)


def test_an_incident_is_recorded_with_its_timeline_notes_lineage_and_audit(ws: keel.Workspace,
                                                                            incident: dict) -> None:
    start = incident["started"] - timedelta(seconds=1)
    made = ws.incidents.create("price", start, title="prices fell back to the mean", note="paged at 14:02",
                               severity="high")
    assert (made.id, made.ref, made.severity, made.deployment) == (1, "incident:1", "high", "price")
    assert made.window_start == start and made.window_end <= datetime.now(UTC)
    assert [n["text"] for n in made.notes] == ["paged at 14:02"] and made.notes[0]["by"] == ws.user
    kinds = [e["kind"] for e in made.timeline["events"]]
    assert {"deployment", "registry", "alert", "fallbacks"} <= set(kinds)
    later = ws.incidents.create("price", "1h", title="second look")
    noted = ws.incidents.note(made.id, "root cause: the candidate's package misses a column")
    assert [n["text"] for n in noted.notes][-1].startswith("root cause")
    assert ws.incidents.get("incident:1").notes == noted.notes
    assert ws.incidents.get(1).timeline == made.timeline  # a snapshot: what was read when it was recorded
    listed = ws.incidents.list()
    assert [i.id for i in listed] == [later.id, made.id] and listed[1].timeline == {} and len(listed[1].notes) == 2
    assert ws.incidents.list("other") == []
    assert set(ws.lineage.upstream(made.ref, depth=1).refs()) == {
        made.ref, "deployment:price@1", "deployment:price@2", "deployment:price@3"}
    actions = [(a.action, a.target) for a in ws.audit.list(target="incident:1")]
    assert actions == [("incident.note", "incident:1"), ("incident.create", "incident:1")]


def test_bad_input_is_refused_and_nothing_is_stored(ws: keel.Workspace) -> None:
    ws.deployments.create("price", register(ws, toy_world(ws, n=300)).name)
    with pytest.raises(NotFound, match="no deployment 'nope'"):
        ws.incidents.timeline("nope", "1h")
    with pytest.raises(InvalidInput, match="not before"):
        ws.incidents.timeline("price", "2024-01-02T00:00Z", "2024-01-01T00:00Z")
    with pytest.raises(InvalidInput, match="--from 'yesterday-ish'"):
        ws.incidents.timeline("price", "yesterday-ish")
    with pytest.raises(InvalidInput, match="--to 'soon'"):
        ws.incidents.timeline("price", "1h", "soon")
    with pytest.raises(InvalidInput, match="in the future"):
        ws.incidents.timeline("price", (datetime.now(UTC) + timedelta(days=1)).isoformat())
    with pytest.raises(InvalidInput, match="title"):
        ws.incidents.create("price", "1h", title="  ")
    with pytest.raises(InvalidInput, match="severity"):
        ws.incidents.create("price", "1h", title="t", severity="sev1")
    with pytest.raises(NotFound, match="no deployment"):
        ws.incidents.create("nope", "1h", title="t")
    assert ws.incidents.list() == []
    with pytest.raises(NotFound, match="no incident"):
        ws.incidents.get(7)
    with pytest.raises(InvalidInput, match="incident id"):
        ws.incidents.get("seven")
    made = ws.incidents.create("price", "1h", "2099-01-01T00:00Z", title="t")  # an end in the future is now
    assert made.window_end <= datetime.now(UTC)
    with pytest.raises(InvalidInput, match="note"):
        ws.incidents.note(made.id, " ")
    with pytest.raises(NotFound):
        ws.incidents.note(99, "text")
    assert ws.incidents.get(made.id).notes == []
