"""SQLite connections for the hub's own state (call ledger, outbox): one per thread.

The server is threaded; sqlite3 connections must not cross threads, so each thread
opens its own on first use. WAL lets readers and the writer work side by side.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hub.private_files import private_database, private_directory


class ThreadLocalDatabase:
    """A database file with one connection per thread and a schema applied once."""

    def __init__(self, path: Path, schema: str) -> None:
        self.path = path
        self._schema = schema
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[sqlite3.Connection] = []
        self._ready = False

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, opened (and the schema applied) on first use."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
            self._local.conn = conn
        return conn

    def _open(self) -> sqlite3.Connection:
        private_directory(self.path.parent)
        new = not self.path.exists()
        # Each connection is used by its own thread only; close() may run on another one.
        conn = sqlite3.connect(self.path, timeout=10, isolation_level=None,
                               check_same_thread=False)
        private_database(self.path, new=new)  # owner-only, and so are the files SQLite adds
        conn.execute("PRAGMA synchronous=NORMAL")
        with self._lock:
            if not self._ready:
                # Switching a new file to WAL takes an exclusive lock that SQLite refuses at
                # once (no busy wait) when another connection is opening it too: do it once,
                # here, before any other thread gets a connection. WAL stays set in the file.
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(self._schema)
                self._ready = True
            self._all.append(conn)
        return conn

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
        conn.execute("BEGIN IMMEDIATE")
        self._local.depth = 1
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        finally:
            self._local.depth = 0
        conn.execute("COMMIT")

    def ping(self) -> None:
        """Raise when the database cannot be read or the hub's tables are missing."""
        self.connection().execute("SELECT 1 FROM calls LIMIT 1")

    def close(self) -> None:
        """Close every thread's connection (at app shutdown and in tests)."""
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()
