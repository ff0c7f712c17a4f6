"""Pooled PostgreSQL connections of the profile store, behind the interface of
``lookup.store.connection.ThreadConnections`` (``reading``, ``writing``, ``bulk``).

Two pools, so that a lookup never waits behind an ingest: ``lookups`` for reads (a call's
lookup on the webhook path) and a small ``writes`` pool for ingests, write-backs, forgets.
Connections are pooled, not per thread: the same works under gevent's greenlets.

A read runs in one REPEATABLE READ, READ ONLY transaction (one snapshot, as SQLite's read
transaction), bounded by the caller's deadline: the pool's checkout waits at most until
then and the server cancels a statement running past it (``statement_timeout``).

Writes are serialised, as SQLite serialises them: every write transaction first takes a
transaction-level advisory lock of its schema, so two servers (or a server and
``cahub ingest``) never number persons or sequences from the same snapshot; a write
waits for it at most ``WRITER_WAIT_MS`` (SQLite's busy timeout), then fails as busy.
Reads take no lock and never wait for it.

Nothing is opened until first use; the first use creates or migrates the schema
(``schema.migrate_store``). A database that is away makes that use fail (the caller
turns it into ``TransientError``) and the next one tries again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.adapt import Dumper
from psycopg_pool import ConnectionPool

from lookup.store.postgres.dialect import PgConnection
from lookup.store.postgres.schema import DEFAULT_SCHEMA, check_schema_name, prepare_store

CHECKOUT_TIMEOUT_S = 5.0  # a write waits this long for a connection of its pool
CONNECT_TIMEOUT_S = 3  # seconds; a lookup never waits longer for a new connection
MIN_STATEMENT_MS = 1  # statement_timeout 0 would mean none
# How long a write waits for the writer lock (another server's ingest) before it fails as
# busy (TransientError): SQLite's busy_timeout.
WRITER_WAIT_MS = 5000
# pg_advisory_xact_lock(WRITER_CLASS, <the schema's oid>): one writer per store.
WRITER_CLASS = int.from_bytes(b"cahw", "big") & 0x7FFFFFFF
# Forgotten rows' old versions stay in the pages until VACUUM removes them.
STORE_TABLES = ("persons", "identities", "shared_links", "fragments", "events", "audiences",
                "meta")


class BoolAsInteger(Dumper):
    """Python's booleans as the 0/1 integers of the store's flag columns (SQLite's way)."""

    oid = psycopg.postgres.types["int4"].oid

    def dump(self, obj: bool) -> bytes:
        return b"1" if obj else b"0"


class PoolConnections:
    """The store's pools on one database and schema; see the module docstring."""

    def __init__(self, url: str, schema: str = DEFAULT_SCHEMA, *, lookups: int = 8,
                 writes: int = 2) -> None:
        self.url = url
        self.schema = check_schema_name(schema)
        self._sizes = {"lookups": lookups, "writes": writes}
        self._pools: dict[str, ConnectionPool[psycopg.Connection[Any]]] = {}
        self._opening = threading.Lock()
        self._writer_key: int | None = None

    @contextmanager
    def reading(self, deadline: float | None = None) -> Iterator[PgConnection]:
        """A read-only transaction on one snapshot, ending by ``deadline`` (monotonic)."""
        timeout = CHECKOUT_TIMEOUT_S if deadline is None else deadline - time.monotonic()
        if timeout <= 0:
            raise psycopg.errors.QueryCanceled("the lookup's deadline has passed")
        with self._pool("lookups").connection(timeout=timeout) as raw:
            left_ms = max(MIN_STATEMENT_MS, int((deadline - time.monotonic()) * 1000)) \
                if deadline is not None else 0
            raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;"
                        f" SET LOCAL statement_timeout = {left_ms}")
            yield from _transaction(raw)

    @contextmanager
    def writing(self) -> Iterator[PgConnection]:
        """A write transaction, holding the store's writer lock until it ends."""
        with self._pool("writes").connection() as raw:
            raw.execute(f"BEGIN; SET LOCAL lock_timeout = {WRITER_WAIT_MS}")
            raw.execute("SELECT pg_advisory_xact_lock(%s, %s)", (WRITER_CLASS, self._writer_key))
            raw.execute("SET LOCAL lock_timeout = 0")
            yield from _transaction(raw)

    @contextmanager
    def bulk(self) -> Iterator[None]:
        """Nothing to change for a bulk load: PostgreSQL's durability stays as configured."""
        yield None

    def vacuum(self) -> None:
        """Remove the dead row versions of the store's tables (after a forget)."""
        with self._pool("writes").connection() as raw:
            raw.execute(sql.SQL("VACUUM {}").format(sql.SQL(", ").join(
                sql.Identifier(self.schema, table) for table in STORE_TABLES)))

    def close(self) -> None:
        with self._opening:
            pools, self._pools = self._pools, {}
        for pool in pools.values():
            pool.close()

    def _pool(self, name: str) -> ConnectionPool[psycopg.Connection[Any]]:
        pool = self._pools.get(name)
        if pool is not None:
            return pool
        with self._opening:
            if not self._pools:
                self._open()
            return self._pools[name]

    def _open(self) -> None:
        _, oid = prepare_store(self.url, self.schema, connect_timeout=CONNECT_TIMEOUT_S)
        self._writer_key = oid & 0x7FFFFFFF
        search_path = sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema))

        def configure(conn: psycopg.Connection[Any]) -> None:
            conn.adapters.register_dumper(bool, BoolAsInteger)
            conn.execute(search_path)

        for name, size in self._sizes.items():
            pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
                self.url, min_size=1 if name == "lookups" else 0, max_size=size,
                name=f"profile-store-{name}", open=False, num_workers=1,
                kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S},
                configure=configure, timeout=CHECKOUT_TIMEOUT_S,
                check=ConnectionPool.check_connection,
            )
            pool.open(wait=False)
            self._pools[name] = pool


def _transaction(raw: psycopg.Connection[Any]) -> Iterator[PgConnection]:
    """Yield the connection inside the transaction begun on it; commit, or roll back."""
    try:
        yield PgConnection(raw)
    except BaseException:
        if raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            raw.execute("ROLLBACK")
        raise
    raw.execute("COMMIT")
