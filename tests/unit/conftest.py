"""Fixtures of the outbox and dispatcher tests: a hub database and a clock that stands still."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from state.outbox.sqlite import SCHEMA
from state.sqlite import ThreadLocalDatabase
from tests.fakes import FakeClock


@pytest.fixture
def db(tmp_path: Path) -> Iterator[ThreadLocalDatabase]:
    database = ThreadLocalDatabase(tmp_path / "hub.sqlite3", SCHEMA)
    yield database
    database.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
