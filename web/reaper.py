"""The reaper: at a request's deadline, it ends a read of the request's body, whoever waits on it.

A request that starts reading its body hands its server socket and deadline to ``watch``.
One thread sleeps until the earliest deadline (under gunicorn's gevent worker, whose
monkey-patching makes ``threading`` cooperative, a greenlet); a watch still open then has its
socket's read side shut, and a ``recv`` blocked on it returns the end of the stream at once
(gevent's raises instead). The thread starts with the first watch and ends after ``IDLE_S``
without one: an app that receives no bodies runs none, and a test's app leaves none behind.
"""

from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time
from contextlib import suppress

IDLE_S = 5.0


class Watch:
    """One request's body read, to be cut off at ``deadline`` unless cancelled first."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock, self.deadline = sock, deadline
        self.cancelled = False
        self.expired = False

    def cancel(self) -> None:
        """The request ended: leave its socket alone."""
        self.cancelled = True

    def expire(self) -> None:
        if self.cancelled:
            return
        self.expired = True
        with suppress(OSError):  # the client may have gone already
            self.sock.shutdown(socket.SHUT_RD)


class Reaper:
    """Expires watches at their deadlines, from one thread that runs while there are any."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Watch]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._running = False

    def watch(self, sock: socket.socket, deadline: float) -> Watch:
        """Cut off reads on ``sock`` at ``deadline`` (a ``time.monotonic`` time)."""
        watch = Watch(sock, deadline)
        with self._wake:
            heapq.heappush(self._heap, (deadline, next(self._order), watch))
            if self._running:
                self._wake.notify()
            else:
                self._running = True
                threading.Thread(target=self._run, name="cahub-body-reaper", daemon=True).start()
        return watch

    def _run(self) -> None:
        with self._wake:
            while True:
                self._expire_due()
                if self._heap:
                    self._wake.wait(self._heap[0][0] - time.monotonic())
                    continue
                self._wake.wait(IDLE_S)
                if not self._heap:
                    self._running = False
                    return

    def _expire_due(self) -> None:
        """Expire every watch whose deadline has come, and drop cancelled ones on top."""
        now = time.monotonic()
        while self._heap and (self._heap[0][0] <= now or self._heap[0][2].cancelled):
            heapq.heappop(self._heap)[2].expire()
