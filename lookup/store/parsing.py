"""Lines to records, chunk by chunk: in this process, or in worker processes for big loads.

Parsing (JSON, phone numbers, identities) costs a third of a record's time, so for a
large load it can run in ``workers`` processes while this one writes. They are spawned,
never forked (a server's threads do not survive a fork), so the main module must be
safe to import again: a script needs its ``if __name__ == "__main__":`` guard.

A load is parsed here, in the calling thread, for its first ``POOL_AFTER`` chunks, and
a pool is started only when more lines follow: those 8,000 lines take about as long to
parse here (10-20 µs each) as a spawned worker takes to start (200-300 ms on two
cores), so a smaller load would be done before a worker could help, and would only pay
for starting it. A completed call's write-back, one line, never starts one. Once the pool
starts, parsing goes on here until its workers are up. A worker ends with the process
that started it, even one killed by SIGKILL (see ``start_worker``).

Chunks come back in input order, with at most ``AHEAD`` per worker in flight, so memory
stays bounded whatever the input size. They travel back packed (``packing``), which
makes them several times cheaper to receive.
"""

from __future__ import annotations

import gc
import itertools
import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

from lookup.store.packing import Packed, pack, unpack
from lookup.store.records import (
    AudienceRecord,
    EventRecord,
    ProfileRecord,
    Rules,
    parse_audience,
    parse_event,
    parse_profile,
)
from lookup.store.validation import RecordError, text_of

CHUNK_LINES = 1000  # one transaction and one progress report per chunk
POOL_AFTER = 8  # chunks parsed inline before a pool is worth starting (see above)
AHEAD = 3  # chunks queued per worker

Record = ProfileRecord | EventRecord | AudienceRecord
Line = str | bytes  # bytes are decoded here, line by line: a bad byte costs its line only
Parser = Callable[[int, str, Rules], Record]
PARSERS: dict[str, Parser] = {
    "profiles": parse_profile,
    "events": parse_event,
    "audiences": parse_audience,
}


@dataclass
class Chunk:
    """One chunk's records, its rejected lines (number, reason), and how many lines it had."""

    lines: int
    records: list[Record] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)

    def warnings(self) -> list[tuple[int, str]]:
        """(line number, what was left out of its record) for every field dropped."""
        return [(record.line, why) for record in self.records
                if type(record) is ProfileRecord for why in record.dropped]


def parse_chunk(kind: str, first: int, lines: list[Line], rules: Rules) -> Chunk:
    """Parse ``lines``, numbered from ``first``; blank lines are skipped silently."""
    parse = PARSERS[kind]
    chunk = Chunk(len(lines))
    for number, line in enumerate(lines, start=first):
        if not line or line.isspace():
            continue
        try:
            chunk.records.append(parse(number, text_of(line), rules))
        except RecordError as exc:
            chunk.rejected.append((number, str(exc)))
    return chunk


def warm_up() -> None:
    """Nothing: a worker that runs it has imported the parsers, and is ready."""


def start_worker() -> None:
    """A parsing worker's start: the cyclic garbage collector off (a worker's records hold
    no reference cycles, so it would only scan them; see ``ingest.GC_PAUSE_AFTER``), and
    a thread that ends the worker as soon as its parent is gone. A pool's workers wait
    for chunks on a queue they hold both ends of, so nothing else would ever end them."""
    gc.disable()
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent,), name="cahub-parent-watch",
                         daemon=True).start()


def _exit_with(parent: multiprocessing.process.BaseProcess) -> None:
    parent.join()  # returns when the parent ends: its end of a pipe to this one closes
    os._exit(1)


def parse_packed(kind: str, first: int, lines: list[Line], rules: Rules) -> Packed:
    """``parse_chunk`` in a worker: the chunk packed for the trip back."""
    chunk = parse_chunk(kind, first, lines, rules)
    return pack(chunk.records, chunk.rejected, first, lines)


def parsed_chunks(
    kind: str, lines: Iterable[Line], rules: Rules, workers: int, *, share: bool = False
) -> Iterator[Chunk]:
    """The chunks of ``lines``, parsed, in order; by ``workers`` processes too when
    there are more than ``POOL_AFTER`` chunks. With ``share`` (the caller does nothing
    else meanwhile, and would only wait for the workers) this process parses one chunk
    in ``workers + 1`` itself."""
    raw = _numbered_chunks(lines)
    for first, chunk in itertools.islice(raw, POOL_AFTER) if workers else raw:
        yield parse_chunk(kind, first, chunk, rules)
    following = next(raw, None) if workers else None
    if following is not None:
        yield from _pooled(kind, itertools.chain([following], raw), rules, workers, share)


def _pooled(
    kind: str, raw: Iterator[tuple[int, list[Line]]], rules: Rules, workers: int, share: bool
) -> Iterator[Chunk]:
    """Chunks parsed by a pool, once its workers have started (until then, here); if the
    pool cannot start or dies (a script without a ``__main__`` guard, say), the rest is
    parsed here. With ``share``, every ``workers + 1``-th chunk is parsed here."""
    pending: deque[tuple[int, list[Line]]] = deque()  # submitted, not yet yielded
    futures: deque[Future[Packed] | Chunk] = deque()  # a Chunk: parsed here
    # spawn: never fork a process that may be running a server's threads.
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=start_worker)
    try:
        started = pool.submit(warm_up)
        for first, lines in raw:
            if started.done():
                raw = itertools.chain([(first, lines)], raw)
                break
            yield parse_chunk(kind, first, lines, rules)
        for n, (first, lines) in enumerate(raw):
            pending.append((first, lines))
            here = share and n % (workers + 1) == workers
            futures.append(parse_chunk(kind, first, lines, rules) if here
                           else pool.submit(parse_packed, kind, first, lines, rules))
            while len(futures) >= workers * AHEAD or (futures and _done(futures[0])):
                yield _received(kind, futures, pending)
        while futures:
            yield _received(kind, futures, pending)
    except BrokenProcessPool:
        for first, lines in itertools.chain(pending, raw):
            yield parse_chunk(kind, first, lines, rules)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _done(parsing: Future[Packed] | Chunk) -> bool:
    return isinstance(parsing, Chunk) or parsing.done()


def _received(
    kind: str, futures: deque[Future[Packed] | Chunk], pending: deque[tuple[int, list[Line]]]
) -> Chunk:
    """The first chunk in flight, taken off both queues once it is parsed (a pool that
    broke meanwhile leaves it pending, to be parsed here)."""
    parsing = futures[0]
    if isinstance(parsing, Chunk):
        chunk = parsing
    else:
        packed = parsing.result()
        first, lines = pending[0]
        chunk = Chunk(packed[0], unpack(kind, packed, first, lines), packed[1])
    futures.popleft()
    pending.popleft()
    return chunk


def _numbered_chunks(lines: Iterable[Line]) -> Iterator[tuple[int, list[Line]]]:
    """``(number of the first line, lines)`` per chunk of ``CHUNK_LINES``."""
    iterator = iter(lines)
    first = 1
    while chunk := list(itertools.islice(iterator, CHUNK_LINES)):
        yield first, chunk
        first += len(chunk)
