"""One console's queue of screen pops (a ``PopStream``), shared by every broker adapter.

A broker puts pops in without ever waiting: the queue is bounded, and when a slow or dead
console falls behind its oldest pop is dropped (and logged). The console takes them out
with ``next``, which waits at most its timeout and returns at once after ``close``.
``drop`` takes out the pops of a forgotten caller that the console has not read yet.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable

from hub.desk import ConsoleEvent

logger = logging.getLogger(__name__)

Pop = tuple[str, ConsoleEvent]


class PopSubscription:
    """A bounded queue of ``(event id, console event)``; closing it twice is harmless."""

    def __init__(self, maxlen: int, on_close: Callable[[PopSubscription], None]) -> None:
        self._queue: deque[Pop] = deque()
        self._maxlen = maxlen
        self._ready = threading.Condition()
        self._on_close = on_close
        self.closed = False
        self.dropped = 0

    def put(self, pop: Pop) -> None:
        """Queue ``pop`` without ever blocking, dropping the oldest when the queue is full."""
        with self._ready:
            self._append(pop)
            self._ready.notify()

    def drop(self, concerns: Callable[[ConsoleEvent], bool]) -> int:
        """Drop the queued pops whose summary ``concerns``; how many."""
        with self._ready:
            kept = deque(pop for pop in self._queue if not concerns(pop[1]))
            dropped, self._queue = len(self._queue) - len(kept), kept
        return dropped

    def next(self, timeout: float) -> Pop | None:
        """The next pop, or None after ``timeout`` seconds or once closed."""
        with self._ready:
            self._ready.wait_for(lambda: self._queue or self.closed, timeout)
            if self.closed or not self._queue:
                return None
            return self._queue.popleft()

    def close(self) -> None:
        """Stop listening; a waiting ``next`` returns None at once."""
        with self._ready:
            if self.closed:
                return
            self.closed = True
            self._ready.notify_all()
        self._on_close(self)

    def _append(self, pop: Pop) -> None:
        """Queue ``pop``; the caller holds ``_ready``."""
        if len(self._queue) >= self._maxlen:
            self._queue.popleft()
            self.dropped += 1
            logger.warning("screen pop subscriber is behind; dropped its oldest pop")
        self._queue.append(pop)
