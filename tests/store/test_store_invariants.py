"""What holds of the store whatever records arrive, in whatever order and batches."""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter, defaultdict

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.models import AmbiguousMatch, Identity, Profile

IDENTITIES = {
    "CRMID": ["C1", "C2", "C3"],
    "Email": ["a@example.com", "b@example.com", "c@example.com", "d@example.com"],
    "Phone": ["+14155550101", "+14155550102", "+14155550103"],
}
identity = st.sampled_from([(ns, value) for ns, values in IDENTITIES.items() for value in values])
record = st.lists(identity, min_size=1, max_size=3, unique_by=lambda i: i[0])
records = st.lists(st.tuples(st.sampled_from(["profiles", "events"]), record), max_size=12).map(
    lambda batch: _one_record_per_primary(batch)
)


def _one_record_per_primary(batch):
    """As in an export: a dataset holds one profile record per primary identity."""
    primaries = set()
    kept = []
    for kind, identities in batch:
        if kind == "profiles" and identities[0] in primaries:
            continue
        primaries.add(identities[0] if kind == "profiles" else None)
        kept.append((kind, identities))
    return kept


def line(kind, n, identities):
    identity_map = {ns: [{"id": value}] for ns, value in identities}
    if kind == "events":
        return json.dumps({"_id": f"e{n}", "timestamp": "2026-11-20T10:00:00Z",
                           "eventType": "t", "identityMap": identity_map})
    return json.dumps({"identityMap": identity_map, "n": n})


def load(store, batch):
    for kind in ("profiles", "events"):
        lines = [line(k, n, ids) for n, (k, ids) in batch if k == kind]
        if lines:
            store.ingest(kind, lines)


def check(kit, store):
    rows = kit.rows_of(store)
    nodes = {row[0]: bool(row[2]) for row in rows["persons"]}
    unique = defaultdict(set)
    for keyspace, value, _, person, _ in rows["identities"]:
        assert person in nodes
        if keyspace == "CRMID" and not nodes[person]:
            unique[person].add(value)
    assert all(len(values) == 1 for values in unique.values()), unique
    for shared, person in rows["shared_links"]:
        assert (True, False) == (nodes[shared], nodes[person])
    assert all(row[3] in nodes for row in rows["fragments"])
    assert all(row[1] in nodes for row in rows["events"])
    for ns, values in IDENTITIES.items():
        for value in values:
            found = store.lookup([Identity(namespace=ns, id=value)], time.monotonic() + 5)
            if isinstance(found, Profile):
                assert (ns, value) in {(i.namespace, i.id) for i in found.identities}
            elif isinstance(found, AmbiguousMatch):
                assert found.count == len(found.candidates) >= 1


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=records, cuts=st.lists(st.integers(0, 12), max_size=3))
def test_the_graph_stays_consistent_and_loading_again_changes_nothing(kit, batch, cuts):
    store = kit.make()
    numbered = list(enumerate(batch))
    try:
        for start, end in itertools.pairwise([0, *sorted(cuts), len(numbered)]):
            load(store, numbered[start:end])
        check(kit, store)
        before = store.counts()
        load(store, numbered)
        assert before == store.counts()
        check(kit, store)
    finally:
        kit.discard(store)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=records)
def test_one_batch_or_one_record_at_a_time_make_the_same_people(kit, batch):
    # load() takes the profiles of a batch first: one at a time must keep that order.
    numbered = sorted(enumerate(batch), key=lambda item: item[1][0] != "profiles")
    together, apart = kit.make(), kit.make()
    try:
        load(together, numbered)
        for item in numbered:
            load(apart, [item])
        people = [_people(kit, store) for store in (together, apart)]
    finally:
        kit.discard(together)
        kit.discard(apart)

    assert people[0] == people[1]


def _people(kit, store):
    """Each person as the set of their identities, plus each shared identity's fan-out."""
    rows = kit.rows_of(store)
    shared = {row[0] for row in rows["persons"] if row[2]}
    members = defaultdict(set)
    for keyspace, value, _, person, _ in rows["identities"]:
        members[person].add((keyspace, value))
    people = Counter(frozenset(ids) for node, ids in members.items() if node not in shared)
    fan_out = Counter(len([1 for s, _ in rows["shared_links"] if s == node]) for node in shared)
    return people, fan_out
