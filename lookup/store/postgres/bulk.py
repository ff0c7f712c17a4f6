"""Bulk loads into the PostgreSQL store: the identity graph worked out in memory, rows
written with ``COPY``.

A large ``cahub ingest`` of profiles or events goes this way (``ingest`` of the store
sends every load of more than ``ingest.BULK_AFTER`` lines here). Lines are parsed and
validated exactly as for any load (``parsing``, in worker processes), then taken in
batches of ``BATCH_RECORDS``. For each batch:

1. The batch's identities are looked up in the store in one statement (two arrays,
   unnested and joined with ``identities``), unless the store held no identity when the
   load began and no identity of the batch was written by it before (the load keeps the
   hashes of the identities it wrote: only a hash seen before sends the batch's
   identities to the database).
2. ``linking.link``, the graph's rules, runs over the whole batch in memory (not when
   every record's identities are all one stored person's: then it would change nothing).
3. A batch whose outcome is *plain* is written with ``COPY``: for profiles, every record
   belongs to a person new to the store (a first load, or new customers); for events,
   every record belongs to one stored person and brings no identity new to them, or to
   a new person (an event of an unknown caller). Persons, identity rows (numbered in
   first-seen order, the identity cap kept), fragments (a newer version of one
   replacing an older one, as the upsert does) and each person's profile row (one
   record: NULL, read from its fragment; several: merged under the store's policy) are
   the rows the row-by-row writer would have left. Events go through a staging table
   into ``events`` with ``ON CONFLICT (event_id) DO NOTHING`` (of one ``_id``, the first
   to arrive is kept), so a load repeated stores nothing twice; a store's first load of
   events is held back and stored in person order at its end, as on SQLite (``ingest``).
4. Any other batch (it merges stored persons, makes an identity shared, detaches one,
   or adds fragments or identities to stored persons: a load repeated, an update) is
   written by the row-by-row writer (``ingest.write_records``), in the same transaction.

A batch's COPY runs on a thread of the load's own while the next batch is received and
linked (PostgreSQL works in its own process meanwhile): the loading thread waits for it
before it uses the connection itself (``_Load.settle``): to look identities up, to write
row by row, to commit.

So the graph is the same as the row-by-row path gives, in any arrival order and
batching: the same rules decide, on the same records; only where the outcome is plain
are its rows written another way. Transactions last ``ingest.COMMIT_EVERY`` seconds of
writing, as any load's (a first load of events: one transaction). Bad lines are rejected
with their number and reason, as in any load.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import psycopg

from hub.greenlets import cooperative
from lookup.store.backend import Connections
from lookup.store.graph import sole_key
from lookup.store.ingest import COMMIT_EVERY, NOTE_HELD, HeldEvents, Options, write_records
from lookup.store.linking import Key, Known, link
from lookup.store.merge import Fragment
from lookup.store.numbering import new_profile_id
from lookup.store.parsing import Chunk, Line, parsed_chunks
from lookup.store.records import EventRecord, IdentityKey, ProfileRecord, dump_json
from lookup.store.report import IngestReport, IngestWarning, Rejection

BATCH_RECORDS = 20_000  # records linked and written at once
Raw = psycopg.Connection[Any]
# The identities of a batch, looked up in one statement: two arrays unnested, which the
# planner takes for a few rows, so it probes the primary key for each (a temporary table
# without statistics got a scan of the whole table).
KNOWN = (
    "SELECT DISTINCT i.keyspace, i.value, i.person_id, p.shared"
    " FROM unnest(%s::text[], %s::text[]) AS k (keyspace, value)"
    " JOIN identities AS i ON i.keyspace = k.keyspace COLLATE \"C\""
    " AND i.value = k.value COLLATE \"C\""
    " JOIN persons AS p ON p.person_id = i.person_id"
)
EVENTS_TABLE = (
    "CREATE TEMP TABLE IF NOT EXISTS bulk_events (LIKE events INCLUDING DEFAULTS)"
    " ON COMMIT DELETE ROWS"
)
EVENT_COLUMNS = "event_id, person_id, ts, type, dataset, sole_key, body"
STORE_EVENTS = (
    f"INSERT INTO events ({EVENT_COLUMNS}) SELECT {EVENT_COLUMNS} FROM bulk_events"  # noqa: S608 - constants
    " ORDER BY seq ON CONFLICT (event_id) DO NOTHING"  # of one _id, the first to arrive
)
TAKE = (
    "INSERT INTO meta (key, value) VALUES (%(name)s, %(count)s::text) ON CONFLICT (key)"
    " DO UPDATE SET value = (meta.value::bigint + %(count)s)::text RETURNING value"
)


@dataclass
class _Load:
    """What one load knows across its batches and transactions."""

    kind: str
    dataset: str
    options: Options
    raw: Raw | None = None  # the connection of the transaction under way
    write: Callable[[list[Any]], None] | None = None  # the row-by-row writer, in it
    held: HeldEvents | None = None  # a first load's events, stored in person order at its end
    unsure: bool = True  # the store may hold identities this load did not write
    written: set[int] = field(default_factory=set)  # hashes of the keys this load wrote
    last_person: int = 0  # 0: read it from the store
    left_at: tuple[object, ...] | None = None  # the store's counters when the load committed
    ways: Counter[str] = field(default_factory=Counter)  # batches written with COPY, or not
    copying: ThreadPoolExecutor | None = None  # the thread a batch's COPY runs on
    copy: Future[None] | None = None  # the batch being written on it

    @property
    def db(self) -> Raw:
        assert self.raw is not None, "used inside a transaction only"
        return self.raw

    def settle(self) -> None:
        """Wait for the batch being written with COPY (its error raised here): after
        this, the connection is the loading thread's."""
        copy, self.copy = self.copy, None
        if copy is not None:
            copy.result()

    def start_copy(self, write: Callable[[], None]) -> None:
        """Write a batch with ``write`` on the copying thread, once the one before is
        written. Under gevent's monkey-patching (a load through the ingest API, on a
        thread of gevent's pool) threads are greenlets, which would not run side by side:
        the batch is written here."""
        self.settle()
        if cooperative():
            write()
            return
        if self.copying is None:
            self.copying = ThreadPoolExecutor(1, thread_name_prefix="cahub-bulk-copy")
        self.copy = self.copying.submit(write)


def bulk_ingest(
    connections: Connections,
    kind: str,
    lines: Iterable[Line],
    *,
    dataset: str,
    options: Options,
    progress: Callable[[int], None] | None = None,
    note: Callable[[str], None] | None = None,
    ways: Counter[str] | None = None,
) -> IngestReport:
    """Load ``lines`` of ``kind`` (profiles or events) into the PostgreSQL store of
    ``connections`` (``postgres.connections.PoolConnections``); see the module docstring.
    Transactions hold ``ingest.COMMIT_EVERY`` seconds of writing each, as any load's do,
    so that other writers (a call's write-back) wait no longer than that: a load cut
    short leaves whole batches, and loading the file again completes it. A store's first
    load of events is the exception, as on SQLite (``ingest``): its events are held back
    and stored ordered by person and time at its end, in one transaction, so that each
    person's events lie side by side in the table. ``ways`` counts
    the batches written with COPY ("copy") and row by row ("row_by_row")."""
    load = _Load(kind, dataset, options, ways=Counter() if ways is None else ways)
    loaded, rejected, warnings = 0, list[Rejection](), list[IngestWarning]()
    batches = _batches(parsed_chunks(kind, lines, options.rules, options.workers))
    finished = False
    try:
        while not finished:
            with connections.writing() as connection, _settled(load):
                load.raw = raw = connection.raw  # type: ignore[attr-defined]
                first_events = _begin(load)
                load.held = held = HeldEvents(connection) if first_events else None
                load.write = partial(write_records, connection, dataset=dataset,
                                     options=options, held=held)
                started, finished = time.monotonic(), True
                for records, read in batches:
                    for chunk in read:
                        rejected += [Rejection(line=line, reason=why)
                                     for line, why in chunk.rejected]
                        warnings += [IngestWarning(line=line, reason=why)
                                     for line, why in chunk.warnings()]
                    _write_batch(load, records)
                    loaded += len(records)
                    if progress is not None:  # chunk by chunk, as any load reports
                        for chunk in read:
                            progress(chunk.lines)
                    if held is None and time.monotonic() - started >= COMMIT_EVERY:
                        finished = False
                        break
                load.settle()
                if held is not None:
                    if note is not None and held.count >= NOTE_HELD:
                        note(f"storing {held.count:,} events in person order (a first load"
                             " of events)")
                    held.store()
                load.left_at = _counters(raw)
    finally:
        if load.copying is not None:
            load.copying.shutdown(wait=True)
    return IngestReport(kind=kind, loaded=loaded, rejected=tuple(rejected),
                        warnings=tuple(warnings))


@contextmanager
def _settled(load: _Load) -> Iterator[None]:
    """The batch being copied written (or failed) before the transaction ends: on an
    error of the loading thread, the copy's own error does not hide it."""
    try:
        yield
    except BaseException:
        with suppress(Exception):
            load.settle()
        raise
    load.settle()


def _begin(load: _Load) -> bool:
    """At the start of each transaction: the load's temporary table, and whether the
    store changed since the load's last commit (then its knowledge is stale). Whether
    this is a first load of events (the store holds none)."""
    raw = load.db
    if load.kind == "events":
        raw.execute(EVENTS_TABLE)
    if load.left_at is None:
        load.unsure = _holds_identities(raw)
    elif _counters(raw) != load.left_at:
        load.unsure, load.last_person = True, 0
    if load.kind != "events" or load.left_at is not None:
        return False
    return raw.execute("SELECT 1 FROM events LIMIT 1").fetchone() is None


def _counters(raw: Raw) -> tuple[object, ...]:
    """What any writer that adds persons or identities moves."""
    row = raw.execute(
        "SELECT (SELECT max(person_id) FROM persons),"
        " (SELECT value FROM meta WHERE key = 'identity_seq')").fetchone()
    return tuple(row) if row else ()


def _batches(chunks: Iterator[Chunk]) -> Iterator[tuple[list[Any], list[Chunk]]]:
    """Batches of ``BATCH_RECORDS`` records, each with the chunks read to its end."""
    records: list[Any] = []
    read: list[Chunk] = []
    for chunk in chunks:
        records += chunk.records
        read.append(chunk)
        while len(records) >= BATCH_RECORDS:
            yield records[:BATCH_RECORDS], read
            records, read = records[BATCH_RECORDS:], []
    if records or read:
        yield records, read


def _holds_identities(raw: Raw) -> bool:
    row = raw.execute("SELECT EXISTS (SELECT 1 FROM identities)").fetchone()
    return bool(row and row[0])


def _write_batch(load: _Load, records: list[Any]) -> None:
    since = load.options.events_since
    if load.kind == "events" and since is not None:
        records = [r for r in records if r.timestamp >= since]
    if not records:
        return
    keys = [tuple(dict.fromkeys(key[:2] for key in r.identities)) for r in records]
    known = _known(load, keys)
    planned = _plan(load, records, keys, known)
    if planned is None:
        assert load.write is not None
        load.settle()
        load.write(records)
        load.ways["row_by_row"] += 1
        load.unsure = True  # it may have written identities this load does not know of
        load.last_person = 0
        return
    nodes, created = planned
    now = time.time_ns() // 1000
    kept = _kept(load, created)
    write = _copy_profiles if load.kind == "profiles" else _copy_events
    load.start_copy(partial(write, load, records, nodes, created, kept, now))
    load.ways["copy"] += 1


@dataclass
class _Created:
    """The persons a batch creates: their records' identities, in first-seen order."""

    person_of_root: dict[Any, int] = field(default_factory=dict)
    identities: dict[int, dict[IdentityKey, None]] = field(default_factory=dict)


def _known(load: _Load, keys: list[tuple[Key, ...]]) -> Known:
    """What the store holds about the batch's identities (see step 1)."""
    distinct = {key for item in keys for key in item}
    if not load.unsure:
        written = load.written
        distinct = {key for key in distinct if hash(key) in written}
    if not distinct:
        return Known()
    keyspaces, values = zip(*distinct, strict=True)
    load.settle()
    rows = load.db.execute(KNOWN, (list(keyspaces), list(values))).fetchall()
    known = Known(node_of={(keyspace, value): person for keyspace, value, person, _ in rows})
    known.shared = {person for *_, person, shared in rows if shared}
    return known


def _plan(
    load: _Load, records: list[Any], keys: list[tuple[Key, ...]], known: Known
) -> tuple[list[int], _Created] | None:
    """Each record's person and the persons the batch creates, when the batch's outcome
    is plain (see step 3); None otherwise."""
    if known.shared or (load.kind == "profiles" and known.node_of):
        return None
    node_of = known.node_of
    if node_of and all(_one_stored_person(item, node_of) for item in keys):
        return [node_of[item[0]] for item in keys], _Created()  # events of known people
    linking = link(keys, known, load.options.rules.unique)
    if linking.newly_shared or linking.detached or linking.links:
        return None
    if load.last_person == 0:
        load.settle()
        row = load.db.execute("SELECT coalesce(max(person_id), 0) FROM persons").fetchone()
        load.last_person = int(row[0]) if row else 0
    created = _Created()
    nodes: list[int] = []
    person_of_root = created.person_of_root
    for record, item, (root, _) in zip(records, keys, linking.placed, strict=True):
        if root is None:
            return None
        stored = linking.persons_of.get(root)
        if stored:
            if len(stored) > 1 or any(key not in node_of for key in item):
                return None  # a merge, or new identities for a stored person
            nodes.append(stored[0])
            continue
        person = person_of_root.get(root)
        if person is None:
            load.last_person += 1
            person = person_of_root[root] = load.last_person
            created.identities[person] = {}
        created.identities[person].update(dict.fromkeys(record.identities))
        nodes.append(person)
    return nodes, created


def _one_stored_person(item: tuple[Key, ...], node_of: dict[Key, int]) -> bool:
    """Whether every identity of a record is stored, with one person. When that holds of
    every record of a batch, no record links anything: ``link`` would place each with its
    person and change nothing, so it is not run (the events of known customers)."""
    person = node_of.get(item[0])
    return person is not None and all(node_of.get(key) == person for key in item[1:])


def _take(raw: Raw, name: str, count: int) -> int:
    """``numbering.take_sequence`` in one statement: reserve ``count`` numbers."""
    row = raw.execute(TAKE, {"name": name, "count": count}).fetchone()
    assert row is not None
    return int(row[0]) - count + 1


Kept = tuple[int, dict[int, list[tuple[int, IdentityKey]]]]


def _kept(load: _Load, created: _Created) -> Kept:
    """How many identities the new persons bring, and the ones each keeps under the
    identity cap (the oldest dropped first), each with its place in first-seen order;
    they are the load's own from here on (``_Load.written``)."""
    limit = load.options.max_identities
    total, kept = 0, {}
    for person, found in created.identities.items():
        mine = list(enumerate(found, start=total))[-limit:]
        total += len(found)
        kept[person] = mine
        load.written.update(hash(key[:2]) for _, key in mine)
    return total, kept


def _identity_rows(
    load: _Load, kept: Kept
) -> tuple[list[tuple[str, str, str, int, int]], dict[int, str]]:
    """The identity rows of the new persons, numbered in first-seen order; and each
    one's identity list."""
    total, mine = kept
    seq = _take(load.db, "identity_seq", total) if total else 0
    rows: list[tuple[str, str, str, int, int]] = []
    listed: dict[int, str] = {}
    for person, keys in mine.items():
        these = [(*key, person, seq + n) for n, key in keys]
        rows += these
        listed[person] = dump_json([[row[2], row[1]] for row in these])
    rows.sort()  # in the primary key's order: cheaper for its index
    return rows, listed


def _copy_profiles(
    load: _Load, records: Sequence[ProfileRecord], nodes: list[int], created: _Created,
    kept: Kept, now: int,
) -> None:
    raw, dataset = load.db, load.dataset
    first = _take(raw, "ingested_seq", len(records))
    fragments: dict[tuple[int, str, str], tuple[Any, ...]] = {}
    for offset, (record, person) in enumerate(zip(records, nodes, strict=True)):
        keyspace, value, _ = record.identities[0]
        modified = now if record.modified_at is None else record.modified_at
        slot = (person, keyspace, value)
        held = fragments.get(slot)
        if held is None or modified >= held[4]:  # the upsert's rule: newer or as new
            fragments[slot] = (dataset, keyspace, value, person, modified, first + offset,
                               int(len(record.identities) == 1), record.attributes)
    identity_rows, listed = _identity_rows(load, kept)
    counts = Counter(nodes)
    parts: dict[int, list[Fragment]] = {}
    for row in fragments.values():
        if counts[row[3]] > 1:
            parts.setdefault(row[3], []).append((row[0], row[4], row[5], row[7]))
    policy = load.options.policy
    persons = [
        (person, new_profile_id(person), 0, now,
         policy.merge(parts[person]) if counts[person] > 1 else None, listed[person], now)
        for person in created.identities
    ]
    _copy(raw, "persons", "person_id, uid, shared, created_at, attributes, identities,"
          " refreshed_at", persons)
    _copy(raw, "identities", "keyspace, value, namespace, person_id, seq", identity_rows)
    _copy(raw, "fragments", "dataset, key_space, key_value, person_id, modified_at,"
          " ingested_seq, sole, attributes", fragments.values())


def _copy_events(
    load: _Load, records: Sequence[EventRecord], nodes: list[int], created: _Created,
    kept: Kept, now: int,
) -> None:
    raw, dataset = load.db, load.dataset
    if created.identities:
        identity_rows, listed = _identity_rows(load, kept)
        persons = [(person, new_profile_id(person), 0, now, "{}", listed[person], now)
                   for person in created.identities]
        _copy(raw, "persons", "person_id, uid, shared, created_at, attributes, identities,"
              " refreshed_at", persons)
        _copy(raw, "identities", "keyspace, value, namespace, person_id, seq", identity_rows)
    rows = (
        (r.event_id, person, r.timestamp, r.event_type, dataset, sole_key(r.identities),
         r.body)
        for r, person in zip(records, nodes, strict=True)
    )
    if load.held is not None:  # numbered in arrival order by held_events' own seq
        _copy(raw, "held_events", EVENT_COLUMNS, rows)
        load.held.count += len(records)
        return
    raw.execute("TRUNCATE bulk_events")
    _copy(raw, "bulk_events", f"seq, {EVENT_COLUMNS}",
          ((n, *row) for n, row in enumerate(rows)))
    raw.execute(STORE_EVENTS)


def _copy(raw: Raw, table: str, columns: str, rows: Iterable[Sequence[Any]]) -> None:
    with raw.cursor().copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
