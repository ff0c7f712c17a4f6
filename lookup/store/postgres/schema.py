"""The profile store's versioned schema on PostgreSQL.

The store keeps its tables in a PostgreSQL schema of their own (``profile_store`` unless
told otherwise), next to the hub's state in the same database (``CAHUB_DATABASE_URL``):
its names never meet the hub's, and a test or a second store can use another schema.
Its version lives in ``<schema>.store_schema``; ``versions/NNNN_*.sql`` are applied in
order, each in the transaction that records it. This is the store's own migration, not
an Alembic revision of the hub's: the store is also created (and copied) on its own, and
its tables follow the SQLite store's ``schema.sql``, which has its own version.

Servers that start at once may all call ``migrate_store``: each takes a transaction-level
advisory lock first (as ``state.migrations`` does, with a key of its own), so one creates
the tables while the others wait, then find nothing left to do. PostgreSQL's DDL is
transactional: a failed migration leaves the schema as it was.
"""

from __future__ import annotations

import logging
import re
from importlib import resources

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)
DEFAULT_SCHEMA = "profile_store"
SCHEMA_PATTERN = r"^[a-z_][a-z0-9_]{0,62}$"
# pg_advisory_xact_lock's key: "cahubstr" in ASCII, not the hub state's "cahub_db".
LOCK_KEY = int.from_bytes(b"cahubstr", "big")
VERSION_TABLE = "store_schema"  # the version's table, in the store's schema


def versions() -> list[tuple[int, str]]:
    """Every migration of the store: (version, SQL), in order."""
    folder = resources.files("lookup.store.postgres").joinpath("versions")
    found = []
    for entry in folder.iterdir():
        match = re.match(r"^(\d{4})_\w+\.sql$", entry.name)
        if match:
            found.append((int(match.group(1)), entry.read_text(encoding="utf-8")))
    return sorted(found)


def latest_version() -> int:
    return versions()[-1][0]


def check_schema_name(schema: str) -> str:
    if not re.match(SCHEMA_PATTERN, schema):
        raise ValueError(f"not a store schema name: {schema!r} (lower case, digits, _)")
    return schema


def migrate_store(url: str, schema: str = DEFAULT_SCHEMA, *,
                  connect_timeout: float = 5.0) -> list[int]:
    """Create or bring up to date the store's tables in ``schema``; return the versions
    this call applied. psycopg's errors are left to the caller."""
    return prepare_store(url, schema, connect_timeout=connect_timeout)[0]


def prepare_store(url: str, schema: str = DEFAULT_SCHEMA, *,
                  connect_timeout: float = 5.0) -> tuple[list[int], int]:
    """``migrate_store``, and the schema's oid (a key of the store's own for locks)."""
    check_schema_name(schema)
    applied: list[int] = []
    with psycopg.connect(url, connect_timeout=max(1, int(connect_timeout))) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema)))
        conn.execute("CREATE TABLE IF NOT EXISTS store_schema (version INTEGER NOT NULL)")
        row = conn.execute("SELECT max(version) FROM store_schema").fetchone()
        current = 0 if row is None or row[0] is None else int(row[0])
        newest = latest_version()
        if current > newest:
            raise psycopg.DataError(
                f"profile store schema {current} is newer than this hub's {newest}")
        for version, text in versions():
            if version > current:
                conn.execute(text.encode())  # several statements: the simple protocol
                conn.execute("INSERT INTO store_schema VALUES (%s)", (version,))
                applied.append(version)
        found = conn.execute("SELECT %s::regnamespace::oid::bigint", (schema,)).fetchone()
    if applied:
        log.info("profile store schema %s: version %s applied", schema,
                 ", ".join(map(str, applied)))
    assert found is not None
    return applied, int(found[0])


def drop_store(url: str, schema: str) -> None:
    """Remove the store's schema and everything in it (tests, and a store copied over)."""
    check_schema_name(schema)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
