"""The PostgreSQL pool the hub's state shares: errors as the hub's own, a ping that says
whether a call could be recorded now, and the vacuum that removes what a forget rewrote."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from hub.forget_keys import redact, value_key
from hub.models import CallerKind, CallInfo, DeliveryAction, NewDelivery, Summary
from hub.ports import PermanentError, TransientError
from state.ledger.postgres import PostgresCallLedger
from state.outbox.postgres import PostgresOutbox
from state.postgres import FORGET_TABLES, PostgresDatabase
from tests.backends import PrivatePostgres, dead_row_versions, row_versions_holding

SID = "CA" + "f" * 32
ADA = "+14155550134"


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


def test_a_ping_fails_while_another_client_keeps_writes_from_starting(
    postgres_url: str, db: PostgresDatabase,
) -> None:
    with psycopg.connect(postgres_url) as other:
        other.execute("LOCK TABLE calls IN EXCLUSIVE MODE")
        with pytest.raises(TransientError, match="lock"):
            db.ping()


@pytest.fixture
def forgotten(db: PostgresDatabase) -> PostgresDatabase:
    """Ada's call and its note, forgotten (rewritten), not yet vacuumed."""
    info = CallInfo(sid=SID, **{"from": ADA}, to="+18005550100", caller_kind=CallerKind.NUMBER)
    ledger, outbox = PostgresCallLedger(db), PostgresOutbox(db)
    ledger.claim(SID, "grace", Summary(call=info, identity=None, found=True, name="Ada Lovelace"))
    outbox.enqueue([NewDelivery(call_sid=SID, sink="crm", action=DeliveryAction.NOTE,
                                payload={"phone": ADA})])
    with db.transaction():
        ledger.forget({ADA}, lambda s: redact(s, lambda key: key == value_key(ADA)))
        outbox.forget([SID])
    return db


def test_a_forget_leaves_the_old_row_versions_until_vacuumed(
    postgres_url: str, forgotten: PostgresDatabase,
) -> None:
    assert (1, 1, 1, 1) == (
        row_versions_holding(postgres_url, "calls", ADA.encode()),
        row_versions_holding(postgres_url, "deliveries", ADA.encode()),
        dead_row_versions(postgres_url, "calls"), dead_row_versions(postgres_url, "deliveries"))


def test_compact_removes_every_old_row_version_a_forget_left(
    postgres_url: str, forgotten: PostgresDatabase,
) -> None:
    forgotten.compact()

    assert ([0, 0], [0] * len(FORGET_TABLES)) == (
        [row_versions_holding(postgres_url, table, ADA.encode())
         for table in ("calls", "deliveries")],
        [dead_row_versions(postgres_url, table) for table in FORGET_TABLES])


def test_after_a_crash_and_restart_of_the_server_the_pool_records_calls_again(
        private_postgres: PrivatePostgres) -> None:
    """``pg_ctl restart -m immediate``: every connection the pool held is broken; the ping
    fails while the server is down, and passes again once it is back, on new connections."""
    database = PostgresDatabase.open(private_postgres.url, max_size=2)
    ledger = PostgresCallLedger(database)
    try:
        ledger.ping()
        private_postgres.stop("immediate")
        with pytest.raises(TransientError):
            ledger.ping()
        private_postgres.start()
        ledger.ping()
    finally:
        database.close()
