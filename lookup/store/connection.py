"""SQLite connections of the embedded store: one per thread, opened on first use.

SQLite connections must not be shared between threads, so each thread gets its own
(``threading.local``). WAL lets lookups read while an ingest writes. A connection is
closed by ``close()`` in its own thread, or when the thread that opened it ends.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from importlib import resources
from pathlib import Path

from hub.private_files import private_database, private_directory

SCHEMA_VERSION = 2
PRAGMAS = (
    "PRAGMA busy_timeout = 5000",
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


class _ThreadConnection:
    """Holds one thread's connection and closes it when the thread's locals go away."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def __del__(self) -> None:
        # Runs in the owning thread when it ends; elsewhere sqlite3 refuses, harmlessly.
        with suppress(sqlite3.ProgrammingError):
            self.connection.close()


class ThreadConnections:
    """Lazily opened, per-thread connections to one database file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()

    def get(self) -> sqlite3.Connection:
        """This thread's connection, opened (and the schema created) on first use."""
        holder: _ThreadConnection | None = getattr(self._local, "holder", None)
        if holder is None:
            holder = _ThreadConnection(_open(self.path))
            self._local.holder = holder
        return holder.connection

    def close(self) -> None:
        """Close this thread's connection; the next use opens a new one."""
        holder: _ThreadConnection | None = getattr(self._local, "holder", None)
        self._local.holder = None
        if holder is not None:
            holder.connection.close()

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
        """This thread's connection tuned for a bulk load while the block runs."""
        connection = self.get()
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
        connection = self.get()
        connection.execute(begin)
        try:
            yield connection
        except BaseException:
            if connection.in_transaction:  # SQLite may have rolled back already
                connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")


def _open(path: Path) -> sqlite3.Connection:
    private_directory(path.parent)
    new = not path.exists()
    connection = sqlite3.connect(path, isolation_level=None)
    private_database(path, new=new)  # owner-only, and so are the files SQLite adds
    try:
        for pragma in PRAGMAS:
            connection.execute(pragma)
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
