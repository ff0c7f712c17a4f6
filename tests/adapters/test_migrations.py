"""The PostgreSQL schema's versioned migrations: applied once, however many servers start at
once on an empty database, and nothing to do for a database already up to date."""

from __future__ import annotations

import multiprocessing
from multiprocessing.synchronize import Barrier

import psycopg
import pytest

from state.migrations import migrate

REVISIONS = ["0001", "0002", "0003", "0004"]  # every revision, in order
HEAD = REVISIONS[-1]
TABLES = ["alembic_version", "call_status", "calls", "deliveries", "desk_calls",
          "forget_confirmations", "forget_key", "forgets", "revoked_sessions"]
SERVERS = 6


def start_server(url: str, start: Barrier, results: multiprocessing.Queue[object]) -> None:
    """What each server does at start: migrate, in a process of its own."""
    start.wait(30)
    try:
        results.put(migrate(url))
    except Exception as exc:  # every failure is the finding
        results.put(f"{type(exc).__name__}: {exc}")


def schema(url: str) -> tuple[list[str], list[str]]:
    with psycopg.connect(url) as conn:
        versions = [row[0] for row in conn.execute("SELECT version_num FROM alembic_version")]
        tables = [row[0] for row in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")]
    return versions, tables


@pytest.mark.slow
def test_servers_starting_at_once_on_an_empty_database_apply_the_schema_once(
    postgres_url: str,
) -> None:
    spawn = multiprocessing.get_context("spawn")
    start, results = spawn.Barrier(SERVERS), spawn.Queue()
    servers = [spawn.Process(target=start_server, args=(postgres_url, start, results))
               for _ in range(SERVERS)]
    for server in servers:
        server.start()
    outcomes = sorted((results.get(timeout=60) for _ in servers), key=len)
    for server in servers:
        server.join(10)
    assert [[]] * (SERVERS - 1) + [REVISIONS] == outcomes
    assert ([HEAD], TABLES) == schema(postgres_url)


def test_a_database_up_to_date_has_nothing_to_apply(postgres_url: str) -> None:
    assert (REVISIONS, []) == (migrate(postgres_url), migrate(postgres_url))


def test_deliveries_stored_before_forgetting_existed_may_then_be_cancelled(
    postgres_url: str,
) -> None:
    migrate(postgres_url, "0002")
    with psycopg.connect(postgres_url) as conn:
        conn.execute("INSERT INTO deliveries (call_sid, sink, action, payload, created_at,"
                     " next_attempt_at) VALUES ('CA1', 'crm', 'note', '{}', now(), now())")

    applied = migrate(postgres_url)
    with psycopg.connect(postgres_url) as conn:
        conn.execute("UPDATE deliveries SET status = 'cancelled'")
        kept = conn.execute("SELECT call_sid, status FROM deliveries").fetchall()

    assert (REVISIONS[REVISIONS.index("0003"):], [("CA1", "cancelled")]) == (applied, kept)


def test_a_status_no_adapter_writes_is_still_refused(postgres_url: str) -> None:
    migrate(postgres_url)
    with psycopg.connect(postgres_url) as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("INSERT INTO deliveries (call_sid, sink, action, payload, status,"
                     " created_at, next_attempt_at)"
                     " VALUES ('CA1', 'crm', 'note', '{}', 'lost', now(), now())")
