"""Shared by the PostgreSQL bulk-load and copy tests: what a store answers for identities,
in a form two stores' answers can be compared in."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable
from typing import Any

from hub.models import AmbiguousMatch, Identity, Profile
from lookup.store.core import ProfileStore


def new_schema() -> str:
    return f"store_{secrets.token_hex(4)}"


def person(profile: Profile, with_id: bool) -> tuple[Any, ...]:
    """A profile as comparable data (its random profile id only when asked)."""
    return (
        profile.profile_id if with_id else None,
        json.dumps(profile.attributes, sort_keys=True),
        tuple(sorted((i.namespace, i.id) for i in profile.identities)),
        tuple(sorted((a.id, a.name, a.status) for a in profile.audiences)),
        tuple(sorted((e.timestamp, e.id, e.type, json.dumps(e.data, sort_keys=True))
                     for e in profile.events)),
    )


def answer(store: ProfileStore, namespace: str, value: str, with_id: bool = False) -> Any:
    found = store.lookup([Identity(namespace=namespace, id=value)], time.monotonic() + 10)
    if isinstance(found, Profile):
        return person(found, with_id)
    if isinstance(found, AmbiguousMatch):
        return ("shared", found.count, sorted(person(p, with_id) for p in found.candidates))
    return None


def answers(store: ProfileStore, identities: Iterable[tuple[str, str]],
            with_id: bool = False) -> dict[tuple[str, str], Any]:
    return {(ns, value): answer(store, ns, value, with_id) for ns, value in identities}
