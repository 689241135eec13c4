"""The deployment pages: the list of endpoints with their kind, state and last change; one endpoint's status, its
policy drawn as a split bar (target over live), each arm's numbers from the report (requests, observed share,
latency, error rate, metric with its interval, the sample ratio check), shadow agreement, interleaving
preference, and the history newest first with a rollback's reason; unknown names a 404 page; everything
escaped."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape

import pytest
from fastapi.testclient import TestClient

from keel.errors import InvalidInput
from keel.server.app import create_app
from keel.server.security import SESSION_COOKIE
from keel.serving.service import DeploymentService
from keel.ui.charts import percent, split_bars
from keel.ui.deployments import target_shares
from keel.ui.render import ref_url

from .deployments_ui_fixture import ODD_REASON, DeploymentsWorkspace, build_deployments_workspace
from .ui_pages import HTML
from .ui_pages import get_page as _get
from .ui_pages import row as _row
from .ui_pages import section as _section

NAMES = ["ab-api", "canary-api", "odd-api", "price-api", "rank-api", "shadow-api"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeploymentsWorkspace]:
    built = build_deployments_workspace(tmp_path_factory.mktemp("deployments-ui") / "ws")
    yield built
    built.ws.close()


@pytest.fixture(scope="module")
def viewer(built: DeploymentsWorkspace) -> Iterator[TestClient]:
    with TestClient(create_app(built.ws), base_url="http://127.0.0.1", follow_redirects=False,
                    cookies={SESSION_COOKIE: built.tokens["viewer"]}) as client:
        yield client





def _widths(page: str, row: str) -> dict[str, float]:
    """Each arm's drawn width in one row (target, live, wins) of a split bar."""
    start = page.index(f'data-row="{row}"')
    end = min(i for i in (page.find("data-row=", start + 1), page.find("</svg>", start)) if i > 0)
    segment = r'data-arm="([^"]+)"><title>.*?</title>\s*<rect [^>]*?width="([\d.]+)"'
    return {arm: float(w) for arm, w in re.findall(segment, page[start:end], re.S)}


def test_the_list_shows_every_deployment_with_its_kind_state_models_and_last_change(built, viewer) -> None:
    page = _get(viewer, "/deployments")
    assert 'href="/deployments" class="active"' in page  # the nav link, marked current
    assert re.findall(r'<tr data-deployment="([^"]+)"', page) == NAMES
    expected = {"ab-api": ("ab", "active", "v2", "ab"), "canary-api": ("canary", "active", "v2", "canary"),
                "odd-api": ("single", "paused", "v2", "pause"), "price-api": ("single", "active", "v3", "rollback"),
                "rank-api": ("interleave", "active", "v2", "interleave"),
                "shadow-api": ("shadow", "active", "v2", "shadow")}
    for name, (kind, state, version, action) in expected.items():
        row = _row(page, "data-deployment", name)
        assert f'href="/deployments/{name}"' in row
        assert f'class="badge kind-{kind}">{kind}<' in row and f'class="badge state-{state}">{state}<' in row
        assert f">{version}</a>" in row and f"<code>{action}</code> by admin-user" in row, name
    shadow = _row(page, "data-deployment", "shadow-api")
    for model, role in (("toy/1", "primary"), ("toy/3", "shadow"), ("toy/2", "fallback")):
        assert f'href="/models/toy/versions/{model[-1]}">{model}</a> <span class="relation">{role}</span>' in shadow
    assert "baseline</span> <span class=\"relation\">fallback" in shadow
    assert "guardrail failed at 10%: error_rate &lt; 0.05" in _row(page, "data-deployment", "price-api")


def test_an_ab_test_shows_its_target_and_live_split_with_each_arms_numbers(built, viewer) -> None:
    page = _get(viewer, "/deployments/ab-api")
    status = _section(page, "status")
    assert "<code>host_id</code>" in status and "70/30 test" in status and 'href="#v2">v2</a>' in status
    target, live = _widths(page, "target"), _widths(page, "live")
    assert set(target) == set(live) == {"a", "b"}
    assert target["a"] / (target["a"] + target["b"]) == pytest.approx(0.7, abs=1e-3)
    assert live["a"] / (live["a"] + live["b"]) == pytest.approx(0.7, abs=1e-3)  # 140 of 200 logged requests
    assert "a · 70%" in page and "b · 30%" in page
    section = _section(page, "live")
    assert "200 request(s) logged since the current policy began" in section
    assert "70 feedback row(s)" in section and 'class="muted srm-ok"' in section and "srm-warning" not in section
    a, b = _row(section, "data-arm", "a"), _row(section, "data-arm", "b")
    assert '"num requests">140<' in a and '"num share">70%<' in a and "70% <span class=\"muted\">(+0.0 pt)" in a
    assert '"num requests">60<' in b and '"num share">30%<' in b
    assert "ms</td>" in a and re.search(r'error-rate"[^>]*>0%<', a) and "mean 20.2" in a
    report = built.ws.deployments.report("ab-api")
    metric_b, versus = report["arms"][1]["metric"], report["arms"][1]["vs_control"]
    assert metric_b["name"] == "mae" and versus["significant"]
    assert f'mae {metric_b["value"]:.4g} <span class="ci">[{metric_b["ci_low"]:.4g}, {metric_b["ci_high"]:.4g}]' in b
    assert f'+{versus["difference"]:.4g} <span class="ci">' in b and "significant" in b
    assert "control" in a  # the first arm is what the others are compared with


def test_a_canary_shows_its_steps_guardrails_and_a_sample_ratio_mismatch(built, viewer) -> None:
    page = _get(viewer, "/deployments/canary-api")
    routing = _section(page, "routing")
    steps = re.findall(r'<li class="([^"]*)"[^>]*>([^<]+)</li>', routing[routing.index('class="steps"'):])
    assert steps == [("current", "10%"), ("", "100%")]
    assert 'aria-current="step">10%' in routing and "10 min 0 s per step" in routing
    assert '<code class="guardrail">error_rate &lt; 0.05</code>' in routing
    assert '<code class="guardrail">p99_ms &lt; 50</code>' in routing
    target = _widths(page, "target")
    assert target["canary"] / (target["canary"] + target["stable"]) == pytest.approx(0.1, abs=1e-3)
    section = _section(page, "live")
    warning = section[section.index("srm-warning"):]
    assert "Sample ratio mismatch" in warning and "stable 100, canary 60" in warning and "canary 16 expected" in warning
    assert "(-27.5 pt)" in _row(section, "data-arm", "stable") and "(+27.5 pt)" in _row(section, "data-arm", "canary")


def test_a_rolled_back_canary_shows_why_and_the_history_newest_first(built, viewer) -> None:
    page = _get(viewer, "/deployments/price-api")
    reason = built.rollback_reason
    assert reason.startswith("guardrail failed at 10%: error_rate < 0.05 (measured 0.3")
    shown = reason.replace("<", "&lt;")
    routing = _section(page, "routing")
    assert "Rolled back" in routing and 'href="/models/toy/versions/2">toy/2</a> was taken out' in routing
    assert shown in routing
    history = _section(page, "history")
    assert re.findall(r'data-version="(\d+)" data-action="(\w+)"', history) == [
        ("3", "rollback"), ("2", "canary"), ("1", "create")]
    rollback = _row(history, "id", "v3")
    assert 'class="action-rollback current"' in rollback and f"<strong>{shown}</strong>" in rollback
    assert "admin-user" in rollback and "UTC" in rollback
    canary = _row(history, "id", "v2")
    assert "canary 10%" in canary and "try toy/2" in canary
    assert '<span class="relation">canary</span>' in canary and "toy/2" in canary
    assert "first release" in _row(history, "id", "v1")
    fallbacks = routing[routing.index('class="fallbacks"'):]
    assert fallbacks.index("baseline") < fallbacks.index("</ol>")
    assert "25 request(s) logged" in _section(page, "live")  # only those since the rollback


def test_a_shadow_shows_its_sample_fallback_chain_and_agreement(built, viewer) -> None:
    page = _get(viewer, "/deployments/shadow-api")
    routing = _section(page, "routing")
    assert "toy/3</a> called beside the primary for 100% of requests" in routing
    chain = routing[routing.index('class="fallbacks"'):routing.index("</ol>", routing.index('class="fallbacks"'))]
    assert chain.index("toy/2") < chain.index("baseline")
    section = _section(page, "live")
    assert "agreed with the primary on <strong>80%</strong> of 50 prediction(s)" in section
    shadow = _row(section, "data-model", "toy/3")
    assert '"num agreement">80%<' in shadow and "8.35 ms" in shadow
    assert "largest 5" in section


def test_an_interleaving_shows_the_preference_with_its_test(built, viewer) -> None:
    page = _get(viewer, "/deployments/rank-api")
    section = _section(page, "live")
    assert "preferred the items of <strong>a</strong> (toy/1) in <strong>75%</strong> of 12 decided" in section
    assert "p = 0.146" in section
    wins = _widths(page, "wins")
    assert wins["a"] == pytest.approx(3 * wins["b"], rel=1e-3)


def test_a_paused_deployment_without_traffic_says_so(built, viewer) -> None:
    page = _get(viewer, "/deployments/odd-api")
    assert 'class="badge state-paused">paused<' in page and "until it is resumed" in page
    assert "No request logged since the current policy began" in page
    assert "nothing logged yet" in page  # the live bar is drawn empty


def test_an_unknown_deployment_is_a_not_found_page(viewer) -> None:
    response = viewer.get("/deployments/nope", headers=HTML)
    assert response.status_code == 404 and "no deployment &#39;nope&#39;" in response.text
    assert "Not found" in response.text and "Traceback" not in response.text
    assert viewer.get("/deployments/nope").json()["error"]["type"] == "NotFound"


def test_every_user_provided_string_is_escaped(built, viewer) -> None:
    for path in ("/deployments", "/deployments/odd-api"):
        page = _get(viewer, path)
        assert "<script>alert(" not in page, path
        assert "&lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt; &amp; &#34;quotes&#34;" in page, path
        assert ODD_REASON in unescape(page)
        assert not re.search(r"<svg.*?style=.*?</svg>", page, re.S)  # the bars obey the CSP: no inline style


def test_a_report_that_cannot_be_made_is_explained_on_the_page(built, viewer, monkeypatch) -> None:
    def refuse(self, name, since=None):
        raise InvalidInput("the prediction log cannot be read")

    monkeypatch.setattr(DeploymentService, "report", refuse)  # the page's workspace acts as the session's user
    page = _get(viewer, "/deployments/ab-api")
    assert "No live numbers: the prediction log cannot be read" in page and 'data-row="live"' not in page
    assert 'data-row="target"' in page


def test_a_model_version_lists_the_deployments_that_route_to_it(built, viewer) -> None:
    one = _section(_get(viewer, "/models/toy/versions/1"), "deployments")
    assert re.findall(r'<tr data-deployment="([^"]+)"', one) == NAMES
    assert '<span class="relation">stable</span>' in _row(one, "data-deployment", "canary-api")
    two = _section(_get(viewer, "/models/toy/versions/2"), "deployments")
    price = _row(two, "data-deployment", "price-api")  # rolled back: routed to before, not now
    assert "not routed to now" in price and 'href="/deployments/price-api#v2">v2</a>' in price
    assert '<span class="relation">fallback</span>' in _row(two, "data-deployment", "shadow-api")
    assert ref_url("deployment:price-api@3") == "/deployments/price-api#v3"
    assert 'href="/deployments/price-api#v2"' in _get(viewer, "/models/toy/versions/2")  # the lineage graph's node


def test_target_shares_and_split_geometry() -> None:
    canary = {"kind": "canary", "step": 0.25, "arms": [{"name": "stable", "model": "m/1"},
                                                       {"name": "canary", "model": "m/2"}]}
    assert [t["share"] for t in target_shares(canary)] == [0.75, 0.25]
    ab = {"kind": "ab", "arms": [{"name": "a", "model": "m/1", "weight": 2},
                                 {"name": "b", "model": "m/2", "weight": 6}]}
    assert [t["share"] for t in target_shares(ab)] == [0.25, 0.75]
    done = {**canary, "step": 1.0}
    bars = split_bars([("target", target_shares(done)), ("live", [{**t, "share": 0} for t in target_shares(done)])])
    target, live = bars["rows"]
    assert [s["arm"] for s in target["segments"]] == ["canary"] and target["segments"][0]["w"] == bars["span"]
    assert live["empty"] and not live["segments"]
    bars = split_bars([("target", target_shares(ab))], width=464)
    segments = bars["rows"][0]["segments"]
    assert [s["w"] for s in segments] == [100, 300] and segments[1]["x"] == bars["x0"] + 100
    assert segments[0]["text"] == "a · 25%"  # it fits; a sliver gets no label
    assert split_bars([("t", [{"arm": "long-arm-name", "model": "m", "share": 0.01, "color": "#4e79a7"},
                             {"arm": "b", "model": "m", "share": 0.99, "color": "#f28e2b"}])])["rows"][0][
        "segments"][0]["text"] == ""
    assert [percent(x) for x in (0, 0.0004, 0.05, 0.125, None)] == ["0%", "0.04%", "5%", "12.5%", "—"]
