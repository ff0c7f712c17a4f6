"""The cache (with shared in-flight lookups) and the circuit breaker around remote providers."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from hub.models import Identity, Profile
from hub.ports import TransientError
from lookup.resilience import CachedProvider, CircuitBreaker
from tests.fakes import (
    FailingProvider,
    InMemoryProfileProvider,
    SecondsClock,
    SlowProvider,
    far,
    wait_for,
)

ADA_ID = Identity(namespace="Phone_E.164", id="+14155550134")
ADA = Profile(source="memory", profile_id="ada")


class FlakyProvider(InMemoryProfileProvider):
    """Fails while ``failing`` is set, answers from memory otherwise."""

    def __init__(self) -> None:
        super().__init__({ADA_ID: ADA}, name="flaky")
        self.failing = True

    def lookup(self, identities: Sequence[Identity], deadline: float) -> Profile | None:
        self.asked.append(tuple(identities))
        if self.failing:
            raise TransientError("503")
        return super().lookup(identities, deadline)


def test_a_repeat_lookup_is_served_from_the_cache() -> None:
    inner = InMemoryProfileProvider({ADA_ID: ADA})
    cached = CachedProvider(inner, hit_ttl=60, miss_ttl=5)
    answers = [cached.lookup([ADA_ID], far()) for _ in range(3)]
    assert ([ADA, ADA, ADA], 1) == (answers, len(inner.asked))


def test_hits_expire_after_their_ttl() -> None:
    clock, inner = SecondsClock(), InMemoryProfileProvider({ADA_ID: ADA})
    cached = CachedProvider(inner, hit_ttl=60, miss_ttl=5, clock=clock)
    cached.lookup([ADA_ID], far())
    clock.now += 61
    cached.lookup([ADA_ID], far())
    assert 2 == len(inner.asked)


def test_misses_are_kept_for_the_shorter_ttl() -> None:
    clock, inner = SecondsClock(), InMemoryProfileProvider()
    cached = CachedProvider(inner, hit_ttl=60, miss_ttl=5, clock=clock)
    cached.lookup([ADA_ID], far())
    clock.now += 4
    cached.lookup([ADA_ID], far())
    clock.now += 2
    cached.lookup([ADA_ID], far())
    assert 2 == len(inner.asked)


def test_failures_are_not_cached() -> None:
    inner = FlakyProvider()
    cached = CachedProvider(inner, hit_ttl=60, miss_ttl=5)
    with pytest.raises(TransientError):
        cached.lookup([ADA_ID], far())
    inner.failing = False
    assert ADA == cached.lookup([ADA_ID], far())


def test_the_oldest_entries_make_way_when_the_cache_is_full() -> None:
    inner = InMemoryProfileProvider()
    cached = CachedProvider(inner, hit_ttl=60, miss_ttl=60, max_entries=2)
    for number in ("+12025550101", "+12025550102", "+12025550103", "+12025550101"):
        cached.lookup([Identity(namespace="Phone", id=number)], far())
    assert 4 == len(inner.asked)


def test_concurrent_lookups_of_one_caller_share_one_request() -> None:
    slow = SlowProvider(delay=5.0, profiles={ADA_ID: ADA})
    cached = CachedProvider(slow, hit_ttl=60, miss_ttl=5)
    answers: list[object] = []
    threads = [threading.Thread(target=lambda: answers.append(cached.lookup([ADA_ID], far())))
               for _ in range(5)]
    for thread in threads:
        thread.start()
    time.sleep(0.1)
    slow.release.set()
    for thread in threads:
        thread.join(5)
    assert ([ADA] * 5, 1) == (answers, len(slow.asked))


def test_a_follower_gives_up_at_its_deadline() -> None:
    slow = SlowProvider(delay=5.0, profiles={ADA_ID: ADA})
    cached = CachedProvider(slow, hit_ttl=60, miss_ttl=5)
    leader = threading.Thread(target=lambda: cached.lookup([ADA_ID], far()))
    leader.start()
    time.sleep(0.05)
    with pytest.raises(TransientError):
        cached.lookup([ADA_ID], time.monotonic() + 0.05)
    slow.release.set()
    leader.join(5)


def test_the_breaker_opens_after_repeated_failures_and_fails_fast() -> None:
    inner = FailingProvider()
    breaker = CircuitBreaker(inner, threshold=3, reset_after=30, clock=SecondsClock())
    for _ in range(5):
        with pytest.raises(TransientError):
            breaker.lookup([ADA_ID], far())
    assert (3, "open") == (len(inner.asked), breaker.state()["circuit"])


def test_the_breaker_lets_one_trial_through_after_the_pause() -> None:
    clock, inner = SecondsClock(), FlakyProvider()
    breaker = CircuitBreaker(inner, threshold=2, reset_after=30, clock=clock)
    for _ in range(2):
        with pytest.raises(TransientError):
            breaker.lookup([ADA_ID], far())
    clock.now += 31
    inner.failing = False
    assert (ADA, "closed") == (breaker.lookup([ADA_ID], far()), breaker.state()["circuit"])


def test_a_failed_trial_opens_the_breaker_again() -> None:
    clock, inner = SecondsClock(), FlakyProvider()
    breaker = CircuitBreaker(inner, threshold=2, reset_after=30, clock=clock)
    for _ in range(3):
        clock.now += 31
        with pytest.raises(TransientError):
            breaker.lookup([ADA_ID], far())
    assert "open" == breaker.state()["circuit"]


def test_the_cache_serves_a_known_caller_while_the_breaker_is_open() -> None:
    clock, inner = SecondsClock(), FlakyProvider()
    inner.failing = False
    guarded = CachedProvider(CircuitBreaker(inner, threshold=1, clock=clock), 60, 5, clock=clock)
    guarded.lookup([ADA_ID], far())
    inner.failing = True
    other = Identity(namespace="Phone", id="+12025550100")
    with pytest.raises(TransientError):
        guarded.lookup([other], far())
    assert ADA == guarded.lookup([ADA_ID], far())
    assert "open" == guarded.state()["circuit"]


def test_forget_empties_the_cache() -> None:
    inner = InMemoryProfileProvider({ADA_ID: ADA})
    cache = CachedProvider(inner, hit_ttl=60, miss_ttl=60)
    cache.lookup([ADA_ID], far())

    assert 1 == cache.forget()
    cache.lookup([ADA_ID], far())
    assert 2 == len(inner.asked)


def test_an_answer_asked_for_before_a_forget_is_not_kept() -> None:
    slow = SlowProvider(delay=5.0, profiles={ADA_ID: ADA})
    cache = CachedProvider(slow, hit_ttl=60, miss_ttl=60)
    looking = threading.Thread(target=cache.lookup, args=([ADA_ID], far()))
    looking.start()
    assert wait_for(lambda: cache.state()["cache_misses"] == 1)

    cache.forget()
    slow.release.set()
    looking.join(5)

    assert 0 == cache.state()["cached"]
