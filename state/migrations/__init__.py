"""Versioned migrations of the hub's PostgreSQL schema, applied with Alembic.

``migrate(url)`` brings a database up to the newest revision in ``versions/``. Servers
that start at once may all call it: each takes a transaction-level advisory lock first,
so one applies the revisions while the others wait, then find nothing left to do
(Alembic has no lock of its own: https://github.com/sqlalchemy/alembic/issues/633).
The revisions run in that same transaction: PostgreSQL's DDL is transactional, so a
failed migration leaves the schema as it was.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import psycopg
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
# pg_advisory_xact_lock's key: "cahub_db" in ASCII, so no other application's lock collides.
LOCK_KEY = int.from_bytes(b"cahub_db", "big")
# Alembic keeps the running migration in module globals (alembic.context, alembic.op):
# one migration at a time per process; processes are kept apart by the advisory lock.
_in_process = threading.Lock()


def migrate(url: str, revision: str = "head") -> list[str]:
    """Apply every revision ``url``'s database lacks, up to ``revision``; return those this
    call applied."""
    applied: list[str] = []
    # Alembic narrates every start (plugins, dialect); the hub says what was applied.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from alembic import command  # imported after, as its import narrates too
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(HERE))
    # The URL is handed to psycopg as it is (a URL or a key=value string alike).
    engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(url),
                           poolclass=NullPool)
    try:
        with _in_process, engine.begin() as connection:
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
            config.attributes.update(connection=connection, applied=applied)
            command.upgrade(config, revision)
    except DBAPIError as exc:
        if isinstance(exc.orig, psycopg.Error):  # psycopg's own, as the caller knows them
            raise exc.orig from exc
        raise
    finally:
        engine.dispose()
    if applied:
        log.info("database schema migrated: %s applied", ", ".join(applied))
    return applied
