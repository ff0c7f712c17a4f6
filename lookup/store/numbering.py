"""The numbers the store hands out: arrival sequences, and public profile ids."""

from __future__ import annotations

import secrets

from lookup.store.backend import Connection


def take_sequence(connection: Connection, name: str, count: int) -> int:
    """Reserve ``count`` numbers of the counter ``name``; return the first."""
    row = connection.execute("SELECT value FROM meta WHERE key = ?", (name,)).fetchone()
    first = int(row[0]) + 1 if row else 1
    connection.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, str(first + count - 1)))
    return first


def new_profile_id(person: int) -> str:
    """The public id of ``person``: its number, then 80 random bits (see ``persons.uid``)."""
    return f"{person:012x}{secrets.token_hex(10)}"


def new_profile_ids(first: int, count: int) -> list[str]:
    """``new_profile_id`` of ``count`` persons from ``first`` on, the random bits drawn at once."""
    bits = secrets.token_hex(10 * count)
    return [f"{first + n:012x}{bits[20 * n:20 * n + 20]}" for n in range(count)]


def person_of_profile_id(profile_id: str) -> int | None:
    """The person number a profile id starts with, or None for a malformed id."""
    if len(profile_id) != 32:
        return None
    try:
        return int(profile_id[:12], 16)
    except ValueError:
        return None
