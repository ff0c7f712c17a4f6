"""The one reader of screen pops in a process: it follows Redis's feed and fills consoles' queues.

One thread (a greenlet under gevent) blocks on ``XREAD`` of the feed stream, whatever the
number of consoles or agents, and queues each pop for this process's consoles of its agent;
consoles cost no connection and no command of their own, and (un)subscribing only touches a
dict. Replays (``Last-Event-ID``) are read from the agent's stream by the console's own
request; one that fails because Redis is away is left to the reader, which runs it when Redis
answers again.

After every (re)connection the reader checks the epoch key and the feed: when Redis lost its
data (a restart that kept nothing) or trimmed feed entries the reader had not read yet,
every console is caught up from its agent's stream, and after a restart every pop Redis then
holds is news. Consoles keep their streams open through an outage.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
from collections.abc import Callable, Iterable
from typing import cast

import redis

from hub.desk import ConsoleEvent
from state.pops.redis_publisher import Backoff
from state.pops.redis_streams import (
    ORIGIN,
    PopKeys,
    StreamId,
    StreamSubscription,
    decode_entry,
    format_stream_id,
    parse_stream_id,
)
from state.pops.subscription import Pop, PopSubscription

logger = logging.getLogger(__name__)

Entry = tuple[bytes, dict[bytes, bytes]]
Pending = dict[StreamSubscription, StreamId | None]  # None: from the console's own place
READ_COUNT = 500  # feed entries per XREAD


class PopReader:
    """Follows the feed for this process's consoles (``StreamSubscription``s)."""

    def __init__(self, reads: redis.Redis, queries: redis.Redis, keys: PopKeys, *,
                 replay: int, block_s: float, timeout_s: float) -> None:
        self._reads, self._queries, self._keys = reads, queries, keys
        self._replay, self._block_s, self._timeout_s = replay, block_s, timeout_s
        self._lock = threading.Lock()
        self._subscribers: dict[str, set[StreamSubscription]] = {}
        self._pending: Pending = {}
        self._cursor: StreamId | None = None  # the last feed entry read
        self._epoch: bytes | None = None
        self._epoch_token = secrets.token_hex(8)
        self._reader_id: int | None = None
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, subscription: StreamSubscription) -> None:
        """Deliver live pops to ``subscription`` from now on."""
        self._start()
        self._ready.wait(self._timeout_s)  # until the reader knows where the feed is
        with self._lock:
            subscription.after = self._cursor
            self._subscribers.setdefault(subscription.agent_id, set()).add(subscription)

    def replay(self, subscription: StreamSubscription, floor: StreamId) -> None:
        """Queue the kept pops after ``floor`` ahead of the live ones (later if Redis is away)."""
        try:
            self._replay_into({subscription: floor})
        except redis.RedisError:
            with self._lock:
                self._pending[subscription] = floor

    def remove(self, subscription: PopSubscription) -> None:
        assert isinstance(subscription, StreamSubscription)
        with self._lock:
            group = self._subscribers.get(subscription.agent_id, set())
            group.discard(subscription)
            if not group:
                self._subscribers.pop(subscription.agent_id, None)
            self._pending.pop(subscription, None)

    def listening(self, agent_id: str) -> int:
        with self._lock:
            return len(self._subscribers.get(agent_id, ()))

    def forget(self, concerns: Callable[[ConsoleEvent], bool]) -> int:
        """Drop the pops whose summary ``concerns`` from this process's consoles' queues."""
        with self._lock:
            subscriptions = [s for group in self._subscribers.values() for s in group]
        return sum(subscription.drop(concerns) for subscription in subscriptions)

    def close(self) -> None:
        """Stop reading; open consoles get nothing more and end with their requests."""
        self._stopping.set()
        thread = self._thread
        for _ in range(int(self._timeout_s / 0.05) + 1):
            if thread is None or not thread.is_alive():
                break
            self._wake()  # again each time: it may only now be entering its read
            thread.join(0.05)
        self._reads.close()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None and not self._stopping.is_set():
                self._thread = threading.Thread(target=self._run, name="cahub-pops-reader",
                                                daemon=True)
                self._thread.start()

    def _run(self) -> None:
        backoff = Backoff()
        while not self._stopping.is_set():
            try:
                self._read(connected=not backoff.failures and self._ready.is_set())
            except Exception as exc:  # the reader must outlive any failure, or consoles go quiet
                if not self._stopping.is_set():
                    self._report(exc, backoff.failures)
                self._stopping.wait(backoff.next())
                continue
            if backoff.failures:
                logger.warning("screen pops: Redis is back")
            backoff.reset()

    def _read(self, connected: bool) -> None:
        if not connected:
            self._resume()
        self._catch_up()
        self._fan_out(self._next_entries())

    def _report(self, exc: Exception, failures: int) -> None:
        if not isinstance(exc, redis.RedisError):
            logger.exception("screen pops: the reader failed; it starts again")
        elif not failures:
            logger.warning("screen pops: Redis cannot be reached (%s); consoles stay open and "
                           "catch up when it is back", type(exc).__name__)

    def _resume(self) -> None:
        """Find our place after (re)connecting; catch every console up if Redis lost pops."""
        self._reader_id = None
        with contextlib.suppress(redis.ResponseError):  # CLIENT may be denied by an ACL
            self._reader_id = int(str(self._reads.client_id()))
        cursor = format_stream_id(self._cursor or ORIGIN)
        with self._queries.pipeline(transaction=False) as pipe:
            pipe.set(self._keys.epoch, self._epoch_token, nx=True)
            pipe.get(self._keys.epoch)
            pipe.xrevrange(self._keys.feed, "+", "-", count=1)
            pipe.xrange(self._keys.feed, cursor, cursor)
            _, epoch, newest, still_there = pipe.execute()
        with self._lock:
            lost = self._epoch is not None and epoch != self._epoch
            if self._cursor is None or lost or not still_there:
                self._cursor = _newest_id(newest)
                self._everyone_catches_up(restart=lost)
            self._epoch = epoch
        self._ready.set()

    def _everyone_catches_up(self, restart: bool) -> None:
        """Queue a catch-up for every console that has a place; the caller holds ``_lock``."""
        for subscription in (s for group in self._subscribers.values() for s in group):
            if subscription.anchor(self._cursor or ORIGIN, restart):
                self._pending.setdefault(subscription, None)

    def _catch_up(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        try:
            self._replay_into(pending)
        except redis.RedisError:
            with self._lock:
                for subscription, floor in pending.items():
                    self._pending.setdefault(subscription, floor)
            raise

    def _next_entries(self) -> list[Entry]:
        cursor = format_stream_id(self._cursor or ORIGIN)
        reply = cast(list[tuple[bytes, list[Entry]]], self._reads.xread(  # RESP2's shape
            {self._keys.feed: cursor}, count=READ_COUNT, block=max(1, int(self._block_s * 1000))))
        return reply[0][1] if reply else []

    def _fan_out(self, entries: list[Entry]) -> None:
        """Queue each pop for the consoles of its agent here; agents with none are skipped."""
        if not entries:
            return
        addressed = [(fields.get(b"agent", b"").decode("utf-8", "replace"), (entry_id, fields))
                     for entry_id, fields in entries]
        with self._lock:
            self._cursor = parse_stream_id(entries[-1][0]) or self._cursor
            targets = {agent: list(self._subscribers[agent]) for agent, _ in addressed
                       if agent in self._subscribers}
        for agent, entry in addressed:
            for stream_id, pop in _pops([entry]) if agent in targets else ():
                for subscription in targets[agent]:
                    subscription.offer(stream_id, pop)

    def _replay_into(self, pending: Pending) -> None:
        """Replay each console's kept pops after its floor, or catch it up from its place."""
        live = {s: floor for s, floor in pending.items() if not s.closed}
        agents = sorted({s.agent_id for s in live})
        if not agents:
            return
        with self._queries.pipeline(transaction=False) as pipe:
            pipe.xrevrange(self._keys.feed, "+", "-", count=1)
            for agent in agents:
                pipe.xrevrange(self._keys.agent(agent), "+", "-", count=self._replay)
            newest, *replies = pipe.execute()
        kept = {agent: list(reversed(entries)) for agent, entries in zip(agents, replies,
                                                                        strict=True)}
        decoded: dict[bytes, list[tuple[StreamId, Pop]]] = {}
        for subscription, floor in live.items():
            if floor is not None and floor > _newest_id(newest):
                floor = ORIGIN  # an id from before a Redis restart: all kept is news
            start = floor if floor is not None else subscription.after or ORIGIN
            missed = [pop for entry in kept[subscription.agent_id]
                      if (parse_stream_id(entry[0]) or ORIGIN) > start
                      for pop in decoded.setdefault(entry[0], _pops([entry]))]
            if floor is not None:
                subscription.replay(missed)
                continue
            for stream_id, pop in missed:
                subscription.offer(stream_id, pop)

    def _wake(self) -> None:
        """End the reader's blocking read now, if Redis answers."""
        if self._reader_id is None:
            return
        with contextlib.suppress(redis.RedisError):  # else the read ends within block_s
            self._queries.client_unblock(self._reader_id)


def _newest_id(entries: list[Entry]) -> StreamId:
    return (parse_stream_id(entries[0][0]) or ORIGIN) if entries else ORIGIN


def _pops(entries: Iterable[Entry]) -> list[tuple[StreamId, Pop]]:
    """Stream entries as pops; one that cannot be read is logged and skipped."""
    pops: list[tuple[StreamId, Pop]] = []
    for entry_id, fields in entries:
        stream_id = parse_stream_id(entry_id)
        try:
            event = decode_entry(fields)
        except ValueError:
            logger.error("screen pops: skipped an unreadable entry, %r", entry_id)
            continue
        if stream_id is not None:
            pops.append((stream_id, (format_stream_id(stream_id), event)))
    return pops
