"""The app as a ``cahub`` command builds it: a setting that is missing or wrong, or a hub
database that cannot be reached, ends the command with one line, not with a traceback."""

from __future__ import annotations

from collections.abc import Callable

import click
from flask import Flask

from app import create_app
from hub.ports import TransientError
from hub.settings import Settings
from web.serving import signature_url_problem


def command_app(make_settings: Callable[[], Settings] = Settings, *,
                start_background: bool = True, serving_on: str | None = None) -> Flask:
    """``create_app`` on the settings ``make_settings`` reads; ``ValueError`` (pydantic's
    validation errors are ones, and so are the sinks' and providers' refusals of their
    settings) becomes a ``click.ClickException``. ``serving_on`` names the host the command
    will serve on: one where the settings are unsafe ends it before anything is built."""
    try:
        settings = make_settings()
    except ValueError as exc:
        raise click.ClickException(f"configuration: {exc}") from exc
    if serving_on is not None:
        problem = signature_url_problem([serving_on], settings.public_base_url)
        if problem is not None:
            raise click.ClickException(problem)
    try:
        return create_app(settings, start_background=start_background)
    except ValueError as exc:
        raise click.ClickException(f"configuration: {exc}") from exc
    except TransientError as exc:  # the hub's database cannot be reached
        raise click.ClickException(f"cannot start: {exc}") from exc
