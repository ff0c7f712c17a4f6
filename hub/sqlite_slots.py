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
a connection waits in Python instead: SQLite's busy timeout is 0, and a statement or a
transaction's BEGIN refused as busy is tried again after a cooperative sleep, until the
connection's ``busy_s`` has passed. The connection is not held meanwhile: other greenlets
read, and write once the lock is free, while one waits.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any, TypeVar

from hub.greenlets import cooperative, os_thread_local

LONGEST_PAUSE_S = 0.05
T = TypeVar("T")
RETRIED = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_BUSY_RECOVERY}  # a snapshot's BUSY is final


class CooperativeConnection(sqlite3.Connection):
    """A connection that waits for a busy database with sleeps that yield to other greenlets,
    holding its slot's lock for each attempt only."""

    busy_s = 5.0
    slot_lock: Any = None  # set by ConnectionSlots, before any statement

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        return self.patiently(super().execute, sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
        return self.patiently(super().executemany, sql, parameters)

    def executescript(self, script: str, /) -> sqlite3.Cursor:
        # Scripts here are idempotent (CREATE ... IF NOT EXISTS) or open with BEGIN IMMEDIATE,
        # which is refused before anything else ran.
        return self.patiently(super().executescript, script)

    def patiently(self, run: Callable[..., T], *args: Any) -> T:
        """``run(*args)``, tried again while the database is busy, for up to ``busy_s``; the
        slot's lock is held for each attempt (a caller in a transaction holds it throughout)."""
        return patiently(run, *args, busy_s=self.busy_s, lock=self.slot_lock)


def patiently(run: Callable[..., T], *args: Any, busy_s: float, lock: Any = None) -> T:
    """``run(*args)``, tried again after a pause (cooperative under gevent) while SQLite
    answers busy, for up to ``busy_s``; ``lock``, if given, held for each attempt.

    A plain connection's busy timeout does not cover every busy answer: where two
    connections would wait for each other (both reading, both wanting to write, as when
    several processes switch a new file to WAL at once), SQLite refuses one at once."""
    deadline, pause = time.monotonic() + busy_s, 0.001
    while True:
        try:
            with lock or nullcontext():
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

    def __init__(self, connection: sqlite3.Connection, busy_s: float) -> None:
        self.connection = connection
        self.busy_s = busy_s  # the connection's own wait for a locked database
        self.lock = threading.RLock()  # gevent's, greenlet-owned, where monkey-patched
        self.depth = 0
        if isinstance(connection, CooperativeConnection):
            connection.slot_lock = self.lock

    def began(self, begin: str, busy_s: float) -> bool:
        """``begin`` run, waiting up to ``busy_s`` for a locked database; under gevent, False
        at once if it is locked (the caller waits without holding the connection)."""
        connection = self.connection
        if isinstance(connection, CooperativeConnection):
            try:
                sqlite3.Connection.execute(connection, begin)
            except sqlite3.OperationalError as exc:
                if getattr(exc, "sqlite_errorcode", None) not in RETRIED:
                    raise
                return False
            return True
        if busy_s != self.busy_s:
            set_busy_timeout(connection, busy_s)
        try:
            connection.execute(begin)
        finally:
            if busy_s != self.busy_s:
                set_busy_timeout(connection, self.busy_s)
        return True

    def __del__(self) -> None:
        # When the OS thread ends its locals go; elsewhere sqlite3 refuses, harmlessly.
        with suppress(sqlite3.ProgrammingError):
            self.connection.close()


class ConnectionSlots:
    """Connections opened by ``open`` on first use, one per OS thread, lent one at a time;
    each waits up to ``busy_s`` for a locked database.

    ``keep_all``: remember every connection for ``close_all`` (they must then be opened with
    ``check_same_thread=False``); otherwise an OS thread's connection closes when it ends.
    """

    def __init__(self, open_connection: Callable[[float], sqlite3.Connection], busy_s: float,
                 *, keep_all: bool = False) -> None:
        self._open = open_connection
        self.busy_s = busy_s
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

    @contextmanager
    def transaction(self, begin: str, busy_s: float | None = None) -> Iterator[sqlite3.Connection]:
        """A transaction opened with ``begin``, committed when the block ends (rolled back if it
        raises), on this OS thread's connection, held until then; a nested one joins it.

        ``begin`` waits up to ``busy_s`` (the connection's own wait if None) for another's
        write lock; under gevent, without holding the connection while it waits.
        """
        wait_s = self.busy_s if busy_s is None else busy_s
        deadline, pause = time.monotonic() + wait_s, 0.001
        while True:
            slot = self._slot()
            connection = slot.connection
            with slot.lock:
                if slot.depth:
                    slot.depth += 1
                    try:
                        yield connection
                    finally:
                        slot.depth -= 1
                    return
                if slot.began(begin, wait_s):
                    slot.depth = 1
                    try:
                        yield connection
                        connection.execute("COMMIT")
                    except BaseException:
                        if connection.in_transaction:  # a failed COMMIT leaves it open
                            connection.execute("ROLLBACK")
                        raise
                    finally:
                        slot.depth = 0
                    return
            # Under gevent, the database is locked: other greenlets use the connection meanwhile.
            left = deadline - time.monotonic()
            if left <= 0:
                raise sqlite3.OperationalError("database is locked")  # as SQLite says it
            time.sleep(min(pause, left))
            pause = min(pause * 2, LONGEST_PAUSE_S)

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
            slot = _Slot(self._open(self.busy_s), self.busy_s)
            self._local.slot = slot
            if self._keep_all:
                with self._all_lock:
                    self._all.append(slot)
        return slot
