"""Turns to write for the ingest API: how long a request may wait for the store, and when
it is refused at once.

A process writes one ingest request at a time: the SQLite store has a single writer anyway,
and a turn handed over in the process costs less than SQLite's polling for its lock. At most
``waiting`` requests wait for their turn, each at most ``wait_s``; a request past them is
refused at once. When the store itself is busy (its writer is held longer than its busy
timeout: a first load of events holds it until the load ends), the requests of the next
``rest_s`` are refused at once too, without waiting again: one request then finds out, for
all of them. A store held by a bulk load therefore ties up a few threads of a server, for
seconds, and never the threads that answer calls.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from hub.ports import TransientError


class StoreBusy(Exception):
    """The store could not take the write soon enough."""


class WriterTurns:
    """One request of the process writes at a time; see the module docstring."""

    def __init__(self, waiting: int, wait_s: float, rest_s: float) -> None:
        self.waiting, self.wait_s, self.rest_s = waiting, wait_s, rest_s
        self.admitted = 0  # the request writing and those waiting
        self._busy_until = 0.0  # monotonic: until then the store is taken to be busy
        self._count = threading.Lock()
        self._writer = threading.Lock()

    @contextmanager
    def turn(self) -> Iterator[None]:
        """The block runs in this request's turn; ``StoreBusy`` if it does not come soon.
        A ``TransientError`` out of the block (the store was busy) is re-raised, and refuses
        the requests of the next ``rest_s``."""
        self._check_rest()
        with self._count:
            if self.admitted > self.waiting:
                raise StoreBusy("as many ingest requests as may wait are waiting")
            self.admitted += 1
        try:
            if not self._writer.acquire(timeout=self.wait_s):
                raise StoreBusy(f"another ingest request held the store over {self.wait_s:g} s")
            try:
                self._check_rest()
                yield
            except TransientError:
                self._busy_until = time.monotonic() + self.rest_s
                raise
            finally:
                self._writer.release()
        finally:
            with self._count:
                self.admitted -= 1

    def _check_rest(self) -> None:
        if time.monotonic() < self._busy_until:
            raise StoreBusy("the store was found busy a moment ago")
