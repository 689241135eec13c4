"""The pipeline and retraining pages over a real workspace: pipelines applied from ui_pipeline_defs.py and run
inline (one run with a failed and a skipped step, one with cached steps), a deployment serving a fitted toy model,
and two retraining policies whose manual retrains wait for review (one candidate passes its gates, one fails them).

The pages render for a viewer; a run is drawn as a graph laid out by depth with each step's status; what a step
printed and its error are escaped; the review shows why, the window and guard, how, the gates (linked to their
report), the comparison and what approving does; only an approver sees the forms, and only while pending review;
a decision POSTed without the role or the CSRF token is refused; a refused decision is a 4xx page saying why, and a
decision made redirects back to the page showing it, in the audit log as the logged-in user.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import keel
from gates_helpers import CHECKLIST, FEATURES, pipeline, toy_frame, toy_world  # tests/ is on sys.path
from keel.retraining.model import STATUSES
from keel.server.app import create_app
from keel.server.security import SESSION_COOKIE, csrf_token
from keel.ui.pipelines import dag, layers
from keel.ui.render import ref_url
from keel.ui.retraining import STATUS_WORDS, direction
from keel.users import ROLES

from .ui_pages import HTML, row, section
from .ui_pipeline_defs import BOOM, MARKUP_LOG

DEFS = Path(__file__).with_name("ui_pipeline_defs.py")


@dataclass
class PipelinesWorkspace:
    ws: keel.Workspace
    tokens: dict[str, str]  # role -> token of "<role>-user"
    failed: int  # ui-demo run: explode failed, after skipped
    cached: int  # ui-demo run again with fail=False: the first steps cached
    good: int  # retrain of policy toy-good: pending review, gates passed
    bad: int | None  # retrain of policy toy-bad: pending review, required gates failed
    refused: int | None  # retrain of policy toy-empty: refused, its window holds no row
    serving: str  # toy/1


def build_pipelines_workspace(path: Path, *, bad: bool = True) -> PipelinesWorkspace:
    """A user and token per role; the toy table (toy@0) split and a fitted, evaluated toy/1 behind deployment
    ``price``; toy@1 appended (new data to retrain on); the pipelines applied; ui-demo run twice; a manual retrain
    of each policy, inline: toy-good's and toy-bad's pending review, toy-empty's refused (``bad=False``: toy-good's
    only)."""
    ws = keel.init(path, user="admin-user")
    tokens = {}
    for role in ROLES:
        ws.users.add(f"{role}-user", role)
        tokens[role] = ws.tokens.create(f"{role}-user").token
    split = toy_world(ws, n=600)
    with ws.runs.start("toy", inputs=[split.ref]) as run:  # evaluated: the review compares metric by metric
        model = ws.runs.fit(pipeline(), split.ref, features=FEATURES, run=run)
        ws.runs.evaluate(model, split.ref, features=FEATURES, run=run)
        serving = ws.models.register(model, "toy", run=run, input_example=ws.data.read_split(
            split.ref, "train", columns=FEATURES).head(5))
    ws.gates.set_checklist("toy", CHECKLIST)
    assert ws.gates.run(serving.name).releasable
    ws.deployments.create("price", serving.name, reason="first release")
    ws.data.ingest(toy_frame(200, seed=1).assign(id=lambda f: f.id + 600), "toy", mode="append")
    ws.pipelines.apply(DEFS)
    failed = ws.pipelines.run("ui-demo", executor="inline")
    cached = ws.pipelines.run("ui-demo", {"fail": False}, executor="inline")
    assert (failed.status, cached.status) == ("failed", "succeeded")
    ids = {}
    for name, pipeline_name in (("toy-good", "toy-retrain"), ("toy-bad", "toy-retrain-bad"))[:2 if bad else 1]:
        ws.retraining.create_policy(name, "price", pipeline_name, when=["manual()"], data="all", source="toy",
                                    max_influenced=None, reason="retrain the toy model by hand")
        made = ws.retraining.start(name, reason=f"new toy rows <i>{name}</i>", executor="inline")
        assert made.status == "pending_review", (made.status, made.evidence)
        ids[name] = made.id
    if bad:
        ws.retraining.create_policy("toy-empty", "price", "toy-retrain", when=["manual()"], data="x1 > 9.5",
                                    source="toy", max_influenced=None)
        restated = toy_frame(100, seed=2)
        ws.data.ingest(restated[restated.x1 < 9], "toy", mode="overwrite")  # the window is empty now
        refused = ws.retraining.start("toy-empty", reason="nothing to train on", executor="inline")
        assert refused.status == "refused", refused.status
        ids["toy-empty"] = refused.id
    return PipelinesWorkspace(ws, tokens, failed.id, cached.id, ids["toy-good"], ids.get("toy-bad"),
                              ids.get("toy-empty"), serving.name)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PipelinesWorkspace]:
    built = build_pipelines_workspace(tmp_path_factory.mktemp("pipelines-ui") / "ws")
    yield built
    built.ws.close()


@pytest.fixture(scope="module")
def app(built: PipelinesWorkspace):
    return create_app(built.ws)


def _client(app, built: PipelinesWorkspace, role: str = "viewer") -> TestClient:
    return TestClient(app, base_url="http://127.0.0.1", follow_redirects=False,
                      cookies={SESSION_COOKIE: built.tokens[role]})


@pytest.fixture(scope="module")
def viewer(app, built: PipelinesWorkspace) -> TestClient:
    return _client(app, built)


def _get(client: TestClient, path: str) -> str:
    """The page at ``path``, which answers 200; a traceback may be in a step's log (the step's own failure, printed),
    nowhere else."""
    response = client.get(path, headers=HTML)
    assert response.status_code == 200, (path, response.text[:800])
    outside = re.sub(r'<pre class="log">.*?</pre>', "", response.text, flags=re.S)
    assert "Traceback" not in outside, path
    return response.text


def _nodes(page: str) -> dict[str, str]:
    """The run graph's nodes: step -> status."""
    return dict(re.findall(r'<a href="#step-[^"]*" class="dag-node[^"]*" data-step="([^"]+)" data-status="([^"]+)"',
                           page))


def _depths(page: str) -> dict[str, int]:
    return {s: int(d) for s, d in re.findall(r'class="dag-node[^"]*" data-step="([^"]+)"[^>]*data-depth="(\d+)"',
                                             page)}


# -- pipelines ------------------------------------------------------------------------------------------------


def test_the_pipeline_pages_render_for_a_viewer_without_outside_scripts(built, viewer) -> None:
    paths = ["/pipelines", "/pipelines?status=failed", "/pipelines/ui-demo", "/pipelines/ui-demo?version=1",
             f"/pipelines/runs/{built.failed}", f"/pipelines/runs/{built.cached}", "/retraining",
             "/retraining?status=pending_review&policy=toy-good", f"/retraining/{built.good}",
             f"/retraining/{built.bad}", f"/retraining/{built.refused}"]
    for path in paths:
        page = _get(viewer, path)
        assert not re.search(r'(src|href)="(https?:)?//', page), path  # no CDN, no other origin
        assert "<script" not in page, path  # the pages need no script at all
    nav = _get(viewer, "/pipelines")
    assert '<a href="/pipelines" class="active" aria-current="page">Pipelines</a>' in nav
    assert '<a href="/retraining">Retraining</a>' in nav
    assert '<a href="/retraining" class="active" aria-current="page">Retraining</a>' in _get(viewer, "/retraining")


def test_the_pipelines_page_lists_each_pipeline_and_the_recent_runs(built, viewer) -> None:
    page = _get(viewer, "/pipelines")
    demo = row(section(page, "pipelines"), "data-pipeline", "ui-demo")
    assert 'href="/pipelines/ui-demo"' in demo and "v1" in demo and "a small DAG" in demo
    assert re.findall(r"<code>([^<]+)</code>", demo) == ["load", "summarize", "side", "explode", "after"]
    assert '<span class="badge trigger"' in demo and ">manual<" in demo
    assert f'href="/pipelines/runs/{built.cached}"' in demo and "status-succeeded" in demo  # its last run
    runs = section(page, "runs")
    failed = row(runs, "data-run", str(built.failed))
    assert 'data-status="failed"' in failed and "3 succeeded" in failed and "1 failed" in failed
    assert "1 skipped" in failed and "by admin-user" in failed
    assert "3 cached" in row(runs, "data-run", str(built.cached))
    retrain_run = built.ws.retraining.get(built.good).pipeline_run
    assert f'href="/retraining/{built.good}">retrain #{built.good}<' in row(runs, "data-run", str(retrain_run))
    only_failed = section(_get(viewer, "/pipelines?status=failed"), "runs")
    assert f'data-run="{built.failed}"' in only_failed and f'data-run="{built.cached}"' not in only_failed


def test_a_pipeline_page_draws_its_dag_and_lists_its_steps_and_runs(built, viewer) -> None:
    page = _get(viewer, "/pipelines/ui-demo")
    graph = section(page, "dag")
    assert '<svg class="dag"' in graph and graph.count('class="dag-node"') == 5
    assert _depths(graph) == {"load": 0, "summarize": 1, "side": 1, "explode": 2, "after": 3}
    assert graph.count('class="dag-edge"') == 4 and 'data-from="load" data-to="side"' in graph
    assert "→ Table" in graph and "→ int" in graph  # a definition's node says what the step returns
    steps = section(page, "steps")
    explode = row(steps, "id", "def-explode")
    assert '<a href="#def-summarize">summarize</a>' in explode and "fail" in explode and "true" in explode
    load = row(steps, "id", "def-load")
    assert 'href="/data/toy"' not in load and "toy" in load  # a default that is a table name, not yet a ref
    runs = section(page, "runs")
    assert f'data-run="{built.failed}"' in runs and f'data-run="{built.cached}"' in runs
    assert "toy-retrain" not in runs  # this pipeline's runs only
    retrain = _get(viewer, "/pipelines/toy-retrain")
    assert _depths(retrain) == {"window": 0, "split": 1, "train": 2, "gates": 3}


def test_a_run_is_drawn_as_its_steps_coloured_by_status(built, viewer) -> None:
    page = _get(viewer, f"/pipelines/runs/{built.failed}")
    assert '<span class="badge status-failed run-status">failed</span>' in page
    graph = section(page, "graph")
    assert _nodes(graph) == {"load": "succeeded", "summarize": "succeeded", "side": "succeeded",
                             "explode": "failed", "after": "skipped"}
    assert _depths(graph) == {"load": 0, "summarize": 1, "side": 1, "explode": 2, "after": 3}
    x = {s: float(v) for s, v in re.findall(r'data-step="([^"]+)"[^>]*>\s*<title>[^<]*</title>\s*<rect x="([\d.]+)"',
                                            graph)}
    assert x["load"] < x["summarize"] == x["side"] < x["explode"] < x["after"]  # every arrow points right
    failed_node = graph[graph.index('data-step="explode"'):]
    assert 'fill="#fdecea" stroke="#b3261e"' in failed_node[:failed_node.index("</a>")]
    assert 'class="dag-edge skipped" data-from="explode" data-to="after"' in graph
    steps = section(page, "steps")
    explode = row(steps, "id", "step-explode")
    assert 'data-status="failed"' in explode and "RuntimeError: boom: &lt;b&gt;explode&lt;/b&gt; refused" in explode
    assert "ms" in explode or " s" in explode  # its duration
    load = row(steps, "id", "step-load")
    assert '<a class="ref" href="/data/toy/versions/1">table:toy@1</a>' in load  # the pinned input and output
    summarize = row(steps, "id", "step-summarize")
    assert "&#34;rows&#34;: 800" in summarize or "&quot;rows&quot;: 800" in summarize or '"rows": 800' in unescape(
        summarize)
    assert "a step it depends on failed" in row(steps, "id", "step-after")
    summary = section(page, "summary")
    assert "explode: RuntimeError" in unescape(summary) and f"keel pipelines retry {built.failed}" in summary
    logs = section(page, "logs")
    assert '<details class="step-log" id="log-explode" data-step="explode" open>' in logs  # a failure's log is open
    assert "about to decide" in logs


def test_what_a_step_printed_is_shown_escaped(built, viewer) -> None:
    page = _get(viewer, f"/pipelines/runs/{built.failed}")
    assert MARKUP_LOG not in page and "<b>explode</b>" not in page
    logs = section(page, "logs")
    start = logs.index('id="log-summarize"')
    block = logs[start:logs.index("</details>", start)]
    assert '<pre class="log">' in block
    assert "&lt;script&gt;alert(&#39;step&#39;)&lt;/script&gt;" in block and "800 rows in table:toy@1" in block
    assert unescape(block).count(MARKUP_LOG) == 1
    assert BOOM in unescape(page) and BOOM not in page


def test_a_cached_run_says_where_each_output_came_from(built, viewer) -> None:
    page = _get(viewer, f"/pipelines/runs/{built.cached}")
    assert _nodes(section(page, "graph")) == {"load": "cached", "summarize": "cached", "side": "cached",
                                              "explode": "succeeded", "after": "succeeded"}
    load = row(section(page, "steps"), "id", "step-load")
    assert f'href="/pipelines/runs/{built.failed}#step-load">run #{built.failed}<' in load
    assert f"cached from #{built.failed}" in section(page, "graph")
    given = section(page, "summary")
    assert '<span class="relation">fail</span> <code class="value">false</code>' in given


@pytest.mark.parametrize(("path", "status", "message"), [
    ("/pipelines/nothing", 404, "no pipeline 'nothing'"), ("/pipelines/runs/424242", 404, "no pipeline run 424242"),
    ("/pipelines/runs/seven", 400, "is not a pipeline run id"), ("/pipelines/ui-demo?version=9", 404, "version 9"),
    ("/retraining/424242", 404, "no retrain 424242"), ("/retraining/seven", 400, "is not a retrain id")])
def test_unknown_objects_are_error_pages(viewer, path: str, status: int, message: str) -> None:
    response = viewer.get(path, headers=HTML)
    assert response.status_code == status and "<!doctype html>" in response.text, response.text[:300]
    assert message in unescape(response.text)


def test_the_dag_layout() -> None:
    names = ["a", "b", "c", "d", "e"]
    edges = [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d"), ("a", "d")]
    assert layers(names, edges) == {"a": 0, "b": 1, "c": 1, "d": 2, "e": 0}
    graph = dag(names, edges)
    at = {n["name"]: (n["x"], n["y"]) for n in graph["nodes"]}
    assert at["a"][0] == at["e"][0] < at["b"][0] == at["c"][0] < at["d"][0]
    assert at["b"][1] != at["c"][1] and graph["columns"] == 3 and len(graph["arrows"]) == 5
    assert all(n["x"] + graph["node_w"] <= graph["width"] and n["y"] + graph["node_h"] <= graph["height"]
               for n in graph["nodes"])
    assert layers(["x", "y"], [("x", "y"), ("y", "x")]) == {"x": 0, "y": 1}  # a cycle is drawn, not a crash
    assert dag([], [])["nodes"] == []


# -- retraining -------------------------------------------------------------------------------------------------


def test_every_retrain_status_has_words() -> None:
    assert set(STATUS_WORDS) == set(STATUSES)
    assert direction("validation.rmse") == -1 and direction("test.r2") == 1 and direction("train.rows") == 0


def test_the_retraining_page_lists_policies_and_retrains(built, viewer) -> None:
    page = _get(viewer, "/retraining")
    good = row(section(page, "policies"), "data-policy", "toy-good")
    assert 'href="/deployments/price"' in good and 'href="/pipelines/toy-retrain"' in good
    assert '<code class="condition">manual()</code>' in good and "all" in good and "off" in good  # the guard
    retrains = section(page, "retrains")
    mine = row(retrains, "data-retrain", str(built.good))
    assert 'data-status="pending_review"' in mine and "manual()" in mine
    assert "new toy rows &lt;i&gt;toy-good&lt;/i&gt;" in mine  # the reason, escaped
    candidate = built.ws.retraining.get(built.good).candidate.removeprefix("model:")
    assert f'href="/models/toy/versions/{candidate.split("/")[1]}">{candidate}<' in mine
    assert "status-passed" in mine and 'href="/gates/' in mine
    bad = row(retrains, "data-retrain", str(built.bad))
    assert "status-failed" in bad and "blocking: metric" in bad
    filtered = section(_get(viewer, "/retraining?policy=toy-bad"), "retrains")
    assert f'data-retrain="{built.bad}"' in filtered and f'data-retrain="{built.good}"' not in filtered


def test_the_review_page_shows_what_an_approver_weighs(built, viewer) -> None:
    found = built.ws.retraining.get(built.good)
    page = _get(viewer, f"/retraining/{built.good}")
    trigger = section(page, "trigger")
    assert "manual()" in trigger and "new toy rows &lt;i&gt;toy-good&lt;/i&gt;" in trigger
    assert f'href="/models/toy/versions/1">{built.serving}<' in trigger and "by admin-user" in trigger
    window = section(page, "window")
    assert '<td class="window-rows">800</td>' in window and 'href="/data/toy/versions/1">table:toy@1<' in window
    assert "every row" in window and "guard-off" in window
    how = section(page, "how")
    assert '<td class="how-used">from_scratch' in how and f'href="/pipelines/runs/{found.pipeline_run}"' in how
    assert _nodes(how.replace('href="#', 'href="#step-')) == {"window": "succeeded", "split": "succeeded",
                                                              "train": "succeeded", "gates": "succeeded"}
    gates = section(page, "gates")
    report_id = found.gate_report.removeprefix("gate:")
    assert f'href="/gates/{report_id}"' in gates and "gate-report-link" in gates and ">passed<" in gates
    assert 'data-test="directional"' in gates
    assert _get(viewer, f"/gates/{report_id}")  # the linked report page exists
    comparison = section(page, "comparison")
    metrics = found.evidence["comparison"]["metrics"]
    assert metrics and all(m["candidate"] is not None and m["serving"] is not None for m in metrics)
    rmse = next(m["metric"] for m in metrics if m["metric"].rsplit(".", 1)[-1] == "rmse")
    shown = row(comparison, "data-metric", rmse)
    assert 'class="num serving-value">—<' not in shown and re.search(r'candidate-value (better|worse)"', shown)
    assert comparison.count("<tr data-metric=") == len(metrics)
    decision = section(page, "decision")
    assert re.search(r"Approving</strong> will approve (model:)?toy/\d+ for production", decision)
    assert "start a canary on deployment price" in decision
    assert "Rejecting</strong> leaves price serving toy/1" in decision


def test_a_refused_retrain_says_why_and_has_nothing_to_decide(app, built) -> None:
    page = _get(_client(app, built, "approver"), f"/retraining/{built.refused}")
    assert '<span class="badge status-refused retrain-status"' in page
    assert "holds no rows" in page and 'class="error-box retrain-outcome"' in page
    window = section(page, "window")
    assert '<td class="window-rows">0</td>' in window and '<code class="where">x1 &gt; 9.5</code>' in window
    assert "No gate report" in section(page, "gates") and "No comparison" in section(page, "comparison")
    assert 'id="approve-form"' not in page and "Nothing to decide: the retrain is refused" in page
    listed = row(section(_get(_client(app, built), "/retraining"), "retrains"), "data-retrain", str(built.refused))
    assert 'data-status="refused"' in listed and '<td class="gates"><span class="muted">—' in listed
    built.ws.retraining.delete_policy("toy-empty")  # the review is read from the retrain itself then
    gone = _get(_client(app, built), f"/retraining/{built.refused}")
    assert "holds no rows" in gone and '<code class="where">x1 &gt; 9.5</code>' in gone


@pytest.mark.parametrize(("role", "shown"), [("viewer", False), ("developer", False), ("approver", True),
                                             ("admin", True)])
def test_only_approvers_see_the_decision_forms(app, built, role: str, shown: bool) -> None:
    page = _get(_client(app, built, role), f"/retraining/{built.good}")
    assert ('id="approve-form"' in page) is shown and ('id="reject-form"' in page) is shown
    if shown:
        form = page[page.index('id="approve-form"'):page.index("</form>", page.index('id="approve-form"'))]
        assert 'name="csrf_token"' in form and 'name="override"' in form and "required" in form
    else:
        assert "needs the approver role" in page and f"you are {role}-user ({role})" in page


def test_a_decision_without_the_role_or_the_csrf_token_is_refused(app, built) -> None:
    url = f"/retraining/{built.good}/approve"
    for role in ("viewer", "developer"):  # a valid form, the wrong role
        client = _client(app, built, role)
        refused = client.post(url, data={"csrf_token": csrf_token(built.tokens[role]), "reason": "ship it"})
        assert refused.status_code == 403 and refused.json()["error"]["type"] == "PermissionDenied", role
        page = client.post(f"/retraining/{built.good}/reject", headers=HTML,
                           data={"csrf_token": csrf_token(built.tokens[role]), "reason": "no"})
        assert page.status_code == 403 and "<!doctype html>" in page.text and "approver" in page.text
    approver = _client(app, built, "approver")
    for form in ({"reason": "no token"}, {"csrf_token": "0" * 64, "reason": "forged"}):
        refused = approver.post(url, data=form)
        assert refused.status_code == 403 and "CSRF" in refused.json()["error"]["message"]
    cross = approver.post(url, data={"csrf_token": csrf_token(built.tokens["approver"]), "reason": "x"},
                          headers={"origin": "https://evil.example"})
    assert cross.status_code == 403
    assert built.ws.retraining.get(built.good).status == "pending_review"
    assert not built.ws.audit.list(action="retrain.approve") and not built.ws.audit.list(action="retrain.reject")


def test_failed_gates_need_the_override_then_the_approval_shows(app, built) -> None:
    ws = built.ws
    approver = _client(app, built, "approver")
    csrf = {"csrf_token": csrf_token(built.tokens["approver"])}
    url = f"/retraining/{built.bad}/approve"
    empty = approver.post(url, headers=HTML, data={**csrf, "reason": "   "})
    assert empty.status_code == 400 and "needs a reason" in unescape(empty.text)
    assert 'id="approve-form"' in empty.text  # the page again, its form still there
    blocked = approver.post(url, headers=HTML, data={**csrf, "reason": "the slice is tiny <b>really</b>"})
    assert blocked.status_code == 409 and "<!doctype html>" in blocked.text
    text = unescape(blocked.text)
    assert "failed required gate test(s) metric" in text and "override failed gates" in text
    assert "the slice is tiny &lt;b&gt;really&lt;/b&gt;</textarea>" in blocked.text  # kept, escaped
    assert ws.retraining.get(built.bad).status == "pending_review"

    done = approver.post(url, data={**csrf, "reason": "the slice is tiny <b>really</b>", "override": "true"})
    assert done.status_code == 303 and done.headers["location"] == f"/retraining/{built.bad}?done=approved"
    page = _get(approver, done.headers["location"])
    assert '<span class="badge status-approved retrain-status"' in page and "Approved:" in page
    decision = section(page, "decision")
    assert '<strong class="decision-verdict">approved</strong>' in decision
    assert '<span class="decision-by">approver-user</span>' in decision and "overriding failed gates" in decision
    assert "the slice is tiny &lt;b&gt;really&lt;/b&gt;" in decision and 'id="approve-form"' not in page
    found = ws.retraining.get(built.bad)
    assert found.status == "approved" and found.decision["by"] == "approver-user" and found.decision["override"]
    assert f'href="/deployments/price#v{found.decision["canary"].rsplit("@", 1)[1]}"' in decision
    assert ws.deployments.get("price").kind == "canary"
    entry = ws.audit.list(action="retrain.approve", limit=1)[0]
    assert entry.actor == "approver-user" and entry.target == found.ref
    assert "status-overridden" in section(page, "gates")  # released despite the failures
    again = approver.post(url, headers=HTML, data={**csrf, "reason": "twice"})
    assert again.status_code == 409 and "only a candidate pending review" in unescape(again.text)
    assert 'id="approve-form"' not in again.text


def test_a_reject_through_the_form_leaves_the_deployment_alone(app, built) -> None:
    ws = built.ws
    serving_before = ws.deployments.get("price").current.version
    approver = _client(app, built, "approver")
    csrf = {"csrf_token": csrf_token(built.tokens["approver"])}
    done = approver.post(f"/retraining/{built.good}/reject", data={**csrf, "reason": "not better <i>enough</i>"})
    assert done.status_code == 303 and done.headers["location"] == f"/retraining/{built.good}?done=rejected"
    page = _get(approver, done.headers["location"])
    assert "Rejected:" in page and "status-rejected" in page
    assert '<strong class="decision-verdict">rejected</strong>' in page
    assert "not better &lt;i&gt;enough&lt;/i&gt;" in page
    assert ws.retraining.get(built.good).status == "rejected"
    assert ws.deployments.get("price").current.version == serving_before
    listed = row(section(_get(approver, "/retraining"), "retrains"), "data-retrain", str(built.good))
    assert 'data-status="rejected"' in listed


def test_lineage_refs_of_runs_retrains_and_pipelines_link_to_their_pages() -> None:
    assert ref_url("pipeline_run:3") == "/pipelines/runs/3"
    assert ref_url("retrain:2") == "/retraining/2"
    assert ref_url("pipeline:price-retraining@1") == "/pipelines/price-retraining"
