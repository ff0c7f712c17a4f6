"""A scratch PostgreSQL database for a benchmark: made, migrated, opened, then dropped."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from state.postgres import PostgresDatabase

SERVER_URL = "postgresql://127.0.0.1:5432/postgres"


@contextmanager
def scratch_database(server_url: str = SERVER_URL,
                     max_size: int = 4) -> Iterator[PostgresDatabase]:
    """A new database on ``server_url``'s server with the hub's schema, dropped afterwards."""
    name = f"cahub_bench_{secrets.token_hex(4)}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        db = PostgresDatabase.open(make_conninfo(**{**conninfo_to_dict(server_url),
                                                    "dbname": name}), max_size=max_size)
        yield db
        db.close()
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
