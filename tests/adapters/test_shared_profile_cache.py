"""A remote provider's cache with two levels, on several servers sharing one real Redis.

Each ``CachedProvider`` here is one server's; they share a Redis key prefix and secret, as
servers of one hub do, and ask one remote provider (a counting fake), unless a test gives
each its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence

import pytest
import redis

from hub.models import Identity, Profile
from hub.ports import TransientError
from lookup.resilience import CachedProvider
from state.cache.redis import RedisProfileCache
from tests.backends import PrivateRedis, free_port
from tests.fakes import InMemoryProfileProvider, SecondsClock, far, wait_for

ADA_ID = Identity(namespace="Phone_E.164", id="+14155550134")
ADA = Profile(source="remote", profile_id="ada")
BOB_ID = Identity(namespace="Phone_E.164", id="+12025550199")
SECRET = b"the forget log's secret........."
TEST_TIMEOUT_S = 1.0  # the machine is shared: Redis being slow is not what these test


class GatedProvider(InMemoryProfileProvider):
    """Answers (or fails, with ``failing``) once ``gate`` is set; ``entered`` is set once it
    is asked (the server asking holds the claim, and read the generation before)."""

    def __init__(self, failing: bool = False) -> None:
        super().__init__({ADA_ID: ADA}, name="remote")
        self.gate, self.entered, self.failing = threading.Event(), threading.Event(), failing

    def lookup(self, identities: Sequence[Identity], deadline: float) -> Profile | None:
        self.entered.set()
        self.gate.wait(10)
        if self.failing:
            self.asked.append(tuple(identities))
            raise TransientError("503")
        return super().lookup(identities, deadline)


Servers = Callable[..., CachedProvider]


@pytest.fixture
def server(redis_server: str, redis_prefix: str) -> Iterator[Servers]:
    """Makes one server's cache in front of ``provider``, sharing the test's Redis prefix."""
    made: list[CachedProvider] = []

    def make(provider: InMemoryProfileProvider, url: str = redis_server,
             timeout_s: float = TEST_TIMEOUT_S, **options: object) -> CachedProvider:
        shared = RedisProfileCache(url, provider="remote", secret=SECRET, hit_ttl=300,
                                   miss_ttl=30, prefix=redis_prefix, timeout_s=timeout_s,
                                   connect_timeout_s=timeout_s)
        made.append(CachedProvider(provider, 300, 30, shared=shared, **options))  # type: ignore[arg-type]
        return made[-1]

    yield make
    for cache in made:
        cache.close()


def cache_keys(url: str, prefix: str) -> list[str]:
    """The answers Redis holds under ``prefix`` (not claims, not the generation)."""
    client = redis.Redis.from_url(url)
    try:
        return [key.decode() for key in client.scan_iter(match=f"{prefix}cache:*:*")
                if not key.endswith(b":asking")]
    finally:
        client.close()


def in_thread(action: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    results: list[object] = []
    thread = threading.Thread(target=lambda: results.append(action()))
    thread.start()
    return thread, results


def raised(action: Callable[[], object]) -> object:
    """What ``action()`` returned, or the type of the exception it raised."""
    try:
        return action()
    except Exception as exc:  # the test compares the type
        return type(exc)


def test_a_caller_answered_on_one_server_is_served_from_cache_on_another(
        server: Servers) -> None:
    remote = InMemoryProfileProvider({ADA_ID: ADA}, name="remote")
    one, other = server(remote), server(remote)
    one.lookup([ADA_ID], far())
    assert (ADA, 1) == (other.lookup([ADA_ID], far()), len(remote.asked))
    assert 1 == other.state()["shared_cache"]["hits"]  # type: ignore[index]


def test_a_miss_on_one_server_is_a_miss_on_another_without_asking_again(
        server: Servers) -> None:
    remote = InMemoryProfileProvider(name="remote")
    one, other = server(remote), server(remote)
    one.lookup([BOB_ID], far())
    assert (None, 1) == (other.lookup([BOB_ID], far()), len(remote.asked))


def while_one_asks(remote: GatedProvider, one: CachedProvider,
                   other: CachedProvider) -> tuple[object, object]:
    """``one`` looks Ada up and asks ``remote``; ``other`` looks her up meanwhile, and waits;
    then ``remote`` answers. What each got (the type of what it raised, if it did)."""
    first, got = in_thread(lambda: raised(lambda: one.lookup([ADA_ID], far())))
    assert remote.entered.wait(5)
    second, more = in_thread(lambda: other.lookup([ADA_ID], far()))
    assert wait_for(lambda: other.state()["shared_cache"]["waits"] == 1)  # type: ignore[index]
    remote.gate.set()
    first.join(5)
    second.join(5)
    return got[0], more[0]


def test_concurrent_lookups_on_two_servers_share_one_request(server: Servers) -> None:
    remote = GatedProvider()
    assert ((ADA, ADA), 1) == (while_one_asks(remote, server(remote), server(remote)),
                               len(remote.asked))


def test_a_server_waiting_for_another_gives_up_at_its_deadline(server: Servers) -> None:
    remote = GatedProvider()
    one, other = server(remote), server(remote, timeout_s=0.05)  # a budget of 200 ms
    leader, _ = in_thread(lambda: one.lookup([ADA_ID], far()))
    assert remote.entered.wait(5)
    started = time.monotonic()
    with pytest.raises(TransientError):
        other.lookup([ADA_ID], started + 0.5)
    waited = time.monotonic() - started
    remote.gate.set()
    leader.join(5)
    # It stops looking once a call to Redis would not fit before the deadline.
    assert 0.5 - 0.2 - 0.01 <= waited <= 0.5


def test_when_the_server_asking_fails_the_waiting_one_asks_itself(server: Servers) -> None:
    failing, working = GatedProvider(failing=True), InMemoryProfileProvider({ADA_ID: ADA},
                                                                            name="remote")
    got = while_one_asks(failing, server(failing), server(working))
    assert ((TransientError, ADA), 1, 1) == (got, len(failing.asked), len(working.asked))


def test_a_redis_that_cannot_be_reached_leaves_the_provider_answering(server: Servers) -> None:
    remote = InMemoryProfileProvider({ADA_ID: ADA}, name="remote")
    cache = server(remote, url=f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.01)
    assert ADA == cache.lookup([ADA_ID], far())
    shared = cache.state()["shared_cache"]
    assert (1, True) == (shared["errors"], "ConnectionError" in shared["last_error"])  # type: ignore[index,operator]


def test_an_answer_redis_could_not_take_is_kept_here_as_long_as_the_settings_say(
        server: Servers) -> None:
    clock, remote = SecondsClock(), InMemoryProfileProvider({ADA_ID: ADA}, name="remote")
    cache = server(remote, url=f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.01,
                   clock=clock)
    cache.lookup([ADA_ID], far())
    clock.now += 299  # far past the short local TTL, within the hit TTL
    assert (ADA, 1) == (cache.lookup([ADA_ID], far()), len(remote.asked))


def connected(cache: CachedProvider) -> bool:
    """Whether a lookup went through the shared cache (connecting may outlast a 10 ms
    timeout on a busy machine: then the next lookup after the pause is tried)."""
    errors = cache.state()["shared_cache"]["errors"]  # type: ignore[index]
    cache.lookup([BOB_ID], far())
    return errors == cache.state()["shared_cache"]["errors"]  # type: ignore[index]


def test_a_redis_that_stops_answering_holds_a_lookup_no_longer_than_its_budget(
        server: Servers, private_redis: PrivateRedis) -> None:
    remote = InMemoryProfileProvider({ADA_ID: ADA}, name="remote")
    cache = server(remote, url=private_redis.url, timeout_s=0.01)
    assert wait_for(lambda: connected(cache))  # as a server in service is
    private_redis.freeze()
    started = time.monotonic()
    answer = cache.lookup([ADA_ID], far())
    took = time.monotonic() - started
    private_redis.thaw()
    assert ADA == answer
    assert took <= 0.04 + 0.02  # the budget (a pool wait, a connection, a command's
    # write and read: 10 ms each), and a busy machine's slack


def test_after_a_failure_the_shared_cache_is_left_alone_for_a_pause(
        server: Servers, private_redis: PrivateRedis) -> None:
    remote = InMemoryProfileProvider({ADA_ID: ADA}, name="remote")
    cache = server(remote, url=private_redis.url, timeout_s=0.01)
    assert wait_for(lambda: connected(cache))
    private_redis.freeze()
    cache.lookup([ADA_ID], far())
    cache.lookup([Identity(namespace="Phone_E.164", id="+12025550100")], far())
    private_redis.thaw()
    shared = cache.state()["shared_cache"]
    assert (1, 1) == (shared["errors"], shared["skipped"])  # type: ignore[index]


def test_an_answer_read_from_redis_is_kept_here_only_for_the_local_ttl(
        server: Servers, redis_server: str, redis_prefix: str) -> None:
    clock, remote = SecondsClock(), InMemoryProfileProvider({ADA_ID: ADA}, name="remote")
    one, other = server(remote), server(remote, clock=clock, local_ttl=5.0)
    one.lookup([ADA_ID], far())
    other.lookup([ADA_ID], far())
    client = redis.Redis.from_url(redis_server)
    client.delete(*cache_keys(redis_server, redis_prefix))  # dropped by an operator
    client.close()
    clock.now += 4
    served_here = other.lookup([ADA_ID], far())
    clock.now += 2
    other.lookup([ADA_ID], far())
    assert (ADA, 2) == (served_here, len(remote.asked))


def test_forget_on_any_server_leaves_no_server_serving_the_person_from_cache(
        server: Servers, redis_server: str, redis_prefix: str) -> None:
    remote = InMemoryProfileProvider({ADA_ID: ADA}, name="remote")
    one, other, third = server(remote), server(remote), server(remote)
    one.lookup([ADA_ID], far())
    other.lookup([ADA_ID], far())
    # Each server's forget guard runs its cleaner; the first empties Redis for all.
    assert (2, 1) == (one.forget(), other.forget())
    assert ([], 0, 0) == (cache_keys(redis_server, redis_prefix), one.state()["cached"],
                          other.state()["cached"])
    third.lookup([ADA_ID], far())
    assert 2 == len(remote.asked)


def test_a_server_that_has_not_applied_a_forget_yet_is_not_served_from_redis(
        server: Servers) -> None:
    remote = InMemoryProfileProvider({ADA_ID: ADA}, name="remote")
    one, other = server(remote), server(remote)
    one.lookup([ADA_ID], far())
    one.forget()
    other.lookup([ADA_ID], far())
    assert 2 == len(remote.asked)


def test_an_answer_asked_for_before_a_forget_on_another_server_is_kept_nowhere(
        server: Servers, redis_server: str, redis_prefix: str) -> None:
    remote = GatedProvider()
    one, other = server(remote), server(remote)
    asking, answers = in_thread(lambda: one.lookup([ADA_ID], far()))
    assert remote.entered.wait(5)
    other.forget()
    remote.gate.set()
    asking.join(5)
    assert ([ADA], []) == (answers, cache_keys(redis_server, redis_prefix))
    one.lookup([ADA_ID], far())
    assert 2 == len(remote.asked)  # nor in the asking server's own cache


def test_forget_with_redis_away_empties_this_server_and_raises_for_the_guard_to_retry(
        server: Servers) -> None:
    remote = InMemoryProfileProvider({ADA_ID: ADA}, name="remote")
    cache = server(remote, url=f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.01)
    cache.lookup([ADA_ID], far())
    with pytest.raises(TransientError):
        cache.forget()
    assert 0 == cache.state()["cached"]
