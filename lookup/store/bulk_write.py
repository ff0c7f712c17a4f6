"""The writing of a whole bulk load of profiles (``load_graph``), in key order.

It reads what the store holds about the load's identities, reserves the load's numbers,
has ``load_graph`` plan the rows, and writes each table in one ``executemany`` in its
key order, through the store's connection (SQLite's, or PostgreSQL's dialect). A first
load (into a store that holds no person yet) on SQLite writes the two secondary indexes
once at the end rather than row by row: they are dropped and built again inside the
load's transaction, so a reader never sees the store without them (PostgreSQL keeps
them: its readers would wait for the load). Stored persons the load reached are merged
again from what the store holds (``materialise``)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from importlib import resources

from lookup.store.backend import Connection
from lookup.store.graph import INSERT_IDENTITY, read_known
from lookup.store.linking import Known
from lookup.store.load_graph import Counters, LoadRows, identities_needed, load_keys, plan
from lookup.store.materialise import Touched, materialise
from lookup.store.merge import MergePolicy
from lookup.store.numbering import take_sequence
from lookup.store.records import IdentityKey, ProfileRecord

FRAGMENT_COLUMNS = (
    "person_id, dataset, key_space, key_value, modified_at, ingested_seq, sole, attributes")
INSERT_FRAGMENT = (  # a plain append: nothing stored to replace
    f"INSERT INTO fragments ({FRAGMENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"  # noqa: S608 - constants
)
UPSERT_FRAGMENT = f"""
INSERT INTO fragments ({FRAGMENT_COLUMNS})
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (person_id, dataset, key_space, key_value) DO UPDATE SET
    modified_at = excluded.modified_at, ingested_seq = excluded.ingested_seq,
    sole = excluded.sole, attributes = excluded.attributes
WHERE excluded.modified_at >= fragments.modified_at
"""  # noqa: S608 - constants
INSERT_NODE = (
    "INSERT INTO persons (person_id, uid, shared, created_at, attributes, identities,"
    " refreshed_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
# Built once at the end of a first load (the rows are appended in their tables' order).
DEFERRED_INDEXES = ("identities_person", "fragments_key")


def deferred_index_ddl() -> list[str]:
    """The ``CREATE INDEX`` statements of ``DEFERRED_INDEXES``, as ``schema.sql`` has them."""
    schema = resources.files("lookup.store").joinpath("schema.sql").read_text(encoding="utf-8")
    found = [re.search(rf"CREATE (?:UNIQUE )?INDEX IF NOT EXISTS {name}\b[^;]*", schema)
             for name in DEFERRED_INDEXES]
    return [match.group(0) for match in found if match is not None]


def write_whole_load(
    connection: Connection,
    records: Sequence[ProfileRecord],
    *,
    dataset: str,
    unique: frozenset[str],
    policy: MergePolicy,
    max_identities: int,
    now: int,
    defer_indexes: bool = True,
) -> bool:
    """Write ``records`` as one load inside the caller's write transaction (on a first
    load, with ``defer_indexes``, the two secondary indexes built at the end: SQLite's
    readers see the store as it was meanwhile, where PostgreSQL's would wait); False (and
    nothing written but its numbers) when ``load_graph`` leaves the load to the chunk
    writer."""
    keys = load_keys(records)
    first = connection.execute("SELECT 1 FROM persons LIMIT 1").fetchone() is None
    known, stored = (Known(), set[IdentityKey]()) if first else read_known(
        connection, keys, unique)
    (last,) = connection.execute("SELECT coalesce(max(person_id), 0) FROM persons").fetchone()
    counters = Counters(last, take_sequence(connection, "identity_seq", identities_needed(records)),
                        take_sequence(connection, "ingested_seq", len(records)))
    rows = plan(records, keys, known, stored, unique=unique, dataset=dataset, counters=counters,
                now=now, policy=policy, max_identities=max_identities)
    if rows is None:
        return False
    _write(connection, rows, first, defer_indexes and first)
    if rows.touched:
        materialise(connection, Touched(rows.touched), policy, max_identities, now)
    return True


def _write(connection: Connection, rows: LoadRows, first: bool, defer: bool) -> None:
    indexes = deferred_index_ddl() if defer else []
    for name in DEFERRED_INDEXES if defer else ():
        connection.execute(f"DROP INDEX {name}")
    connection.executemany(INSERT_IDENTITY, rows.identities)
    connection.executemany(INSERT_FRAGMENT if first else UPSERT_FRAGMENT, rows.fragments)
    connection.executemany(INSERT_NODE, rows.persons)
    connection.executemany("INSERT OR IGNORE INTO shared_links VALUES (?, ?)", rows.links)
    for ddl in indexes:
        connection.execute(ddl)
