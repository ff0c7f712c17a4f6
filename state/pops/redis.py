"""Screen pops shared by every process through Redis Streams (the ``ScreenPopBroker`` port).

The behaviour of ``state.pops.memory``, across processes and hosts: a pop or a call state
published in any process reaches the agent's consoles in every process that uses the same
Redis and prefix (a call state is kept and replayed exactly as a pop is).
The event id is the pop's stream id ("<ms>-<seq>"), so a console that reconnects to any
server with ``Last-Event-ID`` is replayed the pops it missed: at most ``replay`` of them,
while Redis keeps them (a day after the agent's last pop, by default). A console that
subscribes without an id gets live pops only. An id newer than any pop Redis holds comes
from before a Redis restart that kept nothing; it is given everything kept since.

Publishing (``PopPublisher``) never waits on Redis nor raises: pops published while Redis
is away are held in a bounded backlog and sent when it returns. Receiving
(``PopReader``) takes one thread and one blocking connection per process, whatever the
number of consoles. Through a Redis outage consoles keep their streams; pops resume after.

``forget`` takes a forgotten caller's pops out of this process (pops not yet sent, consoles'
queues) and out of Redis (every agent's stream and the feed, ``state.pops.redis_forget``).
"""

from __future__ import annotations

from collections.abc import Callable

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from hub.desk import ConsoleEvent
from hub.ports import TransientError
from state.pops.redis_forget import forget_kept
from state.pops.redis_publisher import PopPublisher
from state.pops.redis_reader import PopReader
from state.pops.redis_streams import PopKeys, StreamSubscription, parse_stream_id

QUERY_CONNECTIONS = 8  # replays of reconnecting consoles share these; the rest wait their turn


class RedisScreenPopBroker:
    """A ``ScreenPopBroker`` shared through Redis; thread-safe and gevent-friendly.

    Nothing connects until the first publish or subscribe. ``timeout_s`` bounds every
    command but the reader's blocking read, which returns after ``block_s`` when idle.
    ``feed_length`` only needs to cover a reader's lapse (beyond it, consoles are caught up
    from their agents' streams): the feed holds personal data too, so it stays short.
    """

    def __init__(self, url: str, *, prefix: str = "cahub:", replay: int = 20,
                 queue_size: int = 100, backlog: int = 10_000, feed_length: int = 1000,
                 ttl_s: float = 86_400.0, timeout_s: float = 1.0, block_s: float = 1.0) -> None:
        keys = self._keys = PopKeys(prefix)
        replay = max(replay, 1)
        self._queue_size = max(queue_size, replay)
        self._queries = _client(url, timeout_s, pool_size=QUERY_CONNECTIONS)
        self._reader = PopReader(_client(url, timeout_s + block_s), self._queries, keys,
                                 replay=replay, block_s=block_s, timeout_s=timeout_s)
        self._publisher = PopPublisher(_client(url, timeout_s), keys, backlog=backlog,
                                       replay=replay, feed_length=feed_length,
                                       ttl_ms=int(ttl_s * 1000))

    def publish(self, agent_id: str, summary: ConsoleEvent) -> None:
        """Send ``summary`` (a pop or a call state) to every console of ``agent_id``, in every
        process, from a thread."""
        self._publisher.publish(agent_id, summary)

    def subscribe(self, agent_id: str, last_event_id: str | None = None) -> StreamSubscription:
        """Listen for ``agent_id``'s pops, first replaying those kept after ``last_event_id``."""
        subscription = StreamSubscription(agent_id, self._queue_size, self._reader.remove)
        self._reader.add(subscription)
        floor = parse_stream_id(last_event_id)
        if floor is not None:
            self._reader.replay(subscription, floor)
        return subscription

    def forget(self, concerns: Callable[[ConsoleEvent], bool]) -> int:
        """Drop every event (pop or call state) that ``concerns``, here and in Redis; how
        many.

        Pops not yet sent go first (once the batch on its way has reached Redis), then those
        Redis keeps, then those queued for consoles here, so that a pop moving from one place
        to the next is met in the next (the forget guard cleans once more before it confirms,
        for one the reader was handing to a console meanwhile). ``TransientError`` when
        Redis cannot be reached: what it holds is then still to be forgotten.
        """
        dropped = self._publisher.forget(concerns)
        try:
            dropped += forget_kept(self._queries, self._keys, concerns)
        except redis.RedisError as exc:
            raise TransientError(f"Redis: {type(exc).__name__}: {exc}") from exc
        return dropped + self._reader.forget(concerns)

    def listening(self, agent_id: str) -> int:
        """How many consoles of ``agent_id`` are subscribed in this process."""
        return self._reader.listening(agent_id)

    def held(self) -> int:
        """How many pops of this process wait to be sent to Redis."""
        return self._publisher.held()

    def ping(self) -> None:
        """Raise ``TransientError`` when Redis does not answer."""
        try:
            self._queries.ping()
        except redis.RedisError as exc:
            raise TransientError(f"Redis: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        """Stop sending and reading, and drop the connections (open consoles get nothing more)."""
        self._publisher.close()
        self._reader.close()
        self._queries.close()


def _client(url: str, timeout_s: float, pool_size: int = 1) -> redis.Redis:
    """A client that connects on first use and never retries by itself (its caller decides
    when to try again). Its pool holds ``pool_size`` connections; a caller waits for one."""
    pool = redis.BlockingConnectionPool.from_url(
        url, max_connections=pool_size, timeout=timeout_s, socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), 0))
    return redis.Redis(connection_pool=pool)
