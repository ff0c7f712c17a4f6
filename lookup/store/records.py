"""JSON Lines in, validated records out: one line becomes a record or a ``RecordError``.

Nothing here touches the database, so parsing can run in worker processes: records are
small and picklable, their attributes already JSON text. Identity values leave this
module in their stored form (E.164 for every phone namespace, lower-case email), paired
with the keyspace they are matched in: all phone namespaces share the keyspace
``phone``, since a call knows only the number, not the namespace it was filed under. A
record's identities come primary first: that is the order they are linked in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import orjson

from lookup.phone import PHONE_NAMESPACES, WITHHELD_KEYPAD, normalize_identity
from lookup.store.validation import (
    EPOCH,
    FieldMap,
    RecordError,
    ScoreField,
    check_instant,
    check_structure,
    drop_bad_scores,
    score_fields,
)

PHONE_KEYSPACE = "phone"
MAX_IDENTITIES_PER_RECORD = 20  # AEP's guardrail for one XDM record
MAX_IDENTITY_LENGTH = 1024  # AEP's limit for a non-ECID identity value
BLOCKED_VALUES = frozenset({"null", "anonymous", "invalid", "undefined"})
NUL = "\x00"  # held by no stored text (see identity_key)
EVENT_FIELDS = frozenset({"_id", "timestamp", "eventType", "identityMap"})
__all__ = ["EPOCH", "RecordError"]  # re-exported: where records' readers look for them

# (keyspace, stored value, namespace as written in the record)
IdentityKey = tuple[str, str, str]


def dump_json(value: object) -> str:
    """Compact JSON text, non-ASCII kept as is (what SQLite's JSON functions read)."""
    return orjson.dumps(value).decode()


# orjson reads strict JSON only (no NaN or Infinity, which SQLite's JSON functions refuse
# too), several times faster than the json module: reading is most of a load's parsing.
DECODE = orjson.loads


@dataclass(frozen=True, slots=True)
class Rules:
    """How lines are read: the region of national phone numbers, the keyspaces of the
    unique namespaces (a record may hold only one value of each), and the score fields
    a profile's values are checked at."""

    region: str
    unique: frozenset[str] = frozenset()
    scores: tuple[ScoreField, ...] = score_fields()

    @classmethod
    def of(cls, region: str, unique_namespaces: Iterable[str],
           fields: FieldMap | None = None) -> Rules:
        """The rules of a store; ``fields`` is the TOML ``[fields]`` table (PRODUCT.md §7)."""
        unique = frozenset(keyspace_of(ns) for ns in unique_namespaces)
        return cls(region, unique, score_fields(fields))


class ProfileRecord(NamedTuple):
    line: int
    identities: tuple[IdentityKey, ...]  # the primary first
    modified_at: int | None
    attributes: str  # the record as JSON, without nulls; identityMap is ignored when read
    dropped: tuple[str, ...] = ()  # the fields left out of it (see ``validation``), and why

    @property
    def primary(self) -> IdentityKey:
        return self.identities[0]


class EventRecord(NamedTuple):
    line: int
    identities: tuple[IdentityKey, ...]
    event_id: str
    timestamp: int
    event_type: str
    body: str  # JSON


class AudienceRecord(NamedTuple):
    line: int
    id: str
    name: str
    description: str | None


def keyspace_of(namespace: str) -> str:
    """The namespace an identity is matched in."""
    return PHONE_KEYSPACE if namespace in PHONE_NAMESPACES else namespace


def identity_key(namespace: str, value: str, region: str) -> IdentityKey | None:
    """The stored ``IdentityKey`` of a raw identity, or None when the value is unusable
    (a NUL character in it or its namespace too: PostgreSQL's text cannot hold one, and
    the store behaves alike on both backends)."""
    if len(value) > MAX_IDENTITY_LENGTH or value.strip().lower() in BLOCKED_VALUES:
        return None
    if NUL in value or NUL in namespace:
        return None
    stored = normalize_identity(namespace, value, region)
    if stored is None:
        return None
    keyspace = keyspace_of(namespace)
    if keyspace == PHONE_KEYSPACE and stored in WITHHELD_KEYPAD:  # "+86-282452253"
        return None
    if namespace == "ECID" and not (len(stored) == 38 and stored.isascii() and stored.isdigit()):
        return None
    return keyspace, stored, namespace


def parse_profile(line: int, text: str, rules: Rules) -> ProfileRecord:
    """A profile fragment: its identities (primary first), timestamp and attributes.

    The attributes are the line itself, unless it holds a null or a score that cannot
    be shown: nulls are dropped (XDM leaves fields out rather than nulling them), so
    that merging never lets a null erase a value; bad scores too (``validation``).
    Keeping the line as it came saves encoding it again, which costs more than the rest
    of reading it.
    """
    text = text.rstrip("\r\n")
    record = parse_object(text)
    identities = parse_identity_map(record, rules)
    modified_at = _last_modified(record)
    dropped = drop_bad_scores(record, rules.scores)
    if dropped or "null" in text:
        return ProfileRecord(line, identities, modified_at, dump_json(without_nulls(record)),
                             dropped)
    return ProfileRecord(line, identities, modified_at, text)


def parse_event(line: int, text: str, rules: Rules) -> EventRecord:
    """An experience event; ``_id``, ``timestamp`` and ``eventType`` are required."""
    record = parse_object(text)
    event_id = _required_text(record, "_id", "event")
    event_type = _required_text(record, "eventType", "event")
    timestamp = parse_timestamp(record.get("timestamp"), "timestamp")
    identities = parse_identity_map(record, rules)
    body = {k: v for k, v in record.items() if k not in EVENT_FIELDS}
    return EventRecord(line, identities, event_id, timestamp, event_type, dump_json(body))


def without_nulls(value: dict[str, Any]) -> dict[str, Any]:
    """``value`` without null members, at every depth of objects (lists are kept whole)."""
    return {
        key: without_nulls(item) if isinstance(item, dict) else item
        for key, item in value.items()
        if item is not None
    }


def parse_audience(line: int, text: str, rules: Rules) -> AudienceRecord:
    """An audience definition: ``id`` and ``name`` are required."""
    record = parse_object(text)
    description = record.get("description")
    if description is not None and not isinstance(description, str):
        raise RecordError("audience description is not a string")
    if description is not None and NUL in description:
        raise RecordError("audience description holds a NUL character")
    name = _required_text(record, "name", "audience")
    return AudienceRecord(line, _required_text(record, "id", "audience"), name, description)


def parse_object(text: str) -> dict[str, Any]:
    """The JSON object on one line."""
    try:
        value = DECODE(text)
    except orjson.JSONDecodeError as exc:
        raise RecordError(f"not JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(value, dict):
        raise RecordError(f"not a JSON object (a {_json_type(value)})")
    check_structure(value, text)
    return value


def parse_identity_map(record: dict[str, Any], rules: Rules) -> tuple[IdentityKey, ...]:
    """Every usable identity of ``record`` (unusable ones are skipped), the primary first.

    This runs for every line of a load, so it is written for speed: one pass, no helper
    calls but ``identity_key`` (JSON object keys, the namespaces, are always strings)."""
    identity_map = record.get("identityMap")
    if identity_map is None:
        raise RecordError("no identityMap")
    if not isinstance(identity_map, dict):
        raise RecordError("identityMap is not an object")
    region = rules.region
    found: dict[IdentityKey, None] = {}  # a set that keeps the order of first sight
    primary: IdentityKey | None = None
    for namespace, items in identity_map.items():
        if not isinstance(items, list):
            continue
        for item in items:
            if not isinstance(item, dict):
                continue
            value = item.get("id")
            key = identity_key(namespace, value, region) if isinstance(value, str) else None
            if key is None:
                continue
            found[key] = None
            if primary is None and item.get("primary") is True:
                primary = key
    return _checked_identities(found, primary, rules.unique)


def parse_timestamp(value: object, field: str) -> int:
    """An ISO-8601 timestamp with a time zone, as integer microseconds since the epoch."""
    if not isinstance(value, str):
        raise RecordError(f"{field} is missing or not a string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise RecordError(f"{field} is not an ISO-8601 timestamp: {value[:40]!r}") from None
    if moment.tzinfo is None:
        raise RecordError(f"{field} has no time zone (add Z or an offset): {value[:40]!r}")
    check_instant(moment, field, value)
    return to_micros(moment)


def to_micros(moment: datetime) -> int:
    """Microseconds since the epoch of an aware datetime."""
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _checked_identities(
    found: dict[IdentityKey, None], primary: IdentityKey | None, unique: frozenset[str]
) -> tuple[IdentityKey, ...]:
    if not found:
        raise RecordError("no usable identity in identityMap")
    if len(found) > MAX_IDENTITIES_PER_RECORD:
        raise RecordError(
            f"too many identities ({len(found)}; at most {MAX_IDENTITIES_PER_RECORD} per record)"
        )
    if unique:
        _check_unique(found, unique)
    keys = tuple(found)
    if primary is None or primary == keys[0]:
        return keys
    return (primary, *(key for key in keys if key != primary))


def _check_unique(found: Iterable[IdentityKey], unique: frozenset[str]) -> None:
    """One record is one person, who holds one value of each unique namespace."""
    values: dict[str, str] = {}
    for keyspace, value, namespace in found:
        if keyspace in unique and values.setdefault(keyspace, value) != value:
            raise RecordError(f"two values of the unique namespace {namespace} in one record")


def _last_modified(record: dict[str, Any]) -> int | None:
    repo = record.get("_repo")
    if not isinstance(repo, dict) or repo.get("lastModifiedDate") is None:
        return None
    return parse_timestamp(repo["lastModifiedDate"], "_repo.lastModifiedDate")


def _required_text(record: dict[str, Any], field: str, what: str) -> str:
    value = record.get(field)
    if not isinstance(value, str) or not value.strip():
        raise RecordError(f"{what} has no {field}")
    if NUL in value:  # kept out of both backends alike (see identity_key)
        raise RecordError(f"{what} {field} holds a NUL character")
    return value


def _json_type(value: object) -> str:
    names = {list: "list", str: "string", bool: "boolean", int: "number", float: "number"}
    return names.get(type(value), "null")
