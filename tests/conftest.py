"""Shared fixtures: settings on a temporary data dir, the app, a client, signed requests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import close_app, create_app
from hub.settings import Settings
from tests.support import make_settings

# Real Redis and PostgreSQL, isolated per test (redis_prefix, postgres_url).
pytest_plugins = ["tests.backends"]


@pytest.fixture(autouse=True)
def _no_cahub_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's own CAHUB_* settings."""
    for name in list(os.environ):
        if name.startswith("CAHUB_") and name != "CAHUB_NO_SKIP":
            monkeypatch.delenv(name)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "instance")


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    application = create_app(settings)
    application.testing = True
    yield application
    close_app(application)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """With CAHUB_NO_SKIP set (as CI does), a skipped test fails: every part must be there."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if os.environ.get("CAHUB_NO_SKIP") and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped where CAHUB_NO_SKIP demands every test run: {report.longrepr}"
