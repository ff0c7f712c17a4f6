"""What only the PostgreSQL backend has: its schema's versions, its pools, its writer lock,
its errors as the hub's, the SQL it refuses to guess, and forget leaving no old version."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from hub.models import Identity, Profile
from hub.ports import PermanentError, TransientError
from lookup.store.postgres import connections
from lookup.store.postgres.dialect import UntranslatedSQL, translate
from lookup.store.postgres.schema import latest_version, migrate_store
from lookup.store.postgres.store import PostgresProfileStore
from tests.backends import TcpProxy, dead_row_versions, row_versions_holding

ADA = json.dumps({"identityMap": {"Email": [{"id": "ada@example.com"}]},
                  "person": {"name": {"lastName": "Lovelace"}}})
ADA_EMAIL = [Identity(namespace="Email", id="ada@example.com")]
TABLES = ("persons", "identities", "fragments", "events", "meta")


@pytest.fixture
def pg_store(postgres_url: str) -> Iterator[PostgresProfileStore]:
    store = PostgresProfileStore(postgres_url)
    yield store
    store.close()


def test_servers_starting_at_once_create_the_schema_once(postgres_url):
    applied: list[list[int]] = []
    threads = [threading.Thread(target=lambda: applied.append(migrate_store(postgres_url)))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(applied) == [[], [], [], list(range(1, latest_version() + 1))]


def test_the_store_lives_in_its_own_schema_beside_the_hubs_tables(pg_store, postgres_url):
    pg_store.ingest("profiles", [ADA])

    with psycopg.connect(postgres_url) as connection:
        found = connection.execute(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'persons'"
        ).fetchall()
    assert [("profile_store",)] == found


def test_forget_leaves_no_row_version_holding_the_person(pg_store, postgres_url):
    pg_store.ingest("profiles", [ADA])
    pg_store.ingest("events", [json.dumps({
        "_id": "e1", "timestamp": "2026-11-20T10:00:00Z", "eventType": "note",
        "identityMap": {"Email": [{"id": "ada@example.com"}]}, "text": "Lovelace called"})])
    pg_store.lookup(ADA_EMAIL, time.monotonic() + 5)  # the rows are read, then rewritten
    tables = [f"profile_store.{table}" for table in TABLES]
    assert all(row_versions_holding(postgres_url, t, b"ada@example.com") for t in tables[:3])

    pg_store.forget("Email", "ada@example.com")

    assert [0] * 5 == [row_versions_holding(postgres_url, t, b"ada@example.com") for t in tables]
    assert [0] * 5 == [row_versions_holding(postgres_url, t, b"Lovelace") for t in tables]
    assert [0] * 5 == [dead_row_versions(postgres_url, t) for t in tables]


def test_a_lookup_with_the_database_away_is_a_transient_error_within_its_deadline(
    postgres_proxy: tuple[TcpProxy, str],
):
    proxy, url = postgres_proxy
    store = PostgresProfileStore(url)
    try:
        store.ingest("profiles", [ADA])
        assert isinstance(store.lookup(ADA_EMAIL, time.monotonic() + 5), Profile)
        proxy.cut()

        started = time.monotonic()
        for _ in range(3):  # a lost connection, then none to be had
            with pytest.raises(TransientError):
                store.lookup(ADA_EMAIL, time.monotonic() + 0.5)
        assert time.monotonic() - started < 3 * 0.5 + 1

        proxy.restore()
        deadline = time.monotonic() + 10
        while True:  # the pool replaces the lost connections
            try:
                assert isinstance(store.lookup(ADA_EMAIL, time.monotonic() + 1), Profile)
                break
            except TransientError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
    finally:
        store.close()


def test_a_store_whose_database_is_away_at_first_use_fails_transiently_then_recovers(
    postgres_proxy: tuple[TcpProxy, str],
):
    proxy, url = postgres_proxy
    proxy.cut()
    store = PostgresProfileStore(url)
    try:
        with pytest.raises(TransientError):
            store.lookup(ADA_EMAIL, time.monotonic() + 1)
        proxy.restore()
        assert store.lookup(ADA_EMAIL, time.monotonic() + 5) is None
    finally:
        store.close()


def hold_writer_lock(other: psycopg.Connection[Any]) -> None:
    """Take the store's writer lock on ``other`` until its transaction ends, as another
    writer (a bulk load on another server) would."""
    key = other.execute("SELECT 'profile_store'::regnamespace::oid::bigint").fetchone()
    assert key is not None
    other.execute("SELECT pg_advisory_xact_lock(%s, %s)",
                  (connections.WRITER_CLASS, key[0] & 0x7FFFFFFF))


def test_a_lookup_does_not_wait_behind_a_write(pg_store, postgres_url):
    pg_store.ingest("profiles", [ADA])
    # Another writer (a bulk load on another server) holds the store's writer lock.
    with psycopg.connect(postgres_url) as other:
        hold_writer_lock(other)
        started = time.monotonic()
        found = pg_store.lookup(ADA_EMAIL, time.monotonic() + 1)
        looked_up = time.monotonic() - started

    assert isinstance(found, Profile)
    assert looked_up < 0.5


def test_a_write_waits_for_another_writer_a_bounded_time(pg_store, postgres_url, monkeypatch):
    monkeypatch.setattr(connections, "WRITER_WAIT_MS", 200)
    pg_store.ingest("profiles", [ADA])
    with psycopg.connect(postgres_url) as other:
        hold_writer_lock(other)
        started = time.monotonic()
        with pytest.raises(TransientError):
            pg_store.ingest("profiles", [ADA])
        waited = time.monotonic() - started

    assert 0.2 <= waited < 2
    assert 1 == pg_store.counts()["persons"]  # and once the lock is free, writes go on
    assert () == pg_store.ingest("profiles", [ADA]).rejected


def test_a_store_that_is_not_the_stores_schema_is_a_permanent_error(postgres_url):
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute("CREATE SCHEMA profile_store")
        connection.execute("CREATE TABLE profile_store.store_schema (version INTEGER)")
        connection.execute("INSERT INTO profile_store.store_schema VALUES (999)")
    store = PostgresProfileStore(postgres_url)
    try:
        with pytest.raises(PermanentError, match="newer"):
            store.ping()
    finally:
        store.close()


def test_the_password_of_the_url_is_never_shown(postgres_url):
    store = PostgresProfileStore(postgres_url.replace("127.0.0.1", "user:s3cret@127.0.0.1"))
    assert "s3cret" not in repr(store)


@pytest.mark.parametrize("sql", [
    "PRAGMA wal_checkpoint(TRUNCATE)",
    "SELECT json_extract(body, '$.a') FROM events",
    "INSERT OR REPLACE INTO persons VALUES (?)",
    "SELECT rowid FROM events WHERE person_id IN (SELECT value FROM json_each(:p))",
])
def test_sqlite_only_sql_without_a_translation_is_refused(sql):
    with pytest.raises(UntranslatedSQL):
        translate(sql)


def test_a_json_list_parameter_becomes_an_array():
    (statement,) = translate(
        "SELECT 1 FROM t WHERE a = ? AND b IN (SELECT value FROM json_each(?))")

    assert "SELECT 1 FROM t WHERE a = %s AND b = ANY(%s)" == statement.text
    assert ["x", [1, 2]] == statement.params(["x", "[1, 2]"])


def test_a_database_that_never_answers_costs_a_lookup_its_deadline_and_a_ping_two_seconds():
    silent = socket.create_server(("127.0.0.1", 0))  # takes connections, never answers
    port = silent.getsockname()[1]
    store = PostgresProfileStore(f"postgresql://127.0.0.1:{port}/cahub")
    try:
        started = time.monotonic()
        with pytest.raises(TransientError):
            store.lookup(ADA_EMAIL, time.monotonic() + 0.3)
        looked_up = time.monotonic() - started
        started = time.monotonic()
        with pytest.raises(TransientError):
            store.ping()
        pinged = time.monotonic() - started
    finally:
        store.close()
        silent.close()

    assert looked_up < 0.6
    assert pinged < 2.5
