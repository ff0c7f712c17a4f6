"""Wrappers that make a slow or flaky remote provider safe to call on a ringing phone.

``CachedProvider`` remembers answers (hits longer than misses) and lets concurrent
lookups of the same caller share one request; ``forget()`` empties it (a person was
forgotten: forgets are rare, so every entry goes, and a lookup already under way is
not remembered); ``CircuitBreaker`` stops calling a
provider that keeps failing and tries it again after a pause. Both are providers
themselves, so the chain composes them: ``CachedProvider(CircuitBreaker(aep))`` serves
a repeat caller from memory even while AEP is down.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from hub.models import AmbiguousMatch, Identity, Profile
from hub.ports import HubError, ProfileProvider, TransientError

Answer = Profile | AmbiguousMatch | None
Key = tuple[Identity, ...]


@dataclass(frozen=True)
class _Entry:
    answer: Answer
    expires: float


class CachedProvider:
    """Caches ``provider``'s answers; concurrent lookups of one key share one request."""

    def __init__(self, provider: ProfileProvider, hit_ttl: float, miss_ttl: float,
                 max_entries: int = 100_000, clock: Callable[[], float] = time.monotonic):
        self.inner = provider
        self.name = provider.name
        self._ttl = (hit_ttl, miss_ttl)
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[Key, _Entry] = OrderedDict()
        self._inflight: dict[Key, Future[Answer]] = {}
        self._lock = threading.Lock()
        self._generation = 0  # bumped by forget(): answers asked for before it are not kept
        self.hits = self.misses = 0

    def lookup(self, identities: Sequence[Identity], deadline: float) -> Answer:
        key = tuple(identities)
        with self._lock:
            cached = self._fresh(key)
            if cached is not None:
                self.hits += 1
                return cached.answer
            self.misses += 1
            shared, leader = self._inflight.get(key), key not in self._inflight
            if leader:
                shared = self._inflight[key] = Future()
        assert shared is not None
        return self._lead(key, shared, deadline) if leader else _wait(shared, deadline)

    def ping(self) -> None:
        self.inner.ping()

    def close(self) -> None:
        _close(self.inner)

    def forget(self) -> int:
        """Drop every cached answer, and keep none of the lookups under way; how many."""
        with self._lock:
            dropped = len(self._entries)
            self._entries.clear()
            self._generation += 1
        return dropped

    def state(self) -> dict[str, object]:
        inner = getattr(self.inner, "state", None)
        own = {"cached": len(self._entries), "cache_hits": self.hits, "cache_misses": self.misses}
        return {**(inner() if callable(inner) else {}), **own}

    def _fresh(self, key: Key) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is None or entry.expires <= self._clock():
            return None
        self._entries.move_to_end(key)
        return entry

    def _lead(self, key: Key, shared: Future[Answer], deadline: float) -> Answer:
        generation = self._generation
        try:
            answer = self.inner.lookup(key, deadline)
        except BaseException as exc:
            shared.set_exception(exc)
            raise
        finally:
            with self._lock:
                self._inflight.pop(key, None)
        self._remember(key, answer, generation)
        shared.set_result(answer)
        return answer

    def _remember(self, key: Key, answer: Answer, generation: int) -> None:
        ttl = self._ttl[1] if answer is None else self._ttl[0]
        with self._lock:
            if generation != self._generation:  # a forget came while it was asked
                return
            self._entries[key] = _Entry(answer, self._clock() + ttl)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)


def _close(provider: ProfileProvider) -> None:
    """Close ``provider`` when it holds something to close (an HTTP session)."""
    close = getattr(provider, "close", None)
    if callable(close):
        close()


def _wait(shared: Future[Answer], deadline: float) -> Answer:
    try:
        return shared.result(timeout=max(0.0, deadline - time.monotonic()))
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
