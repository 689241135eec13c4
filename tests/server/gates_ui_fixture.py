"""A workspace for the gate pages: a user and token per role, the toy model of ``tests/gates_helpers.py`` in
two versions (a good one that passes its gates and an anti-monotone one that fails them), and a report of
each. Shared by the page tests and the browser test; built in a few seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keel
from gates_helpers import CHECKLIST, register, toy_world  # tests/ is on sys.path (tests/conftest.py)
from keel.gates.model import GateReport
from keel.users import ROLES

# the shared checklist plus a budget test, so a report has all three plots (slices, directional, latency)
GATES_YAML = CHECKLIST.replace("by: [cat]", "by: [cat, x1]") + """  - kind: budget
    max_single_ms: 250
    max_batch_ms: 1000
    repeats: 9
"""


@dataclass
class GatesWorkspace:
    ws: keel.Workspace
    tokens: dict[str, str]  # role -> token of "<role>-user"
    passed: GateReport  # toy/1
    failed: GateReport  # toy/2: directional, minimum functionality, metric and slices fail


def build_gates_workspace(path: Path) -> GatesWorkspace:
    ws = keel.init(path, user="admin-user")
    tokens = {}
    for role in ROLES:
        ws.users.add(f"{role}-user", role)
        tokens[role] = ws.tokens.create(f"{role}-user").token
    split = toy_world(ws, n=1200)
    register(ws, split)
    register(ws, split, broken="anti_monotone")
    ws.gates.set_checklist("toy", GATES_YAML)
    return GatesWorkspace(ws, tokens, ws.gates.run("toy/1"), ws.gates.run("toy/2"))
