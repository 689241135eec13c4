"""Deployment reports (issue 7) on synthetic prediction logs with known answers: the sample ratio check, the
metrics from labels and outcomes against scipy, shadow agreement and the interleaving preference; and the
validation of feedback items."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pytest
from scipy import stats

from keel.errors import InvalidInput
from keel.serving.feedback import LOG_SCHEMA, feedback_records, feedback_table
from keel.serving.report import build_report, parse_since, srm_check, welch

T0 = datetime(2024, 5, 1, tzinfo=UTC)
AB = {"kind": "ab", "arms": [{"name": "a", "model": "price/4", "weight": 50.0},
                             {"name": "b", "model": "price/5", "weight": 50.0}]}


def rows(kind: str, request_ids: list[str], *, arm: list[str] | str | None = None, output: list[Any] | None = None,
         latency: Any = None, reason: list[str | None] | None = None, model: list[str] | str | None = None,
         status: list[str] | str = "ok", seconds: int = 1) -> pa.Table:
    """Log rows of one kind (outputs as Python values, dumped to JSON text)."""
    n = len(request_ids)

    def column(value: Any) -> list[Any]:
        return list(value) if isinstance(value, list | np.ndarray) else [value] * n

    return pa.table({
        "request_id": request_ids, "at": [T0 + timedelta(seconds=seconds)] * n, "kind": [kind] * n,
        "deployment": ["api"] * n, "arm": column(arm), "model": column(model), "served_by": column(model),
        "reason": column(reason), "inputs": [None] * n,
        "output": [orjson.dumps(o, option=orjson.OPT_SERIALIZE_NUMPY).decode() for o in (output or [None] * n)],
        "latency_ms": pa.array(column(latency), pa.float64()), "status": column(status), "features": [None] * n,
    }, schema=LOG_SCHEMA)


def feedback(items: list[dict[str, Any]], seconds: int = 2) -> pa.Table:
    table = feedback_table(feedback_records("api", items)).drop_columns(["log_segment"])
    at = pa.array([T0 + timedelta(seconds=seconds)] * table.num_rows, LOG_SCHEMA.field("at").type)
    return table.set_column(1, "at", at)


def report(policy: dict[str, Any], *tables: pa.Table, since: datetime = T0) -> dict[str, Any]:
    result = build_report(name="api", policy=policy, version=3, rows=pa.concat_tables(tables), since=since,
                          until=T0 + timedelta(hours=1), policy_since=T0)
    orjson.dumps(result)  # JSON-able as it stands
    return result


def split(n_a: int, n_b: int, **extra: Any) -> pa.Table:
    ids = [f"r{i}" for i in range(n_a + n_b)]
    return rows("primary", ids, arm=["a"] * n_a + ["b"] * n_b, output=[[1.0]] * (n_a + n_b), latency=2.0, **extra)


def test_the_sample_ratio_check_flags_60_40_on_a_50_50_policy_and_passes_50_3_to_49_7() -> None:
    broken = report(AB, split(6000, 4000))["srm"]
    assert broken["mismatch"] and broken["p_value"] < 1e-9
    assert broken["expected"] == {"a": 5000.0, "b": 5000.0} and broken["observed"] == {"a": 6000, "b": 4000}
    assert broken["chi2"] == pytest.approx(stats.chisquare([6000, 4000]).statistic)
    fine = report(AB, split(5030, 4970))["srm"]
    assert not fine["mismatch"] and fine["p_value"] == pytest.approx(stats.chisquare([5030, 4970]).pvalue)
    canary = {"kind": "canary", "step": 0.1, "arms": [{"name": "stable", "model": "m/1"},
                                                     {"name": "canary", "model": "m/2"}]}
    ids = [f"r{i}" for i in range(1000)]
    held = report(canary, rows("primary", ids, arm=["stable"] * 905 + ["canary"] * 95, output=[[1]] * 1000))
    assert not held["srm"]["mismatch"] and held["srm"]["expected"] == {"stable": 900.0, "canary": 100.0}
    assert [a["target_share"] for a in held["arms"]] == [0.9, 0.1]
    assert report(AB, split(6000, 4000), since=T0 - timedelta(days=1))["srm"] is None  # targets may have changed
    assert srm_check({"stable": 3, "canary": 10}, {"stable": 0.0, "canary": 1.0}) == {
        "chi2": None, "p_value": 0.0, "mismatch": True, "expected": {"stable": 0.0, "canary": 13.0},
        "observed": {"stable": 3, "canary": 10}}
    assert report({"kind": "single", "arms": [{"name": "primary", "model": "m/1"}]}, split(10, 0))["srm"] is None


def test_traffic_latency_fallbacks_and_predictions_per_arm() -> None:
    rng = np.random.default_rng(1)
    latency_a, latency_b = rng.gamma(2, 3, 400), rng.gamma(2, 6, 600)
    outputs_a, outputs_b = rng.normal(20, 2, (400, 2)), rng.normal(25, 2, 600)
    table = pa.concat_tables([
        rows("primary", [f"a{i}" for i in range(400)], arm="a", model="price/4", output=outputs_a.tolist(),
             latency=latency_a, reason=["TimeoutError"] * 40 + [None] * 360),
        rows("primary", [f"b{i}" for i in range(600)], arm="b", model="price/5",
             output=[[v] for v in outputs_b], latency=latency_b),
        rows("primary", ["old"], arm="primary", model="price/3", output=[[1.0]], latency=1.0),  # an earlier policy
    ])
    out = report(AB, table)
    assert (out["deployment"], out["kind"], out["version"], out["requests"]) == ("api", "ab", 3, 1001)
    assert out["since"] == T0.isoformat() and out["shadow"] is None and out["interleave"] is None
    a, b, old = out["arms"]
    assert (a["arm"], a["model"], a["target_share"], a["requests"]) == ("a", "price/4", 0.5, 400)
    assert (old["arm"], old["model"], old["target_share"]) == ("primary", "price/3", None)
    assert a["share"] == pytest.approx(400 / 1001) and a["error_rate"] == pytest.approx(0.1)
    assert b["error_rate"] == 0 and b["p99_ms"] == pytest.approx(np.quantile(latency_b, 0.99))
    assert a["p50_ms"] == pytest.approx(np.median(latency_a))
    flat = outputs_a.ravel()  # every row of every request
    assert a["prediction"]["mean"] == pytest.approx(flat.mean())
    assert a["prediction"]["std"] == pytest.approx(flat.std(ddof=1))
    assert a["prediction"]["p05"] == pytest.approx(np.quantile(flat, 0.05))
    assert b["prediction"]["p95"] == pytest.approx(np.quantile(outputs_b, 0.95))
    assert a["metric"] is None and a["vs_control"] is None and out["feedback"] == {"rows": 0, "matched": 0,
                                                                                   "unmatched": 0}


def test_outcomes_give_means_with_t_intervals_and_welch_tests_against_the_control() -> None:
    rng = np.random.default_rng(7)
    conv_a, conv_b = (rng.random(2000) < 0.10).astype(float), (rng.random(2000) < 0.13).astype(float)
    ids_a, ids_b = [f"a{i}" for i in range(2000)], [f"b{i}" for i in range(2000)]
    table = pa.concat_tables([
        rows("primary", ids_a, arm="a", output=[[1.0]] * 2000, latency=1.0),
        rows("primary", ids_b, arm="b", output=[[1.0]] * 2000, latency=1.0),
        feedback([{"request_id": r, "outcome": v} for r, v in zip(ids_a + ids_b, [*conv_a, *conv_b], strict=True)]),
        feedback([{"request_id": "nobody", "outcome": 1}, {"request_id": "nobody", "outcome": 0}]),
    ])
    out = report(AB, table)
    a, b = out["arms"]
    assert a["metric"]["name"] == "outcome" and a["metric"]["n"] == 2000
    assert a["metric"]["value"] == pytest.approx(conv_a.mean())
    half = stats.t.ppf(0.975, 1999) * conv_a.std(ddof=1) / np.sqrt(2000)
    assert (a["metric"]["ci_low"], a["metric"]["ci_high"]) == pytest.approx((conv_a.mean() - half,
                                                                              conv_a.mean() + half))
    assert a["vs_control"] is None  # a is the control
    expected = stats.ttest_ind(conv_b, conv_a, equal_var=False)
    low, high = expected.confidence_interval()
    assert b["vs_control"]["p_value"] == pytest.approx(expected.pvalue)
    assert b["vs_control"]["difference"] == pytest.approx(conv_b.mean() - conv_a.mean())
    assert (b["vs_control"]["ci_low"], b["vs_control"]["ci_high"]) == pytest.approx((low, high))
    assert b["vs_control"]["significant"] == (expected.pvalue < 0.05)
    assert out["feedback"] == {"rows": 4002, "matched": 4000, "unmatched": 1}
    assert welch(np.array([1.0]), conv_a) is None
    assert welch(np.ones(5), np.ones(5)) == {"difference": 0.0, "ci_low": 0.0, "ci_high": 0.0, "p_value": 1.0,
                                             "significant": False}


def test_numeric_labels_give_mae_on_the_first_prediction_and_the_latest_label_counts() -> None:
    table = pa.concat_tables([
        rows("primary", ["r1", "r2", "r3", "r4"], arm=["a", "a", "b", "b"],
             output=[[10.0, 99.0], [20.0], [30.0], [40.0]], latency=1.0),
        feedback([{"request_id": "r1", "label": 0}, {"request_id": "r2", "label": 23},
                  {"request_id": "r3", "label": 31.5}, {"request_id": "r4", "label": [44, 7]}], seconds=2),
        feedback([{"request_id": "r1", "label": 12}], seconds=3),  # a correction replaces the first label
    ])
    a, b = report(AB, table)["arms"]
    assert a["metric"] == {"name": "mae", "n": 2, "value": pytest.approx(2.5), "ci_low": pytest.approx(
        2.5 - stats.t.ppf(0.975, 1) * np.std([2, 3], ddof=1) / np.sqrt(2)), "ci_high": pytest.approx(
        2.5 + stats.t.ppf(0.975, 1) * np.std([2, 3], ddof=1) / np.sqrt(2))}
    assert b["metric"]["value"] == pytest.approx((1.5 + 4) / 2)  # a list label: position by position
    assert b["vs_control"]["difference"] == pytest.approx(2.75 - 2.5)


def test_class_labels_give_accuracy() -> None:
    table = pa.concat_tables([
        rows("primary", ["r1", "r2", "r3", "r4", "r5"], arm=["a", "a", "a", "b", "b"],
             output=[["cat"], ["dog"], ["cat"], [1], [0]], latency=1.0),
        feedback([{"request_id": "r1", "label": "cat"}, {"request_id": "r2", "label": "cat"},
                  {"request_id": "r3", "label": "cat"}, {"request_id": "r4", "label": 1},
                  {"request_id": "r5", "label": 1}]),
    ])
    a, b = report(AB, table)["arms"]
    assert (a["metric"]["name"], a["metric"]["value"]) == ("accuracy", pytest.approx(2 / 3))
    assert (b["metric"]["name"], b["metric"]["value"]) == ("accuracy", 0.5)
    both = pa.concat_tables([table, feedback([{"request_id": "r1", "outcome": 9.5}, {"request_id": "r4",
                                                                                      "outcome": 2}])])
    a, b = report(AB, both)["arms"]
    assert [m["name"] for m in a["metrics"]] == ["outcome", "accuracy"] and a["metric"]["name"] == "outcome"
    assert a["metric"]["value"] == 9.5 and a["metric"]["ci_low"] is None  # one value: no interval


def test_shadow_agreement_differences_and_latency() -> None:
    primary = [[100.0], [200.0], [50.0, 10.0], [7.0]]
    shadowed = [[100.5], [230.0], [50.0, 9.0], [7.0]]  # within 1 %, off by 15 %, equal and off by 10 %, equal
    ids = ["r1", "r2", "r3", "r4"]
    table = pa.concat_tables([
        rows("primary", ids, arm="primary", output=primary, latency=[1.0, 2.0, 3.0, 4.0]),
        rows("shadow", ids, model="price/5", output=shadowed, latency=[5.0, 6.0, 7.0, 8.0]),
        rows("shadow", ["r1", "r2"], model="price/6", output=[[100.0], {"error": "boom"}], latency=[9.0, 30.0],
             status=["ok", "error"]),
    ])
    policy = {"kind": "shadow", "shadows": ["price/5", "price/6"], "arms": [{"name": "primary", "model": "price/4"}]}
    shadow = report(policy, table)["shadow"]
    diffs = np.array([0.5, 30.0, 0.0, -1.0, 0.0])
    five = shadow["models"]["price/5"]
    assert (five["pairs"], five["predictions"], five["agreement_rate"]) == (4, 5, pytest.approx(3 / 5))
    assert five["difference"]["mean"] == pytest.approx(diffs.mean())
    assert five["difference"]["p95"] == pytest.approx(np.quantile(diffs, 0.95))
    assert five["difference"]["max_abs"] == 30.0
    assert shadow["models"]["price/6"]["agreement_rate"] == 1.0  # its failure is not a pair
    assert (shadow["pairs"], shadow["predictions"], shadow["agreement_rate"]) == (4, 6, pytest.approx(4 / 6))
    assert shadow["latency"]["primary"]["p50"] == pytest.approx(2.5)
    assert shadow["latency"]["shadows"]["price/6"] == {"p50": pytest.approx(19.5), "p99": pytest.approx(29.79),
                                                       "calls": 2, "errors": 1}
    labelled = report(policy, table, feedback([{"request_id": r, "label": v} for r, v in zip(ids, [101, 200, 50, 8],
                                                                                                strict=True)]))
    assert labelled["arms"][0]["metric"]["value"] == pytest.approx(2 / 4)  # the primary's: |100-101|, |7-8|
    assert labelled["shadow"]["models"]["price/5"]["metric"]["value"] == pytest.approx((0.5 + 30 + 0 + 1) / 4)
    assert labelled["shadow"]["models"]["price/6"]["metric"] == {"name": "mae", "n": 1, "value": 1.0,
                                                                 "ci_low": None, "ci_high": None}
    classes = pa.concat_tables([rows("primary", ids, arm="primary", output=[["a"], ["b"], ["a"], ["c"]]),
                                rows("shadow", ids, model="m/2", output=[["a"], ["a"], ["a"], ["c", "d"]])])
    judged = report({**policy, "shadows": ["m/2"]}, classes)["shadow"]
    assert judged["agreement_rate"] == pytest.approx(3 / 5) and judged["difference"] is None


def test_interleaving_credits_clicks_to_the_drafting_arm_with_a_binomial_test() -> None:
    n = 200
    ids = [f"r{i}" for i in range(n)]
    shown = [{"items": [f"x{i}", f"y{i}", f"z{i}"], "teams": ["a", "b", "a"] if i % 2 else ["b", "a", "b"]}
             for i in range(n)]
    # 120 clicks on an item arm a drafted, 60 on one of b's, 20 requests that click one of each (ties)
    chosen = [[f"x{i}"] if i % 2 else [f"y{i}"] for i in range(120)]
    chosen += [[f"y{i}"] if i % 2 else [f"x{i}"] for i in range(120, 180)]
    chosen += [[f"x{i}", f"y{i}"] for i in range(180, 200)]
    table = pa.concat_tables([
        rows("primary", ids, arm=["a", "b"] * (n // 2), output=shown, latency=1.0),
        feedback([{"request_id": r, "chosen": c} for r, c in zip(ids, chosen, strict=True)]),
        feedback([{"request_id": "r0", "chosen": ["y0"]}]),  # a repeated click counts once
        rows("primary", ["q"], arm="a", output=[{"items": [1, 2], "teams": ["b", "a"]}], latency=1.0),
        feedback([{"request_id": "q", "chosen": [3]}]),  # not shown: credits no one, a tie
    ])
    policy = {"kind": "interleave", "arms": [{"name": "a", "model": "rank/2"}, {"name": "b", "model": "rank/3"}]}
    out = report(policy, table)
    assert out["interleave"] == {"impressions": 201, "with_feedback": 201, "wins": {"a": 120, "b": 60}, "ties": 21,
                                 "preference_a": pytest.approx(120 / 180),
                                 "p_value": pytest.approx(stats.binomtest(120, 180, 0.5).pvalue),
                                 "significant": True}
    assert out["arms"][0]["prediction"] is None and out["srm"]["observed"] == {"a": 101, "b": 100}
    renamed = {"kind": "interleave", "arms": [{"name": "old", "model": "rank/2"}, {"name": "new", "model": "rank/3"}]}
    assert report(renamed, table)["interleave"]["wins"] == {"old": 120, "new": 60}  # teams a/b are first/second


def test_feedback_items_are_validated_into_log_records() -> None:
    records = feedback_records("api", [{"request_id": "r1", "label": 3.5}, {"request_id": "r2", "outcome": 1},
                                       {"request_id": "r3", "chosen": ["x", 7]},
                                       {"request_id": "r4", "label": np.array([1, 2])[0]}])
    assert [orjson.loads(r["output"]) for r in records] == [{"label": 3.5}, {"outcome": 1}, {"chosen": ["x", 7]},
                                                            {"label": 1}]
    assert {r["kind"] for r in records} == {"feedback"} and {r["status"] for r in records} == {"ok"}
    assert datetime.fromisoformat(records[0]["at"]).tzinfo is not None and records[0]["deployment"] == "api"
    table = feedback_table(records)
    assert table.schema.field("at").type == pa.timestamp("us", tz="UTC") and table.num_rows == 4
    bad = [
        ([{"request_id": "r1"}], "item 0: give exactly one of label, outcome, chosen, not none"),
        ([{"request_id": "r1", "label": 1}, {"request_id": "r2", "label": 1, "outcome": 2}], "item 1: give exactly"),
        ([{"request_id": "", "label": 1}], "request_id must be a non-empty string"),
        ([{"request_id": 5, "label": 1}], "request_id"),
        ([{"request_id": "r", "outcome": float("nan")}], "outcome must be a finite number"),
        ([{"request_id": "r", "outcome": "1"}], "outcome must be a finite number"),
        ([{"request_id": "r", "outcome": True}], "outcome must be a finite number"),
        ([{"request_id": "r", "chosen": []}], "chosen must be a non-empty list"),
        ([{"request_id": "r", "chosen": "x"}], "chosen must be a non-empty list"),
        ([{"request_id": "r", "chosen": [{"id": 1}]}], "chosen must be a non-empty list"),
        ([{"request_id": "r", "label": None}], "label must be"),
        ([{"request_id": "r", "label": {"a": 1}}], "label must be"),
        ([{"request_id": "r", "label": 1, "lable": 2}], "unknown field(s) lable"),
        (["r1"], "item 0: give an object"),
        ([], "no feedback items"),
        ({"request_id": "r", "label": 1}, "a list of items"),
    ]
    for items, message in bad:
        with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace(")", r"\)")):
            feedback_records("api", items)


def test_since_is_a_time_or_a_duration_back_from_now() -> None:
    now = datetime(2024, 5, 2, 12, tzinfo=UTC)
    assert parse_since("6h", now) == now - timedelta(hours=6)
    assert parse_since("30m", now) == now - timedelta(minutes=30)
    assert parse_since("2024-05-01T00:00Z", now) == T0
    assert parse_since("2024-05-01T02:00+02:00", now) == T0
    assert parse_since("2024-05-01", now) == T0  # naive is UTC
    assert parse_since(datetime(2024, 5, 1), now) == T0
    for bad in ("yesterday", "6 hours", "", "-1h", "99999999999d", "0001-01-01T00:00+01:00", 5):
        with pytest.raises(InvalidInput, match="ISO time"):
            parse_since(bad, now)
    with pytest.raises(InvalidInput, match="future"):
        parse_since("2024-06-01", now)
