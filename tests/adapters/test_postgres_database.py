"""The PostgreSQL pool the hub's state shares: errors as the hub's own, and a ping that says
whether a call could be recorded now."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from hub.ports import PermanentError, TransientError
from state.ledger.postgres import PostgresCallLedger
from state.postgres import PostgresDatabase


@pytest.fixture
def db(postgres_url: str) -> Iterator[PostgresDatabase]:
    database = PostgresDatabase.open(postgres_url, max_size=2)
    yield database
    database.close()


def test_a_ping_of_a_database_taking_writes_passes(db: PostgresDatabase) -> None:
    assert PostgresCallLedger(db).ping() is None


def test_a_ping_of_a_read_only_database_fails(postgres_url: str, db: PostgresDatabase) -> None:
    name = conninfo_to_dict(postgres_url)["dbname"]
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    read_only = PostgresDatabase.open(postgres_url, max_size=1)
    try:
        with pytest.raises(TransientError, match="takes no writes"):
            read_only.ping()
    finally:
        read_only.close()


def test_a_lost_connection_is_a_transient_error(db: PostgresDatabase) -> None:
    with pytest.raises(TransientError), db.connection() as conn:
        conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")


def test_a_statement_that_can_never_work_is_a_permanent_error(db: PostgresDatabase) -> None:
    with pytest.raises(PermanentError), db.connection() as conn:
        conn.execute("SELECT 1 / 0")
