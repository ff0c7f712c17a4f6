"""What only the Redis broker does: pops and call states across processes, Redis going away,
and a forget that reaches what Redis holds and what each process holds.

Two broker instances on one Redis stand for two server processes. Tests that stop, freeze
or restart Redis use a private redis-server (``private_redis``), never the shared one; they
run with short timeouts so recovery takes a fraction of a second.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from hub.desk import ConsoleEvent
from hub.models import Summary
from hub.ports import TransientError
from state.pops.redis import RedisScreenPopBroker
from state.pops.redis_streams import decode_entry
from tests.backends import PrivateRedis, free_port
from tests.fakes import wait_for
from tests.support import call_state, pop_summary, take_pops

WAIT = 10.0  # the longest a pop may take to arrive, Redis restarts included
FAST = {"timeout_s": 0.3, "block_s": 0.3}
Make = Callable[..., RedisScreenPopBroker]


@pytest.fixture
def make() -> Iterator[Make]:
    built: list[RedisScreenPopBroker] = []

    def build(url: str, **options: Any) -> RedisScreenPopBroker:
        built.append(RedisScreenPopBroker(url, **options))
        return built[-1]

    yield build
    for broker in built:
        broker.close()


@pytest.fixture
def pair(make: Make, redis_server: str, redis_prefix: str) -> tuple[Any, Any]:
    """Two instances on the shared Redis, as two server processes would be."""
    return make(redis_server, prefix=redis_prefix), make(redis_server, prefix=redis_prefix)


@pytest.fixture
def private_pair(make: Make, private_redis: PrivateRedis) -> tuple[Any, Any]:
    return make(private_redis.url, **FAST), make(private_redis.url, **FAST)


def received(stream: Any, count: int) -> list[tuple[str, ConsoleEvent]]:
    return take_pops(stream, count, WAIT)


def numbers(pops: list[tuple[str, ConsoleEvent]]) -> list[int]:
    """Which ``pop_summary(number)`` each pop was."""
    return [int(pop[1].call.sid[2:], 16) for pop in pops
            if isinstance(pop[1], Summary) and pop[1].call.sid]


def test_a_pop_published_through_one_instance_reaches_a_console_on_the_other(pair):
    first, second = pair
    console = second.subscribe("ada")

    first.publish("ada", pop_summary(1))

    assert [pop_summary(1)] == [pop[1] for pop in received(console, 1)]


def test_every_instance_gives_a_pop_the_same_event_id(pair):
    first, second = pair
    here, there = first.subscribe("ada"), second.subscribe("ada")

    first.publish("ada", pop_summary(1))

    assert received(here, 1) == received(there, 1)


def test_a_console_reconnecting_through_the_other_instance_misses_nothing(pair):
    first, second = pair
    console = first.subscribe("ada")
    first.publish("ada", pop_summary(1))
    last_event_id = received(console, 1)[0][0]
    console.close()
    first.publish("ada", pop_summary(2))
    first.publish("ada", pop_summary(3))

    reconnected = second.subscribe("ada", last_event_id=last_event_id)
    first.publish("ada", pop_summary(4))

    assert [2, 3, 4] == numbers(received(reconnected, 3))
    assert reconnected.next(0.1) is None


def test_a_call_state_published_through_one_instance_reaches_a_console_on_the_other(pair):
    first, second = pair
    console = second.subscribe("ada")

    first.publish("ada", call_state(1, "ringing", notes="Refund — see last order"))

    assert [call_state(1, "ringing", notes="Refund — see last order")] == [
        event for _, event in received(console, 1)]


def test_call_states_missed_on_one_instance_are_replayed_through_the_other(pair):
    first, second = pair
    console = first.subscribe("ada")
    first.publish("ada", pop_summary(1))
    last_event_id = received(console, 1)[0][0]
    console.close()
    first.publish("ada", call_state(1, "connected"))
    first.publish("ada", call_state(1, "ended"))

    reconnected = second.subscribe("ada", last_event_id=last_event_id)

    assert [call_state(1, "connected"), call_state(1, "ended")] == [
        event for _, event in received(reconnected, 2)]
    assert reconnected.next(0.1) is None


def test_a_pop_redis_kept_from_before_call_states_went_through_it_is_still_replayed(
    make, redis_server, redis_prefix
):
    client = redis.Redis.from_url(redis_server)
    old = pop_summary(1).model_dump_json(by_alias=True)
    entry_id = client.xadd(f"{redis_prefix}pops:feed", {"agent": "ada", "summary": old})
    client.xadd(f"{redis_prefix}pops:agent:ada", {"summary": old}, id=entry_id)
    client.close()
    broker = make(redis_server, prefix=redis_prefix)

    console = broker.subscribe("ada", last_event_id="0-1")

    assert [pop_summary(1)] == [event for _, event in received(console, 1)]


def test_many_consoles_reconnecting_at_once_each_get_what_they_missed(pair):
    first, second = pair
    console = first.subscribe("ada")
    first.publish("ada", pop_summary(1))
    last_event_id = received(console, 1)[0][0]
    first.publish("ada", pop_summary(2))
    received(console, 1)
    replayed: list[list[int]] = []

    def reconnect() -> None:
        replayed.append(numbers(received(second.subscribe("ada", last_event_id), 1)))

    threads = [threading.Thread(target=reconnect) for _ in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [[2]] * 100 == replayed


def test_redis_keeps_only_each_agents_last_pops_and_for_a_day(make, redis_server, redis_prefix):
    broker = make(redis_server, prefix=redis_prefix, replay=3)
    console = broker.subscribe("ada")
    for n in range(5):
        broker.publish("ada", pop_summary(n))
    received(console, 5)

    client = redis.Redis.from_url(redis_server)
    key = f"{redis_prefix}pops:agent:ada"
    assert 3 == client.xlen(key)
    assert 86_000 < client.ttl(key) <= 86_400
    client.close()


def test_publish_while_redis_is_down_returns_at_once(make, private_redis):
    broker = make(private_redis.url, **FAST)
    private_redis.stop()

    started = time.monotonic()
    for n in range(1000):
        broker.publish("ada", pop_summary(n))

    assert time.monotonic() - started < 0.5


def test_pops_published_while_redis_is_down_reach_consoles_when_it_is_back(private_pair,
                                                                           private_redis):
    first, second = private_pair
    console = second.subscribe("ada")
    private_redis.stop()

    for n in range(3):
        first.publish("ada", pop_summary(n))
    private_redis.start()

    assert [0, 1, 2] == numbers(received(console, 3))
    assert wait_for(lambda: first.held() == 0, WAIT)


def test_the_backlog_keeps_the_newest_pops_while_redis_is_down(make, private_redis):
    first = make(private_redis.url, backlog=3, **FAST)
    second = make(private_redis.url, **FAST)
    console = second.subscribe("ada")
    private_redis.stop()

    for n in range(5):
        first.publish("ada", pop_summary(n))
    held = first.held()
    private_redis.start()

    assert 3 == held
    assert [2, 3, 4] == numbers(received(console, 3))
    assert console.next(0.3) is None


def test_consoles_keep_their_streams_through_a_redis_restart(private_pair, private_redis):
    first, second = private_pair
    console = second.subscribe("ada")
    first.publish("ada", pop_summary(1))
    received(console, 1)

    private_redis.restart()
    first.publish("ada", pop_summary(2))

    assert [2] == numbers(received(console, 1))
    assert console.next(0.3) is None


def test_pops_flow_again_after_redis_forgets_its_scripts(private_pair, private_redis):
    first, second = private_pair
    console = second.subscribe("ada")
    first.publish("ada", pop_summary(1))
    received(console, 1)

    client = redis.Redis.from_url(private_redis.url)
    client.script_flush()
    client.close()
    first.publish("ada", pop_summary(2))

    assert [2] == numbers(received(console, 1))


def test_a_last_event_id_from_before_a_restart_gets_the_pops_kept_since(private_pair,
                                                                       private_redis):
    first, second = private_pair
    console = first.subscribe("ada")
    first.publish("ada", pop_summary(1))
    last_event_id = received(console, 1)[0][0]
    console.close()
    private_redis.restart()
    witness = first.subscribe("ada")
    for n in (2, 3):
        first.publish("ada", pop_summary(n))
    received(witness, 2)

    reconnected = second.subscribe("ada", last_event_id=last_event_id)

    assert [2, 3] == numbers(received(reconnected, 2))


def test_a_console_reconnecting_while_redis_does_not_answer_is_replayed_when_it_does(
        private_pair, private_redis):
    first, second = private_pair
    console = first.subscribe("ada")
    for n in (1, 2, 3):
        first.publish("ada", pop_summary(n))
    last_event_id = received(console, 3)[0][0]
    private_redis.freeze()

    reconnected = second.subscribe("ada", last_event_id=last_event_id)
    private_redis.thaw()

    assert [2, 3] == numbers(received(reconnected, 2))


def test_a_reader_that_missed_trimmed_feed_entries_catches_its_consoles_up(private_pair,
                                                                           private_redis):
    first, second = private_pair
    console = second.subscribe("ada")
    first.publish("ada", pop_summary(1))
    received(console, 1)
    client = redis.Redis.from_url(private_redis.url)
    # A pop whose feed entry was trimmed before this reader read it, then a lost connection.
    client.xadd("cahub:pops:agent:ada", {"summary": pop_summary(2).model_dump_json(by_alias=True)})
    client.xtrim("cahub:pops:feed", maxlen=0)
    client.client_kill_filter(_type="normal", skipme=True)
    client.close()

    assert [2] == numbers(received(console, 1))


def test_ping_raises_a_transient_error_when_redis_cannot_be_reached(make):
    broker = make(f"redis://127.0.0.1:{free_port()}/0", **FAST)

    with pytest.raises(TransientError, match="Redis"):
        broker.ping()


def test_building_a_broker_connects_to_nothing_and_starts_no_thread(make):
    before = {thread.name for thread in threading.enumerate()}

    make(f"redis://127.0.0.1:{free_port()}/0")

    assert not {t.name for t in threading.enumerate()} - before


def is_first(summary: Summary) -> bool:
    return summary.call.sid == pop_summary(1).call.sid


def stored_pops(client: redis.Redis, prefix: str) -> dict[str, list[int]]:
    """Of which call (``pop_summary(number)``'s) each event in each of the broker's streams
    in Redis is, a pop or a call state alike."""
    streams = sorted(key.decode() for key in client.scan_iter(match=f"{prefix}pops:*")
                     if client.type(key) == b"stream")
    return {key.removeprefix(prefix): [_call_number(decode_entry(fields))
                                       for _, fields in client.xrange(key)] for key in streams}


def _call_number(event: ConsoleEvent) -> int:
    sid = event.call.sid if isinstance(event, Summary) else event.call_sid
    assert sid is not None
    return int(sid[2:], 16)


def test_forget_deletes_a_calls_states_from_redis_with_its_pop(pair, redis_server,
                                                               redis_prefix):
    first, _ = pair
    witness = first.subscribe("ada")
    for event in (pop_summary(1), call_state(1, "connected"), pop_summary(2),
                  call_state(2, "ended")):
        first.publish("ada", event)
    received(witness, 4)

    dropped = first.forget(lambda event: _call_number(event) == 1)

    client = redis.Redis.from_url(redis_server)
    assert (2, {"pops:agent:ada": [2, 2], "pops:feed": [2, 2]}) == (
        dropped, stored_pops(client, redis_prefix))
    client.close()


def test_forget_deletes_the_pops_from_every_agent_stream_and_the_feed(pair, redis_server,
                                                                      redis_prefix):
    first, _ = pair
    witness = first.subscribe("bob")
    first.publish("ada", pop_summary(1))
    first.publish("bob", pop_summary(2))
    received(witness, 1)

    first.forget(is_first)

    client = redis.Redis.from_url(redis_server)
    assert {"pops:agent:ada": [], "pops:agent:bob": [2], "pops:feed": [2]} == (
        stored_pops(client, redis_prefix))
    client.close()


def test_forget_reaches_a_pop_only_the_feed_still_holds(make, redis_server, redis_prefix):
    broker = make(redis_server, prefix=redis_prefix, replay=1)
    witness = broker.subscribe("ada")
    for n in (1, 2):
        broker.publish("ada", pop_summary(n))
    received(witness, 2)  # pop 1 has left ada's stream (it keeps one) but not the feed

    assert 1 == broker.forget(is_first)

    client = redis.Redis.from_url(redis_server)
    assert [2] == stored_pops(client, redis_prefix)["pops:feed"]
    client.close()


def test_a_pop_forgotten_through_one_instance_is_replayed_by_no_other(pair):
    first, second = pair
    witness = first.subscribe("ada")
    first.publish("ada", pop_summary(1))
    received(witness, 1)

    first.forget(is_first)
    replayed = second.subscribe("ada", last_event_id="0-0")

    assert replayed.next(0.3) is None


def test_forget_drops_the_pops_waiting_for_redis_to_come_back(private_pair, private_redis):
    first, second = private_pair
    console = second.subscribe("ada")
    private_redis.stop()
    for n in (1, 2):
        first.publish("ada", pop_summary(n))

    with pytest.raises(TransientError):  # what Redis holds is still to be forgotten
        first.forget(is_first)
    private_redis.start()

    assert [2] == numbers(received(console, 1))
    assert console.next(0.3) is None


def test_forget_while_redis_cannot_be_reached_is_a_transient_error(make):
    broker = make(f"redis://127.0.0.1:{free_port()}/0", **FAST)

    with pytest.raises(TransientError, match="Redis"):
        broker.forget(is_first)
