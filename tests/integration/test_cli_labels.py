"""``keel labels ingest --key entity+time`` as a subprocess (issue 8): labels named by listing and time go to the
latest prediction for the listing, the summary counts matched and unmatched ones; bad input exits 2 with one
``error:`` line and writes nothing."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pandas as pd
from test_cli import keel_cli, ok, user_error
from test_labels_entity_time import listings, serve_listings

import keel
from gates_helpers import register, toy_world


def test_labels_ingest_by_entity_and_time(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    with keel.init(root) as ws:
        ws.users.add("dev", "developer")
        register(ws, toy_world(ws, 600))
        ws.deployments.create("price", "toy/1")
        (request,), (end,) = serve_listings(ws, [listings(0, 10, seed=6)], tmp_path / "log")
        before = ws.data.version("predictions").version
    labels = pd.DataFrame({"listing_id": [*range(10), 42], "seen": [end + timedelta(minutes=1)] * 11,
                           "y": [*range(10), 1]})
    path = tmp_path / "labels.parquet"
    labels.to_parquet(path)

    def labels_cli(*args: object):
        return keel_cli("-w", root, "labels", "ingest", str(path), "--deployment", "price", *args, cwd=tmp_path,
                        env={"KEEL_USER": "dev"})

    user_error(labels_cli("--key", "entity+time", "--entity", "host_id", "--time", "seen", "--label", "y"),
               "no column 'host_id'")
    user_error(labels_cli("--entity", "listing_id", "--time", "seen", "--label", "y", "--row", "pos"),
               "--row goes with --key request_id")
    user_error(labels_cli("--entity", "listing_id", "--time", "seen", "--label", "y", "--tolerance", "soon"),
               "invalid duration")
    with keel.open(root) as ws:
        assert ws.data.version("predictions").version == before
    text = ok(labels_cli("--key", "entity+time", "--entity", "listing_id", "--time", "seen", "--label", "y",
                         "--tolerance", "1h")).out
    assert text.startswith("1 request(s) labelled for price: 10 label(s) matched, 1 matched no prediction"), text
    done = json.loads(ok(labels_cli("--entity", "listing_id", "--time", "seen", "--label", "y", "--format",
                                    "json")).out)
    assert done == {"deployment": "price", "requests": 1, "key": "entity+time", "matched": 10, "unmatched": 1,
                    "skipped_missing": 0, "superseded": 0}
    with keel.open(root) as ws:
        found = ws.monitors.query_log(f"kind = 'feedback' AND request_id = '{request}'", columns=["output"])
        assert json.loads(found["output"][0].as_py()) == {"label": list(range(10))}
