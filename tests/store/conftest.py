"""Fixtures for the profile store's tests, on both backends: every test that takes a store
(``store``, ``make_store``, ``kit``) runs once on SQLite and once on PostgreSQL.

``kit`` (session-scoped, parametrized by backend) makes stores: on SQLite each in a fresh
file, on PostgreSQL each in a fresh schema of one database made for the session (dropped
at its end), which is much quicker than a database per store; a store's schema is dropped
with it. ``kit.rows_of(store)`` reads every table as the database holds it, and
``kit.remnants(store, text)`` says where stored bytes still hold ``text``.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, closing, contextmanager
from pathlib import Path
from typing import Any

import pytest

from hub.models import AmbiguousMatch, Identity, Profile
from lookup.store import EmbeddedProfileStore, IngestReport, ProfileStore, ingest
from lookup.store.backend import Connection
from tests.backends import fresh_database, row_versions_holding

Load = Callable[..., IngestReport]
Find = Callable[[str, str], Profile | AmbiguousMatch | None]
TABLES = ("persons", "identities", "shared_links", "fragments", "events", "audiences", "meta")
BACKENDS = ("sqlite", "postgresql")


class StoreKit:
    """Makes, reopens, reads and discards stores of one backend.

    On PostgreSQL a discarded store's schema is emptied (DELETE: a few milliseconds,
    where TRUNCATE takes about 80 and making the tables again more) and handed to the next
    store; the dead row versions that leaves are any forget's VACUUM's to remove."""

    def __init__(self, backend: str, folder: Callable[[], Path], url: str | None) -> None:
        self.backend = backend
        self._folder = folder
        self._url = url
        self._free: list[str] = []  # emptied schemas, ready for another store

    def make(self, **settings: Any) -> ProfileStore:
        """A new, empty store."""
        if self._url is None:
            return EmbeddedProfileStore(self._folder() / "store.db", **settings)
        from lookup.store.postgres.store import PostgresProfileStore

        schema = self._free.pop() if self._free else f"store_{secrets.token_hex(6)}"
        return PostgresProfileStore(self._url, schema=schema, **settings)

    def reopen(self, store: ProfileStore, **settings: Any) -> ProfileStore:
        """``store`` closed, and its data opened again with ``settings``."""
        store.close()
        if isinstance(store, EmbeddedProfileStore):
            return EmbeddedProfileStore(store.path, **settings)
        from lookup.store.postgres.store import PostgresProfileStore

        assert isinstance(store, PostgresProfileStore)
        return PostgresProfileStore(store.url, schema=store.schema, **settings)

    def discard(self, store: ProfileStore) -> None:
        """Close ``store`` and remove what it stored (its PostgreSQL schema)."""
        store.close()
        if self._url is not None:
            import psycopg

            schema = self._schema(store)
            with psycopg.connect(self._url, autocommit=True) as connection:
                exists = connection.execute("SELECT to_regclass(%s)",
                                            (f"{schema}.persons",)).fetchone()
                if exists is None or exists[0] is None:  # never opened: nothing made
                    return
                connection.execute("; ".join(f"DELETE FROM {schema}.{table}"  # noqa: S608 - constants
                                             for table in TABLES))
            self._free.append(schema)

    @contextmanager
    def made(self, **settings: Any) -> Iterator[ProfileStore]:
        """A new store for the block, discarded after it."""
        store = self.make(**settings)
        try:
            yield store
        finally:
            self.discard(store)

    def reading(self, store: ProfileStore) -> AbstractContextManager[Connection]:
        """A read transaction of the store's own (its connection, whichever backend)."""
        return store._connections.reading()

    def rows_of(self, store: ProfileStore) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table of the store, read as the database holds it (events in
        the order they were stored: SQLite's rowid, PostgreSQL's seq, which is left out;
        the tables SQLite keeps in key order, in that order on PostgreSQL too)."""
        store.ping()  # a store that was never used is created empty first
        if isinstance(store, EmbeddedProfileStore):
            uri = f"{store.path.as_uri()}?mode=ro"
            with closing(sqlite3.connect(uri, uri=True)) as connection:
                return {
                    table: connection.execute(f"SELECT * FROM {table}").fetchall()  # noqa: S608 - table names are constants
                    for table in TABLES
                }
        import psycopg

        columns = {"events": "event_id, person_id, ts, type, dataset, sole_key, body"}
        order = {"events": " ORDER BY seq",  # and the others in SQLite's order: by key
                 "persons": " ORDER BY person_id", "meta": " ORDER BY key",
                 "identities": " ORDER BY keyspace, value, namespace",
                 "shared_links": " ORDER BY shared_id, person_id", "audiences": " ORDER BY id"}
        with psycopg.connect(self._pg_url(store)) as connection:
            connection.execute(f"SET search_path TO {self._schema(store)}")
            return {
                table: [tuple(row) for row in connection.execute(
                    f"SELECT {columns.get(table, '*')} FROM {table}{order.get(table, '')}"  # noqa: S608 - constants
                ).fetchall()]
                for table in TABLES
            }

    def remnants(self, store: ProfileStore, text: bytes) -> list[str]:
        """Where the store's stored bytes still hold ``text``: its SQLite files (read after
        closing the store), or the row versions of its PostgreSQL tables, live or dead."""
        if isinstance(store, EmbeddedProfileStore):
            store.close()
            return [path.name for path in store.path.parent.glob(f"{store.path.name}*")
                    if text in path.read_bytes()]
        schema = self._schema(store)
        return [table for table in TABLES
                if row_versions_holding(self._pg_url(store), f"{schema}.{table}", text)]

    @staticmethod
    def _pg_url(store: ProfileStore) -> str:
        return str(store.url)  # type: ignore[attr-defined]

    @staticmethod
    def _schema(store: ProfileStore) -> str:
        return str(store.schema)  # type: ignore[attr-defined]


@pytest.fixture(scope="session", params=BACKENDS)
def kit(request: pytest.FixtureRequest,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreKit]:
    """Makes stores of the test's backend (see the module docstring)."""
    if request.param == "sqlite":
        yield StoreKit("sqlite", lambda: tmp_path_factory.mktemp("store"), None)
        return
    import psycopg

    server = request.getfixturevalue("postgres_server")
    with fresh_database(server) as url:
        # Commits not waiting for their fsync: what the tests check is unchanged, and a
        # store's many small transactions cost a tenth of the time.
        with psycopg.connect(url, autocommit=True) as connection:
            name = connection.execute("SELECT current_database()").fetchone()
            assert name is not None
            connection.execute(f'ALTER DATABASE "{name[0]}" SET synchronous_commit = off')
        yield StoreKit("postgresql", lambda: tmp_path_factory.mktemp("store"), url)


@pytest.fixture(autouse=True, params=["whole loads", "chunks"])
def profile_writer(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test of the store runs twice: its loads of profiles linked and written as
    whole loads (``load_graph``, ``bulk_write``), however few lines they hold, then
    chunk by chunk, as loads of up to ``ingest.WHOLE_LOAD_AFTER`` lines are."""
    whole = request.param == "whole loads"
    monkeypatch.setattr(ingest, "WHOLE_LOAD_AFTER", 0 if whole else 1 << 62)
    return str(request.param)


@pytest.fixture
def make_store(kit: StoreKit) -> Iterator[Callable[..., ProfileStore]]:
    """``make_store(**settings)``: a new store, discarded after the test."""
    made: list[ProfileStore] = []

    def make(**settings: Any) -> ProfileStore:
        store = kit.make(**settings)
        made.append(store)
        return store

    yield make
    for store in made:
        kit.discard(store)


@pytest.fixture
def store(make_store: Callable[..., ProfileStore]) -> ProfileStore:
    return make_store()


def lines_of(*records: dict[str, Any] | str) -> list[str]:
    """JSON Lines of ``records``; strings are taken as already written lines."""
    return [r if isinstance(r, str) else json.dumps(r) for r in records]


def _loader(store: ProfileStore) -> Load:

    def load(kind: Any, *records: dict[str, Any] | str, dataset: str = "default") -> IngestReport:
        return store.ingest(kind, lines_of(*records), dataset=dataset)

    return load


def _finder(store: ProfileStore) -> Find:

    def find(namespace: str, value: str) -> Profile | AmbiguousMatch | None:
        return store.lookup([Identity(namespace=namespace, id=value)], time.monotonic() + 5)

    return find


@pytest.fixture
def load(store: ProfileStore) -> Load:
    """``load(kind, *records, dataset=...)``: ingest records given as dicts or raw lines."""
    return _loader(store)


@pytest.fixture
def find(store: ProfileStore) -> Find:
    """``find(namespace, value)``: what the store returns for that one identity."""
    return _finder(store)


@pytest.fixture
def load_into() -> Callable[[ProfileStore], Load]:
    """``load_into(store)``: the ``load`` of another store."""
    return _loader


@pytest.fixture
def find_in() -> Callable[[ProfileStore], Find]:
    """``find_in(store)``: the ``find`` of another store."""
    return _finder


@pytest.fixture
def rows_of(kit: StoreKit) -> Callable[[ProfileStore], dict[str, list[tuple[Any, ...]]]]:
    """``rows_of(store)``: every row of every table of the store, read from the database."""
    return kit.rows_of


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Whole loads are SQLite's bulk loads only (PostgreSQL's go by COPY, ``postgres.bulk``;
    its loads of up to ``WHOLE_LOAD_AFTER`` lines go chunk by chunk): a store test on
    PostgreSQL runs with the chunk writer alone."""
    kept, left_out = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if params.get("kit") == "postgresql" and params.get("profile_writer") == "whole loads":
            left_out.append(item)
        else:
            kept.append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept
