"""``cahub worker`` makes deliveries apart from the web servers and stops cleanly; a web
server told so (``CAHUB_DELIVERIES_IN_SERVER=false``) leaves deliveries to it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app import close_app, create_app, services
from hub.forget_guard import EVERY_FORGET
from hub.models import DeliveryAction, NewDelivery
from state.forgets.sqlite import SCHEMA as FORGETS_SCHEMA
from state.forgets.sqlite import SqliteForgetLog
from state.ledger.sqlite import SCHEMA as LEDGER_SCHEMA
from state.outbox.sqlite import SCHEMA as OUTBOX_SCHEMA
from state.outbox.sqlite import SqliteOutbox
from state.sqlite import ThreadLocalDatabase
from tests.e2e.hub_process import wait_for
from tests.fakes import wait_for as holds_within
from tests.standins.receiver import WebhookReceiver
from tests.support import make_settings
from tests.worker_process import WorkerProcess, worker_environment


def note(call: int, sink: str = "webhook") -> NewDelivery:
    return NewDelivery(call_sid=f"CA{call:032x}", sink=sink, action=DeliveryAction.NOTE,
                       payload={"text": f"call {call}"})


@pytest.fixture
def hub_outbox(tmp_path: Path) -> Iterator[SqliteOutbox]:
    """The outbox of the worker's data directory, as a server on the same host sees it."""
    db = ThreadLocalDatabase(tmp_path / "data" / "hub.sqlite3", LEDGER_SCHEMA + OUTBOX_SCHEMA)
    yield SqliteOutbox(db)
    db.close()


def start_worker(tmp_path: Path, receiver: WebhookReceiver) -> WorkerProcess:
    env = worker_environment(tmp_path / "data", receiver.url("/hook"), CAHUB_SINK_TIMEOUT_S="20")
    worker = WorkerProcess(env, tmp_path / "worker.log")
    worker.wait_ready()
    return worker


@pytest.mark.slow
def test_a_worker_makes_deliveries_and_stops_on_sigterm(
    tmp_path: Path, hub_outbox: SqliteOutbox
) -> None:
    with WebhookReceiver() as receiver:
        worker = start_worker(tmp_path, receiver)
        hub_outbox.enqueue([note(1), note(2)])
        wait_for(lambda: hub_outbox.counts()["done"] == 2, 20, "two deliveries", worker.output)
        assert (0, sorted([note(1).key, note(2).key])) == (worker.stop(), sorted(receiver.keys()))


@pytest.mark.slow
def test_a_worker_stopped_mid_delivery_leaves_the_row_leased(
    tmp_path: Path, hub_outbox: SqliteOutbox
) -> None:
    with WebhookReceiver(hold={"/hook"}) as receiver:
        worker = start_worker(tmp_path, receiver)
        hub_outbox.enqueue([note(1)])
        wait_for(lambda: receiver.keys() != [], 20, "the delivery to start", worker.output)
        assert (0, ["in_flight"]) == (worker.stop(), [d.status for d in hub_outbox.list()])


@pytest.mark.slow
def test_a_worker_applies_forgets_and_confirms_every_one_once_stopped(tmp_path: Path) -> None:
    db = ThreadLocalDatabase(tmp_path / "data" / "hub.sqlite3", FORGETS_SCHEMA)
    log = SqliteForgetLog(db)
    with WebhookReceiver() as receiver:
        worker = start_worker(tmp_path, receiver)
        seq = log.record({"0" * 32})
        wait_for(lambda: [c.seq for c in log.confirmations()] == [seq], 20,
                 "the worker to confirm the forget", worker.output)
        worker.stop()
    assert [EVERY_FORGET] == [c.seq for c in log.confirmations()]
    db.close()


def delivered_or_dead(app_settings: dict[str, object], tmp_path: Path) -> str:
    """The status of a delivery to a sink no longer configured, 0.5 s after it was queued."""
    app = create_app(make_settings(tmp_path, **app_settings))
    try:
        hub = services(app)
        hub.outbox.enqueue([note(1, sink="retired-crm")])
        hub.dispatcher.notify()
        holds_within(lambda: hub.outbox.list()[0].status == "dead", timeout=0.5)
        return hub.outbox.list()[0].status
    finally:
        close_app(app)


def test_a_web_server_makes_deliveries_itself_by_default(tmp_path: Path) -> None:
    assert "dead" == delivered_or_dead({}, tmp_path)


def test_a_web_server_told_so_leaves_deliveries_to_workers(tmp_path: Path) -> None:
    started = time.perf_counter()
    assert "pending" == delivered_or_dead({"deliveries_in_server": False}, tmp_path)
    assert time.perf_counter() - started >= 0.5
