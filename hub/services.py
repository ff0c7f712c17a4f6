"""The services ``create_app`` builds, kept on ``app.extensions["cahub"]``.

Web handlers and CLI commands fetch them with ``services()``; tests swap in fakes by
building the dataclass themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from flask import Flask, current_app

if TYPE_CHECKING:
    from hub.calls import InboundCallHandler
    from hub.dispatch import Dispatcher
    from hub.metrics import HubMetrics
    from hub.outbox import SqliteOutbox
    from hub.ports import ProfileProvider, ScreenPopBroker, Sink
    from hub.settings import Settings
    from hub.sqlite import ThreadLocalDatabase
    from lookup.chain import ProviderChain
    from lookup.store import EmbeddedProfileStore

EXTENSION_KEY = "cahub"


@dataclass
class HubServices:
    """Every adapter and use case of one app instance."""

    settings: Settings
    store: EmbeddedProfileStore
    providers: list[ProfileProvider]
    chain: ProviderChain
    broker: ScreenPopBroker
    calls: InboundCallHandler
    metrics: HubMetrics
    outbox: SqliteOutbox
    sinks: dict[str, Sink]
    dispatcher: Dispatcher
    hub_db: ThreadLocalDatabase


def services(app: Flask | None = None) -> HubServices:
    """The services of ``app`` (default: the current app)."""
    target = app if app is not None else current_app
    return cast(HubServices, target.extensions[EXTENSION_KEY])
