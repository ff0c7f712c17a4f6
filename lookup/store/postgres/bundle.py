"""A lookup's common case in one statement: ``read.Bundle`` read on PostgreSQL.

Read the usual way, a lookup is five statements, each a round trip (BEGIN, the identity
and person, the events, the audiences, COMMIT). ``BUNDLE`` reads what the usual reads would,
at once: the first of the keys that resolves (in the order given, as ``read.find``
tries them), its person's row (``read.COLUMNS``), the newest events (``read._events``'s
query, as arrays in its order) and the names of the audiences its attributes'
``segmentMembership.ups`` holds (``read._audience_names``; the attributes parsed once:
OFFSET 0 keeps the planner from parsing them again for each use).
``PoolConnections.read_one`` sends it in one round trip, under the statement timeout of
the lookup's deadline (one statement reads one snapshot: no BEGIN or COMMIT).

Computed attributes are read in the same statement: each definition's query is one more
column, computed once for the person found (``computed.person_columns``), so that a lookup
with computed attributes is one round trip too. What the definitions fix (event types,
paths) is written into the statement, quoted by psycopg, rather than sent at each lookup:
a lookup sends the instant its windows end at, and its keys.

When the first key that resolves is a shared identity, the lookup reads the usual way
(``UNANSWERED``), and also when the attributes are JSON that ``jsonb`` refuses (a
``\\u0000`` escape: PostgreSQL's text holds no NUL), which the usual reads never parse.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import psycopg
from psycopg import sql

from lookup.store.computed import (
    ComputedAttribute,
    column_constants,
    column_params,
    column_values,
    person_columns,
)
from lookup.store.postgres.connections import PoolConnections
from lookup.store.postgres.dialect import translate
from lookup.store.read import COLUMNS, UNANSWERED, Bundle, Unanswered

EARLIEST = -(2**63)
BUNDLE = f"""
SELECT h.person_id, h.shared, h.uid, h.attributes, h.identities,
       ev.ids, ev.stamps, ev.types, ev.bodies, au.ids, au.names
FROM unnest(:keyspaces::text[], :values::text[]) WITH ORDINALITY AS k(keyspace, value, n)
CROSS JOIN LATERAL (
    SELECT {COLUMNS} FROM identities AS i JOIN persons AS p ON p.person_id = i.person_id
    WHERE i.keyspace = k.keyspace AND i.value = k.value LIMIT 1
) AS h(person_id, shared, uid, attributes, identities)
LEFT JOIN LATERAL (
    SELECT array_agg(e.event_id), array_agg(e.ts), array_agg(e.type), array_agg(e.body)
    FROM (SELECT event_id, ts, type, body FROM events
          WHERE person_id = h.person_id AND h.shared = 0 AND ts >= :since
          ORDER BY ts DESC, seq LIMIT :limit) AS e
) AS ev(ids, stamps, types, bodies) ON true
LEFT JOIN LATERAL (
    SELECT array_agg(a.id), array_agg(a.name) FROM audiences AS a
    WHERE h.shared = 0 AND a.id IN (
        SELECT jsonb_object_keys(s.ups)
        FROM (SELECT h.attributes::jsonb #> '{{segmentMembership,ups}}' OFFSET 0) AS s(ups)
        WHERE jsonb_typeof(s.ups) = 'object')
) AS au(ids, names) ON true
ORDER BY k.n
LIMIT 1
"""  # noqa: S608 - constants


BUNDLED = ("person_id, shared, uid, attributes, identities, event_ids, stamps, types, bodies,"
           " audience_ids, audience_names")


@lru_cache(maxsize=16)
def statement(computed: tuple[ComputedAttribute, ...], limit: int, base: str = BUNDLE) -> str:
    """``base`` (``BUNDLE``, or SQL of the same columns) reading up to ``limit`` events,
    and a column for each of ``computed``, worked out once for the row it found; in
    psycopg's spelling of parameters, with what is the same at every lookup (the limit,
    the definitions' constants) written in."""
    text = base if not computed else (
        f"SELECT b.*, {person_columns(computed, 'b.person_id')}"  # noqa: S608 - the store's own SQL
        f" FROM ({base}) AS b({BUNDLED})")
    (translated,) = translate(text)
    text = translated.text
    for name, value in (column_constants(computed) | {"limit": limit}).items():
        text = text.replace(f"%({name})s", _literal(value))
    return text


def _literal(value: int | str | list[str]) -> str:
    """``value`` as SQL, with its ``%`` doubled as psycopg's parameters need."""
    literal = sql.Literal(value).as_string(None) + ("::text[]" if isinstance(value, list) else "")
    return literal.replace("%", "%%")


def read_bundle(pools: PoolConnections, keys: Sequence[tuple[str, str]], since: int | None,
                limit: int, deadline: float, computed: Sequence[ComputedAttribute] = (),
                ) -> Bundle | Unanswered | None:
    """The ``Bundle`` of the first of ``keys`` that resolves, with the values of
    ``computed`` for it (see the module docstring)."""
    params = {"keyspaces": [key[0] for key in keys], "values": [key[1] for key in keys],
              "since": EARLIEST if since is None else since}
    if computed:
        params |= column_params(datetime.now(UTC))
    try:
        row = pools.read_one(statement(tuple(computed), limit), params, deadline)
    except psycopg.DataError:  # attributes jsonb refuses: read the usual way
        return UNANSWERED
    return None if row is None else bundle_of(row, computed)


def bundle_of(row: Sequence[Any], computed: Sequence[ComputedAttribute] = ()
              ) -> Bundle | Unanswered:
    """The ``Bundle`` of a row of ``BUNDLE``'s columns, then one per ``computed``."""
    person, shared, uid, attributes, identities, *events, ids, names = row[:11]
    if shared:
        return UNANSWERED
    event_ids, stamps, types, bodies = ((), (), (), ()) if events[0] is None else events
    return Bundle(row=(person, shared, uid, attributes, identities),
                  events=list(zip(event_ids, stamps, types, bodies, strict=True)),
                  names=dict(zip(ids or (), names or (), strict=True)),
                  computed=column_values(computed, row[11:]) if computed else None)
