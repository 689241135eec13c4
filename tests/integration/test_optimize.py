"""Compaction: many appends make many small files; optimize rewrites them as one version, same rows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow as pa

import keel
from keel.data.profiles import content_hash


def appended(ws: keel.Workspace, times: int = 6) -> None:
    for i in range(times):
        ws.data.ingest(pa.table({"k": [i, i + 100], "v": [float(i), float(-i)]}), "t")


def test_optimize_compacts_into_one_version_with_the_same_rows(ws: keel.Workspace) -> None:
    appended(ws)
    before = ws.data.read_arrow("t", with_row_ids=True).sort_by("_keel_row_id")
    files_before = len(ws.tables.files("t"))

    version = ws.data.optimize("t")

    assert version is not None and (version.version, version.operation) == (6, "optimize")
    assert len(ws.tables.files("t")) < files_before == 6
    after = ws.data.read_arrow("t", with_row_ids=True).sort_by("_keel_row_id")
    assert after.equals(before)  # same rows, same row ids
    assert version.row_count == 12 and version.rows_added == 0
    assert version.content_hash == ws.data.version("t@5").content_hash == content_hash(
        after.drop_columns(["_keel_row_id"]), ["k", "v"])
    assert [e.action for e in ws.audit.list(target="table:t")][:1] == ["data.optimize"]
    assert ws.data.optimize("t") is None  # nothing left to compact: no new version
    assert ws.data.history("t")[0].version == 6


def test_vacuum_after_optimize_keeps_what_a_split_still_reads(ws: keel.Workspace) -> None:
    appended(ws)
    split = ws.data.split("t@5", target="v", fractions="0.5,0.5", allow_duplicates=True)
    ws.data.optimize("t")
    result = ws.data.vacuum("t", retention_hours=0)
    assert result.kept_versions[5] == "referenced by lineage" and 6 in result.kept_versions
    assert len(ws.data.read_split(split.ref, "train")) + len(ws.data.read_split(split.ref, "test")) == 12


def test_cli_optimize(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    with keel.init(root) as ws:
        appended(ws, 3)
    run = subprocess.run([sys.executable, "-m", "keel.cli.main", "-w", str(root), "data", "optimize", "t"],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert "table:t@3: compacted, 6 rows unchanged" in run.stdout
