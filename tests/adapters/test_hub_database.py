"""The hub's SQLite database itself: secure deletion, compaction, upgrades, its errors."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.ports import TransientError
from state.ledger.sqlite import SCHEMA as LEDGER_SCHEMA
from state.outbox.sqlite import SCHEMA as OUTBOX_SCHEMA
from state.outbox.sqlite import SqliteOutbox, upgrade
from state.sqlite import ThreadLocalDatabase

OLD_DELIVERIES = """
CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY, call_sid TEXT NOT NULL, sink TEXT NOT NULL, action TEXT NOT NULL,
    payload TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending', 'in_flight', 'done', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, created_at REAL NOT NULL,
    next_attempt_at REAL NOT NULL, leased_until REAL, done_at REAL,
    UNIQUE (call_sid, sink, action)
);
CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);
INSERT INTO deliveries (call_sid, sink, action, payload, created_at, next_attempt_at)
VALUES ('CA1', 'crm', 'note', '{}', 0, 0);
"""


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "hub.sqlite3"


@pytest.fixture
def db(path: Path) -> Iterator[ThreadLocalDatabase]:
    database = ThreadLocalDatabase(path, LEDGER_SCHEMA + OUTBOX_SCHEMA, upgrades=[upgrade])
    yield database
    database.close()


def legacy_file(path: Path, *scripts: str) -> None:
    """A hub file as an older hub left it: no secure deletion, user_version 0."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA secure_delete=OFF")
    for script in scripts:
        conn.executescript(script)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def test_every_connection_deletes_securely(db: ThreadLocalDatabase) -> None:
    assert (1,) == db.connection().execute("PRAGMA secure_delete").fetchone()


def test_a_new_file_is_marked_as_always_deleting_securely(db: ThreadLocalDatabase) -> None:
    assert (1,) == db.connection().execute("PRAGMA user_version").fetchone()


def test_compact_empties_the_wal(db: ThreadLocalDatabase, path: Path) -> None:
    with db.transaction() as conn:
        conn.execute("INSERT INTO calls VALUES ('CA1', NULL, '{}', 0, 0)")

    db.compact()

    assert 0 == path.with_name("hub.sqlite3-wal").stat().st_size


def test_compact_rewrites_a_file_made_before_secure_deletion_once(path: Path) -> None:
    legacy_file(path, LEDGER_SCHEMA, "INSERT INTO calls VALUES ('CA1', NULL,"
                " '{\"name\": \"Ada Lovelace\"}', 0, 0); DELETE FROM calls;")
    assert b"Lovelace" in path.read_bytes()
    db = ThreadLocalDatabase(path, LEDGER_SCHEMA)

    db.compact()
    version = db.connection().execute("PRAGMA user_version").fetchone()
    db.close()

    assert (False, (1,)) == (b"Lovelace" in path.read_bytes(), version)


def test_compact_gives_up_on_a_wal_a_reader_holds(db: ThreadLocalDatabase, path: Path) -> None:
    db.execute("INSERT INTO calls VALUES ('CA1', NULL, '{}', 0, 0)")
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM calls").fetchone()
    db.execute("INSERT INTO calls VALUES ('CA2', NULL, '{}', 0, 0)")
    try:
        with pytest.raises(TransientError, match="held by a reader"):
            db.compact(wait_s=0.2)
    finally:
        reader.close()


def test_an_outbox_made_before_cancellations_keeps_its_rows_and_can_cancel(path: Path) -> None:
    legacy_file(path, OLD_DELIVERIES)
    db = ThreadLocalDatabase(path, OUTBOX_SCHEMA, upgrades=[upgrade])
    outbox = SqliteOutbox(db)

    counts = outbox.forget(["CA1"])
    indexes = db.execute("SELECT name FROM sqlite_master WHERE type = 'index'"
                         " AND tbl_name = 'deliveries' AND sql IS NOT NULL").fetchall()
    statuses = [d.status for d in outbox.list()]
    db.close()

    assert (1, ["cancelled"], [("deliveries_due",)]) == (counts["pending"], statuses, indexes)


def test_a_write_the_lock_of_another_client_keeps_out_is_transient(
    db: ThreadLocalDatabase, path: Path,
) -> None:
    db.execute("SELECT 1").fetchone()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    db.execute("PRAGMA busy_timeout = 50")
    try:
        with pytest.raises(TransientError, match="locked"), db.transaction():
            pass
    finally:
        other.close()


def test_processes_opening_one_new_file_at_once_each_open_it(tmp_path: Path) -> None:
    """Hub processes started together (a server and its workers) switch one new file to WAL
    at once; SQLite refuses one of them without waiting now and then (about one start in a
    hundred here, before it was tried again), which must not fail that process's start."""
    failures: list[BaseException] = []
    for start in range(150):
        path = tmp_path / f"hub-{start}.sqlite3"
        together = threading.Barrier(6)

        def open_and_write(path: Path = path, together: threading.Barrier = together) -> None:
            database = ThreadLocalDatabase(path, LEDGER_SCHEMA + OUTBOX_SCHEMA)
            together.wait()
            try:
                with database.transaction() as conn:
                    conn.execute("SELECT count(*) FROM deliveries").fetchone()
            except BaseException as exc:  # every failure is reported below
                failures.append(exc)
            finally:
                database.close()

        threads = [threading.Thread(target=open_and_write) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)

    assert [] == failures
