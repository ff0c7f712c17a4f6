"""A forgotten caller's pops and call states taken out of Redis: every agent's stream and
the feed.

Each agent's stream keeps that agent's last events and the feed every recent event; an
event is in both under one id. The agent streams are found with SCAN (never KEYS, which
would hold Redis for as long as it walks every key) and read whole, a pipeline of them at a
time (they are trimmed to a few events each); the feed is read in pages. An event that
concerns the person (a pop of theirs, the state of one of their calls) is deleted (XDEL)
from both, so neither a replay nor a reader catching up can give it again.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator, Sequence

import redis

from hub.desk import ConsoleEvent
from state.pops.redis_streams import PopKeys, decode_entry

Concerns = Callable[[ConsoleEvent], bool]
Entry = tuple[bytes, dict[bytes, bytes]]
PAGE = 500  # feed entries read at once, agent streams read in one pipeline


def forget_kept(client: redis.Redis, keys: PopKeys, concerns: Concerns) -> int:
    """Delete the pops ``concerns`` picks from every agent's stream and the feed; how many
    different pops were deleted."""
    streams = client.scan_iter(match=_glob_escaped(keys.agent("")) + "*", count=PAGE)
    deleted: set[bytes] = set()
    while group := list(itertools.islice(streams, PAGE)):
        deleted |= _forget_in_streams(client, group, concerns)
    deleted |= set(_concerned(_entries(client, keys.feed), concerns))
    if deleted:
        client.xdel(keys.feed, *deleted)
    return len(deleted)


def _forget_in_streams(client: redis.Redis, streams: Sequence[bytes],
                       concerns: Concerns) -> set[bytes]:
    """XDEL from each of ``streams`` (read in one round trip) the pops ``concerns`` picks."""
    with client.pipeline(transaction=False) as pipe:
        for stream in streams:
            pipe.xrange(stream)
        replies: list[list[Entry]] = pipe.execute()
    found = {stream: _concerned(iter(entries), concerns)
             for stream, entries in zip(streams, replies, strict=True)}
    with client.pipeline(transaction=False) as pipe:
        for stream, ids in found.items():
            if ids:
                pipe.xdel(stream, *ids)
        pipe.execute()
    return {entry_id for ids in found.values() for entry_id in ids}


def _entries(client: redis.Redis, stream: bytes | str) -> Iterator[Entry]:
    """Every entry of ``stream``, oldest first, read a page at a time."""
    start: bytes | str = "-"
    while True:
        page: list[Entry] = client.xrange(stream, start, "+", count=PAGE)  # type: ignore[assignment]
        yield from page
        if len(page) < PAGE:
            return
        start = b"(" + page[-1][0]


def _concerned(entries: Iterator[Entry], concerns: Concerns) -> list[bytes]:
    found = []
    for entry_id, fields in entries:
        try:
            event = decode_entry(fields)
        except ValueError:  # not an event the broker wrote; not ours to judge
            continue
        if concerns(event):
            found.append(entry_id)
    return found


def _glob_escaped(text: str) -> str:
    """``text`` matched literally by a Redis glob pattern."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)
