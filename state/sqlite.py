"""SQLite connections for the hub's own state (call ledger, outbox): one per OS thread.

sqlite3 connections must not be used by two threads at once, so each OS thread opens its
own on first use, and lends it to one greenlet at a time under gunicorn's gevent worker
(``hub.sqlite_slots``). WAL lets readers and the writer work side by side.
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
from hub.sqlite_slots import ConnectionSlots, connect, patiently, set_busy_timeout

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
    """A database file with one connection per OS thread and a schema applied once."""

    def __init__(self, path: Path, schema: str, upgrades: Sequence[Upgrade] = ()) -> None:
        self.path = path
        self._schema = schema
        self._upgrades = upgrades
        self._slots = ConnectionSlots(self._open, BUSY_TIMEOUT_S, keep_all=True)
        self._preparing = threading.Lock()  # made here: monkey-patched, if it is at all
        self._ready = False

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, opened (and the schema applied) on first use, for
        statements outside ``transaction()`` that do not yield meanwhile."""
        with translated("opening the hub database"):
            return self._slots.current()

    def opened(self) -> int:
        """How many connections are open (one per OS thread that used the database)."""
        return self._slots.opened()

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
        with translated("hub database"):
            self.connection().execute("SELECT 1 FROM calls LIMIT 1")
            with self._slots.transaction("BEGIN IMMEDIATE", busy_s=PING_TIMEOUT_MS / 1000):
                pass  # nothing written

    @contextmanager
    def _lent(self) -> Iterator[sqlite3.Connection]:
        with translated("opening the hub database"), self._slots.lend() as slot:
            yield slot.connection

    def _open(self, busy_s: float) -> sqlite3.Connection:
        private_directory(self.path.parent)
        new = not self.path.exists()
        # Each connection is used by its own OS thread only; close() may run on another one.
        conn = connect(self.path, busy_s, isolation_level=None, check_same_thread=False)
        private_database(self.path, new=new)  # owner-only, and so are the files SQLite adds
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA secure_delete=ON")
        if not self._ready:  # one OS thread at a time gets here before any is ready
            with self._preparing:
                if not self._ready:
                    self._prepare(conn, busy_s)
                    self._ready = True
        return conn

    def _prepare(self, conn: sqlite3.Connection, busy_s: float) -> None:
        """WAL, the schema and its upgrades, once per process, before any other connection.

        Switching a new file to WAL takes an exclusive lock that SQLite refuses at once (no
        busy wait) when another connection, another process's, is opening it too: it is
        tried again (``patiently``). WAL stays set in the file.
        """
        patiently(conn.execute, "PRAGMA journal_mode=WAL", busy_s=busy_s)
        (tables,) = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        conn.executescript(self._schema)
        if tables == 0:
            conn.execute(f"PRAGMA user_version = {SECURE_FILE}")
        for upgrade in self._upgrades:
            upgrade(conn)

    def compact(self, wait_s: float = 10.0) -> None:
        """Leave no trace of deleted rows: rewrite a file made before secure deletion
        (once), and empty the WAL (``TransientError`` if readers pin it for ``wait_s``)."""
        with self._lent() as conn, translated("compacting the hub database"):
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            if version < SECURE_FILE:
                conn.execute("VACUUM")
                conn.execute(f"PRAGMA user_version = {SECURE_FILE}")
            if not self._truncate_wal(conn, time.monotonic() + wait_s):
                raise TransientError("the hub database's WAL is held by a reader; try again")

    def _truncate_wal(self, conn: sqlite3.Connection, until: float) -> bool:
        set_busy_timeout(conn, PING_TIMEOUT_MS / 1000)
        try:
            while True:
                (busy, _, _) = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                if not busy or time.monotonic() > until:
                    return not busy
                time.sleep(0.05)
        finally:
            set_busy_timeout(conn, BUSY_TIMEOUT_S)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction on this thread's connection, held by the caller until it
        ends; nested calls join the outer one.

        BEGIN IMMEDIATE takes the write lock at once, so concurrent writers queue instead
        of failing half-way, and work done in one transaction (a call's ledger row and
        its deliveries) is committed together or not at all.
        """
        with translated(), self._slots.transaction("BEGIN IMMEDIATE") as conn:
            yield conn

    def close(self) -> None:
        """Close every thread's connection (at app shutdown and in tests)."""
        self._slots.close_all()
