"""The read model: each person's row holds their merged attributes and identities.

Rows are rebuilt at the end of every chunk for the persons it touched, once each, so a
lookup reads one row and never merges. This is also where the identity cap is kept: a
person over ``max_identities`` loses their oldest identities (by first-seen order) first
in, first out, as AEP does; a dropped identity no longer finds the person (their
fragments and events stay with them).

A person new in the chunk, made of one profile record, needs no read at all: their
attributes are that record's (the row says so with a NULL, rather than copy them), their
identities the rows just written.

When the merge policy changes, every profile must be merged again: ``rebuild`` does it,
in batches, and records the policy in ``meta``.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from lookup.store.backend import Connection
from lookup.store.graph import IdentityRow
from lookup.store.merge import Fragment, MergePolicy
from lookup.store.records import dump_json

POLICY_KEY = "merge_policy"
REBUILD_BATCH = 2000
INSERT_PERSON = (
    "INSERT INTO persons (person_id, uid, shared, created_at, attributes, identities,"
    " refreshed_at) VALUES (?, ?, 0, ?, ?, ?, ?)"
)
UPDATE_PERSON = (
    "UPDATE persons SET attributes = ?, identities = ?, refreshed_at = ? WHERE person_id = ?"
)
DROP_IDENTITY = "DELETE FROM identities WHERE keyspace = ? AND value = ? AND namespace = ?"


@dataclass
class Touched:
    """The persons a chunk touched, and what the chunk already knows about them."""

    persons: set[int]
    created: Mapping[int, str] = field(default_factory=dict)  # new person -> profile id
    rows_of: Mapping[int, list[IdentityRow]] = field(default_factory=dict)  # of new persons
    attributes_of: Mapping[int, str | None] = field(default_factory=dict)  # new, known merge


def materialise(
    connection: Connection,
    touched: Touched,
    policy: MergePolicy,
    max_identities: int,
    now: int,
) -> None:
    """Rebuild the rows of ``touched.persons``. Runs inside a write transaction."""
    persons = touched.persons
    stored = [person for person in persons if person not in touched.created]
    identities = _identity_rows(connection, stored)
    identities.update((person, touched.rows_of.get(person, [])) for person in touched.created)
    _cap(connection, identities, max_identities)
    fast = touched.attributes_of
    attributes = merged(connection, [p for p in persons if p not in fast], policy)
    attributes.update(fast)
    new, old = [], []
    for person in persons:
        listed = dump_json([[namespace, value] for _, value, namespace, _ in identities[person]])
        if person in touched.created:
            new.append((person, touched.created[person], now, attributes[person], listed, now))
        else:
            old.append((attributes[person], listed, now, person))
    connection.executemany(INSERT_PERSON, new)
    connection.executemany(UPDATE_PERSON, old)


def merged(
    connection: Connection, persons: Collection[int], policy: MergePolicy
) -> dict[int, str | None]:
    """The merged attributes of each of ``persons`` under ``policy`` (see ``merge``)."""
    fragments: dict[int, list[Fragment]] = {person: [] for person in persons}
    if persons:
        rows = connection.execute(
            "SELECT person_id, dataset, modified_at, ingested_seq, attributes FROM fragments"
            " WHERE person_id IN (SELECT value FROM json_each(?))",
            (json.dumps(list(persons)),),
        )
        for person, *fragment in rows:
            fragments[person].append(tuple(fragment))
    return {person: policy.merge(parts) for person, parts in fragments.items()}


def _identity_rows(
    connection: Connection, persons: Collection[int]
) -> dict[int, list[IdentityRow]]:
    rows: dict[int, list[IdentityRow]] = {person: [] for person in persons}
    if persons:
        found = connection.execute(
            "SELECT person_id, keyspace, value, namespace, seq FROM identities"
            " WHERE person_id IN (SELECT value FROM json_each(?)) ORDER BY person_id, seq",
            (json.dumps(list(persons)),),
        )
        for person, *row in found:
            rows[person].append(tuple(row))
    return rows


def _cap(
    connection: Connection, identities: dict[int, list[IdentityRow]], limit: int
) -> None:
    """Drop each person's oldest identities beyond ``limit``, first in, first out."""
    dropped: list[IdentityRow] = []
    for person, rows in identities.items():
        if len(rows) > limit:
            rows.sort(key=lambda row: row[3])
            dropped += rows[: len(rows) - limit]
            identities[person] = rows[len(rows) - limit :]
    connection.executemany(DROP_IDENTITY, (row[:3] for row in dropped))


def stored_policy(connection: Connection) -> str | None:
    row = connection.execute("SELECT value FROM meta WHERE key = ?", (POLICY_KEY,)).fetchone()
    return None if row is None else str(row[0])


def record_policy(connection: Connection, policy: MergePolicy) -> None:
    connection.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (POLICY_KEY, policy.signature))


def rebuild_batches(connection: Connection) -> Iterator[list[int]]:
    """Every person, in batches of ``REBUILD_BATCH`` (read before any is rewritten)."""
    rows = connection.execute("SELECT person_id FROM persons WHERE shared = 0")
    persons = [person for (person,) in rows]
    for start in range(0, len(persons), REBUILD_BATCH):
        yield persons[start : start + REBUILD_BATCH]


def remerge(
    connection: Connection, persons: Iterable[int], policy: MergePolicy, now: int
) -> None:
    """Merge ``persons``' attributes again under ``policy``; identities are unchanged."""
    attributes = merged(connection, list(persons), policy)
    connection.executemany(
        "UPDATE persons SET attributes = ?, refreshed_at = ? WHERE person_id = ?",
        ((text, now, person) for person, text in attributes.items()),
    )
