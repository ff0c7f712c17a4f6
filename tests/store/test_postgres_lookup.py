"""A lookup on PostgreSQL in one round trip (``postgres.bundle``), answering as the usual
reads do; the round trips are counted by a TCP proxy between the store and the server."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from hub.models import AmbiguousMatch, Identity, Profile
from hub.ports import TransientError
from lookup.store.computed import ComputedAttribute, column_params
from lookup.store.postgres import bundle
from lookup.store.postgres.store import PostgresProfileStore
from lookup.store.read import UNANSWERED
from tests.backends import TcpProxy

PHONE = "+14155550134"
ADA = {
    "identityMap": {"Phone": [{"id": PHONE}], "Email": [{"id": "ada@example.com"}]},
    "person": {"name": {"firstName": "Ada"}},
    "segmentMembership": {"ups": {"a1": {"status": "realized"}, "a9": {"status": "exited"}}},
}
SHARED = {"identityMap": {"Phone": [{"id": "+14155550199"}], "CRMID": [{"id": "c1"}]}}
SHARED_TOO = {"identityMap": {"Phone": [{"id": "+14155550199"}], "CRMID": [{"id": "c2"}]}}


def lines(*records: object) -> list[str]:
    return [json.dumps(record) for record in records]


def events() -> list[str]:
    """Twelve events of Ada, two of them at one instant."""
    return lines(*({"_id": f"e{n}", "eventType": "call", "timestamp":
                    f"2026-11-{min(n, 11) + 1:02d}T10:00:00Z", "n": n,
                    "identityMap": {"Email": [{"id": "ada@example.com"}]}} for n in range(12)))


def make(url: str, **settings: object) -> PostgresProfileStore:
    store = PostgresProfileStore(url, **settings)  # type: ignore[arg-type]
    store.ingest("audiences", lines({"id": "a1", "name": "High value"}))
    store.ingest("profiles", lines(ADA, SHARED, SHARED_TOO))
    store.ingest("events", events())
    return store


def lookup(store: PostgresProfileStore, *identities: Identity) -> Profile | AmbiguousMatch | None:
    return store.lookup(identities, time.monotonic() + 5)


def round_trips(proxy: TcpProxy, store: PostgresProfileStore, *identities: Identity) -> int:
    lookup(store, *identities)  # the pool's connection made, the statement prepared
    before = proxy.round_trips
    lookup(store, *identities)
    return proxy.round_trips - before


def both_ways(
    store: PostgresProfileStore, monkeypatch: pytest.MonkeyPatch, *callers: tuple[Identity, ...]
) -> list[Profile | AmbiguousMatch | None]:
    """What ``callers`` find in one statement, checked equal to what the usual reads
    find; the store is closed after."""
    try:
        quick = [lookup(store, *caller) for caller in callers]
        monkeypatch.setattr(store, "read_bundle", lambda *_: UNANSWERED)
        usual = [lookup(store, *caller) for caller in callers]
    finally:
        store.close()
    assert usual == quick
    return quick


def test_a_lookup_of_a_person_or_of_nobody_is_one_round_trip(postgres_proxy):
    proxy, url = postgres_proxy
    store = make(url)
    try:
        assert 1 == round_trips(proxy, store, Identity(namespace="Phone", id=PHONE))
        assert 1 == round_trips(proxy, store, Identity(namespace="Phone", id="+14155550000"))
        assert 1 == round_trips(proxy, store, Identity(namespace="Phone", id="+14155550000"),
                                Identity(namespace="Email", id="ada@example.com"))
    finally:
        store.close()


def test_a_lookup_with_computed_attributes_is_one_round_trip_too(postgres_proxy):
    proxy, url = postgres_proxy
    store = make(url, computed=(
        ComputedAttribute(name="calls", function="count"),
        ComputedAttribute(name="last_n", function="most_recent", field="n"),
        ComputedAttribute(name="biggest", function="max", field="n", window_days=30)))
    try:
        assert 1 == round_trips(proxy, store, Identity(namespace="Phone", id=PHONE))
        found = lookup(store, Identity(namespace="Phone", id=PHONE))
    finally:
        store.close()
    assert isinstance(found, Profile)
    assert 12 == found.attributes["_computed"]["calls"]
    assert 11 == found.attributes["_computed"]["last_n"]["value"]


def test_shared_identities_read_the_usual_way(postgres_proxy):
    proxy, url = postgres_proxy
    store = make(url)
    try:
        assert 4 <= round_trips(proxy, store, Identity(namespace="Phone", id="+14155550199"))
        found = lookup(store, Identity(namespace="Phone", id="+14155550199"))
        assert isinstance(found, AmbiguousMatch)
        assert 2 == found.count
    finally:
        store.close()


@pytest.mark.parametrize("limit", [10, 3])
def test_the_one_statement_answers_as_the_usual_reads(postgres_url, monkeypatch, limit):
    store = make(postgres_url, event_limit=limit)
    quick = both_ways(store, monkeypatch, (Identity(namespace="Phone", id=PHONE),),
                      (Identity(namespace="Email", id="nobody@example.com"),
                       Identity(namespace="Email", id="ada@example.com")),
                      (Identity(namespace="Phone", id="+14155550000"),),
                      (Identity(namespace="Phone_E.164", id=PHONE),
                       Identity(namespace="Phone", id=PHONE)))
    ada = quick[0]
    assert isinstance(ada, Profile)
    with psycopg.connect(postgres_url) as connection:  # e10 and e11: in the order stored
        stored = connection.execute("SELECT event_id FROM profile_store.events"
                                    " ORDER BY ts DESC, seq LIMIT %s", (limit,)).fetchall()
    assert [event_id for (event_id,) in stored] == [e.id for e in ada.events]
    assert {"e10", "e11"} == {e.id for e in ada.events[:2]}
    assert [("a1", "High value", "realized"), ("a9", None, "exited")] == [
        (a.id, a.name, a.status) for a in ada.audiences]
    assert quick[2] is None
    assert ada == quick[3]  # a caller's number in two namespaces: one key


def recent(days: float, n: int, **fields: object) -> dict[str, object]:
    """An event of Ada's ``days`` ago (negative: ahead of the clock)."""
    at = datetime.now(UTC) - timedelta(days=days)
    return {"_id": f"r{n}", "eventType": fields.pop("event_type", "commerce.purchases"),
            "timestamp": at.isoformat(), "identityMap": {"Email": [{"id": "ada@example.com"}]},
            **fields}


def every_kind_of_definition() -> tuple[ComputedAttribute, ...]:
    """One of each function, with windows, event types, list steps and odd values."""
    order = "commerce.order.priceTotal"
    return tuple(ComputedAttribute(name=f"d{n}", **settings) for n, settings in enumerate([
        {"function": "count"},
        {"function": "count", "event_type": "call"},
        {"function": "count", "field": "tags[]"},
        {"function": "sum", "field": order},
        {"function": "sum", "field": order, "window_days": 30},
        {"function": "sum", "field": "productListItems[].priceTotal"},
        {"function": "sum", "field": "nothing.here"},
        {"function": "min", "field": order},
        {"function": "max", "field": "productListItems[].priceTotal", "window_days": 365},
        {"function": "max", "field": order, "event_type": "no.such.type"},
        {"function": "most_recent", "field": order},
        {"function": "most_recent", "field": "flag"},
        {"function": "most_recent", "field": "detail"},
        {"function": "most_recent", "field": "productListItems[].priceTotal"},
        {"function": "most_recent", "field": "tags[]"},
        {"function": "most_recent", "field": "nothing.here"},
        {"function": "most_recent", "field": "orders[].items[].sku"},
    ]))


def test_computed_attributes_in_the_one_statement_are_those_the_usual_reads_compute(
    postgres_url, monkeypatch
):
    definitions = every_kind_of_definition()
    store = make(postgres_url, computed=definitions)
    store.ingest("events", lines(
        recent(1, 1, commerce={"order": {"priceTotal": 12.5}}, flag=True, tags=["a", "b"]),
        recent(2, 2, commerce={"order": {"priceTotal": 7}}, detail={"k": [1, None]}),
        recent(40, 3, commerce={"order": {"priceTotal": "n/a"}},
               productListItems=[{"priceTotal": 3}, {"priceTotal": 4.25}, {"x": 1}]),
        recent(0.5, 4, productListItems=[{"priceTotal": 9}, {"priceTotal": 1}],
               orders=[{"items": [{"sku": "s1"}, {"sku": "s2"}]}, {"items": [{"sku": "s3"}]}]),
        recent(-0.001, 5, event_type="call", flag=False),
        recent(-30, 6, commerce={"order": {"priceTotal": 1000}}),  # too far ahead
        recent(400, 7, productListItems=[{"priceTotal": 99}]),
    ))
    quick = both_ways(store, monkeypatch, (Identity(namespace="Phone", id=PHONE),),
                      (Identity(namespace="Email", id="ada@example.com"),))
    ada = quick[0]
    assert isinstance(ada, Profile)
    computed = ada.attributes["_computed"]
    assert set(computed) == {d.name for d in definitions}
    assert 19.5 == computed["d4"]  # 12.5 + 7 in the last 30 days
    assert ["s1", "s2", "s3"] == computed["d16"]["value"]
    assert [9, 1] == computed["d13"]["value"]
    assert computed["d15"] is None
    assert computed["d9"] is None


def test_the_one_statement_bounds_each_definitions_window_in_the_events_index(postgres_url):
    """The windows of the computed attributes, worked out in the statement from the instant
    of the lookup (``computed.person_columns``), bound the scan of the (person, time) index:
    none is compared as another type (which would read all the person's events)."""
    definitions = (ComputedAttribute(name="calls", function="count"),
                   ComputedAttribute(name="recent", function="count", window_days=30),
                   ComputedAttribute(name="last_n", function="most_recent", field="n",
                                     window_days=100_000))
    store = make(postgres_url, computed=definitions)
    try:
        found = lookup(store, Identity(namespace="Phone", id=PHONE))
        params = ({"keyspaces": ["phone"], "values": [PHONE], "since": bundle.EARLIEST}
                  | column_params(datetime.now(UTC)))
        with store._pools._pool("lookups").connection() as raw:
            raw.execute("SET enable_seqscan = off")
            plan = "\n".join(row[0] for row in raw.execute(
                "EXPLAIN " + bundle.statement(definitions, 10), params))
    finally:
        store.close()
    assert isinstance(found, Profile)
    assert 12 == found.attributes["_computed"]["calls"]
    scans = [line for line in plan.splitlines() if "Index Cond: ((person_id = b.person_id)" in line]
    assert 3 == len(scans), plan
    assert all("ts >=" in line and "ts <=" in line for line in scans), plan
    assert "numeric" not in plan.replace("::numeric", ""), plan


def drop_connections(url: str) -> int:
    """Close every other connection to the database at ``url``, as a restart does; how many."""
    with psycopg.connect(url, autocommit=True) as admin:
        dropped = [pid for (pid,) in admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()")]
        for pid in dropped:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        deadline = time.monotonic() + 5
        while admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)",
                            (dropped,)).fetchone() != (0,):
            assert time.monotonic() < deadline, "the connections were not dropped"
            time.sleep(0.02)
    return len(dropped)


def test_reads_after_the_database_dropped_every_connection_find_the_caller(postgres_url):
    """After a database restart, the pooled connections of the lookups are dead; a read
    that meets one tries the next rather than going without the profile: the one
    statement, the usual reads (a shared identity) and the ping alike."""
    store = make(postgres_url, lookups=3)
    ada = Identity(namespace="Phone", id=PHONE)
    shared = Identity(namespace="Phone", id="+14155550199")
    pool = store._pools._pool("lookups")

    def fill() -> None:
        with pool.connection(), pool.connection(), pool.connection():
            pass  # three connections in the pool

    try:
        fill()
        assert isinstance(lookup(store, ada), Profile)
        assert drop_connections(postgres_url) >= 3
        assert [True] * 4 == [isinstance(lookup(store, ada), Profile) for _ in range(4)]
        fill()
        assert drop_connections(postgres_url) >= 3
        store.ping()
        assert isinstance(lookup(store, shared), AmbiguousMatch)
    finally:
        store.close()


def test_attributes_jsonb_refuses_are_read_the_usual_way(postgres_url):
    store = make(postgres_url)
    try:
        store.ingest("profiles", lines({"identityMap": {"Phone": [{"id": "+14155550177"}]},
                                        "note": "a\u0000b",
                                        "segmentMembership": {"ups": {"a1": {}}}}))
        found = lookup(store, Identity(namespace="Phone", id="+14155550177"))
    finally:
        store.close()
    assert isinstance(found, Profile)
    assert "a\u0000b" == found.attributes["note"]
    assert [("a1", "High value")] == [(a.id, a.name) for a in found.audiences]


def test_the_one_statement_is_cancelled_at_the_deadline_of_each_lookup(postgres_url):
    """A lookups connection keeps its statement timeout from one lookup to the next
    (``PoolConnections.read_one``); a lookup with less time left is still cancelled at
    its own deadline, and one with more is not cancelled at an earlier one's."""
    store = make(postgres_url, lookups=1)  # every lookup on the one connection
    ada = Identity(namespace="Phone", id=PHONE)
    try:
        assert isinstance(lookup(store, ada), Profile)  # the connection keeps about 5 s
        with psycopg.connect(postgres_url) as other:  # holds persons until it rolls back
            other.execute("LOCK TABLE profile_store.persons IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            with pytest.raises(TransientError):
                store.lookup([ada], started + 0.3)
            waited = time.monotonic() - started
            other.rollback()
        assert 0.25 < waited < 1.0
        assert isinstance(store.lookup([ada], time.monotonic() + 0.3), Profile)  # keeps 0.3 s
        with psycopg.connect(postgres_url) as other:
            other.execute("LOCK TABLE profile_store.persons IN ACCESS EXCLUSIVE MODE")
            releasing = threading.Timer(0.8, other.rollback)
            releasing.start()
            started = time.monotonic()
            assert isinstance(store.lookup([ada], started + 5), Profile)
            waited = time.monotonic() - started
            releasing.join()
        assert 0.7 < waited < 4.0
        assert isinstance(lookup(store, ada), Profile)
    finally:
        store.close()
