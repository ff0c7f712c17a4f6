"""The hub's state on each backend: the contract suites run once on SQLite, once on PostgreSQL."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from state.forgets.postgres import PostgresForgetLog
from state.forgets.sqlite import SCHEMA as FORGETS_SCHEMA
from state.forgets.sqlite import SqliteForgetLog
from state.ledger.postgres import PostgresCallLedger
from state.ledger.sqlite import SCHEMA as LEDGER_SCHEMA
from state.ledger.sqlite import SqliteCallLedger
from state.outbox.postgres import PostgresOutbox
from state.outbox.sqlite import SCHEMA as OUTBOX_SCHEMA
from state.outbox.sqlite import SqliteOutbox, upgrade
from state.postgres import PostgresDatabase
from state.sqlite import ThreadLocalDatabase
from tests.fakes import FakeClock

Database = ThreadLocalDatabase | PostgresDatabase
LEDGERS = {"sqlite": SqliteCallLedger, "postgres": PostgresCallLedger}
OUTBOXES = {"sqlite": SqliteOutbox, "postgres": PostgresOutbox}
LOGS = {"sqlite": SqliteForgetLog, "postgres": PostgresForgetLog}


@dataclass
class HubState:
    """One backend's database, its adapters, and a way to keep every write from starting."""

    kind: str
    opener: Callable[[], Database]
    locked: Callable[[], AbstractContextManager[None]]
    opened: list[Database] = field(default_factory=list)

    def open(self) -> Database:
        """Another handle on the same database, as another process would have."""
        self.opened.append(self.opener())
        return self.opened[-1]

    @property
    def db(self) -> Database:
        return self.opened[0] if self.opened else self.open()

    def ledger(self, db: Database | None = None) -> Any:
        return LEDGERS[self.kind](db or self.db)

    def outbox(self, db: Database | None = None, clock: Any = None, lease: float = 60) -> Any:
        extra = {"clock": clock} if clock is not None else {}
        return OUTBOXES[self.kind](db or self.db, lease=timedelta(seconds=lease), **extra)

    def forgets(self, db: Database | None = None, clock: FakeClock | None = None) -> Any:
        """The forget log; its clock gives Unix seconds (``clock``'s, when given)."""
        extra = {"clock": lambda: clock.now.timestamp()} if clock is not None else {}
        return LOGS[self.kind](db or self.db, **extra)

    def close(self) -> None:
        for db in self.opened:
            db.close()


def sqlite_state(path: Path) -> HubState:
    @contextmanager
    def locked() -> Iterator[None]:
        """Another process holds the write lock (reads still work, in WAL mode)."""
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            other.execute("ROLLBACK")
            other.close()

    return HubState("sqlite", lambda: ThreadLocalDatabase(
        path, LEDGER_SCHEMA + OUTBOX_SCHEMA + FORGETS_SCHEMA, upgrades=[upgrade]), locked)


def postgres_state(url: str) -> HubState:
    @contextmanager
    def locked() -> Iterator[None]:
        """Another client locks the calls against writes (``LOCK TABLE``; reads still work)."""
        with psycopg.connect(url) as other:
            other.execute("LOCK TABLE calls IN EXCLUSIVE MODE")
            yield
            other.rollback()

    return HubState("postgres", lambda: PostgresDatabase.open(url, max_size=4), locked)


@pytest.fixture(params=["sqlite", "postgres"])
def state(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HubState]:
    """The hub's state on SQLite, then on a fresh PostgreSQL database of the test's own."""
    if request.param == "sqlite":
        hub_state = sqlite_state(tmp_path / "hub.sqlite3")
    else:
        hub_state = postgres_state(request.getfixturevalue("postgres_url"))
    hub_state.db  # noqa: B018 -- the schema exists before a test locks anything
    yield hub_state
    hub_state.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
