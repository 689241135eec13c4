"""Retraining conditions (keel.retraining.conditions) read one monitor report each: drift by the monitor's own
verdict, or past a threshold in the method's direction (a distance up, a test's p-value down); performance against
the metric recorded at training, an error up and a score down."""

from __future__ import annotations

import pytest

from keel.errors import InvalidInput
from keel.retraining.conditions import parse_condition


def report(method: str, statistic: float, p_value: float | None, drifted: bool) -> dict:
    return {"overall": {"columns": [{"column": "x", "method": method, "statistic": statistic, "p_value": p_value,
                                     "drifted": drifted}]},
            "prediction": {"columns": [{"column": "prediction", "method": "psi", "statistic": 0.3,
                                        "p_value": None, "drifted": True}]},
            "performance": {"metrics": {"rmse": 13.0, "r2": 0.5}, "training": {"rmse": 10.0, "r2": 0.8}}}


def test_drift_follows_the_monitor_or_the_methods_direction() -> None:
    ks_drifted = report("ks", 0.4, 0.001, True)
    ks_quiet = report("ks", 0.02, 0.6, False)
    assert parse_condition("drift(x)").holds(ks_drifted, 100) == (True, 0.001)
    assert parse_condition("drift(x)").holds(ks_quiet, 100)[0] is False
    assert parse_condition("drift(x, threshold=0.05)").holds(ks_drifted, 100)[0] is True  # p below 0.05
    assert parse_condition("drift(x, threshold=0.05)").holds(ks_quiet, 100)[0] is False  # p 0.6: no drift
    psi = report("psi", 0.25, None, True)
    assert parse_condition("drift(x, method=psi, threshold=0.2)").holds(psi, 100) == (True, 0.25)
    assert parse_condition("drift(x, threshold=0.3)").holds(psi, 100)[0] is False
    assert parse_condition("drift(x, method=psi)").holds(ks_drifted, 100) == (False, None)  # another method
    assert parse_condition("drift(prediction, threshold=0.2)").holds(psi, 100) == (True, 0.3)
    assert parse_condition("drift(missing_column)").holds(psi, 100) == (False, None)


def test_performance_compares_with_training_in_the_metrics_direction() -> None:
    results = report("psi", 0.1, None, False)
    assert parse_condition("performance(rmse, degradation=0.2)").holds(results, 100)[0] is True  # 13 > 12
    assert parse_condition("performance(rmse, degradation=0.5)").holds(results, 100)[0] is False  # 13 < 15
    assert parse_condition("performance(r2, degradation=0.2)").holds(results, 100)[0] is True  # 0.5 < 0.64
    assert parse_condition("volume(10)").holds(results, 100) == (False, None)  # not read from reports


@pytest.mark.parametrize(("text", "message"), [
    ("drift()", "needs column"), ("drift(x, bogus=1)", "no argument bogus"), ("drift(x, windows=0)", "windows"),
    ("volume(-3)", "whole number"), ("volume(2.5)", "whole number"), ("schedule('0 3 * * *', 'Mars/Base')", "zone"),
    ("drift(x) and manual()", "unknown condition"), ("__import__('os')", "unknown condition"),
    ("drift(x, threshold=open('f'))", "names, numbers or quoted text"), ("drift(", "cannot read"),
])
def test_bad_conditions_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_condition(text)
