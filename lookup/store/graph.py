"""The identity graph: which person each record of a batch belongs to.

Records that share an identity (keyspace + stored value) are one person, whatever the
dataset or arrival order. A batch is resolved at once: its identities are linked with a
union-find, joined to the persons already known for them, and every group becomes one
person - a new one, the one it already had, or, when it links several persons, the
largest of them, into which the others are merged (their rows relabelled).

Every identity is linked, so one number shared by two unrelated people (a family
landline) joins them into one person. Telling such shared identities apart, and AEP's
cap of 50 identities per graph, are left to the next version; the schema allows both.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from lookup.store.records import IdentityKey

Key = tuple[str, str]  # (keyspace, stored value): what matching compares
SIZE = (
    "SELECT (SELECT count(*) FROM identities WHERE person_id = :person)"
    " + (SELECT count(*) FROM fragments WHERE person_id = :person)"
    " + (SELECT count(*) FROM events WHERE person_id = :person)"
)
RELABEL = (
    "UPDATE identities SET person_id = :survivor WHERE person_id = :loser",
    "UPDATE fragments SET person_id = :survivor WHERE person_id = :loser",
    "UPDATE events SET person_id = :survivor WHERE person_id = :loser",
    "DELETE FROM persons WHERE person_id = :loser",
    "DELETE FROM merged_profiles WHERE person_id = :loser",
)


@dataclass
class Resolution:
    """The person of each resolved item, and the persons whose identities changed."""

    persons: list[int]
    changed: set[int] = field(default_factory=set)


class _Forest:
    """Union-find over identity keys."""

    def __init__(self) -> None:
        self.parent: dict[Key, Key] = {}

    def find(self, key: Key) -> Key:
        parent = self.parent
        root = key
        while (up := parent.get(root, root)) != root:
            root = up
        while key != root:  # path compression
            parent[key], key = root, parent.get(key, key)
        return root

    def link(self, keys: Iterable[Key]) -> Key:
        """Put ``keys`` in one group; return the group's root."""
        iterator = iter(keys)
        root = self.find(next(iterator))
        for key in iterator:
            other = self.find(key)
            if other != root:
                self.parent[other] = root
        return root


def resolve(
    connection: sqlite3.Connection, items: Sequence[tuple[IdentityKey, ...]], now: int
) -> Resolution:
    """Assign each item (the identities of one record) to a person, creating and merging
    persons as needed, and store identities not seen before. Runs inside a write
    transaction."""
    known = _known_identities(connection, {key[:2] for item in items for key in item})
    forest = _Forest()
    for item in items:
        forest.link(key[:2] for key in item)
    person_of_root, merged_into = _persons_of_groups(connection, forest, known)
    person_of_root.update(_new_persons(connection, forest, items, person_of_root, now))
    persons = [person_of_root[forest.find(item[0][:2])] for item in items]
    added = _add_identities(connection, items, persons, known, now)
    return Resolution(persons, added | merged_into)


def _known_identities(
    connection: sqlite3.Connection, keys: set[Key]
) -> dict[IdentityKey, int]:
    """The person of every stored identity row matching ``keys``."""
    connection.execute(
        "CREATE TEMP TABLE IF NOT EXISTS batch_keys"
        " (keyspace TEXT, value TEXT, PRIMARY KEY (keyspace, value)) WITHOUT ROWID"
    )
    connection.execute("DELETE FROM batch_keys")
    connection.executemany("INSERT INTO batch_keys VALUES (?, ?)", keys)
    rows = connection.execute(
        "SELECT i.keyspace, i.value, i.namespace, i.person_id FROM batch_keys AS b"
        " CROSS JOIN identities AS i ON i.keyspace = b.keyspace AND i.value = b.value"
    )
    return {(keyspace, value, namespace): person for keyspace, value, namespace, person in rows}


def _persons_of_groups(
    connection: sqlite3.Connection, forest: _Forest, known: dict[IdentityKey, int]
) -> tuple[dict[Key, int], set[int]]:
    """The person of each group that has one; merges groups that link several."""
    persons_of: dict[Key, set[int]] = defaultdict(set)
    for key, person in known.items():
        persons_of[forest.find(key[:2])].add(person)
    person_of_root: dict[Key, int] = {}
    merged_into: set[int] = set()
    for root, persons in persons_of.items():
        person_of_root[root] = survivor = _merge(connection, persons)
        if len(persons) > 1:
            merged_into.add(survivor)
    return person_of_root, merged_into


def _merge(connection: sqlite3.Connection, persons: set[int]) -> int:
    """Merge ``persons`` into the one with the most rows (the oldest on a tie)."""
    if len(persons) == 1:
        return next(iter(persons))
    sizes = {person: _size(connection, person) for person in persons}
    survivor = max(persons, key=lambda person: (sizes[person], -person))
    for person in persons - {survivor}:
        _relabel(connection, person, survivor)
    return survivor


def _size(connection: sqlite3.Connection, person: int) -> int:
    (size,) = connection.execute(SIZE, {"person": person}).fetchone()
    return int(size)


def _relabel(connection: sqlite3.Connection, loser: int, survivor: int) -> None:
    for statement in RELABEL:
        connection.execute(statement, {"loser": loser, "survivor": survivor})


def _new_persons(
    connection: sqlite3.Connection,
    forest: _Forest,
    items: Sequence[tuple[IdentityKey, ...]],
    person_of_root: dict[Key, int],
    now: int,
) -> dict[Key, int]:
    """A new person for every group no stored identity belongs to."""
    (last,) = connection.execute("SELECT coalesce(max(person_id), 0) FROM persons").fetchone()
    created: dict[Key, int] = {}
    for item in items:
        root = forest.find(item[0][:2])
        if root not in person_of_root and root not in created:
            created[root] = last = last + 1
    connection.executemany(
        "INSERT INTO persons (person_id, uid, created_at) VALUES (?, ?, ?)",
        ((person, new_profile_id(), now) for person in created.values()),
    )
    return created


def new_profile_id() -> str:
    """A random id that sorts by creation time (like UUIDv7), so its index grows at the end."""
    return f"{time.time_ns() // 1000:014x}{secrets.token_hex(9)}"


def _add_identities(
    connection: sqlite3.Connection,
    items: Sequence[tuple[IdentityKey, ...]],
    persons: list[int],
    known: dict[IdentityKey, int],
    now: int,
) -> set[int]:
    """Store the identity rows not seen before; return the persons that gained some."""
    rows = {
        key: person
        for item, person in zip(items, persons, strict=True)
        for key in item
        if key not in known
    }
    connection.executemany(
        "INSERT INTO identities (keyspace, value, namespace, person_id, first_seen)"
        " VALUES (?, ?, ?, ?, ?)",
        sorted((*key, person, now) for key, person in rows.items()),  # in index order: faster
    )
    return set(rows.values())
