"""Labels keyed by entity and time (issue 8) on a real data plane: requests carrying a ``listing_id`` are served by
``create_predictor_app``; labels that name the listing and when its outcome was seen go, by an as-of join, to the
latest prediction for that listing made at or before that time (within the tolerance), row by row; the monitor's
performance scores them; labels that match nothing are counted, not written; bad input is refused with nothing
written."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

import keel
from gates_helpers import FEATURES, register, toy_frame, toy_world
from keel.errors import InvalidInput
from keel.serving.app import create_predictor_app


@pytest.fixture
def world(ws: keel.Workspace):
    split = toy_world(ws, n=4000)
    ws.deployments.create("price", register(ws, split, metrics={"test.rmse": 1.0}).name)
    return ws


def serve_listings(ws: keel.Workspace, batches: list[pd.DataFrame], folder: Path) -> tuple[list[str], list[datetime]]:
    """Each frame of ``batches`` as one request whose records carry their ``listing_id`` (the model ignores it);
    (the request ids, the time just after each request was answered)."""
    ids, after = [], []
    with TestClient(create_predictor_app(ws, ["price"], log_folder=folder)) as client:
        for frame in batches:
            records = frame[["listing_id", *FEATURES]].to_dict(orient="records")
            reply = client.post("/v1/endpoints/price/predict", json={"records": records})
            assert reply.status_code == 200, reply.text
            ids.append(reply.json()["request_id"])
            time.sleep(0.01)
            after.append(datetime.now(UTC))
            time.sleep(0.01)
    return ids, after


def listings(first: int, n: int, seed: int) -> pd.DataFrame:
    frame = toy_frame(n, seed=seed)
    frame["listing_id"] = range(first, first + n)
    return frame


def labels_of(ws: keel.Workspace, request_id: str) -> list | None:
    rows = ws.monitors.query_log(f"kind = 'feedback' AND request_id = '{request_id}'", columns=["output"])
    return json.loads(rows["output"][0].as_py())["label"] if rows.num_rows else None


def test_each_label_goes_to_the_latest_prediction_for_its_entity_at_or_before_its_time(world, tmp_path) -> None:
    ws = world
    ws.monitors.create("perf", "price", window="1h")
    first, second = listings(0, 20, seed=1), listings(10, 20, seed=2)  # listings 10..19 are predicted twice
    (one, two), (between, end) = serve_listings(ws, [first, second], tmp_path / "log")
    late = pd.DataFrame({"listing_id": range(0, 30), "seen_at": [end] * 30, "price": [float(i) for i in range(30)]})
    early = pd.DataFrame({"listing_id": [10, 11, 12], "seen_at": [between] * 3, "price": [110.0, 111.0, 112.0]})
    odd = pd.DataFrame({"listing_id": [999, 5, 7], "seen_at": [end, between - timedelta(days=1), end],
                        "price": [1.0, 2.0, None]})  # no such listing; before any prediction; no label
    path = tmp_path / "labels.csv"
    pd.concat([late, early, odd], ignore_index=True).to_csv(path, index=False)  # times as ISO text
    before = ws.data.version("predictions").version
    done = ws.monitors.ingest_labels("price", path, key="entity+time", entities=["listing_id"], time="seen_at",
                                     label="price")
    assert done == {"deployment": "price", "requests": 2, "key": "entity+time", "matched": 33, "unmatched": 2,
                    "skipped_missing": 1, "superseded": 0}
    assert ws.data.version("predictions").version == before + 1  # one commit for every label
    # request one: listings 0..19; 0..9 labelled late, 10..12 early (request two came after), 13..19 had a newer one
    assert labels_of(ws, one) == [float(i) for i in range(10)] + [110.0, 111.0, 112.0] + [None] * 7
    assert labels_of(ws, two) == [float(i) for i in range(10, 30)]  # listings 10..29, in the request's row order
    found = ws.monitors.run("perf").results["performance"]
    assert (found["status"], found["rows"], found["unmatched_labels"]) == ("ok", 33, 0)


def test_the_tolerance_bounds_how_far_back_a_label_looks_and_entities_may_be_several_columns(world, tmp_path) -> None:
    ws = world
    frame = listings(0, 10, seed=3)
    (request,), (end,) = serve_listings(ws, [frame], tmp_path / "log")
    later = end + timedelta(hours=2)
    labels = pd.DataFrame({"listing_id": range(10), "cat": frame["cat"], "at": [later] * 10, "y": frame["y"]})
    far = ws.monitors.ingest_labels("price", labels, entities=["listing_id", "cat"], time="at", label="y",
                                    tolerance="1h")  # entities imply key entity+time
    assert (far["requests"], far["matched"], far["unmatched"]) == (0, 0, 10)
    assert labels_of(ws, request) is None  # nothing matched: nothing written
    labels.loc[0, "cat"] = "zzz"  # the same listing in another category is another entity
    near = ws.monitors.ingest_labels("price", labels, entities=["listing_id", "cat"], time="at", label="y",
                                     tolerance="3h")
    assert (near["requests"], near["matched"], near["unmatched"]) == (1, 9, 1)
    found = labels_of(ws, request)
    assert found[0] is None and found[1:] == pytest.approx(frame["y"].tolist()[1:])


def test_two_labels_for_one_row_keep_the_later(world, tmp_path) -> None:
    ws = world
    (request,), (end,) = serve_listings(ws, [listings(0, 2, seed=4)], tmp_path / "log")
    labels = pd.DataFrame({"listing_id": [0, 0, 1], "t": [end, end + timedelta(minutes=5), end],
                           "label": [1.0, 2.0, 3.0]})
    done = ws.monitors.ingest_labels("price", labels, key="entity+time", entities=["listing_id"], time="t")
    assert (done["matched"], done["superseded"], done["requests"]) == (3, 1, 1)
    assert labels_of(ws, request) == [2.0, 3.0]


def test_bad_input_is_refused_and_nothing_is_written(world, tmp_path) -> None:
    ws = world
    (_,), (end,) = serve_listings(ws, [listings(0, 5, seed=5)], tmp_path / "log")
    good = pd.DataFrame({"listing_id": range(5), "t": [end.isoformat()] * 5, "label": [1.0] * 5})
    before = ws.data.version("predictions").version

    def ingest(table: pd.DataFrame, **options) -> dict:
        return ws.monitors.ingest_labels("price", table, **{"key": "entity+time", "entities": ["listing_id"],
                                                            "time": "t", **options})

    with pytest.raises(InvalidInput, match="no column 'listing'"):
        ingest(good, entities=["listing"])
    with pytest.raises(InvalidInput, match="no column 'when'"):
        ingest(good, time="when")
    with pytest.raises(InvalidInput, match=r"not ISO times, e\.g\. 'yesterday'"):
        ingest(good.assign(t=["yesterday"] + [end.isoformat()] * 4))
    with pytest.raises(InvalidInput, match="empty on 1 row"):
        ingest(good.assign(t=[None] + [end.isoformat()] * 4))
    with pytest.raises(InvalidInput, match=r"no input 'host_id'; their inputs are cat, listing_id, x1, x2"):
        ingest(good.assign(host_id=1), entities=["host_id"])
    with pytest.raises(InvalidInput, match="--row goes with --key request_id"):
        ingest(good.assign(pos=0), row="pos")
    with pytest.raises(InvalidInput, match="needs the labels' time column"):
        ingest(good, time=None)
    with pytest.raises(InvalidInput, match="unknown label key"):
        ingest(good, key="entity")
    with pytest.raises(InvalidInput, match="tolerance"):
        ingest(good, tolerance="0s")
    with pytest.raises(InvalidInput, match="go with --key entity\\+time"):
        ws.monitors.ingest_labels("price", good, key="request_id", entities=["listing_id"])
    assert ws.data.version("predictions").version == before  # nothing written by a refused file
    assert ingest(good)["matched"] == 5
