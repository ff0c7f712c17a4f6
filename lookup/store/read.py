"""Reading a person back as a ``Profile``: the lookup path, kept to a few indexed reads.

One identity read finds the node and, joined, the person's materialised row (attributes
and identities); the newest events come from the (person, time) index; audience names
are joined last. All of it in one read transaction, so a merge running meanwhile is
either seen whole or not at all. A shared identity reads its links, then each person it
touches the same way.

A backend may instead read the common case (the first identity that resolves leads to
one person) in one statement of its own, a ``Bundle`` of the person's row, newest events
and audience names (PostgreSQL: ``postgres.bundle``); ``bundled_profile`` builds the
``Profile`` from it with the same code as ``profile_of``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from functools import lru_cache
from typing import Any

import orjson

from hub.models import AudienceMembership, ExperienceEvent, Identity, Profile
from lookup.store.audience_rules import AudienceRule, evaluate
from lookup.store.backend import Connection
from lookup.store.computed import ComputedAttribute, compute
from lookup.store.records import EPOCH, identity_key

SOURCE = "embedded"
# Callers call again; parsing a number costs more than the rest of a lookup's Python.
lookup_key = lru_cache(maxsize=4096)(identity_key)
# A person of one fragment has no copy of its attributes: they are read from the fragment.
COLUMNS = (
    "p.person_id, p.shared, p.uid, coalesce(p.attributes, (SELECT f.attributes"
    " FROM fragments AS f WHERE f.person_id = p.person_id)), p.identities"
)
FIND = (
    f"SELECT {COLUMNS} FROM identities AS i JOIN persons AS p ON p.person_id = i.person_id"  # noqa: S608 - constants
    " WHERE i.keyspace = ? AND i.value = ? LIMIT 1"
)
PERSON = f"SELECT {COLUMNS} FROM persons AS p WHERE p.person_id = ?"  # noqa: S608 - constants
Row = tuple[int, int, str, str, str]  # a persons row, as FIND and PERSON read it
EventRow = tuple[str, int, str, str]  # event_id, ts, type, body


@dataclass(frozen=True)
class Found:
    """What the first identity that resolves leads to: one person, or several."""

    identity: Identity
    row: Row | None  # the person's row; None when the identity is shared
    persons: tuple[int, ...]  # the people a shared identity touches


def find(
    connection: Connection, identities: Sequence[Identity], region: str
) -> Found | None:
    """The node of the first of ``identities`` the store knows."""
    for identity in identities:
        key = lookup_key(identity.namespace, identity.id, region)
        if key is None:
            continue
        row: Row | None = connection.execute(FIND, key[:2]).fetchone()
        if row is None:
            continue
        if not row[1]:
            return Found(identity, row, (row[0],))
        linked = connection.execute(
            "SELECT person_id FROM shared_links WHERE shared_id = ? ORDER BY person_id", (row[0],)
        )
        persons = tuple(person for (person,) in linked)
        if persons:
            return Found(identity, None, persons)
    return None


def find_person(
    connection: Connection, identities: Sequence[Identity], region: str
) -> int | None:
    """The person of the first of ``identities`` the store knows; None when that identity
    is shared by several people."""
    found = find(connection, identities, region)
    return None if found is None or found.row is None else found.row[0]


@dataclass(frozen=True)
class Derivation:
    """What the store works out at lookup: computed attributes, then rule audiences."""

    computed: Sequence[ComputedAttribute] = ()
    rules: Sequence[AudienceRule] = ()

    def apply(self, connection: Connection | None, person: int, attributes: dict[str, Any],
              computed: Mapping[str, Any] | None = None) -> list[AudienceMembership]:
        """Add ``_computed`` to ``attributes``; the rule audiences the person is in.
        Computed attributes read the person's events over ``connection``, unless they
        were read already (``computed``, as a backend's one statement reads them)."""
        if self.computed:
            if computed is None:
                if connection is None:
                    raise ValueError("computed attributes are read over a connection")
                computed = compute(connection, person, self.computed, datetime.now(UTC))
            attributes["_computed"] = dict(computed)
        return evaluate(self.rules, attributes) if self.rules else []


NOTHING_DERIVED = Derivation()


def read_profile(
    connection: Connection, person: int, event_limit: int, since: int | None = None,
    derivation: Derivation = NOTHING_DERIVED,
) -> Profile | None:
    """The stitched profile of ``person``, or None when there is no such person."""
    row: Row | None = connection.execute(PERSON, (person,)).fetchone()
    if row is None or row[1]:
        return None
    return profile_of(connection, row, event_limit, since, derivation)


def profile_of(
    connection: Connection, row: Row, event_limit: int, since: int | None = None,
    derivation: Derivation = NOTHING_DERIVED,
) -> Profile:
    """The ``Profile`` of a persons row, with its events from ``since`` (microseconds)."""
    attributes = _attributes(row)
    by_rule = derivation.apply(connection, row[0], attributes)
    memberships = _platform_memberships(attributes)
    return _profile(row, attributes, _events(connection, row[0], event_limit, since),
                    _audience_names(connection, memberships), memberships, by_rule)


@dataclass(frozen=True)
class Bundle:
    """What a backend read of a person in one statement: its persons row, its newest
    events (as ``profile_of`` selects them), the names of audiences (at least of those
    its attributes say it is in), and the values of the store's computed attributes
    (None: the store has none)."""

    row: Row
    events: Sequence[EventRow]
    names: Mapping[str, str]
    computed: Mapping[str, Any] | None = None


class Unanswered(Enum):
    """A backend's answer when it reads no bundle: the lookup reads the usual way."""

    UNANSWERED = "unanswered"


UNANSWERED = Unanswered.UNANSWERED


def bundled_profile(bundle: Bundle, derivation: Derivation = NOTHING_DERIVED) -> Profile:
    """The ``Profile`` of a ``Bundle``, as ``profile_of`` builds it."""
    attributes = _attributes(bundle.row)
    by_rule = derivation.apply(None, bundle.row[0], attributes, bundle.computed)
    memberships = _platform_memberships(attributes)
    return _profile(bundle.row, attributes, bundle.events, bundle.names, memberships, by_rule)


def _attributes(row: Row) -> dict[str, Any]:
    attributes: dict[str, Any] = orjson.loads(row[3])
    attributes.pop("identityMap", None)  # a fragment's own, kept in the stored JSON
    return attributes


def _profile(
    row: Row, attributes: dict[str, Any], events: Sequence[EventRow], names: Mapping[str, str],
    memberships: dict[str, str], by_rule: list[AudienceMembership],
) -> Profile:
    _, _, uid, _, identities_json = row
    return Profile(
        source=SOURCE,
        profile_id=uid,
        attributes=attributes,
        identities=tuple(
            Identity(namespace=ns, id=value) for ns, value in orjson.loads(identities_json)
        ),
        audiences=(*(AudienceMembership(id=audience, name=names.get(audience), status=status)
                     for audience, status in memberships.items()), *by_rule),
        events=tuple(
            ExperienceEvent(
                id=event_id,
                timestamp=EPOCH + timedelta(microseconds=ts),
                type=event_type,
                data=orjson.loads(body),
            )
            for event_id, ts, event_type, body in events
        ),
    )


def _events(
    connection: Connection, person: int, limit: int, since: int | None
) -> list[EventRow]:
    return connection.execute(
        "SELECT event_id, ts, type, body FROM events WHERE person_id = ? AND ts >= ?"
        " ORDER BY ts DESC, rowid LIMIT ?",  # events of one instant: in the order stored
        (person, -(2**63) if since is None else since, limit),
    ).fetchall()


def _audience_names(connection: Connection, memberships: dict[str, str]) -> dict[str, str]:
    """The names of ``memberships``' audiences the store knows."""
    if not memberships:
        return {}
    return dict(
        connection.execute(
            "SELECT id, name FROM audiences WHERE id IN (SELECT value FROM json_each(?))",
            (json.dumps(list(memberships)),),
        ).fetchall()
    )


def _platform_memberships(attributes: dict[str, Any]) -> dict[str, str]:
    """Audience id -> status; XDM spells the status ``xdm:status`` in places."""
    segments = attributes.get("segmentMembership")
    ups = segments.get("ups") if isinstance(segments, dict) else None
    if not isinstance(ups, dict):
        return {}
    return {
        audience: str(detail.get("status") or detail.get("xdm:status") or "realized")
        for audience, detail in ups.items()
        if isinstance(detail, dict)
    }
