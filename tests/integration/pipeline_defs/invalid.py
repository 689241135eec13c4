"""Steps that cannot make a valid pipeline, and one pipeline with a cycle (``apply`` refuses the whole file).

``a`` takes ``b``'s output and ``b`` takes ``a``'s: a cycle. ``number`` returns an int that ``needs_split`` takes
as a Split: a type mismatch. Tests build other bad pipelines from these steps (``keel.code.load_module``).
"""

from __future__ import annotations

from keel.pipelines import Pipeline, Split, step


@step
def a(b: int) -> int:
    return b + 1


@step
def b(a: int) -> int:
    return a + 1


@step
def number() -> int:
    return 3


@step
def needs_split(number: Split) -> dict:
    return {"split": number}


cycle = Pipeline("cycle", [a, b])
