"""Copying a SQLite store into PostgreSQL (``cahub store copy``): moving up, data kept.

The PostgreSQL store's tables are the SQLite store's, column for column
(``lookup/store/postgres/versions``), so a copy moves rows as they are: person numbers,
profile ids, identity sequences, fragments, events (SQLite's rowid becomes ``events.seq``,
which keeps the order of events of one instant), audiences and ``meta`` (the merge
policy the profiles were merged under, the identity counter). Nothing is merged or
linked again: the target answers every lookup exactly as the source did.

The copy runs in ONE transaction on the target, with ``COPY ... FROM STDIN``: it is not
resumable, and it needs none: a copy that fails or is interrupted leaves the target as
it was, so it is simply run again. The source is read in one read transaction, so a
hub writing to it meanwhile is not seen half-way. A target that already holds a store
(any row in its tables) is refused unless ``replace`` is given, which empties it in
the same transaction. Before committing, every table's row count is compared with the
source's.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from lookup.store.postgres.schema import DEFAULT_SCHEMA, check_schema_name, migrate_store

# (table, columns as SQLite reads them, columns as PostgreSQL takes them, order)
TABLES: tuple[tuple[str, str, str, str], ...] = (
    ("meta", "key, value", "key, value", "key"),
    ("audiences", "id, name, description", "id, name, description", "id"),
    ("persons", "person_id, uid, shared, created_at, attributes, identities, refreshed_at",
     "person_id, uid, shared, created_at, attributes, identities, refreshed_at", "person_id"),
    ("identities", "keyspace, value, namespace, person_id, seq",
     "keyspace, value, namespace, person_id, seq", "keyspace, value, namespace"),
    ("shared_links", "shared_id, person_id", "shared_id, person_id", "shared_id, person_id"),
    ("fragments", "dataset, key_space, key_value, person_id, modified_at, ingested_seq, sole,"
     " attributes", "dataset, key_space, key_value, person_id, modified_at, ingested_seq, sole,"
     " attributes", "person_id, dataset, key_space, key_value"),
    ("events", "rowid, event_id, person_id, ts, type, dataset, sole_key, body",
     "seq, event_id, person_id, ts, type, dataset, sole_key, body", "rowid"),
)
BATCH_ROWS = 5000  # rows read from SQLite, and reported to ``progress``, at a time


class CopyError(Exception):
    """Why a copy could not be made; the message is shown to the operator as is (it never
    holds the target's password)."""


@dataclass(frozen=True)
class CopyReport:
    schema: str
    counts: dict[str, int]  # rows copied per table


def source_counts(source: Path) -> dict[str, int]:
    """The rows of each table of the SQLite store at ``source``."""
    with closing(_open_source(source)) as connection:
        return _counts(connection)


def copy_store(
    source: Path,
    url: str,
    *,
    schema: str = DEFAULT_SCHEMA,
    replace: bool = False,
    progress: Callable[[int], None] | None = None,
    connect_timeout: float = 5.0,
) -> CopyReport:
    """Copy the SQLite store at ``source`` into ``schema`` of the database at ``url``;
    see the module docstring. ``progress`` hears how many rows were copied, batch by
    batch."""
    check_schema_name(schema)
    with closing(_open_source(source)) as reader:
        reader.execute("BEGIN")  # one snapshot of the source for the whole copy
        counts = _counts(reader)
        try:
            migrate_store(url, schema, connect_timeout=connect_timeout)
            with psycopg.connect(url, connect_timeout=max(1, int(connect_timeout))) as target:
                _copy(reader, target, schema, counts, replace, progress)
        except psycopg.OperationalError as exc:
            raise CopyError(f"cannot reach PostgreSQL at {describe_url(url)}: "
                            f"{_first_line(exc)}") from exc
        except psycopg.Error as exc:
            raise CopyError(f"copy into {describe_url(url)} failed: {_first_line(exc)}") from exc
    return CopyReport(schema, counts)


def _copy(
    reader: sqlite3.Connection, target: psycopg.Connection[tuple[object, ...]], schema: str,
    counts: dict[str, int], replace: bool, progress: Callable[[int], None] | None,
) -> None:
    """Everything in the target's one transaction (psycopg opens it; the ``with`` of the
    caller commits it, or rolls it back on an error)."""
    target.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema)))
    held = _target_counts(target)
    if any(held.values()):
        if not replace:
            rows = ", ".join(f"{table} {count:,}" for table, count in held.items() if count)
            raise CopyError(f"the target store (schema {schema}) is not empty ({rows}); "
                            "give --replace to empty it first")
        names = ", ".join(table for table, *_ in TABLES)
        target.execute(f"TRUNCATE {names}")
    for table, read, write, order in TABLES:
        source = reader.execute(f"SELECT {read} FROM {table} ORDER BY {order}")  # noqa: S608 - constants
        with target.cursor().copy(f"COPY {table} ({write}) FROM STDIN") as copy:
            for batch in _batches(source):
                for row in batch:
                    copy.write_row(row)
                if progress is not None:
                    progress(len(batch))
    target.execute(
        "SELECT setval(pg_get_serial_sequence('events', 'seq'),"
        " (SELECT coalesce(max(seq), 0) + 1 FROM events), false)")
    copied = _target_counts(target)
    if copied != counts:
        wrong = ", ".join(f"{table}: {counts[table]:,} in the source, {copied[table]:,} copied"
                          for table in counts if copied[table] != counts[table])
        raise CopyError(f"row counts differ after the copy ({wrong}); nothing was committed")
    for table, *_ in TABLES:  # lookups plan with statistics from the first one
        target.execute(f"ANALYZE {table}")


def _batches(rows: sqlite3.Cursor) -> Iterator[list[tuple[object, ...]]]:
    while batch := rows.fetchmany(BATCH_ROWS):
        yield batch


def _counts(connection: sqlite3.Connection) -> dict[str, int]:
    return {
        table: connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608 - constants
        for table, *_ in TABLES
    }


def _target_counts(target: psycopg.Connection[tuple[object, ...]]) -> dict[str, int]:
    counts = {}
    for table, *_ in TABLES:
        row = target.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608 - constants
        counts[table] = 0 if row is None else int(str(row[0]))
    return counts


def _open_source(source: Path) -> sqlite3.Connection:
    """The SQLite store, read-only (a copy never changes its source)."""
    if not source.is_file():
        raise CopyError(f"no store at {source}")
    try:
        connection = sqlite3.connect(f"file:{source}?mode=ro", uri=True, isolation_level=None)
        missing = [table for table, *_ in TABLES if connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        ).fetchone() is None]
    except sqlite3.Error as exc:
        raise CopyError(f"{source} is not a readable store: {exc}") from exc
    if missing:
        connection.close()
        raise CopyError(f"{source} is not a profile store (no table {', '.join(missing)})")
    return connection


def describe_url(url: str) -> str:
    """``host:port/database`` of a PostgreSQL URL, for messages: never its password."""
    try:
        params = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "the given URL (not a PostgreSQL URL)"
    host = params.get("host") or "localhost"
    port = params.get("port") or "5432"
    return f"{host}:{port}/{params.get('dbname') or params.get('user') or ''}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
