"""The hub's state on each backend: the contract suites run once on SQLite, once on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from state.ledger.postgres import PostgresCallLedger
from state.ledger.sqlite import SCHEMA as LEDGER_SCHEMA
from state.ledger.sqlite import SqliteCallLedger
from state.outbox.postgres import PostgresOutbox
from state.outbox.sqlite import SCHEMA as OUTBOX_SCHEMA
from state.outbox.sqlite import SqliteOutbox
from state.postgres import PostgresDatabase
from state.sqlite import ThreadLocalDatabase
from tests.fakes import FakeClock

Database = ThreadLocalDatabase | PostgresDatabase
LEDGERS = {"sqlite": SqliteCallLedger, "postgres": PostgresCallLedger}
OUTBOXES = {"sqlite": SqliteOutbox, "postgres": PostgresOutbox}


@dataclass
class HubState:
    """One backend's database, and its ledger and outbox adapters."""

    kind: str
    opener: Callable[[], Database]
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

    def close(self) -> None:
        for db in self.opened:
            db.close()


@pytest.fixture(params=["sqlite", "postgres"])
def state(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HubState]:
    """The hub's state on SQLite, then on a fresh PostgreSQL database of the test's own."""
    if request.param == "sqlite":
        path = tmp_path / "hub.sqlite3"
        hub_state = HubState("sqlite", lambda: ThreadLocalDatabase(path, LEDGER_SCHEMA +
                                                                   OUTBOX_SCHEMA))
    else:
        url = request.getfixturevalue("postgres_url")
        hub_state = HubState("postgres", lambda: PostgresDatabase.open(url, max_size=4))
    yield hub_state
    hub_state.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
