"""Computed attributes: COUNT, SUM, MIN, MAX and MOST_RECENT over a person's events.

They are evaluated with SQL over the ``events`` table at lookup time, not materialised at
ingest, so a sliding window is always current. Each definition is one query that reads
the person's events in the window through the (person_id, ts) index; values are read out
of the stored event body with ``json_extract``.

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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Literal, Self

from pydantic import ConfigDict, Field, model_validator

from hub.models import Frozen
from lookup.store.backend import Connection
from lookup.store.records import EPOCH, to_micros

Function = Literal["count", "sum", "min", "max", "most_recent"]
CLOCK_SKEW = timedelta(minutes=5)
DAY_MICROS = 86_400_000_000
EARLIEST = -(2**63)  # the lower bound of an unbounded window
_STEP = r"[A-Za-z_@$][\w@$:-]*(\[\])?"
FIELD_PATTERN = rf"^{_STEP}(\.{_STEP})*$"
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
NUMERIC = "IN ('integer', 'real')"  # json_type()s of the values SUM, MIN and MAX take
PRESENT = "<> 'null'"  # json_type() is NULL for an absent path, 'null' for a JSON null
FILTERS: dict[str, str] = {
    "count": PRESENT,
    "sum": NUMERIC,
    "min": NUMERIC,
    "max": NUMERIC,
    "most_recent": PRESENT,
}
AGGREGATES: dict[str, str] = {
    "count": "count(*)",
    "sum": "coalesce(sum({value}), 0)",
    "min": "min({value})",
    "max": "max({value})",
}


class ComputedAttribute(Frozen):
    """One ``[[computed]]`` definition of the settings; see the module docstring."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    function: Function
    event_type: str | None = Field(default=None, min_length=1)
    field: str | None = Field(default=None, pattern=FIELD_PATTERN)
    window_days: int | None = Field(default=None, gt=0)

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
    params: dict[str, str]


@dataclass(frozen=True, slots=True)
class Query:
    """The SQL of one definition, its parameters, and how to read its rows."""

    sql: str
    params: dict[str, str]
    collects: bool  # a most_recent over a [] path: a list of the newest event's values


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
    query = query_of(definition)
    rows = conn.execute(query.sql, {**query.params, **_bounds(person_id, definition, at)})
    if definition.function != "most_recent":
        return rows.fetchone()[0]
    return _most_recent(iter(rows), query.collects)


def _bounds(person_id: int, definition: ComputedAttribute, at: int) -> dict[str, int]:
    days = definition.window_days
    since = EARLIEST if days is None else at - days * DAY_MICROS
    until = at + CLOCK_SKEW // timedelta(microseconds=1)
    return {"person": person_id, "since": since, "until": until}


@lru_cache(maxsize=256)
def query_of(definition: ComputedAttribute) -> Query:
    """The SQL of ``definition``, with its named parameters (:person, :since, :until)."""
    selector = _selector(definition.field)
    where = ["e.person_id = :person", "e.ts BETWEEN :since AND :until"]
    params = dict(selector.params)
    if definition.event_type is not None:
        where.append("e.type = :event_type")
        params["event_type"] = definition.event_type
    if definition.field is not None:
        where.append(f"{selector.kind} {FILTERS[definition.function]}")
    sql = (
        f"{_select(definition.function, selector)} FROM events AS e{selector.joins}"
        f" WHERE {' AND '.join(where)}{_order(definition.function, selector)}"
    )
    collects = definition.function == "most_recent" and selector.lists > 0
    return Query(sql, params, collects)


def _select(function: str, selector: _Selector) -> str:
    if function == "most_recent":
        return f"SELECT e.rowid, e.ts, {selector.value}, {selector.kind}"
    return "SELECT " + AGGREGATES[function].format(value=selector.value)


def _order(function: str, selector: _Selector) -> str:
    """Newest event first; among events of the same instant, the last ingested."""
    if function != "most_recent":
        return ""
    items = "".join(f", j{n}.key" for n in range(selector.lists))
    return f" ORDER BY e.ts DESC, e.rowid DESC{items}" + ("" if items else " LIMIT 1")


def _selector(field: str | None) -> _Selector:
    """Chained json_each joins for the ``[]`` steps of ``field``, then its last part."""
    if field is None:
        return _Selector("", 0, "NULL", "NULL", {})
    *lists, last = field.split("[]")
    joins, params = _list_joins(lists)
    container = f"j{len(lists) - 1}" if lists else ""
    if lists and not last:  # "tags[]": the items themselves
        return _Selector(joins, len(lists), f"{container}.value", f"{container}.type", params)
    container = _object(container) if lists else "e.body"
    params["value"] = json_path(last)
    value, kind = f"json_extract({container}, :value)", f"json_type({container}, :value)"
    return _Selector(joins, len(lists), value, kind, params)


def _list_joins(lists: Sequence[str]) -> tuple[str, dict[str, str]]:
    """One json_each per ``[]`` step, each over the items of the one before."""
    joins, params, container = "", {}, "e.body"
    for n, part in enumerate(lists):
        params[f"list{n}"] = json_path(part)
        joins += (
            f" JOIN json_each({container}, :list{n}) AS j{n}"
            f" ON json_type({container}, :list{n}) = 'array'"
        )
        container = _object(f"j{n}")
    return joins, params


def _object(item: str) -> str:
    """The list item ``item`` when it is an object, else NULL: json_each hands a string
    item over as bare text, which the JSON functions would fail to read as JSON."""
    return f"(CASE WHEN {item}.type = 'object' THEN {item}.value END)"


def json_path(dotted: str) -> str:
    """SQLite's JSON path of an XDM dotted path: ``a.b`` -> ``$."a"."b"``."""
    return "$" + "".join(f'."{step}"' for step in dotted.strip(".").split("."))


def _most_recent(rows: Iterator[Any], collects: bool) -> dict[str, Any] | None:
    first = next(rows, None)
    if first is None:
        return None
    if collects:
        same_event = itertools.takewhile(
            lambda row: row[0] == first[0], itertools.chain([first], rows)
        )
        value: Any = [_decoded(row[2], row[3]) for row in same_event]
    else:
        value = _decoded(first[2], first[3])
    return {"value": value, "timestamp": _iso(first[1])}


def _decoded(value: Any, kind: str) -> Any:
    """A value as SQLite hands it over, back as JSON meant it (booleans, objects)."""
    if kind in ("true", "false"):
        return kind == "true"
    return json.loads(value) if kind in ("object", "array") else value


def _iso(micros: int) -> str:
    moment = EPOCH + timedelta(microseconds=micros)
    return moment.isoformat().replace("+00:00", "Z")
