"""Alert rules (issue 8): parsing, the series they read from a report, firing after N windows and resolving once;
and the webhook's SSRF guard."""

from __future__ import annotations

import pytest

from keel.errors import InvalidInput
from keel.monitoring.alerts import evaluate, parse_rule, series_value
from keel.monitoring.webhook import check_webhook, send_webhook


def results(x1: float | None = 0.05, rmse: float | None = 1.0, method: str = "wasserstein") -> dict:
    columns = [] if x1 is None else [{"column": "x1", "method": method, "statistic": x1, "missing_rate_change": 0.2}]
    return {"overall": {"columns": columns, "share_of_drifted_columns": 0.5},
            "prediction": {"columns": [{"column": "prediction", "statistic": 0.3}]},
            "performance": {"metrics": {"rmse": rmse} if rmse is not None else {}, "training": {"rmse": 1.0}}}


def test_rules_parse_and_bad_ones_say_how_to_write_them() -> None:
    rule = parse_rule("psi(price per night) > 0.2 for 2 windows")
    assert (rule.series, rule.column, rule.op, rule.value, rule.windows, rule.training) == \
        ("psi", "price per night", ">", 0.2, 2, False)
    assert parse_rule("rmse >= 1.2 x training").training and parse_rule("rows < 100").windows == 1
    for bad, why in [("psi > 0.2", "needs a column"), ("rmse(x) > 1", "takes no column"), ("foo(x) > 1", "unknown"),
                     ("drift(x) > 2 x training", "x training"), ("drift(x) > 0.1 for 0 windows", "for 1 to"),
                     ("drift(x) is big", "SERIES OP NUMBER"), ("", "SERIES OP NUMBER")]:
        with pytest.raises(InvalidInput, match=why):
            parse_rule(bad)


def test_each_series_reads_its_value_from_a_report() -> None:
    report = results(x1=0.07, rmse=1.5)
    read = {text: series_value(parse_rule(text), report, 123) for text in
            ["drift(x1) > 0", "wasserstein(x1) > 0", "psi(x1) > 0", "missing(x1) > 0", "share_drifted > 0",
             "prediction_drift > 0", "rows > 0", "rmse > 0", "accuracy > 0", "drift(x9) > 0"]}
    assert read == {"drift(x1) > 0": 0.07, "wasserstein(x1) > 0": 0.07, "psi(x1) > 0": None,  # other method
                    "missing(x1) > 0": 0.2, "share_drifted > 0": 0.5, "prediction_drift > 0": 0.3,
                    "rows > 0": 123.0, "rmse > 0": 1.5, "accuracy > 0": None, "drift(x9) > 0": None}
    assert parse_rule("rmse > 1.2 x training").holds(results(rmse=1.3), 10) == (True, 1.3)
    assert parse_rule("rmse > 1.2 x training").holds(results(rmse=1.1), 10) == (False, 1.1)


def test_a_rule_fires_once_after_n_windows_and_resolves_once() -> None:
    rules = [parse_rule("drift(x1) > 0.1 for 2 windows")]
    history: list = []
    previous: list = []
    seen = []
    for value in [0.05, 0.2, 0.3, 0.4, None, 0.05]:  # None: a window without the column (no data)
        history.insert(0, (results(x1=value), 100))
        states, events = evaluate(rules, history, previous)
        previous = states
        seen.append((states[0]["firing"], [e["state"] for e in events]))
    assert seen == [(False, []), (False, []), (True, ["firing"]), (True, []), (False, ["resolved"]), (False, [])]


def test_the_webhook_guard_refuses_private_targets_and_odd_urls() -> None:
    for url in ["http://127.0.0.1:9000/hook", "http://10.1.2.3/x", "http://169.254.169.254/latest/meta-data",
                "http://[::1]/x", "http://localhost/x", "http://192.168.0.10/"]:
        with pytest.raises(InvalidInput, match="webhook_allow_private"):
            check_webhook(url)
    for url, why in [("ftp://example.org/x", "http"), ("http:///nohost", "http"),
                     ("http://user:pw@8.8.8.8/x", "credentials"), ("http://no-such-host.invalid/x", "resolve")]:
        with pytest.raises(InvalidInput, match=why):
            check_webhook(url)
    assert check_webhook("https://8.8.8.8/hook") == "https://8.8.8.8/hook"  # a public address
    assert check_webhook("http://127.0.0.1:9000/hook", allow_private=True)
    assert send_webhook("http://127.0.0.1:9/hook", {"x": 1}).startswith("refused: ")  # checked again at send


def test_a_monitors_webhook_is_shown_without_its_secret_path() -> None:
    from keel.monitoring.model import Monitor, redact_url

    monitor = Monitor("m", "price", "training", "1d", webhook="https://hooks.example.com:8443/T0/B1/secret?k=v")
    assert monitor.to_dict()["webhook"] == "https://hooks.example.com:8443/…"
    assert monitor.spec()["webhook"].endswith("/secret?k=v")  # stored whole: the run needs it
    assert redact_url("https://hooks.example.com") == "https://hooks.example.com" and redact_url(None) is None


def test_infrastructure_series_read_the_heartbeats_numbers_and_a_window_without_any_has_none() -> None:
    infra = {"processes": 2, "cpu": 1.25, "memory": {"peak_bytes": 3 * 2**20, "last_bytes": 5 * 2**20},
             "uptime": 0.9, "restarts": 1, "error_rate": 0.02}
    report = {"service": {"requests": 10, "infrastructure": infra}}
    texts = ["cpu > 1", "memory_mb > 2", "uptime < 0.99", "restarts > 0", "error_rate > 0.01"]
    assert {t: series_value(parse_rule(t), report, 10) for t in texts} == {
        "cpu > 1": 1.25, "memory_mb > 2": 3.0, "uptime < 0.99": 0.9, "restarts > 0": 1.0, "error_rate > 0.01": 0.02}
    assert all(parse_rule(t).holds(report, 10)[0] for t in texts)
    for silent in ({"service": {"requests": 0, "infrastructure": None}}, {"service": {}}, {}):
        assert all(parse_rule(t).holds(silent, 0) == (False, None) for t in texts)  # no heartbeat: no value
    with pytest.raises(InvalidInput, match="takes no column"):
        parse_rule("cpu(x) > 1")


def test_an_infrastructure_rule_fires_after_its_windows_and_resolves() -> None:
    rules = [parse_rule("uptime < 0.99 for 2 windows")]
    history: list = []
    previous: list = []
    seen = []
    for uptime in [1.0, 0.5, 0.4, None, 1.0]:
        infra = None if uptime is None else {"uptime": uptime}
        history.insert(0, ({"service": {"infrastructure": infra}}, 0))
        states, events = evaluate(rules, history, previous)
        previous = states
        seen.append((states[0]["firing"], [e["state"] for e in events]))
    assert seen == [(False, []), (False, []), (True, ["firing"]), (False, ["resolved"]), (False, [])]
