"""The data directory and every file in it are the hub's alone: 0700 and 0600.

SQLite makes a database file 0644 (whatever the umask allows) and gives its -wal, -shm and
-journal files the database file's mode; the hub creates the database file first, owner-only,
so every file SQLite adds follows it. Each test runs under the common umask 022.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.demo import demo_secrets
from lookup.store import EmbeddedProfileStore
from state.sqlite import ThreadLocalDatabase
from tests.support import modes, open_to_others

PROFILE = ('{"identityMap": {"Phone": [{"id": "+14155550134", "primary": true}]}, '
           '"person": {"name": {"firstName": "Ada"}}}')


@pytest.fixture(autouse=True)
def _common_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_the_hubs_database_and_its_wal_files_are_owner_only(tmp_path: Path) -> None:
    data_dir = tmp_path / "instance"
    db = ThreadLocalDatabase(data_dir / "hub.sqlite3", "CREATE TABLE t (x);")
    with db.transaction() as conn:
        conn.execute("INSERT INTO t VALUES (1)")

    try:
        assert {"hub.sqlite3", "hub.sqlite3-wal", "hub.sqlite3-shm"} <= set(modes(data_dir))
        assert {} == open_to_others(data_dir)
    finally:
        db.close()


def test_the_profile_store_and_its_wal_files_are_owner_only(tmp_path: Path) -> None:
    data_dir = tmp_path / "instance"
    store = EmbeddedProfileStore(data_dir / "profiles.sqlite3")
    store.ingest("profiles", [PROFILE])

    try:
        assert {"profiles.sqlite3", "profiles.sqlite3-wal"} <= set(modes(data_dir))
        assert {} == open_to_others(data_dir)
    finally:
        store.close()


def test_the_demo_secrets_are_owner_only_from_the_start(tmp_path: Path) -> None:
    data_dir = tmp_path / "instance"

    demo_secrets(data_dir)

    assert {".": "0o700", "demo-secrets.json": "0o600"} == modes(data_dir)


def test_new_databases_are_made_owner_only_without_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    db = ThreadLocalDatabase(tmp_path / "instance" / "hub.sqlite3", "CREATE TABLE t (x);")
    store = EmbeddedProfileStore(tmp_path / "instance" / "profiles.sqlite3")
    db.connection()
    store.ingest("profiles", [PROFILE])

    try:
        assert [] == caplog.messages
    finally:
        db.close()
        store.close()


def test_a_looser_data_directory_is_tightened_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = tmp_path / "instance"
    data_dir.mkdir(mode=0o755)
    (data_dir / "hub.sqlite3").touch(mode=0o644)  # as an earlier version left it
    caplog.set_level(logging.WARNING)

    db = ThreadLocalDatabase(data_dir / "hub.sqlite3", "CREATE TABLE t (x);")
    db.connection()

    try:
        assert {} == open_to_others(data_dir)
        assert 2 == sum("readable by others" in message for message in caplog.messages)
    finally:
        db.close()


def test_making_a_connection_private_keeps_the_locks_of_the_others(tmp_path: Path) -> None:
    """Closing any descriptor of a database file drops every lock SQLite holds on it in the
    process; another process would then take the hub for gone and remove its WAL."""
    path = tmp_path / "instance" / "hub.sqlite3"
    db = ThreadLocalDatabase(path, "CREATE TABLE t (x);")
    with db.transaction() as conn:
        conn.execute("INSERT INTO t VALUES (1)")
    second = threading.Thread(target=db.connection)  # another thread opens its connection
    second.start()
    second.join()

    reader = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
              "c.execute('SELECT * FROM t'); c.close()")
    subprocess.run([sys.executable, "-c", reader, str(path)], check=True, timeout=30)  # noqa: S603 -- this interpreter, a fixed script

    try:
        assert path.with_name("hub.sqlite3-wal").exists()  # the hub still holds it open
    finally:
        db.close()


def test_a_companion_file_that_goes_away_while_a_connection_opens_is_no_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Another thread's first transaction removes its -journal at any moment: opening a
    connection meanwhile must not fail on it (seen with 8 threads opening a new file)."""
    database = tmp_path / "hub.sqlite3"
    journal = tmp_path / "hub.sqlite3-journal"
    journal.write_text("")
    journal.chmod(0o644)  # as SQLite makes it
    real_stat = Path.stat
    looks: list[Path] = []

    def vanishing(self: Path, **kwargs: object) -> os.stat_result:
        found = real_stat(self, **kwargs)  # type: ignore[arg-type]
        if self == journal:
            looks.append(self)
            journal.unlink()  # gone right after it was seen
        return found

    monkeypatch.setattr(Path, "stat", vanishing)
    db = ThreadLocalDatabase(database, "CREATE TABLE t (x);")
    with db.transaction() as conn:
        conn.execute("INSERT INTO t VALUES (1)")
    db.close()
    assert len(looks) == 1
    assert not journal.exists()
    assert [] == [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
