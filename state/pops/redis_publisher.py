"""Console events (screen pops and call states) on their way to Redis: a bounded local
backlog and one writer thread.

``publish`` only appends to the backlog and wakes the writer, so a webhook never waits on
Redis and nothing Redis does raises into it. The writer sends the backlog in order, in
pipelined batches. While Redis cannot be reached it keeps the pops and retries after a
growing pause, so they pop, late, once Redis is back. The backlog is bounded: when it is
full its oldest pop is dropped and logged. A batch cut off by a lost connection is sent
again whole, so after an outage a pop may reach a console twice (the console shows one
call's pops in one place). Pops not yet sent when the process stops are lost, as they are
with the in-process broker. ``forget`` drops a forgotten caller's pops not yet sent, and
returns only once no batch taken before it is still on its way (so that what it did send
is in Redis, where the broker's forget deletes it).
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import deque
from collections.abc import Callable

import redis

from hub.desk import ConsoleEvent
from state.pops.redis_streams import PUBLISH_SCRIPT, PopKeys, encode_entry

logger = logging.getLogger(__name__)

Pending = tuple[int, str, ConsoleEvent]  # (sequence, agent id, pop or call state)
JOIN_TIMEOUT_S = 10.0  # a batch in flight ends within its socket timeouts, well before


class Backoff:
    """Pauses that double after each failure, from ``first`` up to ``most`` seconds."""

    def __init__(self, first: float = 0.05, most: float = 2.0) -> None:
        self._first, self._most = first, most
        self.failures = 0

    def next(self) -> float:
        self.failures += 1
        return min(self._most, self._first * 2.0 ** (self.failures - 1))

    def reset(self) -> None:
        self.failures = 0


class PopPublisher:
    """Sends pops to Redis from one thread, in publish order; ``publish`` never waits."""

    def __init__(self, client: redis.Redis, keys: PopKeys, *, backlog: int, replay: int,
                 feed_length: int, ttl_ms: int, batch: int = 100) -> None:
        self._client = client
        self._sha: str | None = None
        self._keys = keys
        self._limits = (feed_length, replay, ttl_ms)
        self._backlog = max(backlog, 1)
        self._batch = batch
        self._pending: deque[Pending] = deque()
        self._sequence = 0
        self._ready = threading.Condition()
        self._sending = threading.Lock()  # held from taking a batch until it was sent
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.dropped = 0

    def publish(self, agent_id: str, summary: ConsoleEvent) -> None:
        """Queue the event for the writer (started on first use)."""
        with self._ready:
            if len(self._pending) >= self._backlog:
                self._pending.popleft()
                self.dropped += 1
                if self.dropped % 100 == 1:  # once per hundred: an outage drops many
                    logger.warning("screen pops wait for Redis and the backlog is full; "
                                   "%d of the oldest dropped so far", self.dropped)
            self._sequence += 1
            self._pending.append((self._sequence, agent_id, summary))
            self._ready.notify()
            if self._thread is None and not self._stopping.is_set():
                self._thread = threading.Thread(target=self._run, name="cahub-pops-writer",
                                                daemon=True)
                self._thread.start()

    def held(self) -> int:
        """How many pops wait to be sent."""
        with self._ready:
            return len(self._pending)

    def forget(self, concerns: Callable[[ConsoleEvent], bool]) -> int:
        """Drop the pops not yet sent whose summary ``concerns``; how many. Waits for the
        batch being sent, if any, to reach Redis (or fail) first."""
        with self._sending, self._ready:
            kept = deque(pending for pending in self._pending if not concerns(pending[2]))
            dropped, self._pending = len(self._pending) - len(kept), kept
        return dropped

    def close(self) -> None:
        """Stop the writer after the batch it is sending, and drop its connection."""
        self._stopping.set()
        with self._ready:
            self._ready.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(JOIN_TIMEOUT_S)
        self._client.close()

    def _run(self) -> None:
        backoff = Backoff()
        while not self._stopping.is_set():
            self._wait_for_pops()
            with self._sending:
                batch = self._next_batch()
                sent = bool(batch) and self._try(batch, backoff)
                if sent:
                    self._sent(batch[-1][0])
            if batch and not sent:
                self._stopping.wait(backoff.next())

    def _try(self, batch: list[Pending], backoff: Backoff) -> bool:
        """Send ``batch``; False when Redis could not be reached (the batch is kept)."""
        try:
            self._send(batch)
        except redis.RedisError as exc:
            if not backoff.failures:
                logger.warning("screen pops: Redis cannot be reached (%s); holding pops "
                               "until it is back", type(exc).__name__)
            return False
        except Exception:  # it would fail the same way again; the writer must go on
            logger.exception("screen pops: could not send %d pops; dropped them", len(batch))
        if backoff.failures:
            logger.warning("screen pops: Redis is back; sending the pops held meanwhile")
        backoff.reset()
        return True

    def _wait_for_pops(self) -> None:
        with self._ready:
            self._ready.wait_for(lambda: self._pending or self._stopping.is_set())

    def _next_batch(self) -> list[Pending]:
        with self._ready:
            return list(itertools.islice(self._pending, self._batch))

    def _send(self, batch: list[Pending]) -> None:
        """One round trip for the batch; a pop Redis refuses is logged and not retried."""
        if self._sha is None:  # loaded once: redis-py's pipelines check scripts every time
            self._sha = str(self._client.script_load(PUBLISH_SCRIPT))
        feed_length, replay, ttl_ms = self._limits
        with self._client.pipeline(transaction=False) as pipe:
            for _, agent_id, summary in batch:
                pipe.evalsha(self._sha, 2, self._keys.feed, self._keys.agent(agent_id),
                             agent_id, encode_entry(summary), feed_length, replay, ttl_ms)
            results = pipe.execute(raise_on_error=False)
        if results and isinstance(results[0], redis.exceptions.NoScriptError):
            self._sha = None  # Redis restarted, or its scripts were flushed: load it again
            raise results[0]
        for result in results:
            if isinstance(result, redis.ResponseError):
                logger.error("Redis refused a screen pop: %s", result)

    def _sent(self, sequence: int) -> None:
        """Forget the pops up to ``sequence`` (some may have been dropped meanwhile)."""
        with self._ready:
            while self._pending and self._pending[0][0] <= sequence:
                self._pending.popleft()
