"""SQLite connections of the embedded store: one per OS thread, opened on first use.

SQLite connections must not be used by two threads at once, so each OS thread gets its own,
lent to one greenlet at a time under gunicorn's gevent worker (``hub.sqlite_slots``). WAL
lets lookups read while an ingest writes. A connection is closed by ``close()`` in its own
thread, or when the OS thread that opened it ends.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from hub.private_files import private_database, private_directory
from hub.sqlite_slots import ConnectionSlots, connect, patiently

SCHEMA_VERSION = 2
BUSY_S = 5.0  # how long a statement waits for another's write lock
PRAGMAS = (
    # What a row held is overwritten when it is deleted or replaced, so that a forgotten
    # person is not left in a free page. Debian's SQLite does this by default (the store's
    # figures in docs/BENCHMARKS.md include its cost); other builds need it said.
    "PRAGMA secure_delete = ON",
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",  # WAL stays consistent; only the last commits may be lost
    "PRAGMA temp_store = MEMORY",
    "PRAGMA cache_size = -16000",
    "PRAGMA mmap_size = 268435456",
)
# For the length of a bulk load only (about 10% faster): no fsync at all, and a page cache
# of up to 1 GiB. If the process dies, nothing committed is lost; if the machine loses
# power mid-load, the file may be damaged: load the source files into a new store (it
# holds nothing else). Temporary tables and sorts go to files rather than memory: a first
# load of events holds them all back in one (see ``ingest``). Lookups, forgets and
# servers never run with these.
BULK_PRAGMAS = (
    "PRAGMA synchronous = OFF", "PRAGMA cache_size = -1048576", "PRAGMA temp_store = FILE")
AFTER_BULK = (
    "PRAGMA synchronous = NORMAL", "PRAGMA cache_size = -16000", "PRAGMA temp_store = MEMORY")


class ThreadConnections:
    """Lazily opened connections to one database file, one per OS thread, lent to one
    greenlet at a time (``hub.sqlite_slots``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._slots = ConnectionSlots(lambda busy_s: _open(self.path, busy_s), BUSY_S)

    def get(self) -> sqlite3.Connection:
        """This thread's connection, opened (and the schema created) on first use, for
        statements outside a transaction that do not yield meanwhile."""
        return self._slots.current()

    def close(self) -> None:
        """Close this thread's connection; the next use opens a new one."""
        self._slots.close_own()

    @contextmanager
    def reading(self, deadline: float | None = None) -> Iterator[sqlite3.Connection]:
        """A read transaction: every query inside sees the same snapshot. (A lookup on
        a local file needs no bound on its wait: ``deadline`` is for a remote database.)"""
        with self._transaction("BEGIN") as connection:
            yield connection

    @contextmanager
    def writing(self) -> Iterator[sqlite3.Connection]:
        """A write transaction, taking the write lock up front so it cannot deadlock."""
        with self._transaction("BEGIN IMMEDIATE") as connection:
            yield connection

    @contextmanager
    def bulk(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection tuned for a bulk load, held while the block runs."""
        with self._slots.lend() as slot:
            connection = slot.connection
            for pragma in BULK_PRAGMAS:
                connection.execute(pragma)
            try:
                yield connection
            finally:
                for pragma in AFTER_BULK:
                    connection.execute(pragma)

    def vacuum(self) -> None:
        """After a forget: deleted rows are overwritten in place (``secure_delete``); what
        the write-ahead log still holds of them is copied back and the log emptied."""
        self.get().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[sqlite3.Connection]:
        with self._slots.transaction(begin) as connection:
            yield connection


def _open(path: Path, busy_s: float) -> sqlite3.Connection:
    private_directory(path.parent)
    new = not path.exists()
    connection = connect(path, busy_s, isolation_level=None)
    private_database(path, new=new)  # owner-only, and so are the files SQLite adds
    try:
        for pragma in PRAGMAS:  # switching a new file to WAL: see sqlite_slots.patiently
            patiently(connection.execute, pragma, busy_s=busy_s)
        _create_schema(connection)
    except BaseException:
        connection.close()
        raise
    return connection


def _create_schema(connection: sqlite3.Connection) -> None:
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    if version == SCHEMA_VERSION:
        return
    if version > SCHEMA_VERSION:
        raise sqlite3.DatabaseError(f"store schema {version} is newer than {SCHEMA_VERSION}")
    if version != 0:
        raise sqlite3.DatabaseError(
            f"store schema {version} is older than {SCHEMA_VERSION} and cannot be upgraded in "
            "place; remove the store file and ingest the data again"
        )
    schema = resources.files("lookup.store").joinpath("schema.sql").read_text(encoding="utf-8")
    version_line = f"PRAGMA user_version = {SCHEMA_VERSION};"
    connection.executescript(f"BEGIN IMMEDIATE;\n{schema}\n{version_line}\nCOMMIT;")
