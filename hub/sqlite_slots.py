"""SQLite connections kept per OS thread and lent to one greenlet (or thread) at a time.

SQLite connections must not be used by two threads at once, so each OS thread opens its own.
Under gunicorn's gevent worker, monkey-patching makes ``threading.local`` greenlet-local: one
connection per greenlet would mean one per console and per request, thousands of connections
and file handles. So connections are kept in the original, per-OS-thread ``threading.local``
and lent: a transaction holds its thread's connection until it ends (a lock which,
monkey-patched, waits cooperatively), and a single statement waits until no other greenlet
holds the connection, then runs without yielding. Under plain threads the lock is never
contended: the connection is the thread's own.

SQLite's C calls do not yield to other greenlets. Its busy timeout (a wait for another
process's write lock) would stall every greenlet of a gevent worker, so under monkey-patching
a connection waits in Python instead: SQLite's busy timeout is 0, and a statement refused as
busy is tried again after a cooperative sleep, until the connection's ``busy_s`` has passed.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from hub.greenlets import cooperative, os_thread_local

LONGEST_PAUSE_S = 0.05
RETRIED = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_BUSY_RECOVERY}  # a snapshot's BUSY is final


class CooperativeConnection(sqlite3.Connection):
    """A connection that waits for a busy database with sleeps that yield to other greenlets."""

    busy_s = 5.0

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        return _patiently(self.busy_s, super().execute, sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
        return _patiently(self.busy_s, super().executemany, sql, parameters)

    def executescript(self, script: str, /) -> sqlite3.Cursor:
        # Scripts here are idempotent (CREATE ... IF NOT EXISTS) or open with BEGIN IMMEDIATE,
        # which is refused before anything else ran.
        return _patiently(self.busy_s, super().executescript, script)


def _patiently(busy_s: float, run: Callable[..., sqlite3.Cursor], *args: Any) -> sqlite3.Cursor:
    deadline, pause = time.monotonic() + busy_s, 0.001
    while True:
        try:
            return run(*args)
        except sqlite3.OperationalError as exc:
            left = deadline - time.monotonic()
            if getattr(exc, "sqlite_errorcode", None) not in RETRIED or left <= 0:
                raise
        time.sleep(min(pause, left))  # monkey-patched: other greenlets run meanwhile
        pause = min(pause * 2, LONGEST_PAUSE_S)


def connect(path: Path, busy_s: float, **options: Any) -> sqlite3.Connection:
    """A connection that waits up to ``busy_s`` for a locked database, without stalling a
    gevent worker."""
    if not cooperative():
        plain: sqlite3.Connection = sqlite3.connect(path, timeout=busy_s, **options)
        return plain
    connection = sqlite3.connect(path, timeout=0, factory=CooperativeConnection, **options)
    connection.busy_s = busy_s
    return connection


def set_busy_timeout(connection: sqlite3.Connection, busy_s: float) -> None:
    """How long ``connection`` waits for a locked database from now on."""
    if isinstance(connection, CooperativeConnection):
        connection.busy_s = busy_s
    else:
        connection.execute(f"PRAGMA busy_timeout = {int(busy_s * 1000)}")


class _Slot:
    """One OS thread's connection, the lock that lends it, and its transactions' nesting."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection
        self.lock = threading.RLock()  # gevent's, greenlet-owned, where monkey-patched
        self.depth = 0

    def __del__(self) -> None:
        # When the OS thread ends its locals go; elsewhere sqlite3 refuses, harmlessly.
        with suppress(sqlite3.ProgrammingError):
            self.connection.close()


class ConnectionSlots:
    """Connections opened by ``open`` on first use, one per OS thread, lent one at a time.

    ``keep_all``: remember every connection for ``close_all`` (they must then be opened with
    ``check_same_thread=False``); otherwise an OS thread's connection closes when it ends.
    """

    def __init__(self, open_connection: Callable[[], sqlite3.Connection], *,
                 keep_all: bool = False) -> None:
        self._open = open_connection
        self._keep_all = keep_all
        self._local = os_thread_local()
        self._all: list[_Slot] = []
        self._all_lock = threading.Lock()

    @contextmanager
    def lend(self) -> Iterator[_Slot]:
        """This OS thread's connection, held by the caller (greenlet) until the block ends;
        nested blocks of the same caller share it."""
        slot = self._slot()
        with slot.lock:
            yield slot

    def current(self) -> sqlite3.Connection:
        """This OS thread's connection for statements that do not yield meanwhile: it waits
        until no other greenlet holds the connection in a transaction."""
        slot = self._slot()
        with slot.lock:
            return slot.connection

    def opened(self) -> int:
        """How many connections are open (those kept for ``close_all``)."""
        with self._all_lock:
            return len(self._all)

    def close_own(self) -> None:
        """Close this OS thread's connection; its next use opens a new one."""
        slot: _Slot | None = getattr(self._local, "slot", None)
        self._local.slot = None
        if slot is not None:
            with self._all_lock:
                if slot in self._all:
                    self._all.remove(slot)
            slot.connection.close()

    def close_all(self) -> None:
        """Close every kept connection (at shutdown); each thread's next use opens a new one."""
        with self._all_lock:
            slots, self._all = self._all, []
        for slot in slots:
            slot.connection.close()
        self._local = os_thread_local()

    def _slot(self) -> _Slot:
        slot: _Slot | None = getattr(self._local, "slot", None)
        if slot is None:
            slot = _Slot(self._open())
            self._local.slot = slot
            if self._keep_all:
                with self._all_lock:
                    self._all.append(slot)
        return slot
