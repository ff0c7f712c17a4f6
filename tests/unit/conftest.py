"""Fixtures of the outbox and dispatcher tests: a hub database and a clock that stands still."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from state.outbox.sqlite import SCHEMA
from state.sqlite import ThreadLocalDatabase

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[ThreadLocalDatabase]:
    database = ThreadLocalDatabase(tmp_path / "hub.sqlite3", SCHEMA)
    yield database
    database.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
