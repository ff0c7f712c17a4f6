"""The outbox's contract, kept by every adapter (SQLite, PostgreSQL): idempotent enqueue,
leased claims that survive a crash, lanes per sink, dead letters, late payloads, the CLI's
views, and ``forget``, which cancels a forgotten caller's deliveries and empties them.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest

from hub.models import DeliveryAction, NewDelivery
from tests.adapters.conftest import HubState
from tests.fakes import T0, FakeClock


def new(call: int = 1, sink: str = "crm", action: DeliveryAction = DeliveryAction.NOTE,
        ) -> NewDelivery:
    return NewDelivery(call_sid=f"CA{call:032x}", sink=sink, action=action,
                       payload={"text": f"call {call}"})


@pytest.fixture
def outbox(state: HubState, clock: FakeClock) -> Any:
    return state.outbox(clock=clock, lease=60)


def test_enqueue_counts_what_it_stored(outbox: Any) -> None:
    assert 2 == outbox.enqueue([new(1), new(1, "sms", DeliveryAction.SMS)])


def test_a_retried_webhook_enqueues_nothing_new(outbox: Any) -> None:
    outbox.enqueue([new(1), new(2)])
    assert (0, 2) == (outbox.enqueue([new(1), new(2)]), outbox.counts()["pending"])


def test_the_same_call_and_sink_may_have_several_actions(outbox: Any) -> None:
    outbox.enqueue([new(1)])
    assert 1 == outbox.enqueue([new(1, action=DeliveryAction.CALL_LOG)])


def test_enqueued_deliveries_are_stored_when_enqueue_returns(
    outbox: Any, state: HubState
) -> None:
    outbox.enqueue([new(1)])
    assert 1 == state.outbox(state.open()).counts()["pending"]


def test_a_delayed_delivery_is_not_due_before_its_delay(outbox: Any, clock: FakeClock) -> None:
    outbox.enqueue([new(1)], delay=5.0)
    clock.advance(4.9)
    assert [] == outbox.claim_due(10)
    clock.advance(0.1)
    assert ["call 1"] == [d.payload["text"] for d in outbox.claim_due(10)]


def late(call: int, text: str) -> NewDelivery:
    return new(call).model_copy(update={"payload": {"text": text}})


def test_a_late_profile_refreshes_a_pending_delivery_and_makes_it_due(
    outbox: Any, clock: FakeClock
) -> None:
    outbox.enqueue([new(1)], delay=5.0)
    assert 1 == outbox.refresh([late(1, "Ada Lovelace")])
    assert ["Ada Lovelace"] == [d.payload["text"] for d in outbox.claim_due(10)]


def test_a_refresh_leaves_a_delivery_in_flight_alone(outbox: Any, clock: FakeClock) -> None:
    outbox.enqueue([new(1)])
    [claimed] = outbox.claim_due(10)
    assert (0, {"text": "call 1"}) == (outbox.refresh([late(1, "Ada Lovelace")]),
                                       outbox.get(claimed.id).payload)


def test_a_refresh_of_nothing_stored_changes_nothing(outbox: Any) -> None:
    assert (0, 0) == (outbox.refresh([late(1, "Ada Lovelace")]), outbox.enqueue([]))


def test_claim_leases_due_deliveries_and_counts_the_attempt(outbox: Any) -> None:
    outbox.enqueue([new(1)])
    [claimed] = outbox.claim_due(10)
    assert ("in_flight", 1, {"text": "call 1"}) == (claimed.status, claimed.attempts,
                                                    claimed.payload)


def test_claim_takes_the_oldest_first_up_to_its_limit(outbox: Any,
                                                      clock: FakeClock) -> None:
    for call in (1, 2, 3):
        outbox.enqueue([new(call)])
        clock.advance(1)
    assert ["call 1", "call 2"] == [d.payload["text"] for d in outbox.claim_due(2)]


def test_claim_leaves_the_deliveries_of_skipped_sinks_pending(outbox: Any) -> None:
    outbox.enqueue([new(1), new(1, "sms", DeliveryAction.SMS), new(1, "hubspot")])
    claimed = outbox.claim_due(10, skip_sinks={"crm", "hubspot"})
    assert (["sms"], ["pending", "in_flight", "pending"]) == (
        [d.sink for d in claimed], [d.status for d in reversed(outbox.list())])


def test_a_skipped_sinks_expired_lease_is_not_taken_back(outbox: Any,
                                                         clock: FakeClock) -> None:
    outbox.enqueue([new(1)])
    outbox.claim_due(10)
    clock.advance(61)
    assert ([], 1) == (outbox.claim_due(10, skip_sinks=["crm"]), len(outbox.claim_due(10)))


def test_a_leased_delivery_is_not_claimed_twice(outbox: Any) -> None:
    outbox.enqueue([new(1)])
    outbox.claim_due(10)
    assert [] == outbox.claim_due(10)


def test_claims_from_several_threads_take_each_delivery_once(state: HubState) -> None:
    outbox = state.outbox()
    outbox.enqueue([new(call) for call in range(200)])
    claimed: list[int] = []
    start = threading.Barrier(4)

    def claim() -> None:
        start.wait()
        while batch := outbox.claim_due(7):
            claimed.extend(d.id for d in batch)

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert (200, 200) == (len(claimed), len(set(claimed)))


def test_a_crashed_workers_delivery_comes_back_after_its_lease(
    outbox: Any, clock: FakeClock
) -> None:
    outbox.enqueue([new(1)])
    outbox.claim_due(10)  # ...and the worker is killed before it marks the delivery
    clock.advance(59)
    assert [] == outbox.claim_due(10)
    clock.advance(2)
    assert [2] == [d.attempts for d in outbox.claim_due(10)]


def test_a_done_delivery_is_not_claimed_again(outbox: Any, clock: FakeClock) -> None:
    outbox.enqueue([new(1)])
    [claimed] = outbox.claim_due(10)
    outbox.mark_done(claimed.id)
    clock.advance(3600)
    assert ([], "done") == (outbox.claim_due(10), outbox.list()[0].status)


def test_a_failed_delivery_waits_for_its_retry_time(outbox: Any,
                                                    clock: FakeClock) -> None:
    outbox.enqueue([new(1)])
    [claimed] = outbox.claim_due(10)
    outbox.mark_failed(claimed.id, "503", T0 + timedelta(seconds=30))
    clock.advance(29)
    assert [] == outbox.claim_due(10)
    clock.advance(1)
    assert [(claimed.id, "503")] == [(d.id, d.last_error) for d in outbox.claim_due(10)]


def test_a_failure_without_a_retry_time_is_dead(outbox: Any) -> None:
    outbox.enqueue([new(1)])
    [claimed] = outbox.claim_due(10)
    outbox.mark_failed(claimed.id, "401 invalid credentials", None)
    assert [("dead", "401 invalid credentials")] == [
        (d.status, d.last_error) for d in outbox.list()]


@pytest.mark.parametrize("number", ["+14155550134", "(415) 555-0134", "4155550134", "5550134"])
def test_stored_errors_carry_no_phone_number(outbox: Any, number: str) -> None:
    outbox.enqueue([new(1)])
    [claimed] = outbox.claim_due(10)
    outbox.mark_failed(claimed.id, f"400 bad 'To' {number} for ada@example.com", None)
    error = outbox.list()[0].last_error or ""
    assert ("…34" in error, "0134" in error, "ada@" in error) == (True, False, False)


def test_stored_errors_are_cut_short(outbox: Any) -> None:
    outbox.enqueue([new(1)])
    [claimed] = outbox.claim_due(10)
    outbox.mark_failed(claimed.id, "<html>" + "x" * 100_000, None)
    assert 500 == len(outbox.list()[0].last_error or "")


def test_counts_cover_every_status(outbox: Any) -> None:
    outbox.enqueue([new(1), new(2), new(3)])
    first, _in_flight = outbox.claim_due(2)
    outbox.mark_done(first.id)
    assert {"pending": 1, "in_flight": 1, "done": 1, "dead": 0, "cancelled": 0} == (
        outbox.counts())


def test_list_shows_one_status_newest_first(outbox: Any) -> None:
    outbox.enqueue([new(1), new(2), new(3)])
    [claimed] = outbox.claim_due(1)
    assert ["call 3", "call 2"] == [d.payload["text"] for d in outbox.list("pending")]
    assert [claimed.id] == [d.id for d in outbox.list("in_flight")]


def test_retry_makes_a_dead_delivery_due_now_and_keeps_its_attempts(
    outbox: Any, clock: FakeClock
) -> None:
    outbox.enqueue([new(1)])
    [claimed] = outbox.claim_due(10)
    outbox.mark_failed(claimed.id, "401", None)
    clock.advance(600)
    assert outbox.retry(claimed.id)
    [again] = outbox.claim_due(10)
    assert (claimed.id, 2) == (again.id, again.attempts)


def test_only_a_dead_delivery_can_be_retried(outbox: Any) -> None:
    outbox.enqueue([new(1)])
    [claimed] = outbox.claim_due(10)
    assert (False, False) == (outbox.retry(claimed.id), outbox.retry(999))


def finish(outbox: Any, dead: bool = False) -> None:
    for delivery in outbox.claim_due(100):
        if dead:
            outbox.mark_failed(delivery.id, "gone", None)
        else:
            outbox.mark_done(delivery.id)


def test_purge_removes_done_deliveries_older_than_asked(outbox: Any,
                                                        clock: FakeClock) -> None:
    outbox.enqueue([new(1)])
    finish(outbox)
    clock.advance(3600)
    outbox.enqueue([new(2)])
    finish(outbox)
    clock.advance(60)
    assert (1, ["call 2"]) == (outbox.purge(timedelta(minutes=30)),
                               [d.payload["text"] for d in outbox.list()])


def test_purge_keeps_dead_deliveries_unless_asked(outbox: Any, clock: FakeClock) -> None:
    outbox.enqueue([new(1)])
    finish(outbox, dead=True)
    clock.advance(3600)
    assert 0 == outbox.purge(timedelta(0))
    assert 1 == outbox.purge(timedelta(0), statuses=("done", "dead"))


def test_purge_never_touches_unfinished_work(outbox: Any, clock: FakeClock) -> None:
    outbox.enqueue([new(1), new(2)])
    outbox.claim_due(1)
    clock.advance(10 * 86_400)
    assert (0, 2) == (outbox.purge(timedelta(0), ("done", "dead")), len(outbox.list()))


def test_purge_refuses_to_delete_pending_deliveries(outbox: Any) -> None:
    with pytest.raises(ValueError, match="can be purged"):
        outbox.purge(timedelta(0), statuses=("pending",))


def test_get_finds_one_delivery_by_id(outbox: Any) -> None:
    outbox.enqueue([new(1)])
    [stored] = outbox.list()
    assert (stored, None) == (outbox.get(stored.id), outbox.get(stored.id + 1))


def sid(call: int) -> str:
    return f"CA{call:032x}"


def statuses_of(outbox: Any, call: int) -> dict[str, str]:
    return {f"{d.sink}/{d.action.value}": d.status
            for d in outbox.list(limit=100) if d.call_sid == sid(call)}


@pytest.fixture
def three_states(outbox: Any) -> Any:
    """Call 1: a note done, an SMS in flight, a call log pending; call 2: a note pending."""
    outbox.enqueue([new(1), new(1, "sms", DeliveryAction.SMS)])
    done, _in_flight = outbox.claim_due(2)
    outbox.mark_done(done.id)
    outbox.enqueue([new(1, action=DeliveryAction.CALL_LOG), new(2)])
    return outbox


def test_forget_cancels_pending_and_in_flight_deliveries(three_states: Any) -> None:
    three_states.forget([sid(1)])

    assert {"crm/note": "done", "sms/sms": "cancelled", "crm/call_log": "cancelled"} == (
        statuses_of(three_states, 1))


def test_forget_counts_what_it_found_by_status(three_states: Any) -> None:
    counts = three_states.forget([sid(1)])

    assert {"pending": 1, "in_flight": 1, "done": 1, "dead": 0, "cancelled": 0} == counts


def test_forget_empties_every_payload_of_the_calls_and_says_why(three_states: Any) -> None:
    three_states.forget([sid(1)])

    rows = [d for d in three_states.list(limit=100) if d.call_sid == sid(1)]
    assert [{}, {}, {}] == [d.payload for d in rows]
    assert all("forgotten" in (d.last_error or "") for d in rows if d.status == "cancelled")


def test_forget_leaves_other_calls_alone(three_states: Any) -> None:
    three_states.forget([sid(1)])

    assert ({"crm/note": "pending"}, [{"text": "call 2"}]) == (
        statuses_of(three_states, 2),
        [d.payload for d in three_states.list(limit=100) if d.call_sid == sid(2)])


def test_a_cancelled_delivery_is_never_claimed_nor_finished(three_states: Any) -> None:
    three_states.forget([sid(1)])
    [in_flight] = [d for d in three_states.list(limit=100) if d.action is DeliveryAction.SMS]

    three_states.mark_done(in_flight.id)  # its worker finishes after the forget

    assert [sid(2)] == [d.call_sid for d in three_states.claim_due(10)]
    assert "cancelled" == statuses_of(three_states, 1)["sms/sms"]


def test_a_cancelled_delivery_is_not_refreshed_by_a_late_profile(three_states: Any) -> None:
    three_states.forget([sid(1)])

    assert 0 == three_states.refresh([late(1, "Ada Lovelace")])


def test_a_forgotten_call_enqueued_again_gets_nothing_new(three_states: Any) -> None:
    three_states.forget([sid(1)])

    assert 0 == three_states.enqueue([new(1), new(1, action=DeliveryAction.CALL_LOG)])


def test_forget_of_no_calls_changes_nothing(three_states: Any) -> None:
    assert 0 == sum(three_states.forget([]).values())


def test_cancelled_deliveries_are_purged_with_done_ones(three_states: Any,
                                                        clock: FakeClock) -> None:
    three_states.forget([sid(1)])
    clock.advance(3600)

    assert (3, ["pending"]) == (three_states.purge(timedelta(minutes=30)),
                                [d.status for d in three_states.list(limit=100)])


def test_counts_show_cancelled_deliveries(three_states: Any) -> None:
    three_states.forget([sid(1)])

    assert {"pending": 1, "in_flight": 0, "done": 1, "dead": 0, "cancelled": 2} == (
        three_states.counts())
