"""The identity graph in SQLite: the node (person or shared identity) of each record.

For a chunk of records it reads what the store holds about their identities, lets
``linking`` apply the graph's rules, and writes the outcome in one pass: merges (the
smaller person's rows relabelled to the larger), new persons, identities that became
shared (their rows, and the fragments and events that carried nothing else, moved to a
node of their own), the links of shared identities to the persons they touch, and the
identity rows not seen before, numbered in first-seen order for the identity cap.
Everything runs inside the caller's write transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from lookup.store.backend import Connection
from lookup.store.linking import Key, Known, Linking, Node, link
from lookup.store.numbering import new_profile_id, take_sequence
from lookup.store.records import IdentityKey

SIZE = (
    "SELECT (SELECT count(*) FROM identities WHERE person_id = :person)"
    " + (SELECT count(*) FROM fragments WHERE person_id = :person)"
    " + (SELECT count(*) FROM events WHERE person_id = :person)"
)
RELABEL = (
    "UPDATE identities SET person_id = :survivor WHERE person_id = :loser",
    # A fragment key both held (possible only through shared or dropped identities): one
    # of the two is kept.
    "UPDATE OR REPLACE fragments SET person_id = :survivor WHERE person_id = :loser",
    "UPDATE events SET person_id = :survivor WHERE person_id = :loser",
    "UPDATE OR IGNORE shared_links SET person_id = :survivor WHERE person_id = :loser",
    "DELETE FROM shared_links WHERE person_id = :loser",
    "DELETE FROM persons WHERE person_id = :loser",
)
TAKE_FROM_OWNER = (
    "UPDATE identities SET person_id = :node WHERE keyspace = :keyspace AND value = :value",
    "UPDATE events SET person_id = :node WHERE person_id = :owner AND sole_key = :sole_key",
    "UPDATE fragments SET person_id = :node WHERE person_id = :owner AND sole = 1"
    " AND key_space = :keyspace AND key_value = :value",
)
# One query per keyspace, the values as a JSON array: cheaper than a temporary table.
KNOWN = (
    "SELECT i.keyspace, i.value, i.namespace, i.person_id, p.shared FROM json_each(?) AS j"
    " CROSS JOIN identities AS i ON i.keyspace = ? AND i.value = j.value"
    " JOIN persons AS p ON p.person_id = i.person_id"
)
INSERT_SHARED = (
    "INSERT INTO persons (person_id, uid, shared, created_at, attributes, identities,"
    " refreshed_at) VALUES (?, ?, 1, ?, '{}', '[]', ?)"
)
INSERT_IDENTITY = (
    "INSERT INTO identities (keyspace, value, namespace, person_id, seq) VALUES (?, ?, ?, ?, ?)"
)
IdentityRow = tuple[str, str, str, int]  # (keyspace, value, namespace, seq)


@dataclass
class Resolution:
    """Where a chunk's records went, and what changed on the way."""

    nodes: list[int]  # per record: its person, or the shared identity it belongs to
    shared_nodes: set[int] = field(default_factory=set)  # those of ``nodes`` that are shared
    changed: set[int] = field(default_factory=set)  # persons whose identities changed
    created: dict[int, str] = field(default_factory=dict)  # new person -> profile id
    rows_of: dict[int, list[IdentityRow]] = field(default_factory=dict)  # of new persons


def sole_key(keys: Sequence[IdentityKey]) -> str | None:
    """How an event with a single identity records it (``events.sole_key``)."""
    return _sole(keys[0][:2]) if len(keys) == 1 else None


def _sole(key: Key) -> str:
    return f"{key[0]}\x1f{key[1]}"


def resolve(
    connection: Connection,
    items: Sequence[tuple[IdentityKey, ...]],
    unique: frozenset[str],
    now: int,
    before_moving: Callable[[], None] | None = None,
) -> Resolution:
    """Assign each item (the identities of one record, primary first) to a node.

    ``before_moving`` is called before stored rows move to another node (a merge, or an
    identity that became shared taken from its person): rows held back elsewhere (a first
    load's events, see ``ingest``) must be stored by then, or they would not move."""
    keys = [tuple(dict.fromkeys(key[:2] for key in item)) for item in items]
    known, stored = read_known(connection, keys, unique)
    linking = link(keys, known, unique)
    if before_moving is not None and moves_rows(linking):
        before_moving()
    writer = _Writer(connection, linking, known, now)
    writer.assign_persons()
    writer.share()
    writer.add_links()
    writer.add_identities(items, stored)
    return writer.resolution()


def moves_rows(linking: Linking) -> bool:
    """Whether writing ``linking`` relabels stored rows (see ``_merge`` and ``share``)."""
    return any(len(persons) > 1 for persons in linking.persons_of.values()) or any(
        owner is not None for owner in linking.newly_shared.values())


def read_known(
    connection: Connection, items: list[tuple[Key, ...]], unique: frozenset[str]
) -> tuple[Known, set[IdentityKey]]:
    """The node of every stored key, which nodes are shared, the unique values of the
    stored persons (when a record may link one to something else), and the stored
    identity rows among the keys of ``items``."""
    values_of: dict[str, list[str]] = {}
    for keyspace, value in sorted({key for item in items for key in item}):
        values_of.setdefault(keyspace, []).append(value)
    rows = [
        row
        for keyspace, values in values_of.items()
        for row in connection.execute(KNOWN, (json.dumps(values), keyspace))
    ]
    known = Known(node_of={(ks, value): node for ks, value, _, node, _ in rows})
    known.shared = {node for *_, node, shared in rows if shared}
    persons = set(known.node_of.values()) - known.shared
    if unique and persons and any(_may_link(item, known.node_of) for item in items):
        known.unique_of = _unique_values(connection, persons, unique)
    if known.shared:
        known.links_of = _links(connection, known.shared)
    return known, {(ks, value, ns) for ks, value, ns, _, _ in rows}


def _may_link(item: tuple[Key, ...], node_of: dict[Key, int]) -> bool:
    """Whether a record links a stored node to anything (another node, a new identity)."""
    return len({node_of.get(key) for key in item}) > 1


def _links(connection: Connection, shared: Iterable[int]) -> dict[int, set[int]]:
    """The persons each shared identity touches."""
    rows = connection.execute(
        "SELECT shared_id, person_id FROM shared_links"
        " WHERE shared_id IN (SELECT value FROM json_each(?))",
        (_json_list(shared),),
    )
    links: dict[int, set[int]] = {}
    for node, person in rows:
        links.setdefault(node, set()).add(person)
    return links


def _unique_values(
    connection: Connection, persons: Iterable[int], unique: frozenset[str]
) -> dict[int, dict[str, str]]:
    rows = connection.execute(
        "SELECT person_id, keyspace, value FROM identities"
        " WHERE person_id IN (SELECT value FROM json_each(?))"
        " AND keyspace IN (SELECT value FROM json_each(?))",
        (_json_list(persons), _json_list(unique)),
    )
    values: dict[int, dict[str, str]] = {}
    for person, keyspace, value in rows:
        values.setdefault(person, {})[keyspace] = value
    return values


class _Writer:
    """Writes one chunk's ``Linking``; the steps run in the order ``resolve`` calls them."""

    def __init__(
        self, connection: Connection, linking: Linking, known: Known, now: int
    ) -> None:
        self.connection, self.linking, self.known, self.now = connection, linking, known, now
        self.person_of: dict[Node, int] = {}  # group root -> person
        self.shared_node: dict[Key, int] = {
            key: node for key, node in known.node_of.items() if node in known.shared
        }
        self.changed: set[int] = set()
        self.created: dict[int, str] = {}
        self.rows_of: dict[int, list[IdentityRow]] = {}
        (self.last,) = connection.execute(
            "SELECT coalesce(max(person_id), 0) FROM persons"
        ).fetchone()

    def assign_persons(self) -> None:
        """Each group's person: its stored one, the survivor of a merge, or a new one."""
        roots = dict.fromkeys(root for root, _ in self.linking.placed if root is not None)
        roots.update(dict.fromkeys(root for _, root in sorted(self.linking.links, key=repr)))
        roots.update(dict.fromkeys(self.linking.persons_of))
        for root in roots:  # new persons numbered in arrival order
            stored = self.linking.persons_of.get(root)
            if stored:
                self.person_of[root] = _merge(self.connection, stored)
                if len(stored) > 1:
                    self.changed.add(self.person_of[root])
            else:
                self.last += 1
                self.person_of[root] = self.last
                self.created[self.last] = new_profile_id(self.last)

    def share(self) -> None:
        """Give each newly shared identity a node, taking it from its previous person."""
        for key, owner in self.linking.newly_shared.items():
            self.last += 1
            self.shared_node[key] = node = self.last
            self.connection.execute(
                INSERT_SHARED, (node, new_profile_id(node), self.now, self.now))
            if owner is not None:
                person = self.person_of[self.linking.root_of(owner)]
                self.changed.add(person)
                params = {"node": node, "owner": person, "keyspace": key[0], "value": key[1],
                          "sole_key": _sole(key)}
                for statement in TAKE_FROM_OWNER:
                    self.connection.execute(statement, params)

    def add_links(self) -> None:
        links = {(self.shared_node[key], self.person_of[root]) for key, root in self.linking.links}
        self.connection.executemany("INSERT OR IGNORE INTO shared_links VALUES (?, ?)", links)

    def add_identities(
        self, items: Sequence[tuple[IdentityKey, ...]], stored: set[IdentityKey]
    ) -> None:
        """Store the identity rows not seen before, numbered in first-seen order (numbers
        are reserved for every identity of the chunk: gaps are harmless, only order counts).

        A record's identities belong to its person, but for shared and detached ones."""
        seq = take_sequence(self.connection, "identity_seq", sum(map(len, items)))
        shared_node, created, rows_of = self.shared_node, self.created, self.rows_of
        shared = set(shared_node.values())
        apart = self.linking.detached
        added: set[IdentityKey] = set()
        rows = []
        for item, record_node in zip(items, self.nodes, strict=True):
            for key in item:
                if key in added or key in stored:
                    continue
                added.add(key)
                node = record_node
                if shared_node or apart:
                    node = self._node_of_key(key[:2], record_node)
                rows.append((*key, node, seq))
                if node in created:
                    rows_of.setdefault(node, []).append((*key, seq))
                elif node not in shared:
                    self.changed.add(node)
                seq += 1
        self.connection.executemany(INSERT_IDENTITY, sorted(rows))  # in index order: faster

    @property
    def nodes(self) -> list[int]:
        """Each record's person, or the shared identity it belongs to."""
        return [
            self.person_of[root] if root is not None else self.shared_node[key]
            for root, key in self.linking.placed
        ]

    def _node_of_key(self, key: Key, record_node: int) -> int:
        return node_of_key(key, record_node, self.shared_node, self.linking, self.known,
                           self.person_of)

    def resolution(self) -> Resolution:
        shared = set(self.shared_node.values())
        return Resolution(self.nodes, shared, self.changed - shared, self.created, self.rows_of)


def _merge(connection: Connection, persons: list[int]) -> int:
    """Merge ``persons`` into the one with the most rows (the oldest on a tie)."""
    if len(persons) == 1:
        return persons[0]
    sizes = {person: _size(connection, person) for person in persons}
    survivor = max(persons, key=lambda person: (sizes[person], -person))
    for person in persons:
        if person != survivor:
            for statement in RELABEL:
                connection.execute(statement, {"loser": person, "survivor": survivor})
    return survivor


def _size(connection: Connection, person: int) -> int:
    (size,) = connection.execute(SIZE, {"person": person}).fetchone()
    return int(size)


def _json_list(values: Iterable[object]) -> str:
    return json.dumps(list(values))


def node_of_key(key: Key, record_node: int, shared_node: Mapping[Key, int], linking: Linking,
                known: Known, person_of: Mapping[Node, int]) -> int:
    """The node an identity of a record on ``record_node`` belongs to: its shared
    identity's, the record's, or (detached from it) the person its group was given."""
    if key in shared_node:
        return shared_node[key]
    if key not in linking.detached:
        return record_node
    stored = known.node_of.get(key)
    return person_of[linking.root_of(key if stored is None else stored)]
