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

The lookups pool hands out its connections without checking them first (a round trip,
about a sixth of a lookup's time here). After the database restarts, a read that meets a
connection it dropped (its first statement fails at once) tries the next one, as long as
its deadline allows, and the pool replaces the dropped ones: no caller goes without a
profile for it. The writes pool checks its connections.

Nothing is opened until first use; the first use creates or migrates the schema
(``schema.migrate_store``). A database that is away makes that use fail (the caller
turns it into ``TransientError``) and the next one tries again.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg.adapt import Dumper
from psycopg_pool import ConnectionPool

from lookup.store.postgres.dialect import PgConnection
from lookup.store.postgres.schema import DEFAULT_SCHEMA, check_schema_name, prepare_store

CHECKOUT_TIMEOUT_S = 5.0  # a write waits this long for a connection of its pool
CONNECT_TIMEOUT_S = 3  # seconds; a lookup never waits longer for a new connection
MIN_STATEMENT_MS = 1  # statement_timeout 0 would mean none
# How long a write (or a read without a deadline) waits for the first use's opening.
OPEN_WAIT_S = CHECKOUT_TIMEOUT_S + CONNECT_TIMEOUT_S
MAX_READ_S = 30.0  # a read without a deadline (a rebuild's, the CLI's) ends by then
# How long a write waits for the writer lock (another server's ingest) before it fails as
# busy (TransientError): SQLite's busy_timeout.
WRITER_WAIT_MS = 5000
# pg_advisory_xact_lock(WRITER_CLASS, <the schema's oid>): one writer per store.
WRITER_CLASS = int.from_bytes(b"cahw", "big") & 0x7FFFFFFF
# Forgotten rows' old versions stay in the pages until VACUUM removes them.
# The statement timeout a lookups connection keeps for the statements after it (``read_one``).
TIMEOUT = "SELECT set_config('statement_timeout', %s, false)"
# ``read_one`` keeps a connection's timeout while it ends the statement at most this share
# of the time left before the deadline, never after it.
TIMEOUT_SLACK = 0.1
T = TypeVar("T")
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
        self._attempt: _Attempt | None = None  # the first use's opening, while it runs
        self._writer_key: int | None = None
        # The statement timeout (ms) each lookups connection keeps (``read_one``).
        self._timeouts: weakref.WeakKeyDictionary[psycopg.Connection[Any], int] = (
            weakref.WeakKeyDictionary())

    @contextmanager
    def reading(self, deadline: float | None = None) -> Iterator[PgConnection]:
        """A read-only transaction on one snapshot, ending by ``deadline`` (monotonic)."""
        deadline = min(deadline if deadline is not None else math.inf,
                       time.monotonic() + MAX_READ_S)

        def begin(raw: psycopg.Connection[Any]) -> None:
            left_ms = max(MIN_STATEMENT_MS, int((deadline - time.monotonic()) * 1000))
            raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;"
                        f" SET LOCAL statement_timeout = {left_ms}")

        with self._alive(deadline, begin) as (raw, _):
            yield from _transaction(raw)

    def read_one(self, query: str, params: dict[str, Any], deadline: float) -> Any:
        """The first row of one read-only ``query`` (None if none), bounded by
        ``deadline`` as ``reading`` bounds a read, mostly in one round trip of one
        statement (prepared on the connection, its results binary: no text to parse).

        The statement runs in an implicit transaction of its own, under the connection's
        statement timeout. A lookups connection keeps the timeout it was last given: while
        it ends the statement before the deadline and no more than ``TIMEOUT_SLACK`` of the
        time left earlier, the statement goes alone; otherwise the new timeout is sent with
        it (psycopg's pipeline mode: the two together cost about one more round trip, a
        sixth of a lookup). One statement reads one snapshot: no BEGIN or COMMIT to wait
        for. ``reading`` sets its own timeout for its transaction alone."""
        deadline = min(deadline, time.monotonic() + MAX_READ_S)
        with self._alive(deadline, lambda raw: self._read_one(raw, query, params, deadline)) \
                as (_, row):
            return row

    @contextmanager
    def _alive(self, deadline: float, start: Callable[[psycopg.Connection[Any]], T],
               ) -> Iterator[tuple[psycopg.Connection[Any], T]]:
        """A lookups connection on which ``start`` ran, and what it returned, by
        ``deadline``. A connection the database dropped (a restart) fails ``start`` at
        once: the pool replaces it, and the next is tried (see the module docstring)."""
        for left in reversed(range(self._sizes["lookups"] + 1)):  # each may be dropped
            timeout = min(deadline - time.monotonic(), CHECKOUT_TIMEOUT_S)
            if timeout <= 0:
                raise psycopg.errors.QueryCanceled("the lookup's deadline has passed")
            with self._pool("lookups", timeout).connection(timeout=timeout) as raw:
                try:
                    started = start(raw)
                except psycopg.OperationalError:
                    if not raw.broken or not left:  # the statement failed, not the connection
                        raise
                    continue
                yield raw, started
                return
        raise psycopg.OperationalError("every connection of the lookups pool was dropped")

    def _read_one(self, raw: psycopg.Connection[Any], query: str, params: dict[str, Any],
                  deadline: float) -> Any:
        left_ms = max(MIN_STATEMENT_MS, int((deadline - time.monotonic()) * 1000))
        kept = self._timeouts.pop(raw, None)
        cursor = raw.cursor(binary=True)
        if kept is not None and left_ms * (1 - TIMEOUT_SLACK) <= kept <= left_ms:
            cursor.execute(query, params, prepare=True)
        else:  # a failure rolls the new timeout back, and then none is kept
            kept = left_ms
            with raw.pipeline():
                raw.execute(TIMEOUT, (str(kept),), prepare=True)
                cursor.execute(query, params, prepare=True)
        row = cursor.fetchone()
        self._timeouts[raw] = kept
        return row

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
            pools, self._pools, self._attempt = self._pools, {}, None
        for pool in pools.values():
            pool.close()

    def _pool(self, name: str,
              timeout: float = OPEN_WAIT_S) -> ConnectionPool[psycopg.Connection[Any]]:
        """The pool ``name``, opened on first use. The opening (the schema's migration, the
        pools) runs in a thread of its own, waited for at most ``timeout``: a lookup's
        first use is bounded by its deadline, however long the database takes to answer."""
        pool = self._pools.get(name)
        if pool is not None:
            return pool
        with self._opening:
            if self._pools:
                return self._pools[name]
            if self._attempt is None:
                self._attempt = _Attempt()
                threading.Thread(target=self._open, args=(self._attempt,), daemon=True,
                                 name="profile-store-open").start()
            attempt = self._attempt
        if not attempt.done.wait(max(timeout, 0)):
            raise psycopg.OperationalError("the profile store's database did not answer in time")
        if attempt.error is not None:
            raise attempt.error
        return self._pools[name]

    def _open(self, attempt: _Attempt) -> None:
        """Migrate the schema and open the pools; the next use tries again if it fails."""
        try:
            pools = self._new_pools()
        except BaseException as exc:  # handed to every use waiting for it
            attempt.error = exc
            pools = {}
        with self._opening:
            current = self._attempt is attempt  # else the store was closed meanwhile
            if current:
                self._pools, self._attempt = pools, None
        if not current:
            for pool in pools.values():
                pool.close()
        attempt.done.set()

    def _new_pools(self) -> dict[str, ConnectionPool[psycopg.Connection[Any]]]:
        _, oid = prepare_store(self.url, self.schema, connect_timeout=CONNECT_TIMEOUT_S)
        self._writer_key = oid & 0x7FFFFFFF
        pools: dict[str, ConnectionPool[psycopg.Connection[Any]]] = {}
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
                check=None if name == "lookups" else ConnectionPool.check_connection,
            )
            pool.open(wait=False)
            pools[name] = pool
        return pools


class _Attempt:
    """One opening of the pools: done when it ended, and why it failed if it did."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None


def _transaction(raw: psycopg.Connection[Any]) -> Iterator[PgConnection]:
    """Yield the connection inside the transaction begun on it; commit, or roll back."""
    try:
        yield PgConnection(raw)
    except BaseException:
        if raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            raw.execute("ROLLBACK")
        raise
    raw.execute("COMMIT")
