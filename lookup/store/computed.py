"""Computed attributes: COUNT, SUM, MIN, MAX and MOST_RECENT over a person's events.

They are evaluated with SQL over the ``events`` table at lookup time, not materialised at
ingest, so a sliding window is always current. Each definition is one query that reads
the person's events in the window through the (person_id, ts) index; values are read out
of the stored event body with SQLite's ``json_extract``, or on PostgreSQL with ``#>`` over
the body as ``jsonb`` (``Dialect``: the same query, said in each database's JSON words).

The window runs from ``now - window_days`` (inclusive: an event exactly ``window_days``
old counts) to ``now + CLOCK_SKEW``. Events a little in the future are counted because
the systems that stamp them may run ahead of the hub's clock, and the very latest
activity is what an agent needs; events further ahead (scheduled or bad data) are not.

A field is an XDM dotted path inside the event; a ``[]`` step (``productListItems[].
priceTotal``) goes through every item of a list. SUM, MIN and MAX take numbers only
(other values are ignored); COUNT counts events, or the values found when a field is
given; MOST_RECENT takes any non-null value, and with a ``[]`` path collects the values
of the newest event that has any.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any, Literal, Self

from pydantic import ConfigDict, Field, model_validator

from hub.models import Frozen
from lookup.store.backend import NAMED, Connection
from lookup.store.records import EPOCH, to_micros

Function = Literal["count", "sum", "min", "max", "most_recent"]
CLOCK_SKEW = timedelta(minutes=5)
DAY_MICROS = 86_400_000_000
MAX_WINDOW_DAYS = 100_000  # about 270 years; microseconds still fit 64 bits
EARLIEST = -(2**63)  # the lower bound of an unbounded window
_STEP = r"[A-Za-z_@$][\w@$:-]*(\[\])?"
FIELD_PATTERN = rf"^{_STEP}(\.{_STEP})*$"
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
PRESENT = "<> 'null'"  # the JSON type is NULL for an absent path, 'null' for a JSON null
AGGREGATES: dict[str, str] = {
    "count": "count(*)",
    "sum": "coalesce(sum({value}), 0)",
    "min": "min({value})",
    "max": "max({value})",
}


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one database says the JSON parts of a query (``{c}``: a container, ``{p}``: a
    path parameter's name, ``{i}``: a list item's alias, ``{v}``: a value)."""

    name: str
    body: str  # the event body as a container
    extract: str  # the value at a path
    type_of: str  # its JSON type (NULL when absent)
    list_join: str  # the items of the array at a path, as {i}.value and {i}.key
    item_type: str
    item_object: str  # the item when it is an object, else NULL
    numeric: str  # the JSON types SUM, MIN and MAX take
    number: str  # a value as an aggregate takes it
    order_column: str  # the order events were stored in
    parse: str = ""  # a join that reads each event's body into ``body`` once, if needed

    def path(self, dotted: str) -> str | list[str]:
        """A path parameter's value for an XDM dotted path."""
        return json_path(dotted) if self.name == "sqlite" else _steps(dotted)


SQLITE = Dialect(
    name="sqlite", body="e.body", extract="json_extract({c}, :{p})",
    type_of="json_type({c}, :{p})",
    # json_each hands a string item over as bare text, which the JSON functions would fail
    # to read as JSON: only object items are containers.
    list_join=" JOIN json_each({c}, :{p}) AS {i} ON json_type({c}, :{p}) = 'array'",
    item_type="{i}.type", item_object="(CASE WHEN {i}.type = 'object' THEN {i}.value END)",
    numeric="IN ('integer', 'real')", number="{v}", order_column="rowid",
)
# jsonb holds no NUL character, which a stored body may spell (``\u0000``): there it is
# read as U+FFFD (an escape preceded by an odd run of backslashes is text, not a NUL).
NUL_ESCAPE = r"(?<!\\)((?:\\\\)*)\\u0000"
POSTGRESQL = Dialect(
    name="postgresql",
    # Each event's body is parsed once, in a join, rather than at each use: OFFSET 0 keeps
    # the planner from folding the parse back into every place that uses it.
    body="d.doc",
    parse=(" CROSS JOIN LATERAL (SELECT (CASE WHEN strpos(e.body, '\\u0000') = 0 THEN e.body"
           " ELSE regexp_replace(e.body, :nul, '\\1\\ufffd', 'g') END)::jsonb OFFSET 0) AS d(doc)"),
    extract="({c} #> :{p})",
    type_of="jsonb_typeof({c} #> :{p})",
    list_join=(" JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof({c} #> :{p})"
               " = 'array' THEN {c} #> :{p} END) WITH ORDINALITY AS {i}(value, key) ON true"),
    item_type="jsonb_typeof({i}.value)",
    item_object="(CASE WHEN jsonb_typeof({i}.value) = 'object' THEN {i}.value END)",
    numeric="= 'number'", number="({v})::numeric", order_column="seq",
)
DIALECTS = {dialect.name: dialect for dialect in (SQLITE, POSTGRESQL)}


class ComputedAttribute(Frozen):
    """One ``[[computed]]`` definition of the settings; see the module docstring."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    function: Function
    event_type: str | None = Field(default=None, min_length=1)
    field: str | None = Field(default=None, pattern=FIELD_PATTERN)
    window_days: int | None = Field(default=None, gt=0, le=MAX_WINDOW_DAYS)

    @model_validator(mode="after")
    def _field_unless_count(self) -> Self:
        if self.field is None and self.function != "count":
            raise ValueError(f"computed attribute {self.name!r}: {self.function} needs a field")
        return self


@dataclass(frozen=True, slots=True)
class _Selector:
    """Where a field's values come from: json_each joins, then a value and its JSON type."""

    joins: str
    lists: int  # how many [] steps, so how many joins (j0, j1, ...)
    value: str
    kind: str
    params: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Query:
    """The SQL of one definition, its parameters, and how to read its rows."""

    sql: str
    params: dict[str, Any]
    collects: bool  # a most_recent over a [] path: a list of the newest event's values
    lists: int = 0  # its [] steps (a most_recent selects each one's item key last)
    # On PostgreSQL, for a collecting MOST_RECENT: the rows of ``sql`` of its newest event
    # only, found reading the events newest first up to the first with a value (``sql``
    # reads every event in the window).
    newest: str = ""


def compute(
    conn: Connection,
    person_id: int,
    definitions: Sequence[ComputedAttribute],
    now: datetime,
) -> dict[str, Any]:
    """The value of each of ``definitions`` for ``person_id`` at ``now`` (timezone-aware)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    at = to_micros(now)
    return {d.name: _evaluate(conn, person_id, d, at) for d in definitions}


def _evaluate(
    conn: Connection, person_id: int, definition: ComputedAttribute, at: int
) -> Any:
    dialect = DIALECTS[getattr(conn, "dialect", "sqlite")]
    query = query_of(definition, dialect)
    rows = conn.execute(query.sql, {**query.params, **_bounds(person_id, definition, at)})
    if definition.function != "most_recent":
        return _number(rows.fetchone()[0])
    return _most_recent(iter(rows), query.collects, dialect)


def person_columns(definitions: Sequence[ComputedAttribute], person: str) -> str:
    """On PostgreSQL, ``definitions`` as columns of a statement that reads a person (one
    value each, ``person`` the SQL of its person_id), so that a lookup computes them in
    the statement that reads the profile. Their windows are worked out from one parameter,
    ``:computed_now`` (``column_params``); the rest of their parameters, the same at every
    lookup, are ``:c<n>_<name>`` (``column_constants``), for the caller to send or to write
    into the statement. Their values are read back by ``column_values``. An aggregate is
    its query as a scalar subquery; a MOST_RECENT is its rows as a ``jsonb`` array (of the
    one newest row, or of every row of a ``[]`` path, in the query's order)."""
    return ", ".join(_column(n, definition, person) for n, definition in enumerate(definitions))


def _column(n: int, definition: ComputedAttribute, person: str) -> str:
    query = query_of(definition, POSTGRESQL)
    back, ahead = _reach(definition)
    window = {
        "person": person,
        "since": str(EARLIEST) if back is None else f"(:computed_now - {back})",
        "until": f"(:computed_now + {ahead})",
    }

    def named(match: re.Match[str]) -> str:
        return window.get(match.group(1), f":c{n}_{match.group(1)}")

    sql = NAMED.sub(named, query.newest or query.sql)
    if definition.function != "most_recent":
        return f"({sql})"
    keys = [f"k{step}" for step in range(query.lists)]
    names = ", ".join(["c0", "c1", "c2", "c3", *keys])
    row = "jsonb_build_array(q.c0, q.c1, q.c2, q.c3)"
    gathered = row if not query.collects else (  # in the query's order: newest, then items
        f"jsonb_agg({row} ORDER BY q.c1 DESC, q.c0 DESC{''.join(f', q.{k}' for k in keys)})")
    return f"(SELECT {gathered} FROM ({sql}) AS q({names}))"  # noqa: S608 - the store's own SQL


def column_constants(definitions: Sequence[ComputedAttribute]) -> dict[str, Any]:
    """The parameters of ``person_columns`` that are the same at every lookup."""
    return {f"c{n}_{name}": value for n, definition in enumerate(definitions)
            for name, value in query_of(definition, POSTGRESQL).params.items()}


def column_params(now: datetime) -> dict[str, Any]:
    """The parameter of ``person_columns`` that changes, at ``now`` (timezone-aware)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return {"computed_now": to_micros(now)}


def column_values(
    definitions: Sequence[ComputedAttribute], values: Sequence[Any]
) -> dict[str, Any]:
    """The computed attributes from the values of ``person_columns``, as ``compute`` gives them."""
    found: dict[str, Any] = {}
    for definition, value in zip(definitions, values, strict=True):
        if definition.function != "most_recent":
            found[definition.name] = _number(value)
            continue
        collects = query_of(definition, POSTGRESQL).collects
        rows = [] if value is None else value if collects else [value]
        found[definition.name] = _most_recent(iter(rows), collects, POSTGRESQL)
    return found


def _bounds(person_id: int, definition: ComputedAttribute, at: int) -> dict[str, int]:
    back, ahead = _reach(definition)
    since = EARLIEST if back is None else at - back
    return {"person": person_id, "since": since, "until": at + ahead}


def _reach(definition: ComputedAttribute) -> tuple[int | None, int]:
    """How far ``definition``'s window reaches back from now (None: without a bound) and
    ahead of it, in microseconds (see the module docstring)."""
    days = definition.window_days
    return (None if days is None else days * DAY_MICROS), CLOCK_SKEW // timedelta(microseconds=1)


@lru_cache(maxsize=256)
def query_of(definition: ComputedAttribute, dialect: Dialect = SQLITE) -> Query:
    """The SQL of ``definition``, with its named parameters (:person, :since, :until)."""
    selector = _selector(definition.field, dialect)
    where = ["e.person_id = :person", "e.ts BETWEEN :since AND :until"]
    params: dict[str, Any] = dict(selector.params)
    reads_body = dialect.body in selector.joins + selector.value + selector.kind
    source = "events AS e" + (dialect.parse if reads_body else "")
    if ":nul" in source:
        params["nul"] = NUL_ESCAPE
    if definition.event_type is not None:
        where.append("e.type = :event_type")
        params["event_type"] = definition.event_type
    if definition.field is not None:
        numeric = definition.function in ("sum", "min", "max")
        where.append(f"{selector.kind} {dialect.numeric if numeric else PRESENT}")
    sql = (
        f"{_select(definition.function, selector, dialect)} FROM {source}{selector.joins}"
        f" WHERE {' AND '.join(where)}{_order(definition.function, selector, dialect)}"
    )
    collects = definition.function == "most_recent" and selector.lists > 0
    newest = _newest(source, where, selector) if collects and dialect.parse else ""
    return Query(sql, params, collects, selector.lists, newest)


def _newest(source: str, where: list[str], selector: _Selector) -> str:
    """A collecting MOST_RECENT's rows of its newest event with a value (``Query.newest``):
    that event (its body parsed, as ``d.doc``), then the values in it. ``where`` ends with
    the condition on a value."""
    *event, present = where
    found = f"EXISTS (SELECT FROM (SELECT) AS one{selector.joins} WHERE {present})"
    keys = ", ".join(f"j{n}.key" for n in range(selector.lists))
    newest = (f"SELECT e.seq, e.ts, d.doc FROM {source} WHERE {' AND '.join([*event, found])}"  # noqa: S608 - the store's own SQL
              " ORDER BY e.ts DESC, e.seq DESC LIMIT 1")
    return (f"SELECT d.seq, d.ts, {selector.value}, {selector.kind}, {keys}"  # noqa: S608 - the store's own SQL
            f" FROM ({newest}) AS d(seq, ts, doc){selector.joins} WHERE {present} ORDER BY {keys}")


def _select(function: str, selector: _Selector, dialect: Dialect) -> str:
    if function == "most_recent":  # and each list item's key, which orders a collection
        keys = "".join(f", j{n}.key" for n in range(selector.lists))
        return f"SELECT e.{dialect.order_column}, e.ts, {selector.value}, {selector.kind}{keys}"
    value = selector.value if function == "count" else dialect.number.format(v=selector.value)
    return "SELECT " + AGGREGATES[function].format(value=value)


def _order(function: str, selector: _Selector, dialect: Dialect) -> str:
    """Newest event first; among events of the same instant, the last ingested."""
    if function != "most_recent":
        return ""
    items = "".join(f", j{n}.key" for n in range(selector.lists))
    return (f" ORDER BY e.ts DESC, e.{dialect.order_column} DESC{items}"
            + ("" if items else " LIMIT 1"))


def _selector(field: str | None, dialect: Dialect) -> _Selector:
    """Chained list joins for the ``[]`` steps of ``field``, then its last part."""
    if field is None:
        return _Selector("", 0, "NULL", "NULL", {})
    *lists, last = field.split("[]")
    joins, params = _list_joins(lists, dialect)
    item = f"j{len(lists) - 1}"
    if lists and not last:  # "tags[]": the items themselves
        return _Selector(joins, len(lists), f"{item}.value", dialect.item_type.format(i=item),
                         params)
    container = dialect.item_object.format(i=item) if lists else dialect.body
    params["value"] = dialect.path(last)
    value = dialect.extract.format(c=container, p="value")
    kind = dialect.type_of.format(c=container, p="value")
    return _Selector(joins, len(lists), value, kind, params)


def _list_joins(lists: Sequence[str], dialect: Dialect) -> tuple[str, dict[str, Any]]:
    """One join over a list's items per ``[]`` step, each over the items of the one before."""
    joins, params, container = "", dict[str, Any](), dialect.body
    for n, part in enumerate(lists):
        params[f"list{n}"] = dialect.path(part)
        joins += dialect.list_join.format(c=container, p=f"list{n}", i=f"j{n}")
        container = dialect.item_object.format(i=f"j{n}")
    return joins, params


def json_path(dotted: str) -> str:
    """SQLite's JSON path of an XDM dotted path: ``a.b`` -> ``$."a"."b"``."""
    return "$" + "".join(f'."{step}"' for step in dotted.strip(".").split("."))


def _steps(dotted: str) -> list[str]:
    """PostgreSQL's path (a text array, for ``#>``) of an XDM dotted path."""
    return dotted.strip(".").split(".")


def _number(value: Any) -> Any:
    """An aggregate as SQLite gives it: PostgreSQL's numeric is an integer when the
    values it came from were (JSON integers), else a float."""
    if isinstance(value, Decimal):
        return int(value) if value.as_tuple().exponent == 0 else float(value)
    return value


def _most_recent(rows: Iterator[Any], collects: bool,
                 dialect: Dialect = SQLITE) -> dict[str, Any] | None:
    first = next(rows, None)
    if first is None:
        return None
    if collects:
        same_event = itertools.takewhile(
            lambda row: row[0] == first[0], itertools.chain([first], rows)
        )
        value: Any = [_decoded(row[2], row[3], dialect) for row in same_event]
    else:
        value = _decoded(first[2], first[3], dialect)
    return {"value": value, "timestamp": _iso(first[1])}


def _decoded(value: Any, kind: str, dialect: Dialect = SQLITE) -> Any:
    """A value as SQLite hands it over, back as JSON meant it (booleans, objects);
    PostgreSQL hands a ``jsonb`` value over decoded already."""
    if dialect is not SQLITE:
        return value
    if kind in ("true", "false"):
        return kind == "true"
    return json.loads(value) if kind in ("object", "array") else value


def _iso(micros: int) -> str:
    moment = EPOCH + timedelta(microseconds=micros)
    return moment.isoformat().replace("+00:00", "Z")
