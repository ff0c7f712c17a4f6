"""SQLite connections for the hub's own state (call ledger, outbox): one per thread.

The server is threaded; sqlite3 connections must not cross threads, so each thread
opens its own on first use. WAL lets readers and the writer work side by side.
SQLite's errors leave here as the hub's own: a locked, busy or unreachable database
(``OperationalError``) is a ``TransientError``, anything else a ``PermanentError``.

Every connection deletes securely (``secure_delete``): what a row held is overwritten
when it is deleted or rewritten, never left in a free page, so that a forgotten caller is
gone from the file itself. ``compact()`` then empties the WAL (which still holds older
page images), and rewrites a file made before this was so, once (``user_version`` 1
marks a file that always deleted securely).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hub.ports import PermanentError, TransientError
from hub.private_files import private_database, private_directory

BUSY_TIMEOUT_S = 10.0
PING_TIMEOUT_MS = 250
SECURE_FILE = 1  # user_version of a file whose every connection deleted securely
Upgrade = Callable[[sqlite3.Connection], None]


@contextmanager
def translated(action: str = "hub database") -> Iterator[None]:
    """SQLite's errors as the hub's: transient when trying again later may work."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        raise TransientError(f"{action}: {exc}") from exc
    except sqlite3.Error as exc:
        raise PermanentError(f"{action}: {exc}") from exc


class ThreadLocalDatabase:
    """A database file with one connection per thread and a schema applied once."""

    def __init__(self, path: Path, schema: str, upgrades: Sequence[Upgrade] = ()) -> None:
        self.path = path
        self._schema = schema
        self._upgrades = upgrades
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[sqlite3.Connection] = []
        self._ready = False

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, opened (and the schema applied) on first use."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            with translated("opening the hub database"):
                conn = self._open()
            self._local.conn = conn
        return conn

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> sqlite3.Cursor:
        """One statement on this thread's connection, its errors translated."""
        with translated():
            return self.connection().execute(sql, parameters)

    def ping(self) -> None:
        """Raise ``HubError`` unless the hub's tables are there and a write could start now
        (within 250 ms).

        Reading is not enough: in WAL mode a database another process holds locked
        still reads, while no call can be recorded.
        """
        conn = self.connection()
        with translated("hub database"):
            conn.execute("SELECT 1 FROM calls LIMIT 1")
            conn.execute(f"PRAGMA busy_timeout = {PING_TIMEOUT_MS}")
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("ROLLBACK")
            finally:
                conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")

    def _open(self) -> sqlite3.Connection:
        private_directory(self.path.parent)
        new = not self.path.exists()
        # Each connection is used by its own thread only; close() may run on another one.
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                               check_same_thread=False)
        private_database(self.path, new=new)  # owner-only, and so are the files SQLite adds
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA secure_delete=ON")
        with self._lock:
            if not self._ready:
                self._prepare(conn)
                self._ready = True
            self._all.append(conn)
        return conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        """WAL, the schema and its upgrades, once per process, before any other connection.

        Switching a new file to WAL takes an exclusive lock that SQLite refuses at once (no
        busy wait) when another connection is opening it too. WAL stays set in the file.
        """
        conn.execute("PRAGMA journal_mode=WAL")
        (tables,) = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        conn.executescript(self._schema)
        if tables == 0:
            conn.execute(f"PRAGMA user_version = {SECURE_FILE}")
        for upgrade in self._upgrades:
            upgrade(conn)

    def compact(self, wait_s: float = 10.0) -> None:
        """Leave no trace of deleted rows: rewrite a file made before secure deletion
        (once), and empty the WAL (``TransientError`` if readers pin it for ``wait_s``)."""
        conn = self.connection()
        with translated("compacting the hub database"):
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            if version < SECURE_FILE:
                conn.execute("VACUUM")
                conn.execute(f"PRAGMA user_version = {SECURE_FILE}")
            if not self._truncate_wal(conn, time.monotonic() + wait_s):
                raise TransientError("the hub database's WAL is held by a reader; try again")

    def _truncate_wal(self, conn: sqlite3.Connection, until: float) -> bool:
        conn.execute(f"PRAGMA busy_timeout = {PING_TIMEOUT_MS}")
        try:
            while True:
                (busy, _, _) = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                if not busy or time.monotonic() > until:
                    return not busy
                time.sleep(0.05)
        finally:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction on this thread's connection; nested calls join the outer one.

        BEGIN IMMEDIATE takes the write lock at once, so concurrent writers queue instead
        of failing half-way, and work done in one transaction (a call's ledger row and
        its deliveries) is committed together or not at all.
        """
        conn = self.connection()
        depth = getattr(self._local, "depth", 0)
        if depth:
            self._local.depth = depth + 1
            try:
                yield conn
            finally:
                self._local.depth = depth
            return
        with translated():
            conn.execute("BEGIN IMMEDIATE")
            self._local.depth = 1
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # a failed COMMIT leaves it open
                    conn.execute("ROLLBACK")
                raise
            finally:
                self._local.depth = 0

    def close(self) -> None:
        """Close every thread's connection (at app shutdown and in tests)."""
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()
