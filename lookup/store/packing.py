"""A parsed chunk in the compact form worker processes send back.

Pickling a thousand small records costs the receiving process as much as parsing them,
most of it in the many little tuples of identities. So a chunk travels as a few flat
lists: identities as one list of strings, the other fields as one tuple per record. A
profile's attributes, when they are its line as read, do not travel at all: the
receiving process has the line already.
"""

from __future__ import annotations

from typing import Any

from lookup.store.records import AudienceRecord, EventRecord, IdentityKey, ProfileRecord
from lookup.store.validation import text_of

Record = ProfileRecord | EventRecord | AudienceRecord
# (lines, rejected (number, reason), index of each record's line, identity strings,
#  identities per record, the record's other fields)
Packed = tuple[int, list[tuple[int, str]], list[int], list[str], list[int], list[tuple[Any, ...]]]


def pack(
    records: list[Record], rejected: list[tuple[int, str]], first: int, lines: list[str | bytes]
) -> Packed:
    """``records`` parsed from ``lines`` (numbered from ``first``), packed."""
    indexes: list[int] = []
    flat: list[str] = []
    counts: list[int] = []
    fields: list[tuple[Any, ...]] = []
    for record in records:
        index = record.line - first
        indexes.append(index)
        if isinstance(record, AudienceRecord):
            counts.append(0)
            fields.append((record.id, record.name, record.description))
            continue
        counts.append(len(record.identities))
        flat.extend(part for key in record.identities for part in key)
        fields.append(_fields(record, lines[index]))
    return len(lines), rejected, indexes, flat, counts, fields


def unpack(kind: str, packed: Packed, first: int, lines: list[str | bytes]) -> list[Record]:
    """The records of a packed chunk of ``lines``."""
    _, _, indexes, flat, counts, fields = packed
    records: list[Record] = []
    start = 0
    for index, count, rest in zip(indexes, counts, fields, strict=True):
        keys = tuple(_keys(flat, start, count))
        start += 3 * count
        records.append(_record(kind, first + index, keys, rest, lines[index]))
    return records


def _fields(record: ProfileRecord | EventRecord, line: str | bytes) -> tuple[Any, ...]:
    if isinstance(record, EventRecord):
        return (record.event_id, record.timestamp, record.event_type, record.body)
    as_read = record.attributes == _as_read(line)
    return (record.modified_at, None if as_read else record.attributes, record.dropped)


def _as_read(line: str | bytes) -> str:
    """A profile's attributes when they are its line as read (``records.parse_profile``)."""
    return text_of(line).rstrip("\r\n")


def _keys(flat: list[str], start: int, count: int) -> list[IdentityKey]:
    return [(flat[n], flat[n + 1], flat[n + 2]) for n in range(start, start + 3 * count, 3)]


def _record(
    kind: str, number: int, keys: tuple[IdentityKey, ...], rest: tuple[Any, ...],
    line: str | bytes,
) -> Record:
    if kind == "profiles":
        modified_at, attributes, dropped = rest
        return ProfileRecord(number, keys, modified_at,
                             _as_read(line) if attributes is None else attributes, dropped)
    if kind == "events":
        return EventRecord(number, keys, *rest)
    return AudienceRecord(number, *rest)
