"""Web fixtures: apps a test makes for itself (several servers, other settings)."""

from __future__ import annotations

from collections.abc import Iterator

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
