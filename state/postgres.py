"""PostgreSQL connections for the hub's state: one pool per app, transactions bound to the caller.

``create_app`` builds one ``PostgresDatabase`` from ``CAHUB_DATABASE_URL``; every adapter
that keeps state in PostgreSQL borrows from its pool. A statement outside a transaction
borrows a connection (in autocommit) for itself alone. ``transaction()`` keeps one
connection for its whole block and binds it to the current thread or greenlet (a context
variable), so the adapters' calls inside it, and nested ``transaction()`` calls, join it:
a call's ledger row and its deliveries are committed together or not at all.
psycopg's errors leave here as the hub's own: a lost connection, an exhausted pool, a
deadlock or a serialization failure (``OperationalError``) is a ``TransientError``,
anything else a ``PermanentError``.

A forget rewrites rows, and PostgreSQL keeps each row's old version in the table (dead,
but still in its pages) until VACUUM removes it: ``compact()`` vacuums the tables a forget
touches.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import psycopg
from psycopg_pool import ConnectionPool

from hub.ports import PermanentError, TransientError
from state.migrations import migrate

Connection = psycopg.Connection[tuple[object, ...]]
# How long a request waits for a free connection before it fails (the pool is exhausted).
CHECKOUT_TIMEOUT_S = 5.0
# How long a health check waits: a load balancer should hear of a lost database at once.
PING_TIMEOUT_S = 2.0
PING_LOCK_TIMEOUT_MS = 250  # as long as the SQLite ping waits for its write lock
# The tables whose rows a forget rewrites or deletes (their old versions hold the person).
FORGET_TABLES = ("calls", "deliveries", "desk_calls", "forgets", "forget_confirmations")


@contextmanager
def translated(action: str = "hub database") -> Iterator[None]:
    """psycopg's errors as the hub's: transient when trying again later may work."""
    try:
        yield
    except psycopg.OperationalError as exc:  # the pool's PoolTimeout is one too
        raise TransientError(f"{action}: {exc}") from exc
    except psycopg.Error as exc:
        raise PermanentError(f"{action}: {exc}") from exc


class PostgresDatabase:
    """A pool of connections to one database, with transactions that nested calls join."""

    def __init__(self, url: str, max_size: int = 10, *, name: str = "cahub") -> None:
        self._bound: ContextVar[Connection | None] = ContextVar(f"{name}-transaction",
                                                                default=None)
        self._pool: ConnectionPool[Connection] = ConnectionPool(
            url, min_size=1, max_size=max_size, name=name, open=False,
            kwargs={"autocommit": True}, timeout=CHECKOUT_TIMEOUT_S,
            # A connection broken by a database restart is replaced, not handed out.
            check=ConnectionPool.check_connection,
        )

    @classmethod
    def open(cls, url: str, max_size: int = 10) -> PostgresDatabase:
        """Bring the schema up to date (safe with several servers starting), then connect."""
        with translated("opening the hub database"):
            migrate(url)
            database = cls(url, max_size)
            database._pool.open(wait=True, timeout=CHECKOUT_TIMEOUT_S)
        return database

    @property
    def pool(self) -> ConnectionPool[Connection]:
        """The pool itself, for other PostgreSQL adapters of the same app to share."""
        return self._pool

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """The transaction's connection when one is open here; otherwise one of the pool's."""
        bound = self._bound.get()
        if bound is not None:
            yield bound
            return
        with translated(), self._pool.connection() as conn:
            yield conn

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One transaction on one connection; calls made inside it (nested ones too) join it."""
        bound = self._bound.get()
        if bound is not None:
            yield bound
            return
        with translated(), self._pool.connection() as conn, conn.transaction():
            token = self._bound.set(conn)
            try:
                yield conn
            finally:
                self._bound.reset(token)

    def ping(self) -> None:
        """Raise ``TransientError`` unless a call could be recorded now: the database answers
        within ``PING_TIMEOUT_S``, has the hub's tables, and takes writes (a standby or a
        database made read-only answers reads only; a table another client has locked
        against writes, with ``LOCK TABLE``, takes none for as long).

        The probe takes the lock an INSERT takes, waiting at most ``PING_LOCK_TIMEOUT_MS``,
        and writes nothing.
        """
        with translated(), self._pool.connection(timeout=PING_TIMEOUT_S) as conn, \
                conn.transaction():
            conn.execute(f"SET LOCAL lock_timeout = {PING_LOCK_TIMEOUT_MS}")
            conn.execute(f"SET LOCAL statement_timeout = {int(PING_TIMEOUT_S * 1000)}")
            conn.execute("LOCK TABLE calls IN ROW EXCLUSIVE MODE")
            row = conn.execute("SHOW transaction_read_only").fetchone()
        if row is None or row[0] != "off":
            raise TransientError("hub database: it takes no writes (read-only or a standby)")

    def compact(self) -> None:
        """Remove the dead row versions a forget left behind (``VACUUM`` of its tables).

        Plain VACUUM, not VACUUM FULL: it takes no lock that stops calls being recorded,
        where VACUUM FULL would stop every server's calls and health checks for as long as it
        rewrites the tables. It cannot run in a transaction, so it has a connection of its
        own (in autocommit), and it cannot remove a version that a transaction open since
        before the forget could still see.
        """
        with translated("vacuuming the hub database"), self._pool.connection() as conn:
            conn.execute(f"VACUUM {', '.join(FORGET_TABLES)}")

    def close(self) -> None:
        self._pool.close()
