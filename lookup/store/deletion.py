"""Deleting data: everything about a person on request, and events past their retention.

``forget`` removes a person's fragments, events, identities, profile row and their links
to shared identities; a shared identity left touching nobody goes too, with the events
it held. It refuses a shared identity (a family landline) unless told to forget every
person it touches, since forgetting "the person with this number" is then ambiguous.
Deleted content is overwritten (``secure_delete``), so it does not linger in free pages.

``purge_events`` deletes events older than a cut-off; a person left with no fragment
and no event vanishes with them, as AEP's event expiry removes such profiles.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

from hub.models import Frozen
from hub.ports import PermanentError
from lookup.store.backend import Connection
from lookup.store.records import identity_key

FIRST_TRIED = ("Phone", "Email")  # then every other namespace, when none is given
NODE_ROWS = (
    ("fragments", "DELETE FROM fragments WHERE person_id = ?"),
    ("events", "DELETE FROM events WHERE person_id = ?"),
    ("identities", "DELETE FROM identities WHERE person_id = ?"),
    ("links", "DELETE FROM shared_links WHERE person_id = ?"),
    ("links", "DELETE FROM shared_links WHERE shared_id = ?"),
    ("persons", "DELETE FROM persons WHERE person_id = ?"),
)
KEYSPACES = """
WITH RECURSIVE spaces (keyspace) AS (
    SELECT min(keyspace) FROM identities
    UNION ALL
    SELECT (SELECT min(keyspace) FROM identities WHERE keyspace > spaces.keyspace)
    FROM spaces WHERE keyspace IS NOT NULL
)
SELECT keyspace FROM spaces WHERE keyspace IS NOT NULL
"""


class ForgetReport(Frozen):
    """What ``forget`` removed: how many persons, and their rows of each kind."""

    found: bool
    persons: int = 0
    fragments: int = 0
    events: int = 0
    identities: int = 0


def locate(
    connection: Connection, namespace: str | None, value: str, region: str
) -> int | None:
    """The node holding the identity, its value normalised as on ingest. Without a
    namespace: the phone namespaces, then Email, then any namespace holding the value."""
    for keyspace, stored in _candidates(connection, namespace, value, region):
        row = connection.execute(
            "SELECT person_id FROM identities WHERE keyspace = ? AND value = ? LIMIT 1",
            (keyspace, stored),
        ).fetchone()
        if row is not None:
            return int(row[0])
    return None


def _candidates(
    connection: Connection, namespace: str | None, value: str, region: str
) -> Iterator[tuple[str, str]]:
    namespaces = [namespace] if namespace is not None else [*FIRST_TRIED, *_others(connection)]
    for candidate in namespaces:
        key = identity_key(candidate, value, region)
        if key is not None:
            yield key[:2]


def _others(connection: Connection) -> list[str]:
    """Every keyspace in the store but the phone's and Email's (each is its namespace)."""
    skip = {"phone", *FIRST_TRIED}
    return [keyspace for (keyspace,) in connection.execute(KEYSPACES) if keyspace not in skip]


def persons_of(connection: Connection, node: int, all_shared: bool) -> list[int]:
    """The persons ``forget`` removes for ``node``; ``PermanentError`` for a shared
    identity unless ``all_shared``."""
    (shared,) = connection.execute(
        "SELECT shared FROM persons WHERE person_id = ?", (node,)
    ).fetchone()
    persons = _linked(connection, node) if shared else [node]
    if shared and not all_shared:
        raise PermanentError(
            f"that identity is shared by {len(persons)} people, so it does not say whom to "
            "forget; forget them by another identity, or pass all_shared=True to forget "
            "every one of them"
        )
    return persons


def forget(connection: Connection, node: int, all_shared: bool) -> ForgetReport:
    """Delete the person ``node`` (or, for a shared identity and ``all_shared``, every
    person it touches and the identity itself). Runs inside a write transaction."""
    persons = persons_of(connection, node, all_shared)
    nodes = persons if persons == [node] else [*persons, node]
    orphans = set(_shared_of(connection, persons)) - set(nodes)
    counts = _delete(connection, nodes)
    leftover = [shared_node for shared_node in orphans if not _linked(connection, shared_node)]
    counts = _add(counts, _delete(connection, leftover))
    return ForgetReport(found=True, persons=len(persons), fragments=counts["fragments"],
                        events=counts["events"], identities=counts["identities"])


def purge_events(connection: Connection, before: int) -> int:
    """Delete the events older than ``before`` (microseconds); return how many."""
    persons = [p for (p,) in connection.execute(
        "SELECT DISTINCT person_id FROM events WHERE ts < ?", (before,))]
    deleted = connection.execute("DELETE FROM events WHERE ts < ?", (before,)).rowcount
    empty = [person for (person,) in connection.execute(
        "SELECT person_id FROM persons AS p WHERE person_id IN (SELECT value FROM json_each(?))"
        " AND shared = 0"
        " AND NOT EXISTS (SELECT 1 FROM fragments AS f WHERE f.person_id = p.person_id)"
        " AND NOT EXISTS (SELECT 1 FROM events AS e WHERE e.person_id = p.person_id)",
        (json.dumps(persons),))]
    orphans = set(_shared_of(connection, empty))
    _delete(connection, empty)
    _delete(connection, [node for node in orphans if not _linked(connection, node)])
    return int(deleted)


def _linked(connection: Connection, shared_node: int) -> list[int]:
    rows = connection.execute(
        "SELECT person_id FROM shared_links WHERE shared_id = ? ORDER BY person_id",
        (shared_node,),
    )
    return [person for (person,) in rows]


def _shared_of(connection: Connection, persons: Iterable[int]) -> list[int]:
    rows = connection.execute(
        "SELECT DISTINCT shared_id FROM shared_links"
        " WHERE person_id IN (SELECT value FROM json_each(?))",
        (json.dumps(list(persons)),),
    )
    return [node for (node,) in rows]


def _delete(connection: Connection, nodes: Iterable[int]) -> dict[str, int]:
    counts = dict.fromkeys(("fragments", "events", "identities", "links", "persons"), 0)
    for node in nodes:
        for table, statement in NODE_ROWS:
            counts[table] += connection.execute(statement, (node,)).rowcount
    return counts


def _add(one: dict[str, int], other: dict[str, int]) -> dict[str, int]:
    return {key: one[key] + other[key] for key in one}
