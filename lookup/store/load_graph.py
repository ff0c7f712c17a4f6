"""The identity graph of a whole bulk load of profile records, planned in memory as rows.

A bulk load of profiles is not linked chunk by chunk: all its records are placed at once
(``linking``: union-find over the load's identities and the stored nodes they reach,
with every rule of the graph: unique namespaces, shared identities, detached unique
values), and the outcome is planned here as plain rows, in key order, for a backend to
write in a few passes (``executemany``, ``COPY``): new persons and shared identities,
identity rows, links of shared identities, one fragment per key. Nothing here touches a
database: the backend reads what it holds about the load's identities (a ``Known``, as
``graph`` reads it) and the numbers to go on from (``Counters``).

The rows are those the chunk-by-chunk writer (``graph.resolve``, then the fragments'
upsert and ``materialise``) would leave for the same records taken as one chunk:

- persons are numbered in the order their groups first appear, shared identities after;
- identity rows are numbered in first-seen order (for the identity cap), and a new
  person over the cap never gets the oldest ones (the cap would delete them at once);
- of several versions of one fragment (person, dataset, primary identity), the one kept
  is the newest by ``_repo.lastModifiedDate`` (the ingest time without one), the later
  one on a tie, as successive upserts keep;
- a new person's profile is merged here under the merge policy (NULL when it is made of
  one record: the lookup reads that fragment), a stored person's is left to the backend
  (``touched``), which merges it with the fragments it holds.

A load that would move stored rows (merging stored persons, taking an identity from its
stored person because it became shared, or a record of shared identities whose fragment
may live with a stored person) is not planned (``plan`` returns None): its backend writes
it as one chunk through ``graph``, which moves rows in place.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import itemgetter

from lookup.store.graph import IdentityRow, moves_rows, node_of_key
from lookup.store.linking import Key, Known, Linking, Node, link
from lookup.store.merge import Fragment, MergePolicy
from lookup.store.numbering import new_profile_id, new_profile_ids
from lookup.store.records import IdentityKey, ProfileRecord, dump_json

# (person_id, uid, shared, created_at, attributes, identities, refreshed_at)
PersonRow = tuple[int, str, int, int, str | None, str, int]
# (keyspace, value, namespace, person_id, seq)
IdentityTableRow = tuple[str, str, str, int, int]
# (person_id, dataset, key_space, key_value, modified_at, ingested_seq, sole, attributes)
FragmentRow = tuple[int, str, str, str, int, int, int, str]


@dataclass(frozen=True)
class Counters:
    """Where the load's numbers start: person ids after ``last_person``; identity and
    fragment sequence numbers from ``identity_seq`` and ``ingested_seq`` (the backend
    reserves ``identities_needed`` and ``len(records)`` of them)."""

    last_person: int
    identity_seq: int
    ingested_seq: int


@dataclass
class LoadRows:
    """What a whole load writes, each list in its table's key order."""

    persons: list[PersonRow] = field(default_factory=list)  # new persons and shared nodes
    identities: list[IdentityTableRow] = field(default_factory=list)  # not stored before
    links: list[tuple[int, int]] = field(default_factory=list)  # (shared node, person)
    fragments: list[FragmentRow] = field(default_factory=list)  # upserts (a stored one may win)
    touched: set[int] = field(default_factory=set)  # stored persons to merge again after


def identities_needed(records: Sequence[ProfileRecord]) -> int:
    """How many identity sequence numbers a load reserves (gaps are harmless)."""
    return sum(len(record.identities) for record in records)


def load_keys(records: Sequence[ProfileRecord]) -> list[tuple[Key, ...]]:
    """Each record's distinct matching keys, primary first: what linking compares."""
    return [tuple(dict.fromkeys(key[:2] for key in record.identities)) for record in records]


@dataclass
class _Plan:
    """The state of one ``plan`` call."""

    linking: Linking
    known: Known
    now: int
    person_of: dict[Node, int] = field(default_factory=dict)  # group root -> person
    created: dict[int, str] = field(default_factory=dict)  # new person -> profile id
    shared_node: dict[Key, int] = field(default_factory=dict)
    changed: set[int] = field(default_factory=set)  # stored nodes given identities

    def node_of_key(self, key: Key, record_node: int) -> int:
        """The node an identity of a record on ``record_node`` belongs to."""
        return node_of_key(key, record_node, self.shared_node, self.linking, self.known,
                           self.person_of)


def plan(
    records: Sequence[ProfileRecord],
    keys: list[tuple[Key, ...]],
    known: Known,
    stored: set[IdentityKey],
    *,
    unique: frozenset[str],
    dataset: str,
    counters: Counters,
    now: int,
    policy: MergePolicy,
    max_identities: int,
) -> LoadRows | None:
    """The rows of loading ``records`` (in arrival order; ``keys``: their ``load_keys``)
    into a store that holds ``known`` about their identities, and ``stored`` of their
    identity rows; None when the load would move stored rows (see the module docstring)."""
    linking = link(keys, known, unique)
    if moves_rows(linking) or (known.node_of and any(
            root is None and len(record.identities) > 1
            for (root, _), record in zip(linking.placed, records, strict=True))):
        return None
    state = _Plan(linking, known, now)
    last = _assign_persons(state, counters.last_person)
    shared_rows = _share(state, last)
    nodes = [state.person_of[root] if root is not None else state.shared_node[key]
             for root, key in linking.placed]
    rows = LoadRows()
    rows_of = _identities(state, records, nodes, stored, counters.identity_seq, rows)
    _fragments(records, nodes, dataset, now, counters.ingested_seq, rows)
    rows.persons = _new_persons(state, rows_of, Counter(nodes), policy, max_identities, rows)
    rows.persons += shared_rows
    rows.links = sorted({(state.shared_node[key], state.person_of[root])
                         for key, root in linking.links})
    shared = set(state.shared_node.values())
    rows.touched = (set(nodes) | state.changed) - state.created.keys() - shared
    rows.identities.sort()
    return rows


def _assign_persons(state: _Plan, last: int) -> int:
    """Each group's person: its stored one, or a new one numbered in order of arrival."""
    linking = state.linking
    roots = dict.fromkeys(root for root, _ in linking.placed if root is not None)
    roots.update(dict.fromkeys(root for _, root in sorted(linking.links, key=repr)))
    roots.update(dict.fromkeys(linking.persons_of))
    person_of, persons_of, first = state.person_of, linking.persons_of, last + 1
    for root in roots:
        stored = persons_of.get(root)
        if stored:  # one stored person: a plan merges none
            person_of[root] = stored[0]
        else:
            last += 1
            person_of[root] = last
    state.created = dict(zip(range(first, last + 1), new_profile_ids(first, last + 1 - first),
                             strict=True))
    return last


def _share(state: _Plan, last: int) -> list[PersonRow]:
    """A node for each identity that became shared (none was a stored person's)."""
    state.shared_node = {key: node for key, node in state.known.node_of.items()
                         if node in state.known.shared}
    rows: list[PersonRow] = []
    for key in state.linking.newly_shared:
        last += 1
        state.shared_node[key] = last
        rows.append((last, new_profile_id(last), 1, state.now, "{}", "[]", state.now))
    return rows


def _identities(
    state: _Plan,
    records: Sequence[ProfileRecord],
    nodes: list[int],
    stored: set[IdentityKey],
    seq: int,
    rows: LoadRows,
) -> dict[int, list[IdentityRow]]:
    """The identity rows not stored before, numbered in first-seen order: a stored
    node's go to ``rows``, a new person's are returned (the cap is applied to them)."""
    created, rows_of = state.created, dict[int, list[IdentityRow]]()
    shared = set(state.shared_node.values())
    placing = bool(state.shared_node or state.linking.detached)
    added: set[IdentityKey] = set()
    new_key, to_store, changed = added.add, rows.identities.append, state.changed.add
    for record, record_node in zip(records, nodes, strict=True):
        own = rows_of.get(record_node) if record_node in created else None
        for key in record.identities:
            if key in added or key in stored:
                continue
            new_key(key)
            node = state.node_of_key(key[:2], record_node) if placing else record_node
            if node == record_node and own is not None:  # the bulk of a first load
                own.append((*key, seq))
            elif node in created:
                rows_of.setdefault(node, []).append((*key, seq))
                if node == record_node:
                    own = rows_of[node]
            else:
                to_store((*key, node, seq))
                if node not in shared:
                    changed(node)
            seq += 1
    return rows_of


def _fragments(
    records: Sequence[ProfileRecord],
    nodes: list[int],
    dataset: str,
    now: int,
    first_seq: int,
    rows: LoadRows,
) -> None:
    """One fragment per key: the newest version (the later on a tie)."""
    kept: dict[tuple[int, str, str], FragmentRow] = {}
    for offset, (record, node) in enumerate(zip(records, nodes, strict=True)):
        keyspace, value = record.identities[0][:2]
        modified = now if record.modified_at is None else record.modified_at
        before = kept.get((node, keyspace, value))
        if before is None or modified >= before[4]:
            kept[node, keyspace, value] = (node, dataset, keyspace, value, modified,
                                           first_seq + offset, int(len(record.identities) == 1),
                                           record.attributes)
    rows.fragments = sorted(kept.values(), key=itemgetter(0, 2, 3))  # one dataset


def _new_persons(
    state: _Plan,
    rows_of: dict[int, list[IdentityRow]],
    records_of: Counter[int],
    policy: MergePolicy,
    max_identities: int,
    rows: LoadRows,
) -> list[PersonRow]:
    """The rows of the new persons, their identities capped (the oldest dropped first)
    and, when made of several records, their profiles merged."""
    now, persons = state.now, list[PersonRow]()
    fragments_of: dict[int, list[Fragment]] = {}
    for row in rows.fragments:
        if records_of[row[0]] > 1:
            fragments_of.setdefault(row[0], []).append((row[1], row[4], row[5], row[7]))
    for person, uid in state.created.items():
        kept = rows_of.get(person, [])[-max_identities:]  # numbered in first-seen order
        rows.identities += [(keyspace, value, namespace, person, seq)
                            for keyspace, value, namespace, seq in kept]
        listed = dump_json([[namespace, value] for _, value, namespace, _ in kept])
        attributes = None if records_of[person] == 1 else policy.merge(
            fragments_of.get(person, []))
        persons.append((person, uid, 0, now, attributes, listed, now))
    return persons
