"""errors.py: one tree, drawn in its docstring, every class answerable by the CLI and the server."""

from __future__ import annotations

import json
import re

import pytest

import keel.errors as errors
from keel.errors import KeelError, NotFound, UserError, ValidationFailed

CLASSES = [getattr(errors, name) for name in errors.__all__]
TREE_LINE = re.compile(r"^(?P<indent>[ │├└─]*)(?P<name>[A-Z]\w+)\s+(?P<status>\d{3})?")


def _tree() -> list[tuple[int, str, int | None]]:
    """(depth, class name, status or None) per class line of the docstring tree."""
    out = []
    for line in (errors.__doc__ or "").splitlines():
        stripped = line[4:] if line.startswith("    ") else None
        if stripped is None:
            continue
        match = TREE_LINE.match(stripped)
        if not match:
            continue
        depth = len(match["indent"]) // 4
        out.append((depth, match["name"], int(match["status"]) if match["status"] else None))
    return out


def test_all_lists_every_error_class_defined_in_the_module() -> None:
    defined = {
        name for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, Exception) and value.__module__ == errors.__name__
    }
    assert defined == set(errors.__all__)
    assert errors.__all__ == sorted(errors.__all__)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_class_is_a_keel_error_with_status_and_exit_code(cls: type[KeelError]) -> None:
    assert issubclass(cls, KeelError)
    assert isinstance(cls.http_status, int) and 400 <= cls.http_status <= 599
    assert cls.exit_code in (1, 2)


@pytest.mark.parametrize("cls", [c for c in CLASSES if issubclass(c, UserError | NotFound)], ids=lambda c: c.__name__)
def test_user_errors_and_not_found_exit_2_with_4xx(cls: type[KeelError]) -> None:
    assert cls.exit_code == 2
    assert 400 <= cls.http_status <= 499


@pytest.mark.parametrize("cls", [c for c in CLASSES if not issubclass(c, UserError | NotFound)],
                         ids=lambda c: c.__name__)
def test_platform_errors_exit_1_with_5xx(cls: type[KeelError]) -> None:
    assert cls.exit_code == 1
    assert 500 <= cls.http_status <= 599


def test_specific_statuses() -> None:
    assert errors.NotFound.http_status == errors.WorkspaceNotFound.http_status == 404
    assert errors.ValidationFailed.http_status == 422
    assert errors.Conflict.http_status == errors.LeakageError.http_status == errors.SchemaMismatch.http_status == 409
    assert errors.InvalidRef.http_status == errors.InvalidInput.http_status == 400
    assert errors.StorageError.http_status == errors.KeelError.http_status == 500


@pytest.mark.parametrize("cls", [c for c in CLASSES if c is not ValidationFailed], ids=lambda c: c.__name__)
def test_to_dict_shape(cls: type[KeelError]) -> None:
    exc = cls("it broke; do this instead", details={"table": "listings", "rows": 3})
    body = exc.to_dict()
    assert body == {
        "error": {"type": cls.__name__, "message": "it broke; do this instead",
                  "details": {"table": "listings", "rows": 3}}
    }
    json.dumps(body)
    assert str(exc) == "it broke; do this instead"
    assert exc.message == "it broke; do this instead"


def test_details_default_to_an_empty_dict() -> None:
    assert errors.NotFound("no such table").to_dict() == {
        "error": {"type": "NotFound", "message": "no such table", "details": {}}
    }


def test_validation_failed_carries_its_report() -> None:
    report = object()
    exc = ValidationFailed("2 rows fail", report=report, details={"failed_rows": 2})
    assert exc.report is report
    assert exc.to_dict()["error"] == {"type": "ValidationFailed", "message": "2 rows fail",
                                      "details": {"failed_rows": 2}}
    assert ValidationFailed("x").report is None


def test_errors_are_caught_by_their_ancestors() -> None:
    with pytest.raises(errors.InvalidInput):
        raise errors.UnreadableFile("empty file")
    with pytest.raises(NotFound):
        raise errors.WorkspaceNotFound("no keel.toml")
    with pytest.raises(UserError):
        raise errors.LeakageError("duplicates across parts")


def test_docstring_tree_names_every_class() -> None:
    drawn = [name for _, name, _ in _tree()]
    assert sorted(drawn) == sorted(errors.__all__)
    assert len(drawn) == len(set(drawn))


def test_docstring_tree_matches_the_class_hierarchy() -> None:
    stack: list[str] = []
    for depth, name, _ in _tree():
        cls = getattr(errors, name)
        del stack[depth:]
        if depth == 0:
            assert cls is KeelError
        else:
            assert cls.__bases__ == (getattr(errors, stack[-1]),), f"{name} should subclass {stack[-1]}"
        stack.append(name)


def test_docstring_tree_statuses_match_the_classes() -> None:
    for _, name, status in _tree():
        assert status is not None, f"{name} has no status in the docstring"
        assert getattr(errors, name).http_status == status, name
