"""The dispatcher: works off the outbox, retrying transient failures and dead-lettering the rest.

Like warehouse's delivery tasks, a ``TransientError`` is retried with capped exponential
backoff and full jitter (never sooner than the service's ``retry_after``), a
``PermanentError`` is dead at once, and any other exception counts as transient, since a
bug must not lose work. A background thread drains the outbox; ``notify()`` wakes it. A
delivery whose caller was forgotten while it was in hand is not made (``cahub forget``
has cancelled it in the outbox).
"""

from __future__ import annotations

import logging
import random
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from hub.forget_guard import ForgetGuard
from hub.metrics import HubMetrics, register_delivery_metrics
from hub.models import Delivery
from hub.outbox import utc_now
from hub.ports import Outbox, PermanentError, Sink, TransientError
from hub.privacy import mask_text

log = logging.getLogger(__name__)

DRAIN_LIMIT = 50  # deliveries claimed at most by one drain
PURGE_EVERY_S = 600.0  # how often the background thread deletes rows kept long enough
Jitter = Callable[[float, float], float]


@dataclass(frozen=True)
class RetryPolicy:
    """When to try a failed delivery again (seconds), and when to give up on it."""

    base: float = 2.0
    factor: float = 2.0
    cap: float = 15 * 60.0
    max_attempts: int = 12
    max_age: timedelta = timedelta(hours=24)
    # Full jitter; not for secrets, only to keep retries from arriving in step.
    jitter: Jitter = field(default=random.uniform, compare=False)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after the ``attempt``-th failure, at least ``retry_after``."""
        ceiling = min(self.cap, self.base * self.factor ** min(attempt - 1, 64))
        return max(self.jitter(0.0, ceiling), retry_after or 0.0)

    def retry_at(self, delivery: Delivery, now: datetime,
                 retry_after: float | None = None) -> datetime | None:
        """When to try ``delivery`` again after its latest attempt failed; None: give up."""
        if delivery.attempts >= self.max_attempts or now - delivery.created_at >= self.max_age:
            return None
        return now + timedelta(seconds=self.delay(delivery.attempts, retry_after))


DEFAULT_POLICY = RetryPolicy()


@dataclass(frozen=True)
class DrainReport:
    """What one drain did: deliveries done, put back for a later retry, dead-lettered."""

    done: int = 0
    retried: int = 0
    dead: int = 0

    @classmethod
    def of(cls, outcomes: Iterable[str]) -> DrainReport:
        seen = list(outcomes)
        return cls(seen.count("done"), seen.count("retry"), seen.count("dead"))

    @property
    def total(self) -> int:
        return self.done + self.retried + self.dead


class Dispatcher:
    """Delivers what the outbox holds, on a background thread or one drain at a time.

    Each sink is worked off on its own: a drain claims the due deliveries of the sinks
    not still busy with their previous group and starts one group per sink, each on its
    own worker, so a slow CRM never holds up SMS. A sink is busy until its group ends,
    however it ends. A group stops after ``lease_budget`` seconds and puts the rest back,
    so no row outlives its lease (keep it under half of it). With ``keep_done``, the
    background thread also deletes rows delivered longer ago than that, every
    ``PURGE_EVERY_S`` (queue tables that only grow slow every claim down), and runs the
    other ``purges`` (the agents' desks) as often.
    """

    def __init__(self, outbox: Outbox, sinks: Mapping[str, Sink],
                 metrics: HubMetrics | None = None, policy: RetryPolicy = DEFAULT_POLICY,
                 clock: Callable[[], datetime] = utc_now, *, idle: float = 0.2,
                 workers: int = 4, lease_budget: float = 30.0,
                 keep_done: timedelta | None = None,
                 guard: ForgetGuard | None = None,
                 purges: Sequence[Callable[[], object]] = ()) -> None:
        self._outbox, self._sinks, self._policy, self._clock = outbox, sinks, policy, clock
        self._guard = guard or ForgetGuard(None, "")
        # A worker per sink, and one for rows left for a sink no longer configured.
        self._idle, self._workers, self._budget = idle, max(workers, len(sinks) + 1), lease_budget
        self._keep_done, self._purges, self._next_purge = keep_done, purges, 0.0
        self._metrics = None if metrics is None else register_delivery_metrics(
            metrics.registry, getattr(outbox, "counts", None))
        self._wake, self._stopping = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._busy: set[str] = set()  # sinks whose group is running
        self._lock = threading.Lock()  # over _busy and _pool

    def notify(self) -> None:
        """Wake the background thread: new deliveries are waiting."""
        self._wake.set()

    def start(self) -> None:
        """Start the background thread (once; a second call does nothing)."""
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="cahub-dispatcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop, giving running groups ``timeout`` s to end; True when every one ended.

        A group ends after its current delivery and puts the rest of its rows back, due
        now; a delivery still running after ``timeout`` stays leased, retried later.
        """
        deadline = time.monotonic() + timeout
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        while self._running() and time.monotonic() < deadline:
            self._wake.wait(0.05)  # each group that ends sets it
            self._wake.clear()
        return not self._running()

    def _running(self) -> bool:
        with self._lock:
            return bool(self._busy)

    def drain_once(self, limit: int = DRAIN_LIMIT) -> DrainReport:
        """Claim up to ``limit`` due deliveries of the sinks not busy, and make them."""
        futures = self._start_groups(limit)
        wait(futures)  # every group ends before a failed one's exception is raised
        return DrainReport.of(o for future in futures for o in future.result())

    def _run(self) -> None:
        """Start groups for the sinks that are free, without waiting for any to end."""
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                self._purge_when_due()
                started = self._start_groups(DRAIN_LIMIT)
            except Exception:
                log.error("outbox drain failed:\n%s", mask_text(traceback.format_exc()))
                self._stopping.wait(1.0)
                continue
            if not started:
                self._wake.wait(self._idle)  # a group that ends wakes it too

    def _purge_when_due(self) -> None:
        if time.monotonic() < self._next_purge:
            return
        self._next_purge = time.monotonic() + PURGE_EVERY_S
        for purge in [self._purge_done, *self._purges]:
            try:
                purge()
            except Exception:  # one failing purge must not stop the others, nor deliveries
                log.error("purge failed:\n%s", mask_text(traceback.format_exc()))

    def _purge_done(self) -> None:
        if self._keep_done is None:
            return
        removed = self._outbox.purge(self._keep_done, ("done", "cancelled"))
        if removed:
            log.info("purged %d finished rows (done, cancelled) from the outbox", removed)

    def _start_groups(self, limit: int) -> list[Future[list[str]]]:
        """Claim the due deliveries of the sinks not busy; one group per sink on the pool."""
        started = time.perf_counter()
        with self._lock:
            groups: dict[str, list[Delivery]] = {}
            for delivery in self._outbox.claim_due(limit, skip_sinks=frozenset(self._busy)):
                groups.setdefault(delivery.sink, []).append(delivery)
            self._busy.update(groups)
            pool = self._pool = self._pool or ThreadPoolExecutor(self._workers, "cahub-deliver")
            return [self._submit(pool, sink, group, started) for sink, group in groups.items()]

    def _submit(self, pool: ThreadPoolExecutor, sink: str, group: Sequence[Delivery],
                started: float) -> Future[list[str]]:
        future = pool.submit(self._run_sink, sink, group, started)
        # stop() may drop a group before it runs; its rows wait out their lease.
        future.add_done_callback(lambda done: self._release(sink) if done.cancelled() else None)
        return future

    def _run_sink(self, sink: str, group: Sequence[Delivery], started: float) -> list[str]:
        """One sink's group; the sink is free again once it ends, before its result is."""
        try:
            return self._run_group(group, started)
        except Exception:
            log.error("deliveries to %s failed:\n%s", sink, mask_text(traceback.format_exc()))
            raise
        finally:
            self._release(sink)

    def _release(self, sink: str) -> None:
        with self._lock:
            self._busy.discard(sink)
        self._wake.set()

    def _run_group(self, group: Sequence[Delivery], started: float) -> list[str]:
        """One sink's deliveries in order; once the budget is spent or the dispatcher
        stops, the rest go back."""
        outcomes = []
        for delivery in group:
            if skipped := self._why_not_now(started):
                self._outbox.mark_failed(delivery.id, f"not attempted: {skipped}", self._clock())
                outcomes.append(self._count(delivery, "retry"))
            else:
                outcomes.append(self._count(delivery, self._attempt(delivery)))
        return outcomes

    def _why_not_now(self, started: float) -> str | None:
        if self._stopping.is_set():
            return "the dispatcher stopped"
        if time.perf_counter() - started > self._budget:
            return "drain ran out of time"
        return None

    def _attempt(self, delivery: Delivery) -> str:
        sink = self._sinks.get(delivery.sink)
        if sink is None:
            return self._dead(delivery, f"no sink named {delivery.sink!r} is configured")
        started = time.perf_counter()
        try:
            with self._guard.writing():  # no forget is confirmed while a delivery is made
                if self._guard.call_forgotten(delivery.call_sid):
                    log.info("delivery %s not made: its caller was forgotten", delivery.id)
                    return "cancelled"
                return self._deliver(sink, delivery)
        finally:
            if self._metrics is not None:
                self._metrics.seconds.labels(delivery.sink).observe(time.perf_counter() - started)

    def _deliver(self, sink: Sink, delivery: Delivery) -> str:
        try:
            sink.deliver(delivery)
        except PermanentError as exc:
            return self._dead(delivery, f"permanent: {exc}")
        except TransientError as exc:
            return self._retry(delivery, f"transient: {exc}", exc.retry_after)
        except Exception as exc:
            log.error("delivery %s to %s raised unexpectedly; will retry:\n%s", delivery.id,
                      delivery.sink, mask_text(traceback.format_exc()))
            return self._retry(delivery, f"unexpected {type(exc).__name__}: {exc}", None)
        self._outbox.mark_done(delivery.id)
        return "done"

    def _retry(self, delivery: Delivery, error: str, retry_after: float | None) -> str:
        retry_at = self._policy.retry_at(delivery, self._clock(), retry_after)
        if retry_at is None:
            return self._dead(delivery, f"gave up after {delivery.attempts} attempts: {error}")
        log.info("delivery %s to %s will be retried at %s: %s", delivery.id, delivery.sink,
                 retry_at.isoformat(timespec="seconds"), mask_text(error))
        self._outbox.mark_failed(delivery.id, error, retry_at)
        return "retry"

    def _dead(self, delivery: Delivery, error: str) -> str:
        log.warning("delivery %s to %s is dead: %s", delivery.id, delivery.sink, mask_text(error))
        self._outbox.mark_failed(delivery.id, error, None)
        return "dead"

    def _count(self, delivery: Delivery, outcome: str) -> str:
        if self._metrics is not None:
            self._metrics.deliveries.labels(delivery.sink, delivery.action.value, outcome).inc()
        return outcome
