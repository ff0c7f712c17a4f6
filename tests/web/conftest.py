"""Web fixtures: apps a test makes for itself (several servers, other settings)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from app import close_app


@pytest.fixture
def apps() -> Iterator[list[Flask]]:
    """Apps the test appends here are closed after it."""
    made: list[Flask] = []
    yield made
    for app in made:
        close_app(app)


@pytest.fixture(params=["sqlite", "postgres"])
def hub_database(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The settings that put the hub's state in SQLite (none: the default), then in a
    PostgreSQL database of the test's own: tests that take it run on both."""
    if request.param == "sqlite":
        return {}
    return {"database_url": request.getfixturevalue("postgres_url")}
