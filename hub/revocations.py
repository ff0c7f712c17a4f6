"""Console session revocations as an open console's keep-alive checks them: a snapshot.

Every open console asks, at each keep-alive (15 s), whether its session was revoked (a
logout through any server). Asked of the store each time, 5,000 consoles on one process are
about 330 queries a second through the pool the calls' writes share. Here a process lists
the sessions revoked now (no more than one shift length's logouts) at most once every
``max_age_s`` and answers the keep-alives from that list: one query a second, however many
consoles. A logout through this process is in the list at once; through another, an open
console of the session ends at its first keep-alive after the next listing.

Everything but the keep-alive (a page, a stream opening, an API call) asks the store itself,
as before: a cookie saved before a logout is refused at once on every server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from hub.ports import SessionRevocations

MAX_AGE_S = 1.0


class RevocationSnapshot:
    """``SessionRevocations`` with a recent list of every revoked session beside it."""

    def __init__(self, store: SessionRevocations, max_age_s: float = MAX_AGE_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._store, self._max_age_s, self._clock = store, max_age_s, clock
        self._lock = threading.Lock()
        self._listed: frozenset[str] = frozenset()
        self._local: dict[str, float] = {}  # revoked here, and when: until a later list has them
        self._listed_at = float("-inf")

    def revoke(self, session_id: str, ttl_s: float) -> None:
        self._store.revoke(session_id, ttl_s)
        if ttl_s > 0:
            with self._lock:
                self._local[session_id] = self._clock()

    def is_revoked(self, session_id: str) -> bool:
        """The store's answer now (``TransientError`` when it is away)."""
        return self._store.is_revoked(session_id)

    def revoked(self) -> frozenset[str]:
        return self._store.revoked()

    def recently_revoked(self, session_id: str) -> bool:
        """Whether ``session_id`` was revoked, as of a list at most ``max_age_s`` old (and
        every revocation made through this process). ``TransientError`` when the list is due
        and the store is away."""
        with self._lock:
            started = self._clock()
            due = started - self._listed_at >= self._max_age_s
            if due:  # one listing at a time: the others answer from the list they have
                self._listed_at = started
        if due:
            try:
                listed = self._store.revoked()
            except BaseException:
                with self._lock:
                    self._listed_at = float("-inf")  # the next check asks again
                raise
            with self._lock:  # a revocation made while listing may be missing from the list
                self._listed = listed
                self._local = {sid: at for sid, at in self._local.items() if at >= started}
        with self._lock:
            return session_id in self._listed or session_id in self._local
