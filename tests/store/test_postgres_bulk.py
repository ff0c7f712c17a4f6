"""Bulk loads into the PostgreSQL store (``lookup.store.postgres.bulk``): the same people
as the row-by-row path, in any arrival order and batching; per-line rejections;
loading again changes nothing. Against the real PostgreSQL server."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from lookup.store import EmbeddedProfileStore, parsing
from lookup.store.ingest import BULK_AFTER, Options
from lookup.store.postgres import bulk
from lookup.store.postgres import store as postgres_store
from lookup.store.postgres.schema import drop_store
from lookup.store.postgres.store import PostgresProfileStore
from tests.store.pg_answers import answers, new_schema

IDENTITIES = {
    "CRMID": ["C1", "C2", "C3"],
    "Email": ["a@example.com", "b@example.com", "c@example.com", "d@example.com"],
    "Phone": ["+14155550101", "+14155550102", "+14155550103"],
}
EVERY_IDENTITY = [(ns, value) for ns, values in IDENTITIES.items() for value in values]
identity = st.sampled_from(EVERY_IDENTITY)
record = st.tuples(
    st.sampled_from(["profiles", "events"]),
    st.lists(identity, min_size=1, max_size=3, unique_by=lambda i: i[0]),
    st.sampled_from([None, "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"]),
    st.integers(0, 3),
)
records = st.lists(record, max_size=14)


@pytest.fixture(autouse=True)
def profile_writer() -> str:
    """Not run once per SQLite writer (as the store's other tests are): the row-by-row
    loads compared here are the chunk writer's."""
    return "chunks"



def line(kind: str, n: int, identities: list[tuple[str, str]], modified: str | None,
         colour: int) -> str:
    identity_map = {ns: [{"id": value}] for ns, value in identities}
    if kind == "events":
        return json.dumps({"_id": f"e{n % 9}", "timestamp": f"2026-11-20T10:00:0{colour}Z",
                           "eventType": "t", "identityMap": identity_map, "n": n})
    body: dict[str, Any] = {"identityMap": identity_map, "n": n, "colour": colour,
                            f"only{n}": True}
    if modified is not None:
        body["_repo"] = {"lastModifiedDate": modified}
    return json.dumps(body)


def lines_of(batch: list[Any], kind: str) -> list[str]:
    return [line(k, n, ids, modified, colour)
            for n, (k, ids, modified, colour) in enumerate(batch) if k == kind]


@contextmanager
def made_stores(url: str) -> Iterator[Callable[..., PostgresProfileStore]]:
    """``make()``: a PostgreSQL store in a schema of its own, closed and dropped after."""
    made: list[PostgresProfileStore] = []

    def make(**settings: Any) -> PostgresProfileStore:
        store = PostgresProfileStore(url, schema=new_schema(), lookups=1, writes=1, **settings)
        made.append(store)
        return store

    try:
        yield make
    finally:
        for store in made:
            store.close()
            drop_store(url, store.schema)


@pytest.fixture
def stores(postgres_url: str) -> Iterator[Callable[..., PostgresProfileStore]]:
    with made_stores(postgres_url) as make:
        yield make


def bulk_load(store: PostgresProfileStore, kind: str, lines: list[str],
              ways: Counter[str] | None = None) -> Any:
    """``lines`` through the bulk path, whatever their number."""
    store.ingest("audiences", [])  # the schema made and the merge policy recorded first
    options = Options(store._rules, store.policy, store._max_identities, store._events_since())
    return bulk.bulk_ingest(store._pools, kind, lines, dataset="default", options=options,
                            ways=ways)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(batch=records, size=st.integers(1, 6), cut=st.integers(0, 14))
def test_bulk_and_row_by_row_make_the_same_profiles_in_any_order(postgres_url, monkeypatch,
                                                                 batch, size, cut):
    # Both ways get the same batches: where batches end can change where a fragment of a
    # shared identity goes, whichever way they are written.
    note(f"batch={batch!r} size={size} cut={cut}")
    monkeypatch.setattr(bulk, "BATCH_RECORDS", size)
    monkeypatch.setattr(parsing, "CHUNK_LINES", size)
    with made_stores(postgres_url) as stores:
        row_by_row, copied = stores(), stores()
        ways: Counter[str] = Counter()
        # Some profiles before, some after the events: later loads go other ways.
        for part in (batch[:cut], batch[cut:]):
            for kind in ("profiles", "events"):
                lines = lines_of(part, kind)
                row_by_row.ingest(kind, lines)
                bulk_load(copied, kind, lines, ways)

        assert answers(copied, EVERY_IDENTITY) == answers(row_by_row, EVERY_IDENTITY)
        assert copied.counts() == row_by_row.counts()
        assert sum(ways.values()) > 0 or not batch


def test_plain_batches_are_copied_and_linked_across_batches(stores, monkeypatch):
    monkeypatch.setattr(bulk, "BATCH_RECORDS", 2)
    lines = [  # one person over three batches, then a second one
        line("profiles", 0, [("Phone", "+14155550101")], None, 0),
        line("profiles", 1, [("Email", "b@example.com")], None, 1),
        line("profiles", 2, [("Email", "a@example.com"), ("CRMID", "C1")], None, 2),
        line("profiles", 3, [("CRMID", "C1"), ("Phone", "+14155550101")], None, 3),
    ]
    copied, row_by_row = stores(), stores()
    ways: Counter[str] = Counter()
    bulk_load(copied, "profiles", lines, ways)
    row_by_row.ingest("profiles", lines)

    assert ways == {"copy": 1, "row_by_row": 1}  # the second batch merges stored persons
    assert answers(copied, EVERY_IDENTITY) == answers(row_by_row, EVERY_IDENTITY)
    assert copied.counts()["persons"] == 2


def test_a_large_load_goes_the_bulk_way_rejects_bad_lines_and_loads_again_to_no_change(
    stores, tmp_path, monkeypatch
):
    used: list[Counter[str]] = []

    def counted(*args: Any, **kwargs: Any) -> Any:
        used.append(kwargs.setdefault("ways", Counter()))
        return bulk.bulk_ingest(*args, **kwargs)

    monkeypatch.setattr(postgres_store, "bulk_ingest", counted)
    count = BULK_AFTER + 200
    profiles = [json.dumps({
        "identityMap": {"Phone": [{"id": f"+1415555{n:04d}", "primary": True}],
                        "Email": [{"id": f"p{n}@example.com"}]},
        "person": {"name": {"firstName": f"P{n}"}}, "n": n}) for n in range(count)]
    profiles[10] = "{not json"
    profiles[500] = json.dumps({"identityMap": {}})
    events = [json.dumps({"_id": f"ev{n}", "timestamp": "2026-11-20T10:00:00Z",
                          "eventType": "call", "identityMap": {
                              "Email": [{"id": f"p{n % count}@example.com"}]}})
              for n in range(2 * count)]
    sqlite = EmbeddedProfileStore(tmp_path / "store.db")
    postgres = stores()
    try:
        reports = [store.ingest("profiles", profiles) for store in (sqlite, postgres)]
        for store in (sqlite, postgres):
            store.ingest("events", events)
        assert [(r.line, r.reason) for r in reports[1].rejected] == \
            [(r.line, r.reason) for r in reports[0].rejected]
        assert [r.line for r in reports[1].rejected] == [11, 501]
        assert reports[1].loaded == count - 2
        assert [dict(ways) for ways in used] == [{"copy": 1}, {"copy": 1}]

        phones = [("Phone", f"+1415555{n:04d}") for n in range(0, count, 7)]
        expected = answers(sqlite, phones)
        assert answers(postgres, phones) == expected
        counts = postgres.counts()
        assert counts == sqlite.counts()

        again = postgres.ingest("profiles", profiles)
        postgres.ingest("events", events)
        assert again.loaded == count - 2
        assert postgres.counts() == counts
        assert answers(postgres, phones) == expected
    finally:
        sqlite.close()


def test_a_copy_that_fails_on_its_thread_fails_the_load_and_leaves_nothing(stores, monkeypatch):
    monkeypatch.setattr(bulk, "BATCH_RECORDS", 2)
    copies: list[str] = []
    real_copy = bulk._copy

    def failing(raw: Any, table: str, columns: str, rows: Any) -> None:
        copies.append(threading.current_thread().name)
        if len(copies) > 3:  # the second batch's first table
            raise psycopg.errors.DiskFull("no room left")
        real_copy(raw, table, columns, rows)

    monkeypatch.setattr(bulk, "_copy", failing)
    lines = [line("profiles", n, [("Phone", f"+1415555010{n}")], None, n) for n in range(6)]
    store = stores()
    with pytest.raises(psycopg.errors.DiskFull):
        bulk_load(store, "profiles", lines)
    assert 0 == store.counts()["persons"]  # the batch copied before went with the transaction
    assert all(name.startswith("cahub-bulk-copy") for name in copies)

    monkeypatch.setattr(bulk, "_copy", real_copy)
    assert 6 == bulk_load(store, "profiles", lines).loaded
    assert 6 == store.counts()["persons"]
