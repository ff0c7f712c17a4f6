"""Bulk ingest of JSON Lines into the store, and the report of what was loaded.

Lines are parsed and written in chunks, each chunk one transaction written with
``executemany``: the identities are resolved to persons for the whole chunk at once,
then fragments are upserted (or events inserted) and the touched persons' merged
profiles rebuilt. A bad line is rejected with its number and reason and never stops
the load. Loading the same data again changes nothing: events are keyed by ``_id``,
fragments by dataset and primary identity, and a fragment is only replaced by a
version at least as new.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Literal

from hub.models import Frozen
from lookup.store.connection import ThreadConnections
from lookup.store.graph import resolve
from lookup.store.merge import refresh
from lookup.store.records import (
    AudienceRecord,
    EventRecord,
    ProfileRecord,
    RecordError,
    parse_audience,
    parse_event,
    parse_profile,
)

Kind = Literal["profiles", "events", "audiences"]
CHUNK_LINES = 1000  # one transaction and one progress report per chunk

# json_patch('{}', ...) drops nulls on the way in; see lookup.store.merge for why.
UPSERT_FRAGMENT = """
INSERT INTO fragments
    (dataset, key_space, key_value, person_id, modified_at, ingested_seq, attributes)
VALUES (?, ?, ?, ?, ?, ?, json_patch('{}', ?))
ON CONFLICT (dataset, key_space, key_value) DO UPDATE SET
    person_id = excluded.person_id, modified_at = excluded.modified_at,
    ingested_seq = excluded.ingested_seq, attributes = excluded.attributes
WHERE excluded.modified_at >= fragments.modified_at
"""
INSERT_EVENT = "INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?)"
UPSERT_AUDIENCE = """
INSERT INTO audiences (id, name, description) VALUES (?, ?, ?)
ON CONFLICT (id) DO UPDATE SET name = excluded.name, description = excluded.description
"""


class Rejection(Frozen):
    """A line that was not loaded: its 1-based number and why."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


class IngestReport(Frozen):
    """The outcome of one ingest: how many lines were loaded and which were rejected."""

    kind: str
    loaded: int
    rejected: tuple[Rejection, ...] = ()


Record = ProfileRecord | EventRecord | AudienceRecord
Parser = Callable[[int, str, str], Record]
PARSERS: dict[str, Parser] = {
    "profiles": parse_profile,
    "events": parse_event,
    "audiences": parse_audience,
}


def ingest_lines(
    connections: ThreadConnections,
    kind: Kind,
    lines: Iterable[str],
    *,
    dataset: str,
    region: str,
    progress: Callable[[int], None] | None = None,
) -> IngestReport:
    """Load ``lines`` of ``kind`` in chunks; see the module docstring."""
    if kind not in PARSERS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(PARSERS)}")
    loaded, rejected = 0, []
    for chunk in _chunks(enumerate(lines, start=1), CHUNK_LINES):
        records, chunk_rejected = _parse_chunk(PARSERS[kind], chunk, region)
        with connections.writing() as connection:
            _write(connection, records, dataset)
        loaded += len(records)
        rejected.extend(chunk_rejected)
        if progress is not None:
            progress(len(chunk))
    return IngestReport(kind=kind, loaded=loaded, rejected=tuple(rejected))


def _chunks(numbered: Iterable[tuple[int, str]], size: int) -> Iterator[list[tuple[int, str]]]:
    iterator = iter(numbered)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _parse_chunk(
    parse: Parser, chunk: Sequence[tuple[int, str]], region: str
) -> tuple[list[Record], list[Rejection]]:
    records: list[Record] = []
    rejected: list[Rejection] = []
    for number, text in chunk:
        if not text.strip():
            continue
        try:
            records.append(parse(number, text, region))
        except RecordError as exc:
            rejected.append(Rejection(line=number, reason=str(exc)))
    return records, rejected


def _write(connection: sqlite3.Connection, records: Sequence[Record], dataset: str) -> None:
    now = to_micros_now()
    profiles = [r for r in records if isinstance(r, ProfileRecord)]
    events = [r for r in records if isinstance(r, EventRecord)]
    audiences = [r for r in records if isinstance(r, AudienceRecord)]
    if profiles:
        _write_profiles(connection, profiles, dataset, now)
    if events:
        _write_events(connection, events, dataset, now)
    connection.executemany(UPSERT_AUDIENCE, ((a.id, a.name, a.description) for a in audiences))


def _write_profiles(
    connection: sqlite3.Connection, records: list[ProfileRecord], dataset: str, now: int
) -> None:
    resolution = resolve(connection, [r.identities for r in records], now)
    first_seq = _take_sequence(connection, len(records))
    rows = (
        (dataset, *r.primary[:2], person, now if r.modified_at is None else r.modified_at,
         first_seq + offset, _dumps(r.attributes))
        for offset, (r, person) in enumerate(zip(records, resolution.persons, strict=True))
    )
    connection.executemany(UPSERT_FRAGMENT, rows)
    refresh(connection, set(resolution.persons) | resolution.changed, now)


def _write_events(
    connection: sqlite3.Connection, records: list[EventRecord], dataset: str, now: int
) -> None:
    resolution = resolve(connection, [r.identities for r in records], now)
    rows = (
        (r.event_id, person, r.timestamp, r.event_type, dataset, _dumps(r.body))
        for r, person in zip(records, resolution.persons, strict=True)
    )
    connection.executemany(INSERT_EVENT, rows)
    refresh(connection, resolution.changed, now)


def _take_sequence(connection: sqlite3.Connection, count: int) -> int:
    """Reserve ``count`` arrival numbers; return the first."""
    row = connection.execute("SELECT value FROM meta WHERE key = 'ingested_seq'").fetchone()
    first = int(row[0]) + 1 if row else 1
    connection.execute(
        "INSERT OR REPLACE INTO meta VALUES ('ingested_seq', ?)", (str(first + count - 1),)
    )
    return first


def to_micros_now() -> int:
    """The wall-clock time, in the store's microseconds."""
    return time.time_ns() // 1000


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
