"""A server process's part in a forget: what it holds in memory, and what it writes late.

``cahub forget`` runs in its own process and records each forget in the ``ForgetLog`` as
keyed digests. Every server process reads the new ones a few times a second (``poll``)
and applies them: its cleaners drop what they hold of the person (the screen-pop replay
history and consoles' queues, remote-provider caches, calls not yet saved), and from then
on a write that would bring the person back is stopped where it happens. A call that was
under way before the forget keeps nothing of them: its late profile, its record, its pop
and its deliveries are checked against the forgets made since it began (``mark()``).

A write runs inside ``writing()``. The process confirms a forget only once no write that
began before it is still running, and after cleaning again: ``cahub forget`` waits for
every live process to confirm, then sweeps the database once more, so a write that was
half-way when the forget came is gone too.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from hub.desk import ConsoleEvent
from hub.forget_keys import call_key, concerns, digest, event_concerns, redact
from hub.models import Summary
from hub.ports import ForgetLog

log = logging.getLogger(__name__)

# Whether a console event (a pop, a call state; or a summary) is a forgotten person's.
Concerns = Callable[[ConsoleEvent], bool]
Cleaner = Callable[[Concerns], int]  # drops what concerns the person; how many
POLL_S = 0.25
HEARTBEAT_S = 5.0
KEEP_S = 3600.0  # how long a forget is kept in memory for calls that began before it
QUIET_S = 30.0  # a failing poll is logged at most this often
EVERY_FORGET = 2**62  # what a stopped process confirms


@dataclass(frozen=True)
class _Forget:
    seq: int
    digests: frozenset[str]
    applied_at: float


class ForgetGuard:
    """Applies forgets in this process; ``ForgetGuard(None, ...)`` applies none."""

    def __init__(self, forgets: ForgetLog | None, process: str,
                 cleaners: Mapping[str, Cleaner] | None = None) -> None:
        self._log, self._process = forgets, process
        self._cleaners = dict(cleaners or {})
        self._secret = b""
        self._forgets: list[_Forget] = []
        self._applied = self._confirmed = 0
        self._writes: dict[int, int] = {}  # running writes: the forget applied when each began
        self._tokens = itertools.count()
        self._cleaned: Counter[str] = Counter()  # by place, since this process started
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._confirmed_at = self._failed_at = 0.0

    def add_cleaner(self, place: str, cleaner: Cleaner) -> None:
        self._cleaners[place] = cleaner

    def mark(self) -> int:
        """The last forget applied here: a call that begins now is judged against later ones."""
        with self._lock:
            return self._applied

    def concerns(self, summary: Summary, since: int) -> bool:
        """Whether a forget applied after ``since`` concerns ``summary``."""
        digests = self._digests(since)
        return bool(digests) and concerns(summary, lambda key: self._hash(key) in digests)

    def redacted(self, summary: Summary, since: int) -> Summary:
        """``summary`` without any person forgotten since ``since``."""
        digests = self._digests(since)
        if not digests:
            return summary
        return redact(summary, lambda key: self._hash(key) in digests)

    def call_forgotten(self, call_sid: str) -> bool:
        """Whether the call was one of a forgotten person's (its deliveries are cancelled)."""
        digests = self._digests(-1)
        return bool(digests) and self._hash(call_key(call_sid)) in digests

    @contextmanager
    def writing(self) -> Iterator[None]:
        """A write checked against the forgets: none is confirmed while it runs."""
        with self._lock:
            token = next(self._tokens)
            self._writes[token] = self._applied
        try:
            yield
        finally:
            with self._lock:
                del self._writes[token]

    def start(self) -> None:
        """Apply forgets on a background thread from now on (once)."""
        if self._log is None or self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="cahub-forgets", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop polling. A process that stops holds nothing any more: it confirms every
        forget, to come too, so that ``cahub forget`` does not wait for it."""
        self._stopping.set()
        if self._thread is None:
            return
        self._thread.join(timeout)
        self._thread = None
        if self._log is not None:
            with suppress(Exception):  # a sick database: it is then waited for, then named
                self._log.confirm(self._process, EVERY_FORGET, {})

    def poll(self) -> None:
        """Apply the forgets recorded since the last poll, and confirm what can be."""
        if self._log is None:
            return
        if not self._secret:
            self._secret = self._log.secret()
            self._applied = self._confirmed = max(
                (entry.seq for entry in self._log.since(0)), default=0)
        for entry in self._log.since(self._applied):
            self._apply(entry.seq, entry.digests)
        self._confirm()

    def _run(self) -> None:
        while not self._stopping.wait(POLL_S):
            try:
                self.poll()
            except Exception as exc:  # a sick database must not end the thread; it retries
                if time.monotonic() - self._failed_at > QUIET_S:
                    log.warning("forgets not applied yet (tried again): %s", exc)
                    self._failed_at = time.monotonic()

    def _apply(self, seq: int, digests: frozenset[str]) -> None:
        with self._lock:
            self._forgets.append(_Forget(seq, digests, time.monotonic()))
            self._applied = seq
        self._clean(digests)

    def _clean(self, digests: frozenset[str]) -> None:
        """Every cleaner, even when one fails (Redis away): the first failure is raised
        after, so the forget is not confirmed and is cleaned again at the next poll."""
        def concerned(event: ConsoleEvent) -> bool:
            return event_concerns(event, lambda key: self._hash(key) in digests)

        failure: Exception | None = None
        for place, cleaner in self._cleaners.items():
            try:
                self._cleaned[place] += cleaner(concerned)
            except Exception as exc:  # the other places must still be cleaned now
                failure = failure or exc
        if failure is not None:
            raise failure

    def _confirm(self) -> None:
        """Confirm the forgets no running write began before, cleaning once more first."""
        with self._lock:
            ready = min([self._applied, *self._writes.values()])
            fresh = [f for f in self._forgets if self._confirmed < f.seq <= ready]
            self._forgets = [f for f in self._forgets
                             if time.monotonic() - f.applied_at < KEEP_S]
        for forget in fresh:  # what a write that was half-way put back
            self._clean(forget.digests)
        due = time.monotonic() - self._confirmed_at > HEARTBEAT_S
        if (fresh or due) and self._log is not None:
            confirmed = max(ready, self._confirmed)
            self._log.confirm(self._process, confirmed, dict(self._cleaned))
            self._confirmed, self._confirmed_at = confirmed, time.monotonic()

    def _digests(self, since: int) -> frozenset[str]:
        with self._lock:
            return frozenset().union(*(f.digests for f in self._forgets if f.seq > since))

    def _hash(self, key: str) -> str:
        return digest(self._secret, key)
