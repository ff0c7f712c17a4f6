"""What the Redis screen-pop broker keeps in Redis, and a console's place in it.

Keys, under the broker's prefix:

- ``pops:agent:<agent id>``, one stream per agent holding its last console events (screen
  pops and call states): what a reconnecting console is replayed;
- ``pops:feed``, one stream of every event with its agent, in order: each process's reader
  follows it, whatever the number of agents, and the agent streams' trimming cannot take an
  event from under it;
- ``pops:epoch``, a token that tells a reader whether Redis still holds what it held (a
  restart that kept nothing loses it).

An event is written to its agent's stream with the id its feed entry got, so one id orders
every event, and that id is the SSE event id. Its ``event`` field is
``hub.desk.encode_event``'s text, which says whether it is a pop or a call state; an entry
with a ``summary`` field instead is a pop written before call states were carried (Redis
keeps them a day), and is read as one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hub.desk import ConsoleEvent, decode_event, encode_event
from hub.models import Summary
from state.pops.subscription import Pop, PopSubscription

StreamId = tuple[int, int]
ORIGIN: StreamId = (0, 0)
_STREAM_ID = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")
_ID_PART_LIMIT = 2**64

# One script, so an event is never in the feed without its entry, nor the other way round.
# KEYS: the feed, the agent's stream. ARGV: agent id, the encoded event, feed length (trimmed
# approximately), kept events per agent (trimmed exactly: they hold personal data), TTL in ms.
PUBLISH_SCRIPT = """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'agent', ARGV[1],
                      'event', ARGV[2])
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[4], id, 'event', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return id
"""


def parse_stream_id(value: str | bytes | None) -> StreamId | None:
    """``"<ms>-<seq>"`` as a pair that sorts as Redis does, or None when it is not one."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    match = _STREAM_ID.fullmatch(value) if value is not None else None
    if match is None:
        return None
    ms, seq = int(match[1]), int(match[2])
    return (ms, seq) if ms < _ID_PART_LIMIT and seq < _ID_PART_LIMIT else None


def format_stream_id(stream_id: StreamId) -> str:
    return f"{stream_id[0]}-{stream_id[1]}"


@dataclass(frozen=True)
class PopKeys:
    """The broker's key names under ``prefix``."""

    prefix: str

    @property
    def feed(self) -> str:
        return f"{self.prefix}pops:feed"

    @property
    def epoch(self) -> str:
        return f"{self.prefix}pops:epoch"

    def agent(self, agent_id: str) -> str:
        return f"{self.prefix}pops:agent:{agent_id}"


def encode_entry(event: ConsoleEvent) -> str:
    """The ``event`` field of a stream entry carrying ``event``."""
    return encode_event(event)


def decode_entry(fields: dict[bytes, bytes]) -> ConsoleEvent:
    """The pop or call state of a stream entry (``ValueError`` when it holds neither)."""
    event, summary = fields.get(b"event"), fields.get(b"summary")
    if event is not None:
        try:
            return decode_event(event)
        except (KeyError, TypeError) as exc:  # JSON of another shape
            raise ValueError(f"not a console event: {exc}") from exc
    if summary is not None:  # written before call states went through Redis
        return Summary.model_validate_json(summary)
    raise ValueError("the entry has no event field")


class StreamSubscription(PopSubscription):
    """One console's queue, which knows where it stands in the stream ids.

    ``after`` is the newest id it was given (or placed at, when it subscribed): a pop offered
    at or below it is skipped, so no pop reaches a console twice. None until the process's
    reader has found its place in the feed.
    """

    def __init__(self, agent_id: str, maxlen: int,
                 on_close: Callable[[PopSubscription], None]) -> None:
        super().__init__(maxlen, on_close)
        self.agent_id = agent_id
        self.after: StreamId | None = None
        self._first_given: StreamId | None = None

    def anchor(self, cursor: StreamId, restart: bool) -> bool:
        """Place a console that has no place yet at ``cursor``; True when it has one already
        and must be caught up. After a restart every pop Redis holds is news to it."""
        with self._ready:
            if restart:  # the new ids may even sort below the old ones
                self.after, self._first_given = ORIGIN, None
            if self.after is None:
                self.after = cursor
                return False
            return True

    def offer(self, stream_id: StreamId, pop: Pop) -> None:
        """Queue a pop newer than every one this console has."""
        with self._ready:
            if self.closed or (self.after is not None and stream_id <= self.after):
                return
            self.after = stream_id
            self._first_given = self._first_given or stream_id
            self._append(pop)
            self._ready.notify()

    def replay(self, missed: Sequence[tuple[StreamId, Pop]]) -> None:
        """Put ``missed`` (oldest first) ahead of the queue, but for pops already given."""
        with self._ready:
            first = self._first_given
            older = [(stream_id, pop) for stream_id, pop in missed
                     if first is None or stream_id < first]
            if self.closed or not older:
                return
            given = list(self._queue)
            self._queue.clear()
            for pop in [*(pop for _, pop in older), *given]:
                self._append(pop)
            self.after = max(self.after or ORIGIN, older[-1][0])
            self._ready.notify()
