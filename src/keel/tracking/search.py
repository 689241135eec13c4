"""The run-search language of ``keel runs list --filter ... --sort ...``, compiled to one SQL select.

A filter is conditions joined by ``and`` / ``or`` (``and`` binds tighter; parentheses group);
keywords are case-insensitive::

    filter     := or_expr END
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := atom ("and" atom)*
    atom       := "(" or_expr ")" | condition
    condition  := entity "." key op value
    entity     := metrics | params | tags | attributes      (also metric, param, tag, attribute, run)
    key        := word ("." word)*  |  `any text`  |  "any text"   (double a quote to include it)
    op         := = | == | != | <> | < | <= | > | >= | like | ilike | in
    value      := number | 'text' | "text"          ("in" takes a list: "(" value ("," value)* ")")

What each entity compares:

- ``metrics.K``: the run's latest value of metric K, as a number (= != < <= > >= in). A recorded NaN
  never matches.
- ``params.K`` / ``tags.K``: the stored text. ``=``, ``!=``, ``in``, ``like`` and ``ilike`` compare text;
  a number literal stands for the text Python prints for it (``params.max_depth = 5`` matches "5",
  not "5.0"; quote the value to compare exact text). ``< <= > >=`` compare numerically: values whose
  text is a JSON number (as Python prints ints and floats) are cast, other values never match.
- ``attributes.A`` (``run.A``): a column of the run: id, name, experiment, status, created_by, parent_id
  (text: = != in like ilike) and started_at, ended_at (ISO 8601 timestamps, no zone means UTC:
  = != < <= > >= in).

A run without the metric, param or tag never matches its condition, not even ``!=``. ``like`` is
case-sensitive and ``ilike`` is not, on every backend; ``%`` is any text, ``_`` one character and
a backslash escapes either.

Sort keys are ``[-]entity.key [asc|desc]``, comma-separated; ``-`` means descending. Metrics sort
numerically; params and tags numerically where they hold numbers, then as text; runs without the
key sort last in either direction; ties go to the newest run (started_at desc), then the id.
"""

from __future__ import annotations

import contextlib
import functools
import math
import operator
import random
import re
import sqlite3
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NoReturn, TypeAlias

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from keel.errors import InvalidInput
from keel.refs import to_utc
from keel.storage.schema import UTCDateTime, run_latest_metrics, run_params, run_tags, runs
from keel.tracking.model import RUN_STATUSES

__all__ = ["And", "Condition", "Filter", "Or", "SortKey", "parse_filter", "parse_sort", "search_query", "search_runs",
           "sqlite_prints_floats_exactly", "stored_utc"]

Value: TypeAlias = "int | float | str | datetime"

_ENTITIES = {
    "metrics": "metrics", "metric": "metrics",
    "params": "params", "param": "params", "parameters": "params",
    "tags": "tags", "tag": "tags",
    "attributes": "attributes", "attribute": "attributes", "attr": "attributes", "run": "attributes",
}  # fmt: skip
_TEXT_ATTRIBUTES = ("id", "name", "experiment", "status", "created_by", "parent_id")
_TIME_ATTRIBUTES = ("started_at", "ended_at")
_ATTRIBUTE_ALIASES = {"run_id": "id", "run_name": "name", "user": "created_by",
                      "start_time": "started_at", "end_time": "ended_at"}  # fmt: skip
_COMPARISONS = ("=", "!=", "<", "<=", ">", ">=")
_OPS_BY_KIND = {
    "number": (*_COMPARISONS, "in"),
    "text": (*_COMPARISONS, "in", "like", "ilike"),
    "attribute": ("=", "!=", "in", "like", "ilike"),
    "time": (*_COMPARISONS, "in"),
}
_OP_ALIASES = {"==": "=", "<>": "!="}
_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}  # fmt: skip
_TABLES = {"metrics": run_latest_metrics, "params": run_params, "tags": run_tags}
_PLAIN_KEY = re.compile(r"\w+(?:\.\w+)*")
# A param "is a number" when its text is a JSON number (what Python prints for ints and floats) with an
# exponent of at most 4 digits, so PostgreSQL's NUMERIC cast can never overflow; SQLite agrees (below).
_JSON_NUMBER = r"^[ \t\n\r]*-?(0|[1-9][0-9]*)([.][0-9]+)?([eE][-+]?[0-9]{1,4})?[ \t\n\r]*$"


# -- the syntax tree -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    """``entity.key op value``; ``value`` is a tuple for ``in``, a UTC datetime for run times."""

    entity: str  # metrics | params | tags | attributes
    key: str
    op: str  # = != < <= > >= like ilike in
    value: Value | tuple[Value, ...]
    position: int = field(default=0, compare=False)  # 0-based offset in the filter text

    def __str__(self) -> str:
        values = self.value if isinstance(self.value, tuple) else (self.value,)
        text = ", ".join(map(_literal, values))
        return f"{_key_text(self.entity, self.key)} {self.op} {f'({text})' if self.op == 'in' else text}"


@dataclass(frozen=True)
class And:
    parts: tuple[Filter, ...]

    def __str__(self) -> str:
        return " and ".join(f"({p})" if isinstance(p, Or) else str(p) for p in self.parts)


@dataclass(frozen=True)
class Or:
    parts: tuple[Filter, ...]

    def __str__(self) -> str:
        return " or ".join(map(str, self.parts))


Filter: TypeAlias = "Condition | And | Or"


@dataclass(frozen=True)
class SortKey:
    entity: str  # metrics | params | tags | attributes
    key: str
    descending: bool = False

    @property
    def label(self) -> str:
        """The name of this key's column in the select, e.g. ``metrics.rmse``."""
        return _key_text(self.entity, self.key)

    def __str__(self) -> str:
        return f"-{self.label}" if self.descending else self.label


# -- tokens and parsing ----------------------------------------------------------------------------

_TOKEN_RE = re.compile(
    r"""(?P<space>\s+)
      | (?P<number>(?<![\w.])[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?(?![\w.]))
      | (?P<string>'(?:[^']|'')*'|"(?:[^"]|"")*"|`(?:[^`]|``)*`)
      | (?P<word>\w+)
      | (?P<op><=|>=|!=|<>|==|=|<|>)
      | (?P<punct>[().,+-])""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Token:
    kind: str  # number | string | word | op | punct | end
    text: str
    pos: int

    @property
    def unquoted(self) -> str:
        quote = self.text[0]
        return self.text[1:-1].replace(quote * 2, quote)

    def is_word(self, *words: str) -> bool:
        return self.kind == "word" and self.text.lower() in words

    def describe(self) -> str:
        return "end of input" if self.kind == "end" else repr(self.text)


class _Parser:
    def __init__(self, text: str, what: str) -> None:
        self.text, self.what, self.tokens, self.i = text, what, [], 0
        pos = 0
        while pos < len(text):
            match = _TOKEN_RE.match(text, pos)
            if match is None:
                if text[pos] in "'\"`":
                    self.fail(f"unterminated {_QUOTE_NAMES[text[pos]]} starting at position {pos + 1}", pos)
                self.fail(f"unexpected character {text[pos]!r} at position {pos + 1}", pos)
            if match.lastgroup != "space":
                self.tokens.append(_Token(match.lastgroup or "", match.group(), pos))
            pos = match.end()
        self.tokens.append(_Token("end", "", len(text)))

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        token = self.tokens[self.i]
        self.i = min(self.i + 1, len(self.tokens) - 1)
        return token

    def fail(self, problem: str, pos: int, expected: str | None = None) -> NoReturn:
        caret = f"\n  {self.text}\n  {' ' * pos}^" if self.text.strip() and "\n" not in self.text else ""
        details = {"position": pos + 1, self.what: self.text} | ({"expected": expected} if expected else {})
        raise InvalidInput(f"invalid {self.what}: {problem}{caret}", details=details)

    def expected(self, what: str, token: _Token | None = None) -> NoReturn:
        token = token or self.peek()
        self.fail(f"expected {what} at position {token.pos + 1}, got {token.describe()}", token.pos, what)

    def punct(self, char: str) -> bool:
        if self.peek().kind == "punct" and self.peek().text == char:
            self.take()
            return True
        return False

    def name(self) -> tuple[str, str, int]:
        """``entity.key`` -> (canonical entity, key, position)."""
        start = self.peek()
        if start.kind != "word":
            self.expected("metrics.KEY, params.KEY, tags.KEY or attributes.NAME", start)
        entity = _ENTITIES.get(start.text.lower())
        if entity is None:
            self.fail(f"unknown entity {start.text!r} at position {start.pos + 1}; use metrics, params, tags "
                      "or attributes, e.g. metrics.rmse", start.pos, "metrics, params, tags or attributes")
        self.take()
        if not self.punct("."):
            self.expected(f"'.' and a key after {start.text!r}")
        token = self.take()
        if token.kind == "string":
            key = token.unquoted
        elif token.kind == "word":
            key = token.text
            while self.peek().kind == "punct" and self.peek().text == "." and self.tokens[self.i + 1].kind == "word":
                self.take()
                key += "." + self.take().text
        else:
            self.expected(f"a key after '{start.text}.' (quote keys with `backticks` or \"double quotes\")", token)
        if not key:
            self.fail(f"empty key at position {token.pos + 1}", token.pos, "a key")
        if entity == "attributes":
            key = _ATTRIBUTE_ALIASES.get(key.lower(), key.lower())
            if key not in _TEXT_ATTRIBUTES + _TIME_ATTRIBUTES:
                known = ", ".join(_TEXT_ATTRIBUTES + _TIME_ATTRIBUTES)
                self.fail(f"unknown attribute {token.text!r} at position {token.pos + 1}; use one of {known}",
                          token.pos, known)
        return entity, key, start.pos


def parse_filter(text: str) -> Filter:
    """Parse a filter such as ``metrics.rmse < 3 and params.max_depth = 5`` into its syntax tree."""
    if not isinstance(text, str):
        raise InvalidInput(f"a filter is text, e.g. \"metrics.rmse < 3\"; got {type(text).__name__}")
    parser = _Parser(text, "filter")
    tree = _or_expr(parser)
    if parser.peek().kind != "end":
        parser.expected("'and', 'or' or the end of the filter")
    return tree


def _or_expr(p: _Parser) -> Filter:
    parts = [_and_expr(p)]
    while p.peek().is_word("or"):
        p.take()
        parts.append(_and_expr(p))
    return parts[0] if len(parts) == 1 else Or(tuple(parts))


def _and_expr(p: _Parser) -> Filter:
    parts = [_atom(p)]
    while p.peek().is_word("and"):
        p.take()
        parts.append(_atom(p))
    flat = [q for part in parts for q in (part.parts if isinstance(part, And) else (part,))]
    return flat[0] if len(flat) == 1 else And(tuple(flat))


def _atom(p: _Parser) -> Filter:
    if p.punct("("):
        inner = _or_expr(p)
        if not p.punct(")"):
            p.expected("')'")
        return inner
    if p.peek().kind == "end":
        p.expected("a condition such as metrics.rmse < 3")
    entity, key, pos = p.name()
    kind = _kind(entity, key)
    token = p.take()
    op = _OP_ALIASES.get(token.text, token.text) if token.kind == "op" else token.text.lower()
    if token.kind not in ("op", "word") or op not in _OPS_BY_KIND["text"]:
        p.expected("an operator (=, !=, <, <=, >, >=, like, ilike, in)", token)
    if op not in _OPS_BY_KIND[kind]:
        allowed = ", ".join(_OPS_BY_KIND[kind])
        p.fail(f"{_key_text(entity, key)} does not support {op!r} (position {token.pos + 1}); use {allowed}",
               token.pos, allowed)
    if op != "in":
        return Condition(entity, key, op, _value(p, entity, key, op), pos)
    if not p.punct("("):
        p.expected("'(' to start the list after 'in'")
    values = [_value(p, entity, key, op)]
    while p.punct(","):
        values.append(_value(p, entity, key, op))
    if not p.punct(")"):
        p.expected("',' or ')' in the list after 'in'")
    return Condition(entity, key, op, tuple(values), pos)


def _kind(entity: str, key: str) -> str:
    if entity == "metrics":
        return "number"
    if entity != "attributes":
        return "text"
    return "time" if key in _TIME_ATTRIBUTES else "attribute"


def _value(p: _Parser, entity: str, key: str, op: str) -> Value:
    """One literal, checked against what the condition compares."""
    token = p.take()
    name, kind = _key_text(entity, key), _kind(entity, key)
    if token.kind == "number":
        whole = re.fullmatch(r"[-+]?[0-9]{1,18}", token.text)  # fits a 64-bit integer
        number = int(token.text) if whole else float(token.text)
        if kind in ("number", "text") and op not in ("like", "ilike"):
            return number
        if kind == "attribute" and op in ("=", "!=", "in"):
            return _checked_text(p, token, key, str(number))
        p.expected("a quoted string" if op in ("like", "ilike") else "a quoted ISO 8601 timestamp", token)
    if token.kind != "string" or token.text[0] == "`":
        if token.kind == "string":
            p.fail(f"backticks quote keys, not values (position {token.pos + 1}); quote values with ' or \"",
                   token.pos, "a number or a quoted string")
        p.expected("a value (a number or a quoted string)", token)
    text = token.unquoted
    if kind == "number" or (op in _COMPARISONS[2:] and kind == "text"):
        p.fail(f"{name} {op} compares numbers; got the string {token.text} at position {token.pos + 1}",
               token.pos, "a number")
    if kind == "time":
        try:
            return to_utc(datetime.fromisoformat(text))
        except ValueError:
            p.fail(f"malformed timestamp {token.text} at position {token.pos + 1}; use ISO 8601, "
                   "e.g. '2024-05-01T12:00Z'", token.pos, "an ISO 8601 timestamp")
    if op in ("like", "ilike") and re.search(r"(?<!\\)(\\\\)*\\$", text):
        p.fail(f"the pattern {token.text} at position {token.pos + 1} ends with a lone backslash; "
               "write \\\\ for a backslash", token.pos, "a like pattern")
    return _checked_text(p, token, key, text) if kind == "attribute" else text


def _checked_text(p: _Parser, token: _Token, key: str, text: str) -> str:
    if key == "status" and text not in RUN_STATUSES:
        p.fail(f"unknown status {text!r} at position {token.pos + 1}; use one of {', '.join(RUN_STATUSES)}",
               token.pos, ", ".join(RUN_STATUSES))
    return text


def parse_sort(text: str | Sequence[str]) -> list[SortKey]:
    """Parse ``-metrics.rmse,params.lr`` (or a list of such items) into sort keys, first key first."""
    items = [text] if isinstance(text, str) else list(text)
    keys: list[SortKey] = []
    for item in items:
        if not isinstance(item, str):
            raise InvalidInput(f"a sort key is text such as '-metrics.rmse'; got {type(item).__name__}")
        if not item.strip():
            continue
        parser = _Parser(item, "sort")
        while True:
            keys.append(_sort_key(parser))
            if not parser.punct(","):
                break
        if parser.peek().kind != "end":
            parser.expected("',' and another sort key, or the end")
    labels = [k.label for k in keys]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise InvalidInput(f"invalid sort: {', '.join(duplicates)} given more than once; name each key once")
    return keys


def _sort_key(p: _Parser) -> SortKey:
    sign = p.take().text if p.peek().kind == "punct" and p.peek().text in "+-" else ""
    entity, key, _ = p.name()
    word = p.take() if p.peek().is_word("asc", "desc") else None
    direction = word.text.lower() if word else ""
    if sign and word:
        p.fail(f"use either a '{sign}' prefix or {direction!r} (position {word.pos + 1}), not both", word.pos)
    return SortKey(entity, key, descending=sign == "-" or direction == "desc")


# -- compiling to SQL ------------------------------------------------------------------------------


def search_query(
    filter: Filter | str | None,
    sort: Sequence[SortKey] | Sequence[str] | str | None = None,
    *,
    experiment: str | None = None,
    status: str | None = None,
    limit: int = 1000,
) -> sa.Select:
    """One select of ``runs.id`` (plus a column per sort key, labelled like ``metrics.rmse``), ordered."""
    query, _, labelled = _matching(*_arguments(filter, sort, experiment, status, limit))
    return query.add_columns(*labelled)


def search_runs(
    filter: Filter | str | None,
    sort: Sequence[SortKey] | Sequence[str] | str | None = None,
    *,
    experiment: str | None = None,
    status: str | None = None,
    limit: int = 1000,
) -> sa.Select:
    """The matching runs in order with what a listing shows, in one statement: each run's columns (not
    its environment) and ``data``, a JSON text ``[params, tags, latest metrics]`` (see ``_RunData``).
    ``started_at`` and ``ended_at`` come as the driver gives them: ``stored_utc`` reads them (several
    times cheaper than SQLAlchemy's generic result processing, which for a listing costs as much as
    decoding everything else).

    Cached per distinct search: parsing, building and compiling a statement costs more than the database
    takes to run it, and a UI or a sweep repeats the same few searches.
    """
    key_sort = tuple(sort) if isinstance(sort, list) else sort
    return _search_runs(filter, key_sort, experiment, status, limit)


@functools.lru_cache(maxsize=256)
def _search_runs(filter: Filter | str | None, sort: Sequence[SortKey] | Sequence[str] | str | None,
                 experiment: str | None, status: str | None, limit: int) -> sa.Select:
    hits_query, parts, _ = _matching(*_arguments(filter, sort, experiment, status, limit))
    hits = hits_query.add_columns(runs.c.started_at, *(p.label(f"o{i}") for i, (p, _) in enumerate(parts))).cte("hits")
    order = _order([(hits.c[f"o{i}"], descending) for i, (_, descending) in enumerate(parts)])
    columns = [sa.type_coerce(c, sa.types.NullType()).label(c.name) if isinstance(c.type, UTCDateTime) else c
               for c in runs.c if c.name != "environment"]
    return (sa.select(*columns, _RunData(runs.c.id).label("data"))
            .select_from(hits.join(runs, runs.c.id == hits.c.id))
            .order_by(*order, hits.c.started_at.desc(), hits.c.id.asc()))


_fromisoformat = datetime.fromisoformat


def stored_utc(value: str | datetime | None) -> datetime | None:
    """A run time as ``search_runs`` returns it (SQLite: the text SQLAlchemy stored, naive UTC;
    PostgreSQL: an aware timestamp) as an aware UTC datetime."""
    if value.__class__ is str:
        return _fromisoformat(value + "+00:00")  # ten times cheaper than .replace(tzinfo=UTC)
    if value is None:
        return None
    return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _arguments(filter: Filter | str | None, sort: Sequence[SortKey] | Sequence[str] | str | None,
               experiment: str | None, status: str | None, limit: int,
               ) -> tuple[Filter | None, list[SortKey], str | None, str | None, int]:
    if isinstance(filter, str):
        filter = parse_filter(filter)
    if isinstance(sort, str) or (sort and all(isinstance(item, str) for item in sort)):
        keys = parse_sort(sort)  # type: ignore[arg-type]
    else:
        keys = list(sort or ())  # type: ignore[arg-type]
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidInput(f"limit must be a positive whole number; got {limit!r}")
    if status is not None and status not in RUN_STATUSES:
        raise InvalidInput(f"unknown run status {status!r}; use one of {', '.join(RUN_STATUSES)}")
    return filter, keys, experiment, status, limit


def _matching(filter: Filter | None, keys: list[SortKey], experiment: str | None, status: str | None,
              limit: int) -> tuple[sa.Select, list[tuple[Any, bool]], list[Any]]:
    """The ids of the matching runs, ordered and limited; the order's parts (expression, descending);
    and each sort key's value labelled like ``metrics.rmse``.

    Conditions and-ed at the top of the filter on a metric, param or tag become inner joins (a run has
    at most one row per key, so a join keeps exactly the runs an EXISTS would); others are EXISTS.
    """
    source: sa.FromClause = runs
    parts: list[tuple[Any, bool]] = []
    labelled: list[Any] = []
    for i, key in enumerate(keys):
        if key.entity == "attributes":
            value = runs.c[key.key]
            values = [value]
        else:
            table = _TABLES[key.entity].alias(f"sort_{i}")
            source = source.outerjoin(table, sa.and_(table.c.run_id == runs.c.id, table.c.key == key.key))
            value = table.c.value
            values = [value] if key.entity == "metrics" else [_AsNumber(value), value]
        labelled.append(value.label(key.label))
        parts += [(v, key.descending) for v in values]
    where: list[Any] = []
    conditions = filter.parts if isinstance(filter, And) else () if filter is None else (filter,)
    for i, condition in enumerate(conditions):
        if isinstance(condition, Condition) and condition.entity != "attributes":
            table = _TABLES[condition.entity].alias(f"filter_{i}")
            source = source.join(table, sa.and_(table.c.run_id == runs.c.id, table.c.key == condition.key,
                                                _predicate(table.c.value, condition)))
        else:
            where.append(_compile(condition))
    if experiment is not None:
        where.append(runs.c.experiment == experiment)
    if status is not None:
        where.append(runs.c.status == status)
    query = sa.select(runs.c.id).select_from(source).where(*where)
    return query.order_by(*_order(parts), runs.c.started_at.desc(), runs.c.id.asc()).limit(limit), parts, labelled


def _order(parts: list[tuple[Any, bool]]) -> list[Any]:
    """Each part: runs that have it first, then by value in the key's direction."""
    order: list[Any] = []
    for part, descending in parts:
        order += [sa.case((part.is_(None), 1), else_=0), part.desc() if descending else part.asc()]
    return order


def _compile(tree: Filter) -> sa.ColumnElement[bool]:
    if isinstance(tree, And):
        return sa.and_(*map(_compile, tree.parts))
    if isinstance(tree, Or):
        return sa.or_(*map(_compile, tree.parts))
    if tree.entity == "attributes":
        return _predicate(runs.c[tree.key], tree)
    table = _TABLES[tree.entity]
    return (
        sa.exists()
        .where(table.c.run_id == runs.c.id, table.c.key == tree.key, _predicate(table.c.value, tree))
        .correlate(runs)
    )


def _predicate(column: Any, c: Condition) -> sa.ColumnElement[bool]:
    numeric = c.entity == "metrics"
    if c.op == "in":
        values = c.value if isinstance(c.value, tuple) else (c.value,)
        return column.in_([_bind(v, numeric) for v in values])
    if c.op in ("like", "ilike"):
        pattern = str(c.value)
        if c.op == "ilike":
            return _ILike(column, sa.literal(pattern, sa.Text))
        return _Like(column, sa.literal(pattern, sa.Text), sa.literal(_like_to_glob(pattern), sa.Text))
    if c.entity in ("params", "tags") and c.op in _COMPARISONS[2:]:
        return _COMPARE[c.op](_AsNumber(column), sa.cast(sa.literal(float(c.value), sa.Float), sa.Numeric))
    return _COMPARE[c.op](column, _bind(c.value, numeric))


def _bind(value: Value, numeric: bool) -> Any:
    if numeric:
        return float(value)  # type: ignore[arg-type]
    return value if isinstance(value, datetime) else str(value)


def _like_to_glob(pattern: str) -> str:
    """A LIKE pattern (backslash escapes) as the case-sensitive GLOB pattern SQLite needs."""
    out, i = [], 0
    while i < len(pattern):
        char, i = pattern[i], i + 1
        if char == "\\" and i < len(pattern):
            char, i = pattern[i], i + 1
            out.append(f"[{char}]" if char in "*?[" else char)
        else:
            out.append({"%": "*", "_": "?", "*": "[*]", "?": "[?]", "[": "[[]"}.get(char, char))
    return "".join(out)


class _AsNumber(FunctionElement):
    """A text column as a number when it holds a JSON number, else NULL (never a cast error)."""

    name = "keel_as_number"
    type = sa.Numeric()
    inherit_cache = True


class _Like(FunctionElement):
    """Case-sensitive LIKE on every backend: (column, like pattern, the same as a GLOB pattern)."""

    name = "keel_like"
    type = sa.Boolean()
    inherit_cache = True


class _ILike(FunctionElement):
    name = "keel_ilike"
    type = sa.Boolean()
    inherit_cache = True


def _args(element: FunctionElement, compiler: Any, **kw: Any) -> list[str]:
    return [compiler.process(arg, **kw) for arg in element.clauses]


@compiles(_AsNumber)
def _as_number_postgresql(element: _AsNumber, compiler: Any, **kw: Any) -> str:
    (column,) = _args(element, compiler, **kw)
    return f"(CASE WHEN {column} ~ '{_JSON_NUMBER}' THEN CAST({column} AS NUMERIC) END)"


@compiles(_AsNumber, "sqlite")
def _as_number_sqlite(element: _AsNumber, compiler: Any, **kw: Any) -> str:
    (column,) = _args(element, compiler, **kw)
    return (f"(CASE WHEN json_valid({column}) THEN (CASE WHEN json_type({column}) IN ('integer', 'real') "
            f"AND NOT {column} GLOB '*[eE]*[0-9][0-9][0-9][0-9][0-9]*' THEN CAST({column} AS REAL) END) END)")


@compiles(_Like)
def _like_postgresql(element: _Like, compiler: Any, **kw: Any) -> str:
    column, pattern, _ = _args(element, compiler, **kw)
    return f"({column} LIKE {pattern})"  # PostgreSQL's default escape is the backslash


@compiles(_Like, "sqlite")
def _like_sqlite(element: _Like, compiler: Any, **kw: Any) -> str:
    column, _, glob = _args(element, compiler, **kw)
    return f"({column} GLOB {glob})"  # SQLite's LIKE ignores case


@compiles(_ILike)
def _ilike_postgresql(element: _ILike, compiler: Any, **kw: Any) -> str:
    column, pattern = _args(element, compiler, **kw)
    return f"({column} ILIKE {pattern})"


@compiles(_ILike, "sqlite")
def _ilike_sqlite(element: _ILike, compiler: Any, **kw: Any) -> str:
    column, pattern = _args(element, compiler, **kw)
    return f"(lower({column}) LIKE lower({pattern}) ESCAPE '\\')"


class _RunData(FunctionElement):
    """A run's params, tags and latest metrics as one JSON text ``[{params}, {tags}, {metrics}]``.

    Three correlated aggregates; read with one ``json.loads``. Metric values must come back exactly:
    SQLite's own JSON functions print doubles with 15 significant digits, so the metrics object is
    assembled from ``printf('%!.18g')`` (17 digits are needed; see ``sqlite_prints_floats_exactly``),
    and PostgreSQL prints float8 exactly (shortest round-trip form, its default since version 12).
    Infinities are written ``Infinity`` / ``-Infinity``, which ``json.loads`` reads; a recorded NaN is
    stored as NULL and comes back as ``null``.
    """

    name = "keel_run_data"
    type = sa.Text()
    inherit_cache = True


_MAX_DOUBLE = "1.7976931348623157e308"


@compiles(_RunData)
def _run_data_postgresql(element: _RunData, compiler: Any, **kw: Any) -> str:
    (run_id,) = _args(element, compiler, **kw)

    def text(table: sa.Table) -> str:
        return (f"coalesce((SELECT json_object_agg(key, value) FROM {table.name} WHERE run_id = {run_id})::text, "
                "'{}')")

    metrics = (f"coalesce((SELECT '{{' || string_agg(to_json(key)::text || ':' || coalesce(value::text, 'null'), ',') "
               f"|| '}}' FROM {run_latest_metrics.name} WHERE run_id = {run_id}), '{{}}')")
    return f"('[' || {text(run_params)} || ',' || {text(run_tags)} || ',' || {metrics} || ']')"


@compiles(_RunData, "sqlite")
def _run_data_sqlite(element: _RunData, compiler: Any, **kw: Any) -> str:
    (run_id,) = _args(element, compiler, **kw)

    def text(table: sa.Table) -> str:
        return f"(SELECT json_group_object(key, value) FROM {table.name} WHERE run_id = {run_id})"

    number = (f"CASE WHEN value IS NULL THEN 'null' WHEN value > {_MAX_DOUBLE} THEN 'Infinity' "
              f"WHEN value < -{_MAX_DOUBLE} THEN '-Infinity' ELSE printf('%!.18g', value) END")
    metrics = (f"coalesce((SELECT '{{' || group_concat(json_quote(key) || ':' || {number}, ',') || '}}' "
               f"FROM {run_latest_metrics.name} WHERE run_id = {run_id}), '{{}}')")
    return f"('[' || {text(run_params)} || ',' || {text(run_tags)} || ',' || {metrics} || ']')"


@functools.cache
def sqlite_prints_floats_exactly() -> bool:
    """Whether this process's SQLite library prints doubles with ``printf('%!.18g')`` so that they read back
    exactly: true where SQLite converts with extended precision (x86-64) or is 3.43 or newer; elsewhere
    searches read metric values as rows instead of through ``_RunData``."""
    rng = random.Random(20240501)
    values = [1.7976931348623157e308, 2.2250738585072014e-308, 5e-324, 0.1, 1 / 3, 2.0 ** 53 + 2, 1e23, -0.0,
              0.30000000000000004, 1.4523142177899403e308, -1.1545580616824966e232]
    while len(values) < 2000:
        value = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
        if math.isfinite(value):
            values.append(value)
    with contextlib.closing(sqlite3.connect(":memory:")) as conn:
        conn.execute("CREATE TABLE v (i INTEGER PRIMARY KEY, x REAL)")
        conn.executemany("INSERT INTO v (x) VALUES (?)", [(v,) for v in values])
        texts = [text for (text,) in conn.execute("SELECT printf('%!.18g', x) FROM v ORDER BY i")]
    return all(float(text) == value for text, value in zip(texts, values, strict=True))


# -- printing --------------------------------------------------------------------------------------

_QUOTE_NAMES = {"'": "string", '"': "string", "`": "quoted key"}


def _key_text(entity: str, key: str) -> str:
    if _PLAIN_KEY.fullmatch(key):
        return f"{entity}.{key}"
    return f"{entity}.`{key.replace('`', '``')}`"


def _literal(value: Value) -> str:
    if isinstance(value, datetime):
        value = value.isoformat()
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)
