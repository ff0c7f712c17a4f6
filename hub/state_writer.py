"""Writes of the hub's own state (call ledger, outbox), made in order on one thread.

A webhook hands its call's writes to the ``StateWriter`` and waits for them only until
its deadline, so a database that is locked, slow or gone never holds a call. A write the
database cannot take now (``TransientError``, as the adapters translate a locked or busy
database) is tried again, in order, with a growing pause, until it is made or
``give_up_after`` passes; then it is logged and counted as lost. Any other failure is a
bug or bad data: that write fails at once and the ones behind it go on.

Writes stay in this process's memory until they are made: a crash loses those still
waiting (``pending()`` says how many; ``/healthz`` shows it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, TypeVar

from hub.ports import TransientError

log = logging.getLogger(__name__)
T = TypeVar("T")

FIRST_PAUSE_S = 0.05
LONGEST_PAUSE_S = 2.0
WARN_EVERY_S = 10.0  # a write that keeps failing is logged at most this often


class StateUnavailable(Exception):
    """The hub's database did not take a write in time (it is kept and tried again)."""


@dataclass
class _Write:
    action: Callable[[], Any]
    label: str
    future: Future[Any] = field(default_factory=Future)
    queued_at: float = field(default_factory=time.monotonic)


class StateWriter:
    """Runs state writes one after another on a background thread, retrying in order."""

    def __init__(self, give_up_after: float = 600.0, max_pending: int = 10_000) -> None:
        self._give_up_after = give_up_after
        self._max_pending = max_pending
        self._queue: deque[_Write] = deque()
        self._ready = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.lost = 0

    def submit(self, action: Callable[[], T], label: str) -> Future[T]:
        """Queue ``action``; its future holds its result once the database took it."""
        write = _Write(action, label)
        with self._ready:
            if len(self._queue) >= self._max_pending:
                self._lose(write, "too many writes are waiting for the database")
                return write.future
            self._queue.append(write)
            self._start()
            self._ready.notify()
        return write.future

    def pending(self) -> int:
        """How many writes wait for the database (the one being tried included)."""
        with self._ready:
            return len(self._queue)

    def stop(self, timeout: float = 2.0) -> None:
        """Let the waiting writes finish for up to ``timeout`` s, then stop the thread."""
        end = time.monotonic() + timeout
        with self._ready:
            self._ready.wait_for(lambda: not self._queue, timeout)
            self._stopping = True
            self._ready.notify_all()
        if self._thread is not None:
            self._thread.join(max(0.0, end - time.monotonic()))
            self._thread = None
        with self._ready:
            left, self._queue = list(self._queue), deque()
        for write in left:
            if not write.future.done():
                self._lose(write, "the hub stopped")

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="cahub-state", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._ready:
                self._ready.wait_for(lambda: self._queue or self._stopping)
                if self._stopping:
                    return
                write = self._queue[0]
            self._make(write)
            with self._ready:
                self._queue.popleft()
                self._ready.notify_all()

    def _make(self, write: _Write) -> None:
        """Try ``write`` until it is made, fails for good, or is too old to keep trying."""
        pause, warned = FIRST_PAUSE_S, 0.0
        while not self._stopping:
            try:
                _settle(write.future, result=write.action())
                return
            except TransientError as exc:
                if time.monotonic() - write.queued_at > self._give_up_after:
                    self._lose(write, str(exc))
                    return
                if time.monotonic() - warned > WARN_EVERY_S:
                    log.warning("%s waits for the database: %s", write.label, exc)
                    warned = time.monotonic()
            except Exception as exc:  # a bug or bad data: this write fails, the rest go on
                log.exception("%s failed", write.label)
                _settle(write.future, error=exc)
                return
            time.sleep(pause)
            pause = min(pause * 2, LONGEST_PAUSE_S)
        self._lose(write, "the hub stopped")

    def _lose(self, write: _Write, reason: str) -> None:
        self.lost += 1
        log.error("%s was not saved: %s", write.label, reason)
        _settle(write.future, error=StateUnavailable(f"{write.label} was not saved: {reason}"))


def _settle(future: Future[Any], result: Any = None, error: BaseException | None = None) -> None:
    """Give ``future`` its outcome unless it has one (stop() and the thread may race)."""
    with suppress(InvalidStateError):
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)


def wait(future: Future[T], timeout: float) -> T:
    """``future``'s result within ``timeout`` s; ``StateUnavailable`` when it is late."""
    try:
        return future.result(timeout=max(0.0, timeout))
    except FutureTimeout as exc:
        raise StateUnavailable("the hub's database did not answer in time") from exc
