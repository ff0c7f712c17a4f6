"""The in-process screen-pop broker: delivery, isolation, replay, back-pressure, threads."""

from __future__ import annotations

import threading
import time

import pytest

from hub.models import CallerKind, CallInfo, Summary
from state.pops.memory import InProcessScreenPopBroker


def summary(number: int, name: str = "Ada Lovelace") -> Summary:
    call = CallInfo(
        sid=f"CA{number:032x}", from_="+14155550134", to="+18005550100",
        caller_kind=CallerKind.NUMBER,
    )
    return Summary(call=call, identity=None, found=True, name=name)


def drain(stream: object, timeout: float = 0.0) -> list[tuple[str, Summary]]:
    pops = []
    while (pop := stream.next(timeout)) is not None:  # type: ignore[attr-defined]
        pops.append(pop)
    return pops


@pytest.fixture
def broker() -> InProcessScreenPopBroker:
    return InProcessScreenPopBroker(replay=3, queue_size=5)


def test_a_subscriber_receives_a_published_pop_with_its_event_id(broker):
    stream = broker.subscribe("ada")

    event_id = broker.publish("ada", summary(1))

    assert stream.next(1.0) == (event_id, summary(1))


def test_event_ids_grow_with_each_publish(broker):
    ids = [int(broker.publish("ada", summary(n))) for n in range(3)]

    assert ids == sorted(ids)
    assert len(set(ids)) == 3


def test_an_agent_receives_only_its_own_pops(broker):
    ada, bob = broker.subscribe("ada"), broker.subscribe("bob")

    broker.publish("bob", summary(1, "For Bob"))

    assert drain(ada) == []
    assert [pop[1].name for pop in drain(bob)] == ["For Bob"]


def test_every_console_of_an_agent_receives_the_pop(broker):
    first, second = broker.subscribe("ada"), broker.subscribe("ada")

    broker.publish("ada", summary(1))

    assert len(drain(first)) == len(drain(second)) == 1


def test_next_returns_none_when_nothing_arrives_in_time(broker):
    stream = broker.subscribe("ada")

    assert stream.next(0.01) is None


def test_a_new_subscription_without_an_event_id_gets_no_old_pops(broker):
    broker.publish("ada", summary(1))

    assert drain(broker.subscribe("ada")) == []


def test_a_reconnecting_console_gets_the_pops_after_its_last_event_id(broker):
    seen = broker.publish("ada", summary(1))
    broker.publish("bob", summary(2))
    missed = [broker.publish("ada", summary(n)) for n in (3, 4)]

    replayed = drain(broker.subscribe("ada", last_event_id=seen))

    assert [event_id for event_id, _ in replayed] == missed


def test_replay_is_limited_to_the_last_pops_kept(broker):
    first = broker.publish("ada", summary(0))
    kept = [broker.publish("ada", summary(n)) for n in range(1, 6)][-3:]

    replayed = drain(broker.subscribe("ada", last_event_id=first))

    assert [event_id for event_id, _ in replayed] == kept


def test_an_event_id_from_before_a_restart_replays_everything_kept(broker):
    kept = [broker.publish("ada", summary(n)) for n in range(2)]

    replayed = drain(broker.subscribe("ada", last_event_id="999999"))

    assert [event_id for event_id, _ in replayed] == kept


@pytest.mark.parametrize("garbage", ["", "abc", "-1", "1e3", "٣", "9" * 40])
def test_an_unusable_event_id_replays_nothing(broker, garbage):
    broker.publish("ada", summary(1))

    assert drain(broker.subscribe("ada", last_event_id=garbage)) == []


def test_a_stuck_subscriber_never_blocks_publish_and_loses_its_oldest_pops(broker):
    stuck = broker.subscribe("ada")

    started = time.monotonic()
    ids = [broker.publish("ada", summary(n)) for n in range(50)]

    assert time.monotonic() - started < 1.0
    assert [event_id for event_id, _ in drain(stuck)] == ids[-5:]
    assert stuck.dropped == 45


def test_a_closed_subscription_receives_nothing_and_is_forgotten(broker):
    stream = broker.subscribe("ada")

    stream.close()
    stream.close()
    broker.publish("ada", summary(1))

    assert stream.next(0.01) is None
    assert broker.listening("ada") == 0


def test_close_wakes_a_console_waiting_for_a_pop(broker):
    stream = broker.subscribe("ada")
    results: list[object] = []
    waiter = threading.Thread(target=lambda: results.append(stream.next(10.0)))
    waiter.start()

    stream.close()
    waiter.join(2.0)

    assert results == [None]


def test_concurrent_publishers_deliver_every_pop_once_and_in_id_order():
    broker = InProcessScreenPopBroker(queue_size=10_000)
    stream = broker.subscribe("ada")
    publishers = [
        threading.Thread(target=lambda: [broker.publish("ada", summary(n)) for n in range(200)])
        for _ in range(8)
    ]

    for thread in publishers:
        thread.start()
    received = [int(event_id) for event_id, _ in drain(stream, timeout=0.5)]
    for thread in publishers:
        thread.join()

    assert received == sorted(received)
    assert len(set(received)) == 8 * 200


def test_subscribers_come_and_go_while_pops_are_published():
    broker = InProcessScreenPopBroker()
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            broker.subscribe("ada").close()

    churners = [threading.Thread(target=churn) for _ in range(4)]
    for thread in churners:
        thread.start()
    for n in range(500):
        broker.publish("ada", summary(n))
    stop.set()
    for thread in churners:
        thread.join()

    assert broker.listening("ada") == 0
