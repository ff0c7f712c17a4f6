"""The dispatcher and its retry policy: transient failures retried, permanent ones dead-lettered,
nothing delivered twice by two workers, and the background thread quick to react."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hub.dispatch import Dispatcher, DrainReport, RetryPolicy
from hub.forget_guard import ForgetGuard
from hub.forget_keys import call_key, digest
from hub.metrics import HubMetrics
from hub.models import Delivery, DeliveryAction, NewDelivery
from hub.ports import PermanentError, TransientError
from state.outbox.sqlite import SCHEMA, SqliteOutbox
from state.sqlite import ThreadLocalDatabase
from tests.fakes import T0, FakeClock, InMemoryForgetLog, wait_for

REPO = Path(__file__).resolve().parents[2]
NO_JITTER = RetryPolicy(jitter=lambda low, high: high)


class RecordingSink:
    """Makes every delivery; keeps their keys (thread-safe)."""

    def __init__(self, name: str = "crm", pause: float = 0.0) -> None:
        self.name = name
        self.pause = pause
        self.delivered: list[str] = []
        self._lock = threading.Lock()

    def deliver(self, delivery: Delivery) -> None:
        time.sleep(self.pause)
        with self._lock:
            self.delivered.append(delivery.key)

    def ping(self) -> None:
        return None


class FlakySink(RecordingSink):
    """Fails transiently ``failures`` times, then delivers."""

    def __init__(self, failures: int, retry_after: float | None = None) -> None:
        super().__init__()
        self.failures = failures
        self.retry_after = retry_after

    def deliver(self, delivery: Delivery) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise TransientError("503 Service Unavailable", retry_after=self.retry_after)
        super().deliver(delivery)


class RejectingSink(RecordingSink):
    def deliver(self, delivery: Delivery) -> None:
        raise PermanentError("400 INVALID_FIELD for +14155550134")


class BuggySink(RecordingSink):
    def deliver(self, delivery: Delivery) -> None:
        raise KeyError("oops")


class BlockingSink(RecordingSink):
    """Holds every delivery until released; ``holding`` is set once it holds one."""

    def __init__(self) -> None:
        super().__init__()
        self.release, self.holding = threading.Event(), threading.Event()

    def deliver(self, delivery: Delivery) -> None:
        self.holding.set()
        self.release.wait(5)
        super().deliver(delivery)


class FirstUnrecordedOutbox(SqliteOutbox):
    """Fails to record the first delivery as done, as when the disk fails mid-drain."""

    def mark_done(self, delivery_id: int) -> None:
        if delivery_id == 1:
            raise sqlite3.OperationalError("disk I/O error")
        super().mark_done(delivery_id)


def new(call: int = 1, sink: str = "crm") -> NewDelivery:
    return NewDelivery(call_sid=f"CA{call:032x}", sink=sink, action=DeliveryAction.NOTE,
                       payload={"text": "note"})


@pytest.fixture
def outbox(db: ThreadLocalDatabase, clock: FakeClock) -> SqliteOutbox:
    return SqliteOutbox(db, clock=clock)


def dispatcher(outbox: SqliteOutbox, clock: FakeClock, *sinks: RecordingSink,
               policy: RetryPolicy = NO_JITTER, lease_budget: float = 30.0) -> Dispatcher:
    return Dispatcher(outbox, {s.name: s for s in sinks}, None, policy, clock,
                      lease_budget=lease_budget)


def statuses(outbox: SqliteOutbox) -> list[str]:
    return [d.status for d in outbox.list()]


# The retry policy


def test_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    delays = [NO_JITTER.delay(attempt) for attempt in (1, 2, 3, 4, 9, 10, 12, 1000)]
    assert [2, 4, 8, 16, 512, 900, 900, 900] == delays


def test_full_jitter_stays_between_zero_and_the_backoff() -> None:
    policy = RetryPolicy(jitter=random.Random(7).uniform)  # noqa: S311 -- seeded on purpose
    delays = [policy.delay(4) for _ in range(1000)]
    assert (True, True) == (all(0 <= d <= 16 for d in delays), max(delays) - min(delays) > 8)


def test_retry_after_is_the_least_delay() -> None:
    policy = RetryPolicy(jitter=lambda low, high: low)
    assert (120, 0) == (policy.delay(1, retry_after=120), policy.delay(1))


def test_the_policy_gives_up_after_max_attempts() -> None:
    delivery = Delivery(**new().model_dump(), id=1, attempts=12, created_at=T0,
                        next_attempt_at=T0)
    assert NO_JITTER.retry_at(delivery, T0) is None


def test_the_policy_gives_up_after_max_age() -> None:
    delivery = Delivery(**new().model_dump(), id=1, attempts=1, created_at=T0,
                        next_attempt_at=T0)
    assert NO_JITTER.retry_at(delivery, T0 + timedelta(hours=24)) is None


# Draining the outbox


def test_a_due_delivery_is_made_and_marked_done(outbox: SqliteOutbox, clock: FakeClock) -> None:
    sink = RecordingSink()
    outbox.enqueue([new(1)])
    report = dispatcher(outbox, clock, sink).drain_once()
    assert (DrainReport(done=1), [new(1).key], ["done"]) == (report, sink.delivered,
                                                             statuses(outbox))


def test_a_transient_failure_is_retried_after_the_backoff(outbox: SqliteOutbox,
                                                          clock: FakeClock) -> None:
    sink = FlakySink(failures=2)
    outbox.enqueue([new(1)])
    worker = dispatcher(outbox, clock, sink)
    reports = [worker.drain_once()]
    for wait in (1.9, 0.1, 3.9, 0.1):  # backoff 2 s after the first failure, 4 s after the second
        clock.advance(wait)
        reports.append(worker.drain_once())
    assert [1, 0, 1, 0, 0] == [r.retried for r in reports]
    assert ([new(1).key], ["done"]) == (sink.delivered, statuses(outbox))


def test_retry_after_from_the_service_is_honoured(outbox: SqliteOutbox,
                                                  clock: FakeClock) -> None:
    outbox.enqueue([new(1)])
    dispatcher(outbox, clock, FlakySink(failures=1, retry_after=120)).drain_once()
    assert [T0 + timedelta(seconds=120)] == [d.next_attempt_at for d in outbox.list()]


def test_a_permanent_failure_is_dead_at_once(outbox: SqliteOutbox, clock: FakeClock) -> None:
    outbox.enqueue([new(1)])
    report = dispatcher(outbox, clock, RejectingSink()).drain_once()
    [dead] = outbox.list()
    assert (DrainReport(dead=1), "dead", 1) == (report, dead.status, dead.attempts)
    assert "permanent: 400 INVALID_FIELD for …34" == dead.last_error


def test_a_delivery_for_an_unknown_sink_is_dead_with_a_clear_error(
    outbox: SqliteOutbox, clock: FakeClock
) -> None:
    outbox.enqueue([new(1, sink="zendesk")])
    dispatcher(outbox, clock, RecordingSink()).drain_once()
    assert ["no sink named 'zendesk' is configured"] == [d.last_error for d in outbox.list()]


def test_an_unexpected_exception_is_retried_not_lost(outbox: SqliteOutbox, clock: FakeClock,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    outbox.enqueue([new(1)])
    report = dispatcher(outbox, clock, BuggySink()).drain_once()
    assert (DrainReport(retried=1), ["pending"]) == (report, statuses(outbox))
    assert "Traceback" in caplog.text


def test_a_delivery_failing_max_attempts_times_is_dead(outbox: SqliteOutbox,
                                                       clock: FakeClock) -> None:
    outbox.enqueue([new(1)])
    worker = dispatcher(outbox, clock, FlakySink(failures=99),
                        policy=RetryPolicy(max_attempts=3, jitter=lambda low, high: high))
    for _ in range(3):
        worker.drain_once()
        clock.advance(3600)
    [dead] = outbox.list()
    assert ("dead", 3) == (dead.status, dead.attempts)
    assert (dead.last_error or "").startswith("gave up after 3 attempts: transient: 503")


def test_a_delivery_older_than_max_age_is_dead(outbox: SqliteOutbox, clock: FakeClock) -> None:
    outbox.enqueue([new(1)])
    clock.advance(24 * 3600)
    dispatcher(outbox, clock, FlakySink(failures=1)).drain_once()
    assert ["dead"] == statuses(outbox)


def test_a_dead_delivery_retried_by_the_operator_is_made(outbox: SqliteOutbox,
                                                         clock: FakeClock) -> None:
    outbox.enqueue([new(1)])
    sink = FlakySink(failures=1)
    worker = dispatcher(outbox, clock, sink, policy=RetryPolicy(max_attempts=1))
    worker.drain_once()
    outbox.retry(outbox.list()[0].id)
    assert (DrainReport(done=1), ["done"]) == (worker.drain_once(), statuses(outbox))


def test_a_slow_sink_does_not_hold_up_another(outbox: SqliteOutbox, clock: FakeClock) -> None:
    slow, sms = BlockingSink(), RecordingSink("sms")
    outbox.enqueue([new(1), new(2, sink="sms")])
    worker = dispatcher(outbox, clock, slow, sms)
    drain = threading.Thread(target=worker.drain_once)
    drain.start()
    try:
        assert wait_for(lambda: sms.delivered, timeout=2)
    finally:
        slow.release.set()
        drain.join()
        worker.stop()


def test_a_sink_still_busy_with_its_previous_group_is_left_out_of_a_drain(
    outbox: SqliteOutbox, clock: FakeClock
) -> None:
    crm = BlockingSink()
    outbox.enqueue([new(1)])
    worker = dispatcher(outbox, clock, crm)
    first = threading.Thread(target=worker.drain_once)
    first.start()
    try:
        assert wait_for(lambda: ["in_flight"] == statuses(outbox), timeout=2)
        outbox.enqueue([new(2)])
        assert (DrainReport(), ["pending", "in_flight"]) == (worker.drain_once(),
                                                             statuses(outbox))
    finally:
        crm.release.set()
        first.join()
        worker.stop()


def test_a_group_that_raises_frees_its_sink_for_the_next_drain(
    db: ThreadLocalDatabase, clock: FakeClock
) -> None:
    outbox = FirstUnrecordedOutbox(db, clock=clock)
    outbox.enqueue([new(1)])
    worker = dispatcher(outbox, clock, RecordingSink())
    with pytest.raises(sqlite3.OperationalError):
        worker.drain_once()
    outbox.enqueue([new(2)])
    assert DrainReport(done=1) == worker.drain_once()
    worker.stop()


def test_a_drain_out_of_time_puts_the_rest_back(outbox: SqliteOutbox, clock: FakeClock) -> None:
    outbox.enqueue([new(1), new(2)])
    sink = RecordingSink(pause=0.05)
    report = dispatcher(outbox, clock, sink, lease_budget=0.01).drain_once()
    assert (DrainReport(done=1, retried=1), ["pending", "done"]) == (report, statuses(outbox))


def test_deliveries_are_counted_in_the_metrics(outbox: SqliteOutbox, clock: FakeClock) -> None:
    metrics = HubMetrics()
    outbox.enqueue([new(1), new(2, sink="sms")])
    worker = Dispatcher(outbox, {"crm": RecordingSink()}, metrics, NO_JITTER, clock)
    worker.drain_once()
    worker.stop()
    text = metrics.exposition().decode()
    assert 'cahub_deliveries_total{action="note",outcome="done",sink="crm"} 1.0' in text
    assert 'cahub_delivery_seconds_count{sink="crm"} 1.0' in text
    assert 'cahub_outbox_deliveries{status="dead"} 1.0' in text


class UnreachableOutbox(SqliteOutbox):
    """An outbox on a PostgreSQL database that is gone: its counts fail as the hub's error."""

    def counts(self) -> dict[str, int]:
        raise TransientError("hub database: connection refused")


def test_the_metrics_answer_without_the_outbox_gauge_when_its_database_is_gone(
    db: ThreadLocalDatabase,
) -> None:
    metrics = HubMetrics()
    Dispatcher(UnreachableOutbox(db), {}, metrics)

    text = metrics.exposition().decode()

    assert "cahub_deliveries_total" in text
    assert "cahub_outbox_deliveries{" not in text


# The background thread and several workers


def test_the_background_thread_delivers_soon_after_notify(outbox: SqliteOutbox) -> None:
    sink = RecordingSink()
    worker = Dispatcher(outbox, {"crm": sink}, idle=30.0)
    worker.start()
    try:
        time.sleep(0.05)  # the thread is now idle for 30 s unless notified
        outbox.enqueue([new(1)])
        started = time.perf_counter()
        worker.notify()
        assert wait_for(lambda: sink.delivered, timeout=2)
        assert time.perf_counter() - started < 0.5
    finally:
        worker.stop()


def test_the_background_thread_deletes_rows_delivered_longer_ago_than_kept(
    outbox: SqliteOutbox, clock: FakeClock
) -> None:
    outbox.enqueue([new(1), new(2)])
    dispatcher(outbox, clock, RecordingSink()).drain_once()
    clock.advance(3 * 3600)
    outbox.enqueue([new(3)])
    worker = Dispatcher(outbox, {"crm": RecordingSink()}, clock=clock,
                        keep_done=timedelta(hours=2))
    worker.start()
    try:
        assert wait_for(lambda: [new(3).call_sid] == [d.call_sid for d in outbox.list()])
    finally:
        worker.stop()


def test_the_background_thread_runs_the_other_purges_and_one_failing_stops_nothing(
    outbox: SqliteOutbox,
) -> None:
    ran: list[str] = []

    def failing() -> None:
        ran.append("failing")
        raise TransientError("the desk cannot be reached")

    sink = RecordingSink()
    outbox.enqueue([new(1)])
    worker = Dispatcher(outbox, {"crm": sink}, purges=[failing, lambda: ran.append("desk")])
    worker.start()
    try:
        assert wait_for(lambda: sink.delivered)
    finally:
        worker.stop()
    assert ["failing", "desk"] == ran


def test_the_background_thread_deletes_cancelled_rows_as_it_does_delivered_ones(
    outbox: SqliteOutbox, clock: FakeClock
) -> None:
    outbox.enqueue([new(1), new(2)])
    outbox.forget([new(1).call_sid])
    clock.advance(3 * 3600)
    worker = Dispatcher(outbox, {"crm": RecordingSink()}, clock=clock,
                        keep_done=timedelta(hours=2))
    worker.start()
    try:
        assert wait_for(lambda: [("done", new(2).call_sid)] == [
            (d.status, d.call_sid) for d in outbox.list()])
    finally:
        worker.stop()


def test_a_stopped_dispatcher_ends_its_delivery_and_puts_the_rest_back_due_now(
    outbox: SqliteOutbox, clock: FakeClock
) -> None:
    crm = BlockingSink()
    outbox.enqueue([new(1), new(2), new(3)])
    worker = Dispatcher(outbox, {"crm": crm}, clock=clock, idle=0.01)
    worker.start()
    assert crm.holding.wait(2)  # the first delivery is being made (claimed is not enough)
    threading.Timer(0.2, crm.release.set).start()
    assert worker.stop(timeout=5)
    due_now = [d for d in outbox.list() if d.status == "pending" and d.next_attempt_at == T0]
    assert (1, 2) == (len(crm.delivered), len(due_now))


def test_a_delivery_hung_past_the_stop_timeout_stays_leased(outbox: SqliteOutbox) -> None:
    crm = BlockingSink()
    outbox.enqueue([new(1)])
    worker = Dispatcher(outbox, {"crm": crm}, idle=0.01)
    worker.start()
    assert crm.holding.wait(2)
    try:
        assert (False, ["in_flight"]) == (worker.stop(timeout=0.2), statuses(outbox))
    finally:
        crm.release.set()


def test_a_hung_crm_request_does_not_delay_an_sms_enqueued_after_it(
    outbox: SqliteOutbox,
) -> None:
    crm, sms = BlockingSink(), RecordingSink("sms")  # the CRM answers after 5 s at the latest
    worker = Dispatcher(outbox, {"crm": crm, "sms": sms}, idle=30.0)
    worker.start()
    try:
        outbox.enqueue([new(1)])
        worker.notify()
        assert wait_for(lambda: ["in_flight"] == statuses(outbox), timeout=2)
        time.sleep(0.05)  # the CRM request is now hanging
        outbox.enqueue([new(1, sink="sms")])
        started = time.perf_counter()
        worker.notify()
        assert wait_for(lambda: ["done", "in_flight"] == statuses(outbox), timeout=2)
        assert time.perf_counter() - started < 0.5
    finally:
        crm.release.set()
        wait_for(lambda: crm.delivered)
        worker.stop()


def test_a_failing_group_does_not_start_a_second_group_for_a_busy_sink(
    db: ThreadLocalDatabase, clock: FakeClock
) -> None:
    outbox = FirstUnrecordedOutbox(db, clock=clock)
    crm, sms = BlockingSink(), RecordingSink("sms")
    outbox.enqueue([new(1, sink="sms"), new(1)])
    worker = Dispatcher(outbox, {"crm": crm, "sms": sms}, None, NO_JITTER, clock, idle=0.01)
    worker.start()
    try:
        assert wait_for(lambda: sms.delivered, timeout=2)  # ...and failed to be recorded
        outbox.enqueue([new(2)])
        time.sleep(1.2)  # past the pause after a failed drain
        assert ["pending", "in_flight", "in_flight"] == statuses(outbox)
    finally:
        crm.release.set()
        wait_for(lambda: len(crm.delivered) == 2)
        worker.stop()


def test_two_workers_on_one_database_never_make_a_delivery_twice(tmp_path: Path) -> None:
    path, sink = tmp_path / "hub.sqlite3", RecordingSink(pause=0.001)
    databases = [ThreadLocalDatabase(path, SCHEMA) for _ in range(2)]
    SqliteOutbox(databases[0]).enqueue([new(call) for call in range(300)])
    workers = [Dispatcher(SqliteOutbox(db), {"crm": sink}, idle=0.01) for db in databases]
    for worker in workers:
        worker.start()
    try:
        assert wait_for(lambda: len(sink.delivered) >= 300, timeout=20)
        time.sleep(0.1)
    finally:
        for worker in workers:
            worker.stop()
        for db in databases:
            db.close()
    assert sorted(new(call).key for call in range(300)) == sorted(sink.delivered)


CRASHING_WORKER = """
import sys, time
from pathlib import Path
from hub.dispatch import Dispatcher
from state.outbox.sqlite import SCHEMA, SqliteOutbox
from state.sqlite import ThreadLocalDatabase

class HangingSink:
    name = "crm"
    def deliver(self, delivery):
        Path(sys.argv[2]).touch()
        time.sleep(60)
    def ping(self):
        pass

db = ThreadLocalDatabase(Path(sys.argv[1]), SCHEMA)
Dispatcher(SqliteOutbox(db), {"crm": HangingSink()}).drain_once()
"""


def test_a_delivery_in_flight_when_the_server_is_killed_is_made_after_its_lease(
    tmp_path: Path, db: ThreadLocalDatabase
) -> None:
    SqliteOutbox(db).enqueue([new(1)])
    marker = tmp_path / "delivering"
    worker = subprocess.Popen(  # noqa: S603 -- this interpreter, a fixed script
        [sys.executable, "-c", CRASHING_WORKER, str(db.path), str(marker)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert wait_for(marker.exists, timeout=20)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    sink = RecordingSink()
    after_lease = SqliteOutbox(db, clock=lambda: datetime.now(UTC) + timedelta(seconds=61))
    assert DrainReport() == Dispatcher(SqliteOutbox(db), {"crm": sink}).drain_once()
    assert DrainReport(done=1) == Dispatcher(after_lease, {"crm": sink}).drain_once()
    assert ([new(1).key], [2]) == (sink.delivered, [d.attempts for d in after_lease.list()])


# Forgetting


def test_a_delivery_in_hand_when_its_caller_is_forgotten_is_not_made(
    outbox: SqliteOutbox, clock: FakeClock,
) -> None:
    log, sink = InMemoryForgetLog(), RecordingSink()
    guard = ForgetGuard(log, "web-1")
    guard.poll()
    outbox.enqueue([NewDelivery(call_sid="CA" + "1" * 32, sink="crm",
                                action=DeliveryAction.NOTE, payload={}),
                    NewDelivery(call_sid="CA" + "2" * 32, sink="crm",
                                action=DeliveryAction.NOTE, payload={})])
    log.record({digest(log.secret(), call_key("CA" + "1" * 32))})
    guard.poll()

    Dispatcher(outbox, {"crm": sink}, None, NO_JITTER, clock, guard=guard).drain_once()

    assert [f"CA{'2' * 32}:crm:note"] == sink.delivered
