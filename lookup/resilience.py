"""Wrappers that make a slow or flaky remote provider safe to call on a ringing phone.

``CachedProvider`` remembers answers (hits longer than misses) and lets concurrent
lookups of the same caller share one request; ``forget()`` empties it (a person was
forgotten: forgets are rare, so every entry goes, and a lookup already under way is
not remembered); ``CircuitBreaker`` stops calling a
provider that keeps failing and tries it again after a pause. Both are providers
themselves, so the chain composes them: ``CachedProvider(CircuitBreaker(aep))`` serves
a repeat caller from memory even while AEP is down.

With a ``shared`` cache (Redis, for several servers) the cache has two levels: this
process's own, then the shared one (``lookup.shared_cache``), so a caller answered on one
server is served from cache on every other, and concurrent lookups share one request
across servers too. An answer the shared cache holds is kept here only ``local_ttl``
seconds (``LOCAL_TTL_S``): repeat lookups stay local, and an answer dropped from Redis (by an
operator, or by a forget that a server could not yet read from its database) is not served
here for long. An answer the shared cache could not take (Redis away) is kept here as long
as the settings say, as with a single server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future

from hub.models import Identity
from hub.ports import Answer, HubError, ProfileCache, ProfileProvider, TransientError
from lookup.shared_cache import Fetched, SharedCacheLevel
from state.cache.memory import InProcessProfileCache

Key = tuple[Identity, ...]
LOCAL_TTL_S = 5.0
# In front of a shared cache, this process's holds the callers of the last LOCAL_TTL_S, and
# while Redis is away the most recent ones (at 100 calls/s, the last 100 s of callers);
# profiles with their events run to tens of kilobytes each.
LOCAL_ENTRIES = 10_000


class CachedProvider:
    """Caches ``provider``'s answers; concurrent lookups of one key share one request."""

    def __init__(self, provider: ProfileProvider, hit_ttl: float, miss_ttl: float,
                 max_entries: int = 100_000, clock: Callable[[], float] = time.monotonic, *,
                 shared: ProfileCache | None = None, local_ttl: float = LOCAL_TTL_S):
        self.inner = provider
        self.name = provider.name
        self._local = InProcessProfileCache(hit_ttl, miss_ttl, max_entries, clock)
        self._shared = None if shared is None else SharedCacheLevel(
            shared, provider.name, local_ttl)
        self._inflight: dict[Key, Future[Answer]] = {}
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def lookup(self, identities: Sequence[Identity], deadline: float) -> Answer:
        key = tuple(identities)
        with self._lock:
            read = self._local.read(key)
            if read.cached is not None:
                self.hits += 1
                return read.cached.answer
            self.misses += 1
            pending, leader = self._inflight.get(key), key not in self._inflight
            if leader:
                pending = self._inflight[key] = Future()
        assert pending is not None
        if not leader:
            return _wait(pending, deadline)
        return self._lead(key, pending, deadline, read.generation)

    @property
    def shares(self) -> bool:
        """Whether it has a level shared with other servers."""
        return self._shared is not None

    def ping(self) -> None:
        self.inner.ping()

    def close(self) -> None:
        _close(self.inner)
        if self._shared is not None:
            self._shared.close()

    def forget(self) -> int:
        """Drop every cached answer here and in the shared cache, and keep none of the
        lookups under way; how many. ``TransientError`` when the shared cache cannot be
        reached (this process's is emptied all the same)."""
        dropped = self._local.forget()
        return dropped + (self._shared.forget() if self._shared is not None else 0)

    def state(self) -> dict[str, object]:
        inner = getattr(self.inner, "state", None)
        own: dict[str, object] = {"cached": len(self._local), "cache_hits": self.hits,
                                  "cache_misses": self.misses}
        if self._shared is not None:
            own["shared_cache"] = self._shared.state()
        return {**(inner() if callable(inner) else {}), **own}

    def _lead(self, key: Key, pending: Future[Answer], deadline: float,
              generation: int) -> Answer:
        try:
            answer, keep_s = self._fetch(key, deadline)
        except BaseException as exc:
            self._settle(key)
            pending.set_exception(exc)
            raise
        if keep_s != 0:  # not when a forget came while it was asked, here or elsewhere
            self._local.write(key, answer, generation, keep_s)
        self._settle(key)  # once written: a lookup arriving now finds it
        pending.set_result(answer)
        return answer

    def _fetch(self, key: Key, deadline: float) -> Fetched:
        if self._shared is None:
            return Fetched(self.inner.lookup(key, deadline), None)
        return self._shared.fetch(self.inner, key, deadline)

    def _settle(self, key: Key) -> None:
        with self._lock:
            self._inflight.pop(key, None)


def _close(provider: ProfileProvider) -> None:
    """Close ``provider`` when it holds something to close (an HTTP session)."""
    close = getattr(provider, "close", None)
    if callable(close):
        close()


def _wait(pending: Future[Answer], deadline: float) -> Answer:
    try:
        return pending.result(timeout=max(0.0, deadline - time.monotonic()))
    except TimeoutError as exc:
        raise TransientError("deadline passed while sharing another lookup") from exc


class CircuitBreaker:
    """Stops calling a provider after ``threshold`` failures in a row, for ``reset_after`` s.

    After the pause one trial call is let through (half-open): success closes the
    circuit, failure opens it again. While open, lookups fail at once.
    """

    def __init__(self, provider: ProfileProvider, threshold: int = 5, reset_after: float = 30.0,
                 clock: Callable[[], float] = time.monotonic):
        self.inner = provider
        self.name = provider.name
        self._threshold, self._reset_after, self._clock = threshold, reset_after, clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial = False
        self._lock = threading.Lock()

    def lookup(self, identities: Sequence[Identity], deadline: float) -> Answer:
        self._admit()
        try:
            answer = self.inner.lookup(identities, deadline)
        except HubError:
            self._record(success=False)
            raise
        self._record(success=True)
        return answer

    def ping(self) -> None:
        self.inner.ping()

    def close(self) -> None:
        _close(self.inner)

    def state(self) -> dict[str, object]:
        with self._lock:
            return {"circuit": self._circuit(), "consecutive_failures": self._failures}

    def _circuit(self) -> str:
        if self._opened_at is None:
            return "closed"
        waited = self._clock() - self._opened_at
        return "half-open" if waited >= self._reset_after else "open"

    def _admit(self) -> None:
        with self._lock:
            circuit = self._circuit()
            if circuit == "open" or (circuit == "half-open" and self._trial):
                raise TransientError(f"{self.name} circuit is open after repeated failures")
            self._trial = circuit == "half-open"

    def _record(self, success: bool) -> None:
        with self._lock:
            self._trial = False
            if success:
                self._failures, self._opened_at = 0, None
                return
            self._failures += 1
            if self._failures >= self._threshold or self._opened_at is not None:
                self._opened_at = self._clock()
