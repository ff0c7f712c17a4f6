"""The ScreenPopBroker contract, run against the in-process broker and the Redis broker.

Every behaviour of the port, for pops and call states alike: delivery with an event id,
isolation between agents, live pops only for a console without an id, replay after
``Last-Event-ID`` (bounded, and all that is kept for an id from before a restart), bounded
queues that never block a publisher, closing, many threads at once, and ``forget``, which
drops a forgotten caller's pops (and their calls' states) from what is replayed and from
what consoles have not read yet. The Redis broker delivers in the background, so event ids
are learnt from what a console receives, never from ``publish``'s return value.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import pytest

from hub.desk import ConsoleEvent, event_name
from hub.models import (
    Ambiguity,
    Identity,
    PersonFacts,
    Summary,
    SummaryAudience,
    SummaryEvent,
)
from state.pops.memory import InProcessScreenPopBroker
from state.pops.redis import RedisScreenPopBroker
from tests.fakes import wait_for
from tests.support import call_state, pop_summary, take_pops

WAIT = 5.0  # the longest a pop may take to arrive; a passing test never waits this long


@dataclass
class BrokerKit:
    """How to build one adapter, and an event id newer than any it will issue."""

    make: Callable[..., Any]
    id_from_before_a_restart: str
    id_before_every_pop: str


@pytest.fixture(params=["in_process", "redis"])
def kit(request: pytest.FixtureRequest) -> Iterator[BrokerKit]:
    built: list[Any] = []

    def make(factory: Callable[..., Any], **options: Any) -> Any:
        built.append(factory(**options))
        return built[-1]

    if request.param == "in_process":
        yield BrokerKit(partial(make, InProcessScreenPopBroker), "999999", "0")
    else:
        url = request.getfixturevalue("redis_server")
        prefix = request.getfixturevalue("redis_prefix")
        factory = partial(RedisScreenPopBroker, url, prefix=prefix)
        yield BrokerKit(partial(make, factory), "99999999999999-0", "0-0")
    for broker in built:
        getattr(broker, "close", lambda: None)()


@pytest.fixture
def broker(kit: BrokerKit) -> Any:
    return kit.make(replay=3, queue_size=5)


def published(broker: Any, agent_id: str, *summaries: ConsoleEvent) -> list[str]:
    """Publish ``summaries`` (pops or call states) one by one; their event ids, as a console
    received them."""
    witness = broker.subscribe(agent_id)
    try:
        ids = []
        for item in summaries:
            broker.publish(agent_id, item)
            pop = witness.next(WAIT)
            assert pop is not None
            assert item == pop[1]
            ids.append(pop[0])
        return ids
    finally:
        witness.close()


def test_a_subscriber_receives_a_published_pop_with_an_event_id(broker):
    stream = broker.subscribe("ada")

    broker.publish("ada", pop_summary(1))

    event_id, received = take_pops(stream, 1)[0]
    assert pop_summary(1) == received
    assert isinstance(event_id, str)
    assert event_id


def test_each_pop_gets_an_event_id_of_its_own(broker):
    ids = published(broker, "ada", *(pop_summary(n) for n in range(3)))

    assert 3 == len(set(ids))


def test_a_pop_arrives_with_every_field_intact(broker):
    person = PersonFacts(source="embedded", profile_id="p-1", name="Ada Lovelace",
                         email="ada@example.com", loyalty_tier="gold", lifetime_value=1234.5,
                         churn_propensity=0.25,
                         audiences=(SummaryAudience(id="aud-1", name="Gold", status="realized"),),
                         recent_events=(SummaryEvent(timestamp=datetime(2026, 11, 23, 10, 4, 5,
                                                                        tzinfo=UTC),
                                                     type="web.visit", title="Pricing page"),),
                         last_campaign="Winter")
    full = Summary(**person.model_dump(), call=pop_summary(1).call,
                   identity=Identity(namespace="Phone_E.164", id="+14155550134"), found=True,
                   ambiguous=Ambiguity(count=2, candidates=(person,)), lookup_ms=1.25)
    stream = broker.subscribe("ada")

    broker.publish("ada", full)

    assert full == take_pops(stream, 1)[0][1]


def test_a_call_state_arrives_as_the_call_state_published_with_an_event_id(broker):
    stream = broker.subscribe("ada")

    broker.publish("ada", call_state(1, notes="Wants a refund — “soon”"))

    event_id, received = take_pops(stream, 1)[0]
    assert (call_state(1, notes="Wants a refund — “soon”"), "callstate") == (
        received, event_name(received))
    assert event_id


def test_pops_and_call_states_arrive_in_the_order_published(broker):
    stream = broker.subscribe("ada")
    sent = [pop_summary(1), call_state(1, "ringing"), call_state(1, "connected"), pop_summary(2)]

    for event in sent:
        broker.publish("ada", event)

    assert sent == [event for _, event in take_pops(stream, 4)]


def test_a_reconnecting_console_is_replayed_the_call_states_it_missed_like_pops(broker):
    seen, *missed = published(broker, "ada", pop_summary(1), call_state(1, "connected"),
                              call_state(1, "ended"))

    stream = broker.subscribe("ada", last_event_id=seen)

    assert [(missed[0], call_state(1, "connected")), (missed[1], call_state(1, "ended"))] == \
        take_pops(stream, 2)
    assert stream.next(0.05) is None


def test_an_agent_receives_only_its_own_pops(broker):
    ada, bob = broker.subscribe("ada"), broker.subscribe("bob")

    broker.publish("bob", pop_summary(1, "For Bob"))
    broker.publish("ada", pop_summary(2, "For Ada"))

    assert ["For Bob"] == [pop[1].name for pop in take_pops(bob, 1)]
    assert ["For Ada"] == [pop[1].name for pop in take_pops(ada, 1)]
    assert ada.next(0.05) is None


def test_every_console_of_an_agent_receives_the_pop(broker):
    first, second = broker.subscribe("ada"), broker.subscribe("ada")

    broker.publish("ada", pop_summary(1))

    assert take_pops(first, 1) == take_pops(second, 1)


def test_next_returns_none_when_nothing_arrives_in_time(broker):
    stream = broker.subscribe("ada")

    assert stream.next(0.01) is None


def test_a_new_subscription_without_an_event_id_gets_live_pops_only(broker):
    published(broker, "ada", pop_summary(1))
    stream = broker.subscribe("ada")

    broker.publish("ada", pop_summary(2))

    assert [pop_summary(2)] == [pop[1] for pop in take_pops(stream, 1)]


def test_a_reconnecting_console_gets_the_pops_after_its_last_event_id(broker):
    seen, *missed = published(broker, "ada", pop_summary(1), pop_summary(3), pop_summary(4))
    published(broker, "bob", pop_summary(2))

    stream = broker.subscribe("ada", last_event_id=seen)

    assert missed == [event_id for event_id, _ in take_pops(stream, 2)]
    assert stream.next(0.05) is None


def test_replay_is_limited_to_the_last_pops_kept(broker):
    first, *later = published(broker, "ada", *(pop_summary(n) for n in range(6)))

    stream = broker.subscribe("ada", last_event_id=first)

    assert later[-3:] == [event_id for event_id, _ in take_pops(stream, 3)]
    assert stream.next(0.05) is None


def test_an_event_id_from_before_a_restart_replays_everything_kept(kit, broker):
    kept = published(broker, "ada", pop_summary(1), pop_summary(2))

    stream = broker.subscribe("ada", last_event_id=kit.id_from_before_a_restart)

    assert kept == [event_id for event_id, _ in take_pops(stream, 2)]


@pytest.mark.parametrize("garbage", ["", "abc", "-1", "1e3", "٣", "1-2-3", "1-", "9" * 40,
                                     "9" * 21 + "-0"])
def test_an_unusable_event_id_replays_nothing(broker, garbage):
    published(broker, "ada", pop_summary(1))
    stream = broker.subscribe("ada", last_event_id=garbage)

    broker.publish("ada", pop_summary(2))

    assert [pop_summary(2)] == [pop[1] for pop in take_pops(stream, 1)]


def test_a_stuck_subscriber_never_blocks_publish_and_loses_its_oldest_pops(broker):
    stuck = broker.subscribe("ada")

    started = time.monotonic()
    for n in range(50):
        broker.publish("ada", pop_summary(n))

    assert time.monotonic() - started < 1.0
    assert wait_for(lambda: stuck.dropped == 45, WAIT)
    assert [pop_summary(n) for n in range(45, 50)] == [pop[1] for pop in take_pops(stuck, 5)]


def test_a_closed_subscription_receives_nothing_and_is_forgotten(broker):
    stream = broker.subscribe("ada")

    stream.close()
    stream.close()
    listening = broker.listening("ada")
    published(broker, "ada", pop_summary(1))

    assert 0 == listening
    assert stream.next(0.01) is None


def test_close_wakes_a_console_waiting_for_a_pop(broker):
    stream = broker.subscribe("ada")
    results: list[object] = []
    waiter = threading.Thread(target=lambda: results.append(stream.next(10.0)))
    waiter.start()

    stream.close()
    waiter.join(2.0)

    assert [None] == results


def test_concurrent_publishers_deliver_every_pop_once_in_each_publishers_order(kit):
    broker = kit.make(queue_size=10_000)
    stream = broker.subscribe("ada")

    def publish_run(first: int) -> None:
        for n in range(first, first + 200):
            broker.publish("ada", pop_summary(n))

    publishers = [threading.Thread(target=publish_run, args=(t * 1000,)) for t in range(8)]
    for thread in publishers:
        thread.start()
    received = [int(pop[1].call.sid[2:], 16) for pop in take_pops(stream, 8 * 200)]
    for thread in publishers:
        thread.join()

    assert stream.next(0.05) is None
    for t in range(8):
        assert list(range(t * 1000, t * 1000 + 200)) == [n for n in received if n // 1000 == t]


def test_subscribers_come_and_go_while_pops_are_published(kit):
    broker = kit.make()
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            broker.subscribe("ada").close()

    churners = [threading.Thread(target=churn) for _ in range(4)]
    for thread in churners:
        thread.start()
    for n in range(500):
        broker.publish("ada", pop_summary(n))
    stop.set()
    for thread in churners:
        thread.join()

    assert 0 == broker.listening("ada")


def is_ada(summary: Summary) -> bool:
    return summary.name == "Ada Lovelace"


def test_forget_drops_kept_pops_from_the_replay_history(kit, broker):
    published(broker, "ada", pop_summary(1), pop_summary(2, "Charles Babbage"))

    dropped = broker.forget(is_ada)
    stream = broker.subscribe("ada", last_event_id=kit.id_before_every_pop)

    assert (1, ["Charles Babbage"]) == (dropped, [pop[1].name for pop in take_pops(stream, 1)])
    assert stream.next(0.05) is None


def test_forget_reaches_the_pops_of_every_agent(kit, broker):
    published(broker, "ada", pop_summary(1))
    published(broker, "bob", pop_summary(2))

    dropped = broker.forget(is_ada)
    replays = [broker.subscribe(agent, last_event_id=kit.id_before_every_pop)
               for agent in ("ada", "bob")]

    assert (2, [None, None]) == (dropped, [stream.next(0.05) for stream in replays])


def test_forget_drops_pops_a_console_has_not_read_yet(broker):
    stream = broker.subscribe("ada")
    published(broker, "ada", pop_summary(1), pop_summary(2, "Charles Babbage"))

    broker.forget(is_ada)

    assert ["Charles Babbage"] == [pop[1].name for pop in take_pops(stream, 1)]
    assert stream.next(0.05) is None


def test_forget_leaves_other_callers_pops_and_new_ones_alone(broker):
    stream = broker.subscribe("ada")
    published(broker, "ada", pop_summary(1, "Charles Babbage"))

    broker.forget(is_ada)
    broker.publish("ada", pop_summary(2, "Grace Hopper"))

    assert ["Charles Babbage", "Grace Hopper"] == [pop[1].name for pop in take_pops(stream, 2)]


def test_forget_of_nobody_drops_nothing(broker):
    published(broker, "ada", pop_summary(1))

    assert 0 == broker.forget(lambda summary: False)


def of_call(number: int) -> Callable[[ConsoleEvent], bool]:
    """Whether an event is a pop or a call state of the call ``pop_summary(number)`` is."""
    sid = f"CA{number:032x}"
    return lambda event: sid == (event.call.sid if isinstance(event, Summary)
                                 else event.call_sid)


def test_forget_drops_a_calls_states_with_its_pop_kept_and_queued(kit, broker):
    stream = broker.subscribe("ada")
    sent = [pop_summary(1), call_state(1, "connected"), pop_summary(2, "Charles Babbage"),
            call_state(2, "connected")]
    published(broker, "ada", *sent)

    broker.forget(of_call(1))
    replay = broker.subscribe("ada", last_event_id=kit.id_before_every_pop)

    assert sent[2:] == [event for _, event in take_pops(stream, 2)]
    assert sent[2:] == [event for _, event in take_pops(replay, 2)]
    assert (None, None) == (stream.next(0.05), replay.next(0.05))
