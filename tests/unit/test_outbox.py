"""The SQLite outbox: idempotent enqueue, leased claims that survive a crash, the CLI's views."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from hub.models import DeliveryAction, NewDelivery
from state.outbox.sqlite import SCHEMA, SqliteOutbox
from state.sqlite import ThreadLocalDatabase
from tests.unit.conftest import T0, FakeClock


def new(call: int = 1, sink: str = "crm", action: DeliveryAction = DeliveryAction.NOTE,
        ) -> NewDelivery:
    return NewDelivery(call_sid=f"CA{call:032x}", sink=sink, action=action,
                       payload={"text": f"call {call}"})


@pytest.fixture
def outbox(db: ThreadLocalDatabase, clock: FakeClock) -> SqliteOutbox:
    return SqliteOutbox(db, clock=clock, lease=timedelta(seconds=60))


def test_enqueue_counts_what_it_stored(outbox: SqliteOutbox) -> None:
    assert 2 == outbox.enqueue([new(1), new(1, "sms", DeliveryAction.SMS)])


def test_a_retried_webhook_enqueues_nothing_new(outbox: SqliteOutbox) -> None:
    outbox.enqueue([new(1), new(2)])
    assert (0, 2) == (outbox.enqueue([new(1), new(2)]), outbox.counts()["pending"])


def test_the_same_call_and_sink_may_have_several_actions(outbox: SqliteOutbox) -> None:
    outbox.enqueue([new(1)])
    assert 1 == outbox.enqueue([new(1, action=DeliveryAction.CALL_LOG)])


def test_enqueued_deliveries_are_on_disk_when_enqueue_returns(
    outbox: SqliteOutbox, tmp_path: Path
) -> None:
    outbox.enqueue([new(1)])
    other_process = ThreadLocalDatabase(tmp_path / "hub.sqlite3", SCHEMA)
    try:
        assert 1 == SqliteOutbox(other_process).counts()["pending"]
    finally:
        other_process.close()


def test_claim_leases_due_deliveries_and_counts_the_attempt(outbox: SqliteOutbox) -> None:
    outbox.enqueue([new(1)])
    [claimed] = outbox.claim_due(10)
    assert ("in_flight", 1, {"text": "call 1"}) == (claimed.status, claimed.attempts,
                                                    claimed.payload)


def test_claim_takes_the_oldest_first_up_to_its_limit(outbox: SqliteOutbox,
                                                      clock: FakeClock) -> None:
    for call in (1, 2, 3):
        outbox.enqueue([new(call)])
        clock.advance(1)
    assert ["call 1", "call 2"] == [d.payload["text"] for d in outbox.claim_due(2)]


def test_claim_leaves_the_deliveries_of_skipped_sinks_pending(outbox: SqliteOutbox) -> None:
    outbox.enqueue([new(1), new(1, "sms", DeliveryAction.SMS), new(1, "hubspot")])
    claimed = outbox.claim_due(10, skip_sinks={"crm", "hubspot"})
    assert (["sms"], ["pending", "in_flight", "pending"]) == (
        [d.sink for d in claimed], [d.status for d in reversed(outbox.list())])


def test_a_skipped_sinks_expired_lease_is_not_taken_back(outbox: SqliteOutbox,
                                                         clock: FakeClock) -> None:
    outbox.enqueue([new(1)])
    outbox.claim_due(10)
    clock.advance(61)
    assert ([], 1) == (outbox.claim_due(10, skip_sinks=["crm"]), len(outbox.claim_due(10)))


def test_a_leased_delivery_is_not_claimed_twice(outbox: SqliteOutbox) -> None:
    outbox.enqueue([new(1)])
    outbox.claim_due(10)
    assert [] == outbox.claim_due(10)


def test_a_crashed_workers_delivery_comes_back_after_its_lease(
    outbox: SqliteOutbox, clock: FakeClock
) -> None:
    outbox.enqueue([new(1)])
    outbox.claim_due(10)  # ...and the worker is killed before it marks the delivery
    clock.advance(59)
    assert [] == outbox.claim_due(10)
    clock.advance(2)
    assert [2] == [d.attempts for d in outbox.claim_due(10)]


def test_a_done_delivery_is_not_claimed_again(outbox: SqliteOutbox, clock: FakeClock) -> None:
    outbox.enqueue([new(1)])
    [claimed] = outbox.claim_due(10)
    outbox.mark_done(claimed.id)
    clock.advance(3600)
    assert ([], "done") == (outbox.claim_due(10), outbox.list()[0].status)


def test_a_failed_delivery_waits_for_its_retry_time(outbox: SqliteOutbox,
                                                    clock: FakeClock) -> None:
    outbox.enqueue([new(1)])
    [claimed] = outbox.claim_due(10)
    outbox.mark_failed(claimed.id, "503", T0 + timedelta(seconds=30))
    clock.advance(29)
    assert [] == outbox.claim_due(10)
    clock.advance(1)
    assert [(claimed.id, "503")] == [(d.id, d.last_error) for d in outbox.claim_due(10)]


def test_a_failure_without_a_retry_time_is_dead(outbox: SqliteOutbox) -> None:
    outbox.enqueue([new(1)])
    [claimed] = outbox.claim_due(10)
    outbox.mark_failed(claimed.id, "401 invalid credentials", None)
    assert [("dead", "401 invalid credentials")] == [
        (d.status, d.last_error) for d in outbox.list()]


@pytest.mark.parametrize("number", ["+14155550134", "(415) 555-0134", "4155550134", "5550134"])
def test_stored_errors_carry_no_phone_number(outbox: SqliteOutbox, number: str) -> None:
    outbox.enqueue([new(1)])
    [claimed] = outbox.claim_due(10)
    outbox.mark_failed(claimed.id, f"400 bad 'To' {number} for ada@example.com", None)
    error = outbox.list()[0].last_error or ""
    assert ("…34" in error, "0134" in error, "ada@" in error) == (True, False, False)


def test_stored_errors_are_cut_short(outbox: SqliteOutbox) -> None:
    outbox.enqueue([new(1)])
    [claimed] = outbox.claim_due(10)
    outbox.mark_failed(claimed.id, "<html>" + "x" * 100_000, None)
    assert 500 == len(outbox.list()[0].last_error or "")


def test_counts_cover_every_status(outbox: SqliteOutbox) -> None:
    outbox.enqueue([new(1), new(2), new(3)])
    first, _in_flight = outbox.claim_due(2)
    outbox.mark_done(first.id)
    assert {"pending": 1, "in_flight": 1, "done": 1, "dead": 0, "cancelled": 0} == (
        outbox.counts())


def test_list_shows_one_status_newest_first(outbox: SqliteOutbox) -> None:
    outbox.enqueue([new(1), new(2), new(3)])
    [claimed] = outbox.claim_due(1)
    assert ["call 3", "call 2"] == [d.payload["text"] for d in outbox.list("pending")]
    assert [claimed.id] == [d.id for d in outbox.list("in_flight")]


def test_retry_makes_a_dead_delivery_due_now_and_keeps_its_attempts(
    outbox: SqliteOutbox, clock: FakeClock
) -> None:
    outbox.enqueue([new(1)])
    [claimed] = outbox.claim_due(10)
    outbox.mark_failed(claimed.id, "401", None)
    clock.advance(600)
    assert outbox.retry(claimed.id)
    [again] = outbox.claim_due(10)
    assert (claimed.id, 2) == (again.id, again.attempts)


def test_only_a_dead_delivery_can_be_retried(outbox: SqliteOutbox) -> None:
    outbox.enqueue([new(1)])
    [claimed] = outbox.claim_due(10)
    assert (False, False) == (outbox.retry(claimed.id), outbox.retry(999))


def finish(outbox: SqliteOutbox, dead: bool = False) -> None:
    for delivery in outbox.claim_due(100):
        if dead:
            outbox.mark_failed(delivery.id, "gone", None)
        else:
            outbox.mark_done(delivery.id)


def test_purge_removes_done_deliveries_older_than_asked(outbox: SqliteOutbox,
                                                        clock: FakeClock) -> None:
    outbox.enqueue([new(1)])
    finish(outbox)
    clock.advance(3600)
    outbox.enqueue([new(2)])
    finish(outbox)
    clock.advance(60)
    assert (1, ["call 2"]) == (outbox.purge(timedelta(minutes=30)),
                               [d.payload["text"] for d in outbox.list()])


def test_purge_keeps_dead_deliveries_unless_asked(outbox: SqliteOutbox, clock: FakeClock) -> None:
    outbox.enqueue([new(1)])
    finish(outbox, dead=True)
    clock.advance(3600)
    assert 0 == outbox.purge(timedelta(0))
    assert 1 == outbox.purge(timedelta(0), statuses=("done", "dead"))


def test_purge_never_touches_unfinished_work(outbox: SqliteOutbox, clock: FakeClock) -> None:
    outbox.enqueue([new(1), new(2)])
    outbox.claim_due(1)
    clock.advance(10 * 86_400)
    assert (0, 2) == (outbox.purge(timedelta(0), ("done", "dead")), len(outbox.list()))


def test_purge_refuses_to_delete_pending_deliveries(outbox: SqliteOutbox) -> None:
    with pytest.raises(ValueError, match="can be purged"):
        outbox.purge(timedelta(0), statuses=("pending",))


def test_get_finds_one_delivery_by_id(outbox: SqliteOutbox) -> None:
    outbox.enqueue([new(1)])
    [stored] = outbox.list()
    assert (stored, None) == (outbox.get(stored.id), outbox.get(stored.id + 1))
