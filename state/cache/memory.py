"""Remote providers' answers kept in this process (the ``ProfileCache`` port).

A bounded map: when it is full the entry least recently used makes way. Entries expire
when their time to live runs out (looked at lazily, as they are read). It is the hub's
only cache when there is one server, and the first level in front of Redis when there are
several (``lookup.resilience``). Every call is a few microseconds under one lock.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from hub.models import Identity
from hub.ports import Answer, CachedAnswer, CacheRead

Key = tuple[Identity, ...]
CLAIMS_KEPT = 1000  # claims left to expire are swept once there are this many


class InProcessProfileCache:
    """A ``ProfileCache`` for one process: thread-safe, at most ``max_entries`` answers."""

    budget_s = 0.0  # never waits on anything but its own lock

    def __init__(self, hit_ttl: float, miss_ttl: float, max_entries: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = (hit_ttl, miss_ttl)
        self._max = max(max_entries, 1)
        self._clock = clock
        self._entries: OrderedDict[Key, tuple[Answer, float]] = OrderedDict()
        self._claims: dict[Key, tuple[str, float]] = {}
        self._generation = 0
        self._lock = threading.Lock()

    def read(self, identities: Sequence[Identity]) -> CacheRead:
        key, now = tuple(identities), self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[1] <= now:
                return CacheRead(None, self._generation)
            self._entries.move_to_end(key)
            return CacheRead(CachedAnswer(entry[0], entry[1] - now), self._generation)

    def write(self, identities: Sequence[Identity], answer: Answer, generation: int,
              ttl_s: float | None = None) -> bool:
        own = self._ttl[1] if answer is None else self._ttl[0]
        expires = self._clock() + (own if ttl_s is None else min(own, ttl_s))
        key = tuple(identities)
        with self._lock:
            if generation != self._generation:  # a forget came while it was asked
                return False
            self._entries[key] = (answer, expires)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return True

    def claim(self, identities: Sequence[Identity], ttl_s: float) -> str | None:
        key, now = tuple(identities), self._clock()
        with self._lock:
            held, kept = self._claims.get(key), self._entries.get(key)
            if (held is not None and held[1] > now) or (kept is not None and kept[1] > now):
                return None
            if len(self._claims) >= CLAIMS_KEPT:
                self._claims = {k: c for k, c in self._claims.items() if c[1] > now}
            token = secrets.token_hex(8)
            self._claims[key] = (token, now + ttl_s)
            return token

    def release(self, identities: Sequence[Identity], token: str) -> None:
        key = tuple(identities)
        with self._lock:
            if self._claims.get(key, ("", 0.0))[0] == token:
                del self._claims[key]

    def forget(self) -> int:
        with self._lock:
            dropped = len(self._entries)
            self._entries.clear()
            self._generation += 1
        return dropped

    def __len__(self) -> int:
        return len(self._entries)
