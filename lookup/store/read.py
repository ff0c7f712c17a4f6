"""Reading a person back as a ``Profile``: the lookup path, kept to a few indexed reads.

One identity read finds the person; their merged-profile row carries the attributes and
identities; the newest events come from the (person, time) index; audience names are
joined last. All of it in one read transaction, so a merge running meanwhile is either
seen whole or not at all.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import timedelta
from functools import lru_cache
from typing import Any

from hub.models import AudienceMembership, ExperienceEvent, Identity, Profile
from lookup.store.records import EPOCH, identity_key

SOURCE = "embedded"
# Callers call again; parsing a number costs more than the rest of a lookup's Python.
lookup_key = lru_cache(maxsize=4096)(identity_key)


def find_person(
    connection: sqlite3.Connection, identities: Sequence[Identity], region: str
) -> int | None:
    """The person of the first of ``identities`` the store knows."""
    for identity in identities:
        key = lookup_key(identity.namespace, identity.id, region)
        if key is None:
            continue
        row = connection.execute(
            "SELECT person_id FROM identities WHERE keyspace = ? AND value = ? LIMIT 1",
            key[:2],
        ).fetchone()
        if row is not None:
            return int(row[0])
    return None


def read_profile(connection: sqlite3.Connection, person: int, event_limit: int) -> Profile | None:
    """The stitched profile of ``person``, or None when it has no merged row."""
    row = connection.execute(
        "SELECT uid, attributes, identities FROM merged_profiles WHERE person_id = ?",
        (person,),
    ).fetchone()
    if row is None:
        return None
    attributes = json.loads(row[1])
    return Profile(
        source=SOURCE,
        profile_id=row[0],
        attributes=attributes,
        identities=tuple(Identity(namespace=ns, id=value) for ns, value in json.loads(row[2])),
        audiences=_audiences(connection, attributes),
        events=_events(connection, person, event_limit),
    )


def _events(
    connection: sqlite3.Connection, person: int, limit: int
) -> tuple[ExperienceEvent, ...]:
    rows = connection.execute(
        "SELECT event_id, ts, type, body FROM events WHERE person_id = ?"
        " ORDER BY ts DESC LIMIT ?",
        (person, limit),
    )
    return tuple(
        ExperienceEvent(
            id=event_id,
            timestamp=EPOCH + timedelta(microseconds=ts),
            type=event_type,
            data=json.loads(body),
        )
        for event_id, ts, event_type, body in rows
    )


def _audiences(
    connection: sqlite3.Connection, attributes: dict[str, Any]
) -> tuple[AudienceMembership, ...]:
    """Memberships of ``segmentMembership.ups``, whatever their status, with names."""
    memberships = _platform_memberships(attributes)
    if not memberships:
        return ()
    names = dict(
        connection.execute(
            "SELECT id, name FROM audiences WHERE id IN (SELECT value FROM json_each(?))",
            (json.dumps(list(memberships)),),
        ).fetchall()
    )
    return tuple(
        AudienceMembership(id=audience, name=names.get(audience), status=status)
        for audience, status in memberships.items()
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
