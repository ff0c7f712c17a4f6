"""The app as a ``cahub`` command builds it: a setting that is missing or wrong, or a hub
database that cannot be reached, ends the command with one line, not with a traceback."""

from __future__ import annotations

from collections.abc import Callable

import click
from flask import Flask

from app import create_app
from hub.ports import TransientError
from hub.settings import Settings


def command_app(make_settings: Callable[[], Settings] = Settings, *,
                start_background: bool = True) -> Flask:
    """``create_app`` on the settings ``make_settings`` reads; ``ValueError`` (pydantic's
    validation errors are ones, and so are the sinks' and providers' refusals of their
    settings) becomes a ``click.ClickException``."""
    try:
        return create_app(make_settings(), start_background=start_background)
    except ValueError as exc:
        raise click.ClickException(f"configuration: {exc}") from exc
    except TransientError as exc:  # the hub's database cannot be reached
        raise click.ClickException(f"cannot start: {exc}") from exc
