"""A scratch PostgreSQL database for a benchmark: made, migrated, opened, then dropped."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.conninfo import make_conninfo

from state.postgres import PostgresDatabase

SERVER_URL = "postgresql://127.0.0.1:5432/postgres"


@contextmanager
def scratch_url(server_url: str = SERVER_URL) -> Iterator[str]:
    """The URL of a new, empty database on ``server_url``'s server, dropped after the block
    whatever happens in it."""
    name = f"cahub_bench_{secrets.token_hex(4)}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_conninfo(server_url, dbname=name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def scratch_database(server_url: str = SERVER_URL,
                     max_size: int = 4) -> Iterator[PostgresDatabase]:
    """A new database on ``server_url``'s server with the hub's schema, dropped afterwards."""
    with scratch_url(server_url) as url:
        db = PostgresDatabase.open(url, max_size=max_size)
        yield db
        db.close()
