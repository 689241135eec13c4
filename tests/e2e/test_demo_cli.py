"""`keel demo --server` from the command line: the whole story, then the API served with a fresh token (its own file,
so a parallel test run puts it beside the other demo test, not after it)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

import keel


def test_demo_with_server_serves_the_workspace_it_made(tmp_path: Path) -> None:
    """`keel demo --server` ends by serving the API with a fresh token for the demo's user."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEEL_")}
    proc = subprocess.Popen([sys.executable, "-m", "keel.cli.main", "demo", "--path", str(tmp_path / "demo"),
                             "--rows-per-month", "200", "--server"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env)
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 900  # the whole story first: minutes on a loaded 2-core machine
        while time.monotonic() < deadline and not any("log in with this token" in line for line in lines):
            line = proc.stdout.readline()
            assert line, "the demo ended before serving:\n" + "".join(lines)
            lines.append(line)
        text = "".join(lines)
        assert "log in with this token" in text, "the demo did not serve within 15 minutes:\n" + text
        url = re.search(r"http://127\.0\.0\.1:\d+/", text).group(0)
        token = re.search(r"token \(valid 7 days\): (\S+)", text).group(1)
        for _ in range(100):
            try:
                me = httpx.get(url + "api/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert me.status_code == 200 and me.json()["role"] == "admin"
        models = httpx.get(url + "api/v1/models", headers={"Authorization": f"Bearer {token}"}).json()
        assert [m["name"] for m in models] == ["price"] and models[0]["aliases"]["production"] > 1, text  # a canary
        deployments = httpx.get(url + "api/v1/deployments", headers={"Authorization": f"Bearer {token}"}).json()
        assert [d["name"] for d in deployments] == ["price"]
        assert httpx.get(url + "api/v1/models").status_code == 401
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert "done." in text  # `keel demo` from the command line tells the whole story (test_cli runs no demo of its own)
    with keel.open(tmp_path / "demo") as ws:
        assert ws.data.history("listings") and ws.data.history("listings__quarantine")
        assert ws.data.split_info("listings-split").table == "price_training"  # the point-in-time training set
