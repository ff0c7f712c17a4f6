"""The ProfileCache contract, run against every adapter (one contract suite per port).

Each adapter is given as a ``Backend`` whose ``make(hit_ttl, miss_ttl)`` returns a cache; the
Redis one on a key prefix of the test's own (real Redis, ``tests.backends``). The contract:

- an answer written (a profile, a shared number's match, a miss) is read back equal, with
  how much longer it is kept: a hit for the hit TTL, a miss for the shorter miss TTL, never
  longer than a ``ttl_s`` given to the write; then it is gone;
- ``forget`` drops every answer and says how many; a write that names a generation read
  before a forget keeps nothing and says so;
- a claim is given once, until it is released by its holder or lapses, and not while the
  answer is kept (it came since the cache was read).

Then what only one adapter promises: the in-process cache is bounded (the least recently
used answer makes way); Redis is shared by every server using the same prefix and secret,
holds no number or email in its key names, lets every key it writes expire (its bound), and
when it cannot be reached or stops answering every call raises ``TransientError`` within
the cache's ``budget_s``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis

from hub.models import AmbiguousMatch, AudienceMembership, ExperienceEvent, Identity, Profile
from hub.ports import Answer, ProfileCache, TransientError
from state.cache.memory import InProcessProfileCache
from state.cache.redis import RedisProfileCache
from tests.backends import PrivateRedis, free_port
from tests.fakes import wait_for

ADA_PHONE = Identity(namespace="Phone_E.164", id="+14155550134")
ADA_EMAIL = Identity(namespace="Email", id="ada@example.com")
ADA = Profile(
    source="aep", profile_id="XID-ada",
    attributes={"person": {"name": {"firstName": "Ada"}}, "loyalty": {"tier": "gold"}},
    identities=(ADA_PHONE, ADA_EMAIL),
    audiences=(AudienceMembership(id="aud-gold", name="Gold members"),),
    events=(ExperienceEvent(id="e1", timestamp="2026-11-20T10:00:00Z",
                            type="commerce.purchases", data={"value": 1}),),
)
SHARED = AmbiguousMatch(source="aep", identity=Identity(namespace="Phone", id="+12025550100"),
                        count=3, candidates=(ADA,))
BOB = (Identity(namespace="Phone_E.164", id="+12025550199"),)
SECRET = b"a secret every server shares...."
TEST_TIMEOUT_S = 1.0  # the machine is shared: the contract is not about Redis's speed


@dataclass
class Backend:
    kind: str
    make: Callable[..., ProfileCache]


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    made: list[Any] = []

    def make(hit_ttl: float = 60.0, miss_ttl: float = 5.0, **extra: Any) -> ProfileCache:
        if request.param == "memory":
            made.append(InProcessProfileCache(hit_ttl, miss_ttl, **extra))
        else:
            made.append(redis_cache(request.getfixturevalue("redis_server"),
                                    request.getfixturevalue("redis_prefix"),
                                    hit_ttl=hit_ttl, miss_ttl=miss_ttl, **extra))
        return made[-1]  # type: ignore[no-any-return]

    yield Backend(request.param, make)
    for cache in made:
        getattr(cache, "close", lambda: None)()


def redis_cache(url: str, prefix: str, **options: Any) -> RedisProfileCache:
    settings = {"provider": "aep", "secret": SECRET, "hit_ttl": 60.0, "miss_ttl": 5.0,
                "prefix": prefix, "timeout_s": TEST_TIMEOUT_S,
                "connect_timeout_s": TEST_TIMEOUT_S, **options}
    return RedisProfileCache(url, **settings)


def kept(cache: ProfileCache, identities: tuple[Identity, ...]) -> Answer | str:
    """The answer the cache holds, or "nothing"."""
    cached = cache.read(identities).cached
    return "nothing" if cached is None else cached.answer


def ttl_left(cache: ProfileCache, identities: tuple[Identity, ...]) -> float:
    """How much longer the cache keeps its answer for ``identities`` (0: it has none)."""
    cached = cache.read(identities).cached
    return 0.0 if cached is None else cached.ttl_s


def written(cache: ProfileCache, identities: tuple[Identity, ...], answer: Answer,
            ttl_s: float | None = None) -> bool:
    return cache.write(identities, answer, cache.read(identities).generation, ttl_s)


@pytest.mark.parametrize("answer", [ADA, SHARED, None], ids=["profile", "ambiguous", "miss"])
def test_an_answer_written_is_read_back_equal(backend: Backend, answer: Answer) -> None:
    cache = backend.make()
    assert written(cache, (ADA_PHONE, ADA_EMAIL), answer)
    assert answer == kept(cache, (ADA_PHONE, ADA_EMAIL))


def test_identities_never_written_have_nothing_kept(backend: Backend) -> None:
    cache = backend.make()
    written(cache, (ADA_PHONE,), ADA)
    assert ("nothing", "nothing") == (kept(cache, BOB), kept(cache, (ADA_PHONE, ADA_EMAIL)))


def test_a_hit_is_kept_for_the_hit_ttl_and_a_miss_for_the_shorter_one(backend: Backend) -> None:
    cache = backend.make(hit_ttl=60.0, miss_ttl=5.0)
    written(cache, (ADA_PHONE,), ADA)
    written(cache, BOB, None)
    assert 5.0 < ttl_left(cache, (ADA_PHONE,)) <= 60.0
    assert 0.0 < ttl_left(cache, BOB) <= 5.0


def test_an_answer_is_gone_once_its_ttl_ran_out(backend: Backend) -> None:
    cache = backend.make(hit_ttl=0.2, miss_ttl=0.1)
    written(cache, (ADA_PHONE,), ADA)
    time.sleep(0.3)
    assert "nothing" == kept(cache, (ADA_PHONE,))


def test_a_write_keeps_an_answer_no_longer_than_the_ttl_it_is_given(backend: Backend) -> None:
    cache = backend.make(hit_ttl=60.0, miss_ttl=5.0)
    written(cache, (ADA_PHONE,), ADA, ttl_s=2.0)
    written(cache, BOB, None, ttl_s=30.0)  # the miss TTL still bounds it
    assert 0.0 < ttl_left(cache, (ADA_PHONE,)) <= 2.0
    assert 0.0 < ttl_left(cache, BOB) <= 5.0


def test_forget_drops_every_answer_and_says_how_many(backend: Backend) -> None:
    cache = backend.make()
    written(cache, (ADA_PHONE,), ADA)
    written(cache, BOB, None)
    assert 2 == cache.forget()
    assert ("nothing", "nothing") == (kept(cache, (ADA_PHONE,)), kept(cache, BOB))


def test_a_write_of_an_answer_read_before_a_forget_keeps_nothing(backend: Backend) -> None:
    cache = backend.make()
    before = cache.read((ADA_PHONE,)).generation
    cache.forget()
    assert False is cache.write((ADA_PHONE,), ADA, before)
    assert "nothing" == kept(cache, (ADA_PHONE,))


def test_a_write_of_an_answer_read_after_a_forget_is_kept(backend: Backend) -> None:
    cache = backend.make()
    cache.forget()
    assert written(cache, (ADA_PHONE,), ADA)
    assert ADA == kept(cache, (ADA_PHONE,))


def test_a_claim_is_given_once_until_its_holder_releases_it(backend: Backend) -> None:
    cache = backend.make()
    first = cache.claim((ADA_PHONE,), ttl_s=30)
    assert first is not None
    assert None is cache.claim((ADA_PHONE,), ttl_s=30)
    cache.release((ADA_PHONE,), first)
    assert None is not cache.claim((ADA_PHONE,), ttl_s=30)


def test_a_release_with_another_token_leaves_the_claim_held(backend: Backend) -> None:
    cache = backend.make()
    cache.claim((ADA_PHONE,), ttl_s=30)
    cache.release((ADA_PHONE,), "not-the-holder")
    assert None is cache.claim((ADA_PHONE,), ttl_s=30)


def test_a_claim_lapses_after_its_ttl(backend: Backend) -> None:
    cache = backend.make()
    cache.claim((ADA_PHONE,), ttl_s=0.1)
    time.sleep(0.2)
    assert None is not cache.claim((ADA_PHONE,), ttl_s=30)


def test_no_claim_is_given_once_the_answer_is_kept(backend: Backend) -> None:
    cache = backend.make()
    written(cache, (ADA_PHONE,), ADA)
    assert None is cache.claim((ADA_PHONE,), ttl_s=30)


def test_a_claim_of_other_identities_is_given(backend: Backend) -> None:
    cache = backend.make()
    cache.claim((ADA_PHONE,), ttl_s=30)
    assert None is not cache.claim(BOB, ttl_s=30)


# The in-process cache: bounded.

def test_the_least_recently_used_answer_makes_way_when_the_cache_is_full() -> None:
    cache = InProcessProfileCache(hit_ttl=60, miss_ttl=60, max_entries=2)
    numbers = [(Identity(namespace="Phone", id=f"+1202555010{i}"),) for i in range(3)]
    written(cache, numbers[0], None)
    written(cache, numbers[1], None)
    cache.read(numbers[0])  # used again: the second is now the least recently used
    written(cache, numbers[2], None)
    assert [None, "nothing", None] == [kept(cache, number) for number in numbers]


# Redis: shared, private in its key names, bounded by TTLs, failing fast.

@pytest.fixture
def two_servers(redis_server: str, redis_prefix: str) -> Iterator[tuple[RedisProfileCache, ...]]:
    caches = (redis_cache(redis_server, redis_prefix), redis_cache(redis_server, redis_prefix))
    yield caches
    for cache in caches:
        cache.close()


def test_a_second_server_reads_what_the_first_wrote(
        two_servers: tuple[RedisProfileCache, ...]) -> None:
    one, other = two_servers
    written(one, (ADA_PHONE,), ADA)
    assert ADA == kept(other, (ADA_PHONE,))


def test_a_claim_holds_across_servers(two_servers: tuple[RedisProfileCache, ...]) -> None:
    one, other = two_servers
    token = one.claim((ADA_PHONE,), ttl_s=30)
    assert (True, None) == (token is not None, other.claim((ADA_PHONE,), ttl_s=30))


def test_a_forget_on_one_server_refuses_a_write_read_before_it_on_another(
        two_servers: tuple[RedisProfileCache, ...]) -> None:
    one, other = two_servers
    before = other.read((ADA_PHONE,)).generation
    one.forget()
    assert False is other.write((ADA_PHONE,), ADA, before)
    assert "nothing" == kept(one, (ADA_PHONE,))


def test_a_forget_on_one_server_drops_what_another_wrote(
        two_servers: tuple[RedisProfileCache, ...]) -> None:
    one, other = two_servers
    written(other, (ADA_PHONE,), ADA)
    other.claim(BOB, ttl_s=30)
    assert 1 == one.forget()
    assert ("nothing", True) == (kept(other, (ADA_PHONE,)),
                                 other.claim(BOB, ttl_s=30) is not None)


def test_servers_with_another_secret_share_nothing(redis_server: str, redis_prefix: str) -> None:
    ours, theirs = (redis_cache(redis_server, redis_prefix),
                    redis_cache(redis_server, redis_prefix, secret=b"another secret"))
    written(ours, (ADA_PHONE,), ADA)
    assert "nothing" == kept(theirs, (ADA_PHONE,))
    ours.close()
    theirs.close()


def keys_under(url: str, prefix: str) -> dict[str, int]:
    """Every key under ``prefix`` and its PTTL (-1: it never expires)."""
    client = redis.Redis.from_url(url)
    try:
        return {key.decode(): client.pttl(key) for key in client.scan_iter(match=f"{prefix}*")}
    finally:
        client.close()


def test_key_names_hold_no_number_and_no_email(redis_server: str, redis_prefix: str) -> None:
    cache = redis_cache(redis_server, redis_prefix)
    written(cache, (ADA_PHONE, ADA_EMAIL), ADA)
    assert None is not cache.claim((ADA_PHONE,), ttl_s=30)
    names = " ".join(keys_under(redis_server, redis_prefix))
    cache.close()
    assert f"{redis_prefix}cache:aep:" in names
    assert [] == [text for text in ("4155550134", "555", "ada", "example") if text in names]


def test_every_key_but_the_generation_expires(redis_server: str, redis_prefix: str) -> None:
    cache = redis_cache(redis_server, redis_prefix, hit_ttl=60.0, miss_ttl=5.0)
    cache.forget()  # the generation counter: a number, no one's data
    written(cache, (ADA_PHONE,), ADA)
    written(cache, BOB, None)
    cache.claim((ADA_EMAIL,), ttl_s=3)
    ttls = keys_under(redis_server, redis_prefix)
    cache.close()
    assert -1 == ttls.pop(f"{redis_prefix}cache:aep")
    assert 3 == len(ttls)
    assert all(0 < ttl <= 60_000 for ttl in ttls.values()), ttls


def test_a_value_this_version_cannot_read_is_read_as_nothing(
        redis_server: str, redis_prefix: str) -> None:
    cache = redis_cache(redis_server, redis_prefix)
    written(cache, (ADA_PHONE,), ADA)
    client = redis.Redis.from_url(redis_server)
    for key in client.scan_iter(match=f"{redis_prefix}cache:aep:*"):
        client.set(key, b"\x80\x04not json", keepttl=True)
    client.close()
    assert "nothing" == kept(cache, (ADA_PHONE,))
    cache.close()


CALLS: dict[str, Callable[[ProfileCache], object]] = {
    "read": lambda cache: cache.read((ADA_PHONE,)),
    "write": lambda cache: cache.write((ADA_PHONE,), ADA, 0),
    "claim": lambda cache: cache.claim((ADA_PHONE,), 1.0),
    "release": lambda cache: cache.release((ADA_PHONE,), "token"),
    "forget": lambda cache: cache.forget(),
}


@pytest.mark.parametrize("call", CALLS)
def test_a_redis_that_cannot_be_reached_raises_transient_error_at_once(call: str) -> None:
    cache = RedisProfileCache(f"redis://127.0.0.1:{free_port()}/0", provider="aep",
                              secret=SECRET, hit_ttl=60, miss_ttl=5)
    started = time.monotonic()
    with pytest.raises(TransientError):
        CALLS[call](cache)
    assert time.monotonic() - started <= cache.budget_s
    cache.close()


@pytest.mark.parametrize("call", CALLS)
def test_a_redis_that_stops_answering_raises_transient_error_within_the_budget(
        call: str, private_redis: PrivateRedis) -> None:
    cache = RedisProfileCache(private_redis.url, provider="aep", secret=SECRET, hit_ttl=60,
                              miss_ttl=5)
    assert wait_for(lambda: connected(cache))  # as a server in service is
    private_redis.freeze()
    started = time.monotonic()
    with pytest.raises(TransientError):
        CALLS[call](cache)
    elapsed = time.monotonic() - started
    private_redis.thaw()
    cache.close()
    assert elapsed <= cache.budget_s + SCHEDULING_SLACK_S


def connected(cache: ProfileCache) -> bool:
    """Whether a read went through (connecting may outlast a 10 ms timeout on a busy machine)."""
    try:
        cache.read(BOB)
    except TransientError:
        return False
    return True


SCHEDULING_SLACK_S = 0.02  # a thread woken by its socket's timeout, on a busy machine
