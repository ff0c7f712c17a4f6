"""The AgentDesk contract, run against every adapter (one contract suite per port).

Each adapter is given as a ``Backend``: ``open()`` returns a new adapter on one shared store,
as a second server would see it; ``unreachable()`` one whose store cannot be reached. The
SQLite and PostgreSQL adapters run it; another joins by adding its ``Backend`` to
``BACKENDS``. The contract:

- a call is created once, at version 0; a second create of its CallSid changes nothing;
- ``save`` compares and sets the version: a write made from an older read is refused, so
  of two servers writing one call at once exactly one wins and the other reads again;
- every server sharing the store sees a write at once;
- ``open_for`` lists the calls an agent holds, changed since a moment, newest first;
- ``forget`` deletes calls and says how many there were;
- ``purge`` deletes the calls finished with (ended and logged) that have not changed for the
  retention, and any call that has not changed for much longer, and nothing else;
- ``ping`` passes while the store can be read;
- a store that cannot be reached raises ``TransientError``, never its own errors.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hub.desk import DeskCall, Handoff
from hub.models import CallStatusUpdate
from hub.ports import AgentDesk, TransientError
from state.desk.postgres import PostgresAgentDesk
from state.desk.sqlite import SCHEMA, SqliteAgentDesk
from state.postgres import PostgresDatabase
from state.sqlite import ThreadLocalDatabase

Database = ThreadLocalDatabase | PostgresDatabase

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


@dataclass
class Backend:
    open: Callable[[], AgentDesk]
    unreachable: Callable[[], AgentDesk]


def sqlite_backend(request: pytest.FixtureRequest, tmp_path: Path,
                   closing: list[Database]) -> Backend:
    def on(path: Path) -> AgentDesk:
        closing.append(ThreadLocalDatabase(path, SCHEMA))
        return SqliteAgentDesk(closing[-1])

    (tmp_path / "not-a-file.sqlite3").mkdir()
    return Backend(open=lambda: on(tmp_path / "hub.sqlite3"),
                   unreachable=lambda: on(tmp_path / "not-a-file.sqlite3"))


def postgres_backend(request: pytest.FixtureRequest, tmp_path: Path,
                     closing: list[Database]) -> Backend:
    url = request.getfixturevalue("postgres_url")

    def on(database: PostgresDatabase) -> AgentDesk:
        closing.append(database)
        return PostgresAgentDesk(database)

    # Nothing listens on port 1: the pool cannot get a connection.
    return Backend(open=lambda: on(PostgresDatabase.open(url, max_size=2)),
                   unreachable=lambda: on(PostgresDatabase("postgresql://127.0.0.1:1/none"
                                                           "?connect_timeout=1", max_size=2)))


BACKENDS = {"sqlite": sqlite_backend, "postgres": postgres_backend}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    closing: list[Database] = []
    yield BACKENDS[request.param](request, tmp_path, closing)
    for db in closing:
        db.close()


@pytest.fixture
def desk(backend: Backend) -> AgentDesk:
    return backend.open()


def call(number: int = 1, agent: str | None = "grace", at: datetime = T0,
         **changes: object) -> DeskCall:
    return DeskCall(call_sid=f"CA{number:032x}", agent_id=agent, updated_at=at, **changes)


def test_a_created_call_reads_back_as_it_was_stored_at_version_0(desk):
    stored = call(notes="Wants a refund — “soon”", direction="outbound",
                  ended=CallStatusUpdate(CallSid=f"CA{1:032x}", CallStatus="completed"),
                  handoffs=(Handoff(agent_id="alan", agent_name="Alan", notes="hi", at=T0),))

    assert desk.create(stored)

    assert stored == desk.get(stored.call_sid)


def test_a_second_create_of_one_call_changes_nothing(desk):
    desk.create(call(notes="first"))

    assert not desk.create(call(notes="second", version=7))
    assert ("first", 0) == (desk.get(call().call_sid).notes, desk.get(call().call_sid).version)


def test_an_unknown_call_is_none(desk):
    assert None is desk.get("CA" + "9" * 32)


def test_saving_from_the_current_version_stores_the_change_at_the_next_one(desk):
    desk.create(call())
    read = desk.get(call().call_sid)

    assert desk.save(read.model_copy(update={"notes": "typed", "phase": "connected"}))

    stored = desk.get(call().call_sid)
    assert ("typed", "connected", 1) == (stored.notes, stored.phase, stored.version)


def test_a_save_from_an_older_read_is_refused_and_changes_nothing(desk):
    desk.create(call())
    old = desk.get(call().call_sid)
    desk.save(old.model_copy(update={"notes": "newer"}))

    assert not desk.save(old.model_copy(update={"notes": "stale"}))
    assert "newer" == desk.get(call().call_sid).notes


def test_another_server_sees_a_write_at_once(backend, desk):
    other = backend.open()
    desk.create(call())

    desk.save(desk.get(call().call_sid).model_copy(update={"notes": "from server one"}))

    assert "from server one" == other.get(call().call_sid).notes


def test_of_two_servers_writing_one_call_at_once_exactly_one_wins(backend, desk):
    desk.create(call())
    servers = [backend.open() for _ in range(8)]
    reads = [server.get(call().call_sid) for server in servers]
    start = threading.Barrier(len(servers))
    results: list[bool] = []

    def write(server: AgentDesk, read: DeskCall, text: str) -> None:
        start.wait()
        results.append(server.save(read.model_copy(update={"notes": text})))

    threads = [threading.Thread(target=write, args=(s, r, f"writer {n}"))
               for n, (s, r) in enumerate(zip(servers, reads, strict=True))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert 1 == results.count(True)
    assert 1 == desk.get(call().call_sid).version


def test_open_for_lists_the_agents_calls_changed_since_newest_first(desk):
    desk.create(call(1, at=T0 - timedelta(hours=3)))
    desk.create(call(2, at=T0))
    desk.create(call(3, at=T0 + timedelta(minutes=5)))
    desk.create(call(4, agent="alan", at=T0))

    listed = desk.open_for("grace", T0 - timedelta(hours=1))

    assert [call(3).call_sid, call(2).call_sid] == [c.call_sid for c in listed]


def test_a_call_handed_to_another_agent_is_listed_for_them_only(desk):
    desk.create(call())
    read = desk.get(call().call_sid)

    desk.save(read.model_copy(update={"agent_id": "alan"}))

    assert ([], [call().call_sid]) == ([c.call_sid for c in desk.open_for("grace", T0)],
                                       [c.call_sid for c in desk.open_for("alan", T0)])


def test_forget_deletes_the_calls_and_counts_them(desk):
    desk.create(call(1))
    desk.create(call(2))

    assert 1 == desk.forget([call(1).call_sid, "CA" + "9" * 32])
    assert None is desk.get(call(1).call_sid)
    assert call(2) == desk.get(call(2).call_sid)


ENDED = CallStatusUpdate(CallSid=f"CA{1:032x}", CallStatus="completed")
RETENTION = timedelta(hours=24)
ABANDONED = timedelta(days=3)


def purge_at(desk: AgentDesk, now: datetime) -> int:
    return desk.purge(finished_before=now - RETENTION, any_before=now - ABANDONED)


def test_purge_deletes_the_finished_calls_older_than_the_retention(desk):
    for number, phase in enumerate(("missed", "wrapped_up", "logged"), start=1):
        desk.create(call(number, phase=phase, ended=ENDED))

    deleted = purge_at(desk, T0 + RETENTION + timedelta(seconds=1))

    assert (3, []) == (deleted, desk.open_for("grace", T0 - ABANDONED))


def test_purge_keeps_finished_calls_younger_than_the_retention(desk):
    desk.create(call(phase="logged", ended=ENDED))

    assert 0 == purge_at(desk, T0 + RETENTION - timedelta(seconds=1))
    assert call(phase="logged", ended=ENDED) == desk.get(call().call_sid)


@pytest.mark.parametrize("unfinished", [
    {"phase": "ringing"}, {"phase": "connected"}, {"phase": "transferring"},
    {"phase": "ended", "ended": ENDED},  # waits for its wrap-up or its deadline
    {"phase": "wrapped_up"},  # wrapped up while the caller is still on the line
], ids=lambda changes: "-".join(sorted(str(v) for v in changes.values()))[:40])
def test_purge_keeps_a_call_not_finished_with_until_it_is_abandoned(desk, unfinished):
    desk.create(call(**unfinished))

    kept = purge_at(desk, T0 + ABANDONED - timedelta(seconds=1))
    deleted = purge_at(desk, T0 + ABANDONED + timedelta(seconds=1))

    assert (0, 1, None) == (kept, deleted, desk.get(call().call_sid))


def test_purge_counts_each_deleted_call_once_and_leaves_the_rest(desk):
    desk.create(call(1, phase="logged", ended=ENDED, at=T0 - timedelta(days=2)))
    desk.create(call(2, phase="connected", at=T0 - timedelta(days=4)))
    desk.create(call(3, phase="logged", ended=ENDED, at=T0))

    assert 2 == purge_at(desk, T0)
    assert [call(3).call_sid] == [c.call_sid for c in desk.open_for("grace", T0 - ABANDONED * 2)]


def test_ping_passes_while_the_store_can_be_read(desk):
    assert None is desk.ping()


@pytest.mark.parametrize("operation", ["create", "get", "save", "open_for", "forget", "purge",
                                       "ping"])
def test_an_unreachable_store_raises_transient_errors(backend, operation):
    desk = backend.unreachable()
    calls: dict[str, Callable[[], object]] = {
        "create": lambda: desk.create(call()), "get": lambda: desk.get(call().call_sid),
        "save": lambda: desk.save(call()), "open_for": lambda: desk.open_for("grace", T0),
        "forget": lambda: desk.forget([call().call_sid]), "purge": lambda: purge_at(desk, T0),
        "ping": desk.ping,
    }

    with pytest.raises(TransientError):
        calls[operation]()
