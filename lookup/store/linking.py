"""The identity graph's rules, applied in memory to one chunk of records.

Records that share an identity are one person, except where that would give a person
two values of a unique namespace (two CRM ids). Identities of unique namespaces anchor
people and are never shared. Any other identity that would link people holding
different unique values becomes *shared* (a family landline): it links nobody, and
points at each person it touches instead. This module decides, for a chunk, which group
each record belongs to, which identities become shared and whom they touch; ``graph``
turns that into rows.

A record is placed in this order: its identities new to the store form its core (one
record is one person); then the groups of its other identities join the core, those of
unique namespaces first, each one if it holds no unique value that conflicts with the
core's. A conflicting identity of another namespace becomes shared; a conflicting one of
a unique namespace stays with its own person, unlinked ("detached"). A record whose
identities are all shared belongs to the person they all touch, if there is exactly one
and it has more than one identity, else to its first shared identity, never to one
person of several: a call from a family landline is in nobody's history.

Arrival order does not change who is linked with whom for records that hold a unique
value, or whose identities are all shared. Where a record without unique values carries
both a shared identity and another one (an email typed into a household record), that
other identity stays with whichever person it was linked to first: the graph is not
split after the fact (AEP's linking rules behave the same way).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

Key = tuple[str, str]  # (keyspace, stored value): what matching compares
Node = int | Key  # a stored person or shared identity, or an identity new to the store


@dataclass
class Known:
    """What the store holds about a chunk's identities before the chunk is written."""

    node_of: dict[Key, int] = field(default_factory=dict)  # a person or a shared identity
    shared: set[int] = field(default_factory=set)  # the nodes that are shared identities
    unique_of: dict[int, dict[str, str]] = field(default_factory=dict)  # keyspace -> value
    links_of: dict[int, set[int]] = field(default_factory=dict)  # shared node -> persons


@dataclass
class Linking:
    """The outcome for a chunk. Each record belongs to a group (``placed``: its root and
    first identity) or, root None, to the shared identity that comes first in it."""

    placed: list[tuple[Node | None, Key]]
    newly_shared: dict[Key, int | None]  # -> the stored person it was taken from, if any
    links: set[tuple[Key, Node]]  # (shared identity, root of a group it touches)
    persons_of: dict[Node, list[int]]  # root -> the stored persons in the group
    root_of: Callable[[Node], Node]  # the group of a stored person or a new identity
    detached: set[Key]  # identities not in the group of a record that holds them


class Linker:
    """Union-find over stored persons and new identities, with unique namespaces."""

    def __init__(self, known: Known, unique: frozenset[str]) -> None:
        self.known = known
        self.unique = unique
        self.parent: dict[Node, Node] = {}
        self.values: dict[Node, dict[str, str]] = {}  # per root: unique keyspace -> value
        self.seen: set[Key] = set()  # identities new to the store, seen in this chunk
        self.newly_shared: dict[Key, int | None] = {}
        self.touches: list[tuple[Key, Node]] = []
        self.records: list[tuple[tuple[Key, ...], Node | None]] = []
        self.stored: set[int] = set()  # the stored persons the chunk reached
        self.detached: set[Key] = set()

    def place(self, keys: tuple[Key, ...]) -> None:
        """Link one record's identities (primary first) and remember its group."""
        if self.seen.isdisjoint(keys) and self.known.node_of.keys().isdisjoint(keys):
            self._place_new(keys)  # the bulk of a first load: nothing to look up
            return
        own = [key for key in keys if not self.is_shared(key)]
        fresh = [key for key in own if key not in self.known.node_of and key not in self.seen]
        self.seen.update(fresh)
        core: Node | None = None
        for key in fresh:
            core = key if core is None else self._union(core, key)
        for key in sorted(own, key=lambda key: key[0] not in self.unique):
            if key not in fresh:
                core = self._join(core, key)
        if core is not None:
            self.touches.extend((key, core) for key in keys if self.is_shared(key))
        self.records.append((keys, core))

    def is_shared(self, key: Key) -> bool:
        node = self.known.node_of.get(key)
        return key in self.newly_shared or (node is not None and node in self.known.shared)

    def find(self, node: Node) -> Node:
        parent = self.parent
        root = node
        while (up := parent.get(root, root)) != root:
            root = up
        while node != root:  # path compression
            parent[node], node = root, parent.get(node, node)
        return root

    def finish(self) -> Linking:
        """The chunk's outcome, once every record is placed."""
        sharing = bool(self.newly_shared or self.known.shared)
        placed = [
            self._placed_shared(keys)
            if core is None or (sharing and all(self.is_shared(key) for key in keys))
            else (self.find(core), keys[0])
            for keys, core in self.records
        ]
        live = {root for root, _ in placed if root is not None}
        persons_of = self._persons_of()
        links = {(key, self.find(node)) for key, node in self.touches}
        links = {(key, root) for key, root in links if root in live or root in persons_of}
        return Linking(placed, dict(self.newly_shared), links, persons_of, self.find,
                       self.detached)

    def _place_new(self, keys: tuple[Key, ...]) -> None:
        """A record of identities new to the store and the chunk: a group of its own."""
        root = keys[0]
        self.seen.update(keys)
        for key in keys[1:]:
            self.parent[key] = root
        self.values[root] = {ks: value for ks, value in keys if ks in self.unique}
        self.records.append((keys, root))

    def _join(self, core: Node | None, key: Key) -> Node:
        """Join ``key``'s group to ``core``; on a conflict, share or detach ``key``."""
        stored = self.known.node_of.get(key)
        if stored is not None:
            self.stored.add(stored)
        group = self.find(key if stored is None else stored)
        if core is None or group == core:
            return group
        if self._compatible(core, group):
            return self._union(core, group)
        if key[0] in self.unique:
            self.detached.add(key)
        else:
            self._share(key, group, core)
        return core

    def _share(self, key: Key, group: Node, core: Node) -> None:
        self.newly_shared[key] = self.known.node_of.get(key)
        self.touches += [(key, group), (key, core)]

    def _placed_shared(self, keys: tuple[Key, ...]) -> tuple[Node | None, Key]:
        """Where a record of shared identities only goes (see the module docstring)."""
        first = next(key for key in keys if self.is_shared(key))
        if len(keys) < 2:
            return None, first
        common = set.intersection(*(self._touched_by(key) for key in keys))
        return (common.pop(), first) if len(common) == 1 else (None, first)

    def _touched_by(self, key: Key) -> set[Node]:
        """The groups a shared identity touches, stored or linked in this chunk."""
        node = self.known.node_of.get(key)
        stored = self.known.links_of.get(node, set()) if node is not None else set()
        self.stored.update(stored)
        groups = {self.find(person) for person in stored}
        return groups | {self.find(group) for shared, group in self.touches if shared == key}

    def _compatible(self, one: Node, other: Node) -> bool:
        mine, theirs = self._values(one), self._values(other)
        return all(mine.get(keyspace, value) == value for keyspace, value in theirs.items())

    def _union(self, one: Node, other: Node) -> Node:
        one, other = self.find(one), self.find(other)
        if one != other:
            self._values(one).update(self._values(other))
            del self.values[other]
            self.parent[other] = one
        return one

    def _values(self, root: Node) -> dict[str, str]:
        values = self.values.get(root)
        if values is None:
            values = self.values[root] = self._initial_values(root)
        return values

    def _initial_values(self, node: Node) -> dict[str, str]:
        if isinstance(node, int):
            return dict(self.known.unique_of.get(node, {}))
        return {node[0]: node[1]} if node[0] in self.unique else {}

    def _persons_of(self) -> dict[Node, list[int]]:
        persons_of: dict[Node, list[int]] = {}
        for person in sorted(self.stored):
            persons_of.setdefault(self.find(person), []).append(person)
        return persons_of


def link(records: Sequence[tuple[Key, ...]], known: Known, unique: frozenset[str]) -> Linking:
    """Place every record of a chunk, in order; see the module docstring."""
    linker = Linker(known, unique)
    for keys in records:
        linker.place(keys)
    return linker.finish()
