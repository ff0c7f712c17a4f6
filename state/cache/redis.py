"""Remote providers' answers shared by every server through Redis (the ``ProfileCache`` port).

What Redis holds, under the hub's prefix, for each provider (``aep``, ``segment``):

- ``cache:<provider>:<digest>``: one answer, the JSON of ``StoredAnswer`` (the hub's own
  pydantic models; never pickle, which would run code on reading), expiring with it (PX);
- ``cache:<provider>:<digest>:asking``: a claim (``SET NX PX``, unless the answer is there
  already), held by the server asking the provider for those identities; a lapse (a
  failover, a claim running out) costs no more than one extra request to the provider;
- ``cache:<provider>``: the generation, which each forget increments.

``<digest>`` is a keyed digest (HMAC-SHA256) of the identities, with a secret every server
shares: key names show in ``MONITOR``, the slow log and key scans, and must not hold a
number or an email. The values do hold profiles, as the hub's database does.

A forget increments the generation, then deletes every key of the provider's cache (SCAN,
never KEYS, and UNLINK, which frees memory off Redis's main thread). A write is a script
that stores the answer only while the generation is still the one read before the provider
was asked. Both are needed: the generation alone would leave the forgotten person's profile
in Redis until it expired, the scan alone would miss an answer asked for before the forget
and written just after the scan passed.

Every command waits at most ``timeout_s`` (a connection from the pool, each socket read or
write; connecting, ``connect_timeout_s``), is never retried here, and any Redis error
becomes ``TransientError``: the caller answers from elsewhere.
"""

from __future__ import annotations

import itertools
import json
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from hub.forget_keys import digest
from hub.models import AmbiguousMatch, Frozen, Identity, Profile
from hub.ports import Answer, CachedAnswer, CacheRead, TransientError

WRITE_SCRIPT = """
if (redis.call('GET', KEYS[1]) or '0') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return 1
"""
CLAIM_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""
RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
CLAIM_SUFFIX = ":asking"
PAGE = 500  # keys found by one SCAN call and deleted by one UNLINK


class StoredAnswer(Frozen):
    """An answer as Redis keeps it: a profile, a shared number's match, or neither (a miss)."""

    profile: Profile | None = None
    ambiguous: AmbiguousMatch | None = None

    @classmethod
    def of(cls, answer: Answer) -> StoredAnswer:
        if isinstance(answer, AmbiguousMatch):
            return cls(ambiguous=answer)
        return cls(profile=answer)

    @property
    def answer(self) -> Answer:
        return self.ambiguous if self.ambiguous is not None else self.profile


class RedisProfileCache:
    """A ``ProfileCache`` shared by every server using the same Redis, prefix and secret.

    Nothing connects until the first call. ``secret`` keys the digests in key names.
    """

    def __init__(self, url: str, *, provider: str, secret: bytes, hit_ttl: float,
                 miss_ttl: float, prefix: str = "cahub:", timeout_s: float = 0.01,
                 connect_timeout_s: float = 0.02, pool_size: int = 16) -> None:
        self._base = f"{prefix}cache:{provider}"
        self._secret = secret
        self._ttl = (hit_ttl, miss_ttl)
        # A pool wait, a connection, a command written and its reply read, at the most.
        self.budget_s = 3 * timeout_s + connect_timeout_s
        pool = redis.BlockingConnectionPool.from_url(
            url, max_connections=pool_size, timeout=timeout_s, socket_timeout=timeout_s,
            socket_connect_timeout=connect_timeout_s, retry=Retry(NoBackoff(), 0))
        self._client = redis.Redis(connection_pool=pool)
        self._write = self._client.register_script(WRITE_SCRIPT)
        self._claim = self._client.register_script(CLAIM_SCRIPT)
        self._release = self._client.register_script(RELEASE_SCRIPT)

    def read(self, identities: Sequence[Identity]) -> CacheRead:
        entry = self._entry(identities)
        with _translated(), self._client.pipeline(transaction=False) as pipe:
            pipe.get(self._base)
            pipe.get(entry)
            pipe.pttl(entry)
            generation, raw, pttl = pipe.execute()
        return CacheRead(_decoded(raw, pttl), int(generation or 0))

    def write(self, identities: Sequence[Identity], answer: Answer, generation: int,
              ttl_s: float | None = None) -> bool:
        own = self._ttl[1] if answer is None else self._ttl[0]
        ttl_ms = max(1, int(1000 * (own if ttl_s is None else min(own, ttl_s))))
        value = StoredAnswer.of(answer).model_dump_json()
        with _translated():
            return bool(self._write(keys=[self._base, self._entry(identities)],
                                    args=[generation, value, ttl_ms]))

    def claim(self, identities: Sequence[Identity], ttl_s: float) -> str | None:
        token, entry = secrets.token_hex(8), self._entry(identities)
        with _translated():
            taken = self._claim(keys=[entry, entry + CLAIM_SUFFIX],
                                args=[token, max(1, int(ttl_s * 1000))])
        return token if taken else None

    def release(self, identities: Sequence[Identity], token: str) -> None:
        with _translated():
            self._release(keys=[self._entry(identities) + CLAIM_SUFFIX], args=[token])

    def forget(self) -> int:
        """Refuse older writes, then delete every answer and claim; how many answers."""
        dropped = 0
        with _translated():
            self._client.incr(self._base)
            # The prefix and provider names hold no glob character (the settings refuse them).
            keys = self._client.scan_iter(match=f"{self._base}:*", count=PAGE)
            while page := list(itertools.islice(keys, PAGE)):
                self._client.unlink(*page)
                dropped += sum(not key.endswith(CLAIM_SUFFIX.encode()) for key in page)
        return dropped

    def close(self) -> None:
        """Drop the connections (a client given its pool leaves the pool's open)."""
        self._client.close()
        self._client.connection_pool.disconnect()

    def _entry(self, identities: Sequence[Identity]) -> str:
        asked = json.dumps([[i.namespace, i.id] for i in identities], separators=(",", ":"))
        return f"{self._base}:{digest(self._secret, 'profile cache:' + asked)}"


def _decoded(raw: bytes | None, pttl: int) -> CachedAnswer | None:
    """The answer Redis gave, or None when there is none (or none this version can read:
    another version of the hub wrote it, and the provider is asked again)."""
    if raw is None or pttl <= 0:
        return None
    try:
        stored = StoredAnswer.model_validate_json(raw)
    except ValueError:
        return None
    return CachedAnswer(stored.answer, pttl / 1000)


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except redis.RedisError as exc:
        raise TransientError(f"Redis: {type(exc).__name__}: {exc}") from exc
