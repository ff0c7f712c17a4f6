"""The level of a remote provider's cache that every server shares (Redis, behind the
``ProfileCache`` port), as ``CachedProvider`` uses it when this process's own has nothing.

A lookup reads the shared cache; on a miss it claims the identities, so that one server
asks the provider while the others poll for its answer (until their deadline, or until
the claim is given back or lapses: then one of them asks). The answer is written for every
server, unless a forget came while it was asked.

The shared cache never holds a call up. Each call to it waits at most its ``budget_s``,
none is made when less than that is left before the lookup's deadline, and after a failure
the level is left alone for ``pause_s``: the provider is asked at once, and its answer
kept in this process for as long as the settings say (as with a single server). So a Redis
outage costs a lookup at most one budget per pause and process. Failures are counted
(``state()``, shown by ``/healthz``) and logged at most once every ``QUIET_S``.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeVar

from hub.models import Identity
from hub.ports import Answer, HubError, ProfileCache, ProfileProvider, TransientError

log = logging.getLogger(__name__)

T = TypeVar("T")
QUIET_S = 30.0


class _Away(enum.Enum):
    AWAY = "the shared cache could not be used"


AWAY = _Away.AWAY


class Fetched(NamedTuple):
    """An answer, and how long this process may keep it: ``None`` as long as its own
    settings say (no other server has it), ``0`` not at all (a forget came meanwhile)."""

    answer: Answer
    keep_s: float | None


class SharedCacheLevel:
    """Reads, single-flight across servers and writes through a shared ``ProfileCache``."""

    def __init__(self, cache: ProfileCache, name: str, local_ttl: float, *,
                 pause_s: float = 1.0, poll_s: float = 0.01, claim_s: float = 3.0) -> None:
        self._cache, self._name, self._local_ttl = cache, name, local_ttl
        self._pause_s, self._poll_s, self._claim_s = pause_s, poll_s, claim_s
        self._lock = threading.Lock()
        self._away_until = self._logged_at = float("-inf")
        self._counts = {"hits": 0, "waits": 0, "errors": 0, "skipped": 0}
        self._last_error: str | None = None

    def fetch(self, provider: ProfileProvider, identities: Sequence[Identity],
              deadline: float) -> Fetched:
        """The answer for ``identities``: from the shared cache, from another server's
        request, or from ``provider`` (written back for the others)."""
        waited = False
        while True:
            read = self._call(deadline, self._cache.read, identities, waiting=waited)
            if read is AWAY:
                return Fetched(provider.lookup(identities, deadline), None)
            if read.cached is not None:
                self._count("hits")
                return Fetched(read.cached.answer, min(self._local_ttl, read.cached.ttl_s))
            claim_s = min(self._claim_s, max(deadline - time.monotonic(), 0.001))
            token = self._call(deadline, self._cache.claim, identities, claim_s,
                               waiting=waited)
            if token is AWAY:
                return Fetched(provider.lookup(identities, deadline), None)
            if token is not None:
                return self._ask(provider, identities, deadline, read.generation, token)
            if not waited:
                waited = True
                self._count("waits")
            self._poll_pause(deadline)

    def forget(self) -> int:
        """Empty the shared cache; ``TransientError`` when it cannot be reached (the forget
        guard tries again)."""
        return self._cache.forget()

    def close(self) -> None:
        close = getattr(self._cache, "close", None)
        if callable(close):
            close()

    def state(self) -> dict[str, object]:
        with self._lock:
            return {**self._counts, "last_error": self._last_error}

    def _ask(self, provider: ProfileProvider, identities: Sequence[Identity], deadline: float,
             generation: int, token: str) -> Fetched:
        try:
            answer = provider.lookup(identities, deadline)
            kept = self._call(deadline, self._cache.write, identities, answer, generation)
        finally:  # even past the deadline: the others need not wait for the claim to lapse
            self._call(None, self._cache.release, identities, token)
        if kept is AWAY:
            return Fetched(answer, None)
        return Fetched(answer, self._local_ttl if kept else 0.0)

    def _poll_pause(self, deadline: float) -> None:
        """Wait before looking for another server's answer again, unless it is too late."""
        if time.monotonic() + self._poll_s >= deadline:
            raise self._gave_up()
        time.sleep(self._poll_s)

    def _gave_up(self) -> TransientError:
        return TransientError(f"the deadline came while another server asked {self._name}")

    def _call(self, deadline: float | None, action: Callable[..., T], *args: Any,
              waiting: bool = False) -> T | _Away:
        """``action(*args)``, or ``AWAY`` when it failed, when the level is paused after a
        failure, or when ``deadline`` is too near for it: then, ``waiting`` for another
        server's answer, the lookup gives up (asking the provider too could not be quicker)."""
        now = time.monotonic()
        late = deadline is not None and deadline - now < self._cache.budget_s
        if late and waiting:
            raise self._gave_up()
        if late or now < self._away_until:
            self._count("skipped")
            return AWAY
        try:
            return action(*args)
        except HubError as exc:
            self._failed(exc)
            return AWAY

    def _failed(self, exc: HubError) -> None:
        now = time.monotonic()
        with self._lock:
            self._counts["errors"] += 1
            self._last_error = error = f"{type(exc).__name__}: {exc}"
            self._away_until = now + self._pause_s
            loud = now - self._logged_at >= QUIET_S
            if loud:
                self._logged_at = now
        if loud:
            log.warning("the shared cache of %s failed (%s); answering from this server's "
                        "cache and the provider for now", self._name, error)

    def _count(self, what: str) -> None:
        with self._lock:
            self._counts[what] += 1
