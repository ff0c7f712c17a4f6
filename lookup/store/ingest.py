"""Bulk ingest of JSON Lines into the store, and the report of what was loaded.

Lines are parsed (``parsing``) and written in chunks with ``executemany``: the identities
of the whole chunk are resolved to persons at once (``graph``), then fragments are
upserted (or events inserted) and each touched person's profile row is rebuilt once
(``materialise``). A transaction holds the chunks of ``COMMIT_EVERY`` seconds. A bad line
is rejected with its number and reason and never stops the load.

A load of profiles of more than ``WHOLE_LOAD_AFTER`` lines (SQLite's bulk loads:
PostgreSQL writes its own with ``postgres.bulk``) is a whole load instead: its
lines are all parsed first (this process parsing a share beside the workers), then
linked at once in memory (``load_graph``) and written table by table in key order
(``bulk_write``), in one transaction per ``WHOLE_LOAD_MAX`` records. Lookups see none of
it until that transaction ends. A load that would move stored rows (merge stored
persons) is written by the chunk writer instead, as one chunk.

Loading the same data again changes nothing: events are keyed by ``_id``, fragments by
person, dataset and primary identity, and a fragment's content is only replaced by a
version at least as new. (One exception: a data set holding several versions of one
fragment with different identities, one of which became shared in between; exports hold
one record per primary identity, so it does not arise from loading them again.)

Events older than the retention are counted as loaded but not stored (they would be
purged at once).

A first load of events (into a store that holds none) is written differently, so that
each person's events end up side by side in the file: a lookup then reads a person's
newest events from one or two pages instead of one page per event, which is what keeps
lookups fast when the store no longer fits in memory. The events are held back in a
temporary table as they are resolved, then stored ordered by person and time, all in
one transaction: nothing of the load is visible until it ends, and a load that fails or
is killed leaves no event behind (load the file again). Held-back events are stored
before any chunk that merges persons, so that they move with their person. Of two
different events with one ``_id`` in such a load, the one of the lower person and time
is kept (in a later load, the one stored first).
"""

from __future__ import annotations

import gc
import itertools
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from typing import Literal

from lookup.store.backend import Connection, Connections
from lookup.store.bulk_write import UPSERT_FRAGMENT, write_whole_load
from lookup.store.graph import Resolution, resolve, sole_key
from lookup.store.materialise import Touched, materialise
from lookup.store.merge import MergePolicy
from lookup.store.numbering import take_sequence
from lookup.store.parsing import Chunk, Line, Record, parsed_chunks
from lookup.store.records import AudienceRecord, EventRecord, ProfileRecord, Rules
from lookup.store.report import IngestReport, IngestWarning, Rejection

Kind = Literal["profiles", "events", "audiences"]
KINDS = ("profiles", "events", "audiences")
# Seconds of writing per transaction. Committing costs about as much as the pages a
# transaction dirtied, and random keys dirty pages all over the indexes, so a commit per
# chunk would cost more than the writing itself.
COMMIT_EVERY = 2.0

FRAGMENT_HOME = (
    "SELECT f.person_id FROM shared_links AS s JOIN fragments AS f ON f.person_id = s.person_id"
    " WHERE s.shared_id = ? AND f.dataset = ? AND f.key_space = ? AND f.key_value = ?"
)
EVENT_COLUMNS = "event_id, person_id, ts, type, dataset, sole_key, body"
INSERT_EVENT = (
    f"INSERT OR IGNORE INTO events ({EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"  # noqa: S608 - constants
)
# A load of more lines than this is a bulk load, written with the connection's bulk
# settings (``connection.BULK_PRAGMAS``: no fsync, a large cache). A smaller one (a call's
# write-back, a few records through the API) keeps the store's durable settings, and
# does not resize a server thread's page cache and back for a line or two.
BULK_AFTER = 1000
# A load longer than this many chunks runs with the cyclic garbage collector paused: its
# records and rows hold no reference cycles, yet the collector keeps scanning them, which
# costs about a tenth of the load's time.
GC_PAUSE_AFTER = 8
# A load of profiles of more lines than this is linked whole, in memory (``load_graph``),
# and written table by table in key order (``bulk_write``); a smaller one (a call's
# write-back, a few records through the API) chunk by chunk.
WHOLE_LOAD_AFTER = BULK_AFTER
# Records linked at once: a longer load is linked in successive whole loads of this many,
# each one transaction, so that memory stays bounded (a record holds 1-2 KiB).
WHOLE_LOAD_MAX = 250_000
NOTE_WHOLE = 100_000  # records of a whole load worth telling the operator about
NOTE_HELD = 100_000  # held-back events worth telling the operator about before storing them
HEARTBEAT_S = 15.0  # how often the operator hears that storing them goes on
HEARTBEAT_STEPS = 100_000  # SQLite virtual machine steps between two looks at the clock
# The held-back events of a first load; rowid is the order of arrival.
HOLD_BACK = (
    "CREATE TEMP TABLE held_events (event_id TEXT, person_id INTEGER, ts INTEGER, type TEXT,"
    " dataset TEXT, sole_key TEXT, body TEXT)"
)
STORE_HELD = (
    f"INSERT OR IGNORE INTO events ({EVENT_COLUMNS}) SELECT {EVENT_COLUMNS}"  # noqa: S608 - constants
    " FROM temp.held_events ORDER BY person_id, ts, rowid"
)
UPSERT_AUDIENCE = """
INSERT INTO audiences (id, name, description) VALUES (?, ?, ?)
ON CONFLICT (id) DO UPDATE SET name = excluded.name, description = excluded.description
"""


@dataclass(frozen=True)
class Options:
    """How records are read, linked and merged."""

    rules: Rules
    policy: MergePolicy
    max_identities: int
    events_since: int | None = None  # microseconds; older events are not stored
    workers: int = 0  # processes parsing lines while this one writes (0: none)
    # Profiles of a long load linked whole (``WHOLE_LOAD_AFTER``); False: chunk by chunk, as
    # the real-time API writes, whose loads are short and whose server must keep answering.
    whole_loads: bool = True


def ingest_lines(
    connections: Connections,
    kind: Kind,
    lines: Iterable[Line],
    *,
    dataset: str,
    options: Options,
    progress: Callable[[int], None] | None = None,
    note: Callable[[str], None] | None = None,
) -> IngestReport:
    """Load ``lines`` of ``kind`` in chunks, or profiles as a whole load; see the module
    docstring. ``note`` is told of a long step that reading lines does not show (storing
    a first load's events, writing a whole load)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    tally = _Tally(progress)
    whole = False
    if kind == "profiles" and options.whole_loads:
        lines, whole = more_than(lines, WHOLE_LOAD_AFTER)
    # A whole load is written once every line is parsed: this process helps parse.
    chunks = parsed_chunks(kind, lines, options.rules, options.workers, share=whole)
    if whole:
        _ingest_whole(connections, chunks, dataset, options, tally, note)
        return tally.report(kind)
    first_events = kind == "events" and _holds_no_events(connections)
    finished, written = False, 0
    with ExitStack() as bulk:
        while not finished:
            with connections.writing() as connection, \
                    _held(connection, first_events, note) as held:
                started, finished = time.monotonic(), True
                for chunk in chunks:
                    _write(connection, chunk.records, dataset, options, held)
                    written += 1
                    if written == GC_PAUSE_AFTER:
                        bulk.enter_context(collector_paused())
                    tally.add(chunk)
                    if held is None and time.monotonic() - started >= COMMIT_EVERY:
                        finished = False
                        break
    return tally.report(kind)


class _Tally:
    """What a load's chunks came to so far; ``progress`` hears of each chunk's lines."""

    def __init__(self, progress: Callable[[int], None] | None) -> None:
        self.progress = progress
        self.loaded = 0
        self.rejected: list[Rejection] = []
        self.warnings: list[IngestWarning] = []

    def add(self, chunk: Chunk) -> None:
        self.loaded += len(chunk.records)
        self.rejected += [Rejection(line=line, reason=why) for line, why in chunk.rejected]
        self.warnings += [IngestWarning(line=line, reason=why) for line, why in chunk.warnings()]
        if self.progress is not None:
            self.progress(chunk.lines)

    def report(self, kind: Kind) -> IngestReport:
        return IngestReport(kind=kind, loaded=self.loaded, rejected=tuple(self.rejected),
                            warnings=tuple(self.warnings))


def _ingest_whole(
    connections: Connections,
    chunks: Iterator[Chunk],
    dataset: str,
    options: Options,
    tally: _Tally,
    note: Callable[[str], None] | None,
) -> None:
    """Profiles linked and written as whole loads of up to ``WHOLE_LOAD_MAX`` records,
    each in one transaction (``load_graph``, ``bulk_write``)."""
    with ExitStack() as bulk:
        batch: list[ProfileRecord] = []
        for read, chunk in enumerate(chunks, start=1):
            if read == GC_PAUSE_AFTER:
                bulk.enter_context(collector_paused())
            batch += [r for r in chunk.records if isinstance(r, ProfileRecord)]
            tally.add(chunk)
            if len(batch) >= WHOLE_LOAD_MAX:
                _write_whole(connections, batch, dataset, options, note)
                batch = []
        if batch:
            _write_whole(connections, batch, dataset, options, note)


def _write_whole(
    connections: Connections,
    records: list[ProfileRecord],
    dataset: str,
    options: Options,
    note: Callable[[str], None] | None,
) -> None:
    if note is not None and len(records) >= NOTE_WHOLE:
        note(f"linking and storing {len(records):,} profile records")
    with connections.writing() as connection:
        now = time.time_ns() // 1000
        if not write_whole_load(connection, records, dataset=dataset,
                                unique=options.rules.unique, policy=options.policy,
                                max_identities=options.max_identities, now=now,
                                defer_indexes=isinstance(connection, sqlite3.Connection)):
            _write_profiles(connection, records, dataset, options, now)


def is_bulk(lines: Iterable[Line]) -> tuple[Iterator[Line], bool]:
    """``lines`` as they were, and whether they make a bulk load (see ``BULK_AFTER``)."""
    return more_than(lines, BULK_AFTER)


def more_than(lines: Iterable[Line], count: int) -> tuple[Iterator[Line], bool]:
    """``lines`` as they were, and whether there are more than ``count``; the first
    ``count + 1`` are read ahead to tell."""
    iterator = iter(lines)
    head = list(itertools.islice(iterator, count + 1))
    return itertools.chain(head, iterator), len(head) > count


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while the block runs (see ``GC_PAUSE_AFTER``);
    it is switched back on after, unless it was off already."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class HeldEvents:
    """A first load's events, held back in a temporary table, then stored in person order
    (see the module docstring)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.count = 0  # held since the last ``store``
        connection.execute("DROP TABLE IF EXISTS temp.held_events")
        connection.execute(HOLD_BACK)

    def add(self, rows: Iterable[tuple[object, ...]], count: int) -> None:
        self.connection.executemany(
            "INSERT INTO temp.held_events VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        self.count += count

    def store(self, note: Callable[[str], None] | None = None) -> None:
        """Store the events held so far, ordered by person and time; ``note`` hears every
        ``HEARTBEAT_S`` that it is still going (SQLite cannot tell how far it is)."""
        if note is not None:
            self.connection.set_progress_handler(_heartbeat(note), HEARTBEAT_STEPS)
        try:
            self.connection.execute(STORE_HELD)
        finally:
            self.connection.set_progress_handler(None, 0)
        self.connection.execute("DELETE FROM temp.held_events")
        self.count = 0

    def drop(self) -> None:
        self.connection.execute("DROP TABLE temp.held_events")


@contextmanager
def _held(
    connection: Connection, first_events: bool, note: Callable[[str], None] | None,
) -> Iterator[HeldEvents | None]:
    """Held-back events for a first load of events, stored when the block ends well."""
    if not first_events:
        yield None
        return
    held = HeldEvents(connection)
    try:
        yield held
        if note is not None and held.count >= NOTE_HELD:
            note(f"storing {held.count:,} events in person order (a first load of events)")
            held.store(note)
        else:
            held.store()
    finally:
        if connection.in_transaction:  # else SQLite rolled back, the table with the rest
            with suppress(sqlite3.Error):  # never hide why the load failed
                held.drop()


def _heartbeat(note: Callable[[str], None]) -> Callable[[], int]:
    """A SQLite progress handler that tells ``note`` the time taken every ``HEARTBEAT_S``."""
    started = last = time.monotonic()

    def beat() -> int:
        nonlocal last
        now = time.monotonic()
        if now - last >= HEARTBEAT_S:
            last = now
            note(f"still storing events, {now - started:,.0f} s so far")
        return 0  # go on

    return beat


def _holds_no_events(connections: Connections) -> bool:
    with connections.reading() as connection:
        return connection.execute("SELECT 1 FROM events LIMIT 1").fetchone() is None


def write_records(
    connection: Connection, records: list[Record], dataset: str, options: Options,
    held: HeldEvents | None = None,
) -> None:
    """Write one chunk's records row by row in the caller's write transaction (what a
    PostgreSQL bulk load does with a batch it cannot write with COPY)."""
    _write(connection, records, dataset, options, held)


def _write(
    connection: Connection,
    records: list[Record],
    dataset: str,
    options: Options,
    held: HeldEvents | None = None,
) -> None:
    now = time.time_ns() // 1000
    profiles = [r for r in records if isinstance(r, ProfileRecord)]
    events = [r for r in records if isinstance(r, EventRecord)]
    audiences = [r for r in records if isinstance(r, AudienceRecord)]
    if profiles:
        _write_profiles(connection, profiles, dataset, options, now)
    if events:
        _write_events(connection, events, dataset, options, now, held)
    connection.executemany(UPSERT_AUDIENCE, ((a.id, a.name, a.description) for a in audiences))


def _write_profiles(
    connection: Connection,
    records: list[ProfileRecord],
    dataset: str,
    options: Options,
    now: int,
) -> None:
    resolution = resolve(connection, [r.identities for r in records], options.rules.unique, now)
    if resolution.shared_nodes:
        _keep_fragments_home(connection, records, resolution, dataset)
    first = take_sequence(connection, "ingested_seq", len(records))
    connection.executemany(UPSERT_FRAGMENT, (
        (node, dataset, *r.primary[:2], now if r.modified_at is None else r.modified_at,
         first + offset, len(r.identities) == 1, r.attributes)
        for offset, (r, node) in enumerate(zip(records, resolution.nodes, strict=True))
    ))
    nodes = Counter(resolution.nodes)
    attributes_of = dict.fromkeys(  # a new person of one record: that record is their profile
        node for node in resolution.created if nodes[node] == 1
    )
    persons = set(nodes) | resolution.changed | resolution.created.keys()
    touched = Touched(persons - resolution.shared_nodes, resolution.created,
                      resolution.rows_of, attributes_of)
    materialise(connection, touched, options.policy, options.max_identities, now)


def _keep_fragments_home(
    connection: Connection,
    records: list[ProfileRecord],
    resolution: Resolution,
    dataset: str,
) -> None:
    """A record of several identities, all of them shared by now, updates its fragment
    where it was stored (with a person it was linked to before), if it was."""
    for n, (record, node) in enumerate(zip(records, resolution.nodes, strict=True)):
        if node in resolution.shared_nodes and len(record.identities) > 1:
            home = connection.execute(FRAGMENT_HOME, (node, dataset, *record.primary[:2]))
            found = home.fetchall()
            if len(found) == 1:
                resolution.nodes[n] = found[0][0]


def _write_events(
    connection: Connection,
    records: list[EventRecord],
    dataset: str,
    options: Options,
    now: int,
    held: HeldEvents | None,
) -> None:
    since = options.events_since
    if since is not None:
        records = [r for r in records if r.timestamp >= since]
    if not records:
        return
    resolution = resolve(connection, [r.identities for r in records], options.rules.unique, now,
                         None if held is None else held.store)
    rows = (
        (r.event_id, node, r.timestamp, r.event_type, dataset, sole_key(r.identities), r.body)
        for r, node in zip(records, resolution.nodes, strict=True)
    )
    if held is None:
        connection.executemany(INSERT_EVENT, rows)
    else:
        held.add(rows, len(records))
    created = resolution.created
    touched = Touched(resolution.changed | created.keys(), created, resolution.rows_of,
                      dict.fromkeys(created, "{}"))
    materialise(connection, touched, options.policy, options.max_identities, now)
