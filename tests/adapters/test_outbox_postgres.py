"""The outbox on PostgreSQL across processes: ``cahub worker`` processes share its rows, a
killed one's rows go to another once their lease runs out, and a call's claim and its
deliveries are committed together even when the database connection dies between them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from hub.models import DeliveryAction, NewDelivery
from hub.ports import TransientError
from state.ledger.postgres import PostgresCallLedger
from state.outbox.postgres import PostgresOutbox
from state.postgres import PostgresDatabase
from tests.adapters.test_ledger_contract import summary
from tests.e2e.hub_process import wait_for
from tests.standins.receiver import WebhookReceiver
from tests.worker_process import WorkerProcess, worker_environment

pytestmark = pytest.mark.slow
LEASE_S = 3


def note(call: int) -> NewDelivery:
    return NewDelivery(call_sid=f"CA{call:032x}", sink="webhook", action=DeliveryAction.NOTE,
                       payload={"text": f"call {call}"})


@pytest.fixture
def db(postgres_url: str) -> Iterator[PostgresDatabase]:
    database = PostgresDatabase.open(postgres_url, max_size=2)
    yield database
    database.close()


def start_worker(tmp_path: Path, name: str, postgres_url: str,
                 receiver: WebhookReceiver) -> WorkerProcess:
    env = worker_environment(tmp_path / name, receiver.url(f"/{name}"),
                             CAHUB_DATABASE_URL=postgres_url,
                             CAHUB_OUTBOX_LEASE_S=str(LEASE_S))
    return WorkerProcess(env, tmp_path / f"{name}.log")


def test_two_workers_in_two_processes_make_every_delivery_once(
    tmp_path: Path, postgres_url: str, db: PostgresDatabase
) -> None:
    with WebhookReceiver(pause=0.005) as receiver:
        workers = [start_worker(tmp_path, name, postgres_url, receiver) for name in "ab"]
        try:
            for worker in workers:
                worker.wait_ready()
            PostgresOutbox(db).enqueue([note(call) for call in range(300)])
            wait_for(lambda: len(receiver.keys()) >= 300, 60, "300 deliveries")
            wait_for(lambda: PostgresOutbox(db).counts()["done"] == 300, 10, "all marked done")
        finally:
            for worker in workers:
                worker.stop()
    made = Counter(receiver.keys())
    assert {note(call).key: 1 for call in range(300)} == dict(made)
    assert all(receiver.keys(path) for path in ("/a", "/b")), "both workers took a share"


def test_a_worker_killed_mid_delivery_leaves_its_rows_to_another_after_the_lease(
    tmp_path: Path, postgres_url: str, db: PostgresDatabase
) -> None:
    PostgresOutbox(db).enqueue([note(1)])
    with WebhookReceiver(hold={"/a"}) as receiver:
        first = start_worker(tmp_path, "a", postgres_url, receiver)
        wait_for(lambda: receiver.keys("/a") != [], 30, "the first worker's request",
                 first.output)
        first.kill()
        second = start_worker(tmp_path, "b", postgres_url, receiver)
        try:
            wait_for(lambda: receiver.keys("/b") != [], 30, "the second worker's request",
                     second.output)
            wait_for(lambda: PostgresOutbox(db).counts()["done"] == 1, 10, "the row done")
        finally:
            second.stop()
    [killed, taken_over] = receiver.received
    [row] = PostgresOutbox(db).list()
    assert ([note(1).key] * 2, 2) == ([killed.key, taken_over.key], row.attempts)
    # Its lease began before the killed worker's request arrived (milliseconds before).
    assert taken_over.at - killed.at >= LEASE_S - 0.1


class ConnectionLostOutbox(PostgresOutbox):
    """An outbox whose database connection dies just before it writes the deliveries."""

    def __init__(self, db: PostgresDatabase, admin_url: str) -> None:
        super().__init__(db)
        self._db_of_mine, self._admin_url = db, admin_url

    def enqueue(self, deliveries: object, delay: float = 0.0) -> int:
        with self._db_of_mine.connection() as conn:
            pid = conn.info.backend_pid
        with psycopg.connect(self._admin_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        return super().enqueue(deliveries, delay)  # type: ignore[arg-type]


def accept(db: PostgresDatabase, outbox: PostgresOutbox, sid: str) -> None:
    """What the call use case does on a new call: claim it, store its deliveries, as one."""
    with db.transaction():
        PostgresCallLedger(db).claim(sid, "grace", summary(sid=sid))
        outbox.enqueue([note(1)])


def test_a_connection_lost_between_the_claim_and_its_deliveries_stores_neither(
    postgres_url: str, db: PostgresDatabase
) -> None:
    sid = note(1).call_sid
    with pytest.raises(TransientError):
        accept(db, ConnectionLostOutbox(db, postgres_url), sid)
    assert (None, 0) == (PostgresCallLedger(db).get(sid), PostgresOutbox(db).counts()["pending"])


def test_the_pool_serves_again_after_a_connection_died(
    postgres_url: str, db: PostgresDatabase
) -> None:
    with pytest.raises(TransientError):
        accept(db, ConnectionLostOutbox(db, postgres_url), note(1).call_sid)
    accept(db, PostgresOutbox(db), note(1).call_sid)
    assert 1 == PostgresOutbox(db).counts()["pending"]
