"""Small steps for triggered pipelines: the tests declare the triggers (they name temporary folders).

``note`` appends a line to the file ``trace`` each time it executes; ``pin`` returns the table version its run
pinned (a Table parameter is resolved to the newest version when the run is created).
"""

from __future__ import annotations

from keel.pipelines import Table, step


@step
def note(trace: str = "") -> int:
    if trace:
        with open(trace, "a", encoding="utf-8") as out:
            out.write("note\n")
    return 1


@step
def pin(table: Table = "events") -> Table:
    return table
