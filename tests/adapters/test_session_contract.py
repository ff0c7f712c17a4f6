"""The SessionRevocations contract, run against every adapter (one contract suite per port).

Each adapter is given as a ``Backend``: ``open()`` returns a new adapter on one shared store,
as a second server would see it; ``unreachable()`` one whose store cannot be reached. Another
adapter (PostgreSQL, Redis) joins by adding its ``Backend`` to ``BACKENDS``. The contract:

- a session is revoked from ``revoke`` until its time to live runs out, then forgotten
  (revocations never pile up: each lives as long as the session could have);
- every server sharing the store sees a revocation at once, and lists it among those
  revoked now;
- revoking again never shortens a revocation, and may lengthen it;
- a store that cannot be reached raises ``TransientError``, never its own errors.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hub.ports import SessionRevocations, TransientError
from state.postgres import PostgresDatabase
from state.sessions.postgres import PostgresSessionRevocations
from state.sessions.sqlite import SCHEMA, SqliteSessionRevocations
from state.sqlite import ThreadLocalDatabase

Database = ThreadLocalDatabase | PostgresDatabase


@dataclass
class Backend:
    open: Callable[[], SessionRevocations]
    unreachable: Callable[[], SessionRevocations]


def sqlite_backend(request: pytest.FixtureRequest, tmp_path: Path,
                   closing: list[Database]) -> Backend:
    def on(path: Path) -> SessionRevocations:
        closing.append(ThreadLocalDatabase(path, SCHEMA))
        return SqliteSessionRevocations(closing[-1])

    (tmp_path / "not-a-file.sqlite3").mkdir()
    return Backend(open=lambda: on(tmp_path / "hub.sqlite3"),
                   unreachable=lambda: on(tmp_path / "not-a-file.sqlite3"))


def postgres_backend(request: pytest.FixtureRequest, tmp_path: Path,
                     closing: list[Database]) -> Backend:
    url = request.getfixturevalue("postgres_url")

    def on(database_url: str) -> SessionRevocations:
        closing.append(PostgresDatabase(database_url, max_size=2))
        return PostgresSessionRevocations(closing[-1])

    def opened() -> SessionRevocations:
        closing.append(PostgresDatabase.open(url, max_size=2))
        return PostgresSessionRevocations(closing[-1])

    # Nothing listens on port 1: the pool cannot get a connection.
    return Backend(open=opened, unreachable=lambda: on("postgresql://127.0.0.1:1/none"
                                                         "?connect_timeout=1"))


BACKENDS = {"sqlite": sqlite_backend, "postgres": postgres_backend}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    closing: list[Database] = []
    yield BACKENDS[request.param](request, tmp_path, closing)
    for db in closing:
        db.close()


@pytest.fixture
def store(backend: Backend) -> SessionRevocations:
    return backend.open()


def test_a_session_nobody_revoked_is_not_revoked(store):
    assert not store.is_revoked("session-1")


def test_a_revoked_session_is_revoked(store):
    store.revoke("session-1", 60)

    assert store.is_revoked("session-1")


def test_revoking_one_session_leaves_the_others(store):
    store.revoke("session-1", 60)

    assert not store.is_revoked("session-2")


def test_every_server_sharing_the_store_sees_a_revocation(backend, store):
    other_server = backend.open()

    store.revoke("session-1", 60)

    assert other_server.is_revoked("session-1")


def test_every_session_revoked_now_is_listed_by_every_server(backend, store):
    other_server = backend.open()
    store.revoke("session-1", 60)
    store.revoke("session-2", 60)
    store.revoke("session-3", 0.2)

    time.sleep(0.4)

    assert frozenset({"session-1", "session-2"}) == other_server.revoked()


def test_a_revocation_is_forgotten_when_its_time_to_live_runs_out(store):
    store.revoke("session-1", 0.3)

    time.sleep(0.6)

    assert not store.is_revoked("session-1")


def test_a_revocation_with_no_time_to_live_left_revokes_nothing(store):
    store.revoke("session-1", 0)

    assert not store.is_revoked("session-1")


def test_revoking_again_never_shortens_a_revocation(store):
    store.revoke("session-1", 60)
    store.revoke("session-1", 0.1)

    time.sleep(0.3)

    assert store.is_revoked("session-1")


def test_revoking_again_can_lengthen_a_revocation(store):
    store.revoke("session-1", 0.2)
    store.revoke("session-1", 60)

    time.sleep(0.4)

    assert store.is_revoked("session-1")


def test_an_unreachable_store_raises_transient_error_on_listing(backend):
    with pytest.raises(TransientError):
        backend.unreachable().revoked()


def test_an_unreachable_store_raises_transient_error_on_revoke(backend):
    with pytest.raises(TransientError):
        backend.unreachable().revoke("session-1", 60)


def test_an_unreachable_store_raises_transient_error_on_check(backend):
    with pytest.raises(TransientError):
        backend.unreachable().is_revoked("session-1")
