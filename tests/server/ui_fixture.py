"""A small workspace with everything the UI shows: a table with quarantined rows and a contract, a split,
two runs with step metrics, an image and lineage, a model with two versions, and a token per role.

Built with the SDK in a few seconds (``keel demo`` takes ~30 s); shared by the page tests and the
browser test.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from sklearn.dummy import DummyRegressor
from sklearn.linear_model import Ridge

import keel
from keel.demo.generator import LISTINGS_CONTRACT, generate_listings, write_listings
from keel.users import ROLES

FEATURES = ["accommodates", "bedrooms", "beds", "minimum_nights"]


@dataclass
class UIWorkspace:
    ws: keel.Workspace
    tokens: dict[str, str]  # role -> token of "<role>-user"
    runs: dict[str, str]  # run name -> id
    split: str


def build_ui_workspace(path: Path) -> UIWorkspace:
    ws = keel.init(path, user="admin-user")
    tokens = {}
    for role in ROLES:
        name = f"{role}-user"
        ws.users.add(name, role)
        tokens[role] = ws.tokens.create(name).token
    source = write_listings(generate_listings(range(1, 3), rows_per_month=150), path / "listings.csv")
    ws.data.ingest(source, "listings", contract=LISTINGS_CONTRACT, on_bad_rows="quarantine", time_column="listed_at")
    split = ws.data.split("listings", target="price", time_column="listed_at", dedupe=True)
    train = ws.data.read_split(split.ref, "train")
    x, y = train[FEATURES], train["price"]
    runs = {}
    for name, model, alpha in (("baseline", DummyRegressor(), None), ("ridge", Ridge(alpha=1.0), 1.0)):
        with ws.runs.start("price", name=name, inputs=[split.ref], tags={"owner": "ui-test"}) as run:
            run.log_params({"model": name, "alpha": alpha if alpha is not None else "none", "features": len(FEATURES)})
            for step in range(12):  # a training curve, so the run page has a step chart
                run.log_metrics({"loss": 100.0 / (step + 1) + (0 if alpha else 20), "lr": 0.1 * 0.9**step}, step=step)
            model.fit(x, y)
            rmse = float(np.sqrt(np.mean((model.predict(x) - y) ** 2)))
            run.log_metrics({"validation.rmse": rmse, "validation.mae": rmse * 0.7})
            figure = Figure(figsize=(3, 2))  # no pyplot: no global figure state, no GUI backend
            figure.subplots().plot(range(12), [100.0 / (s + 1) for s in range(12)])
            run.log_figure(figure, "curves/loss.png")
            run.log_artifact(b'{"note": "<script>alert(1)</script>"}', "notes/summary.json")
            run.log_model(model, "price", input_example=x.head(5), description=f"{name} on {split.ref}")
            runs[name] = run.id
    return UIWorkspace(ws, tokens, runs, split.ref)
