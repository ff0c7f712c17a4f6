"""The composition root: ``create_app()`` reads the settings and builds every adapter.

Nothing else in the hub reads configuration, opens a connection or starts a thread;
importing this module does none of those either.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from pathlib import Path

from flask import Flask

from hub.calls import InboundCallHandler
from hub.ledger import SCHEMA as LEDGER_SCHEMA
from hub.ledger import SqliteCallLedger
from hub.metrics import HubMetrics
from hub.ports import ProfileProvider
from hub.privacy import install_masking
from hub.routing import AgentRouter
from hub.services import EXTENSION_KEY, HubServices
from hub.settings import Settings
from hub.sqlite import ThreadLocalDatabase
from integrations.screenpop import InProcessScreenPopBroker
from lookup.chain import ProviderChain
from lookup.store import EmbeddedProfileStore

log = logging.getLogger(__name__)
STORE_FILE = "profiles.sqlite3"
HUB_FILE = "hub.sqlite3"


def build_providers(settings: Settings, store: EmbeddedProfileStore) -> list[ProfileProvider]:
    """The configured providers, in lookup order."""
    available: dict[str, ProfileProvider] = {"embedded": store}
    missing = [name for name in settings.profile_providers if name not in available]
    if missing:
        raise ValueError(f"profile provider(s) {missing} are not available in this version")
    return [available[name] for name in settings.profile_providers]


def build_services(
    settings: Settings, providers: Sequence[ProfileProvider] | None = None
) -> HubServices:
    """Every adapter and use case, wired from ``settings``.

    ``providers`` replaces the configured provider chain (tests and benchmarks).
    """
    data_dir = Path(settings.data_dir)
    metrics = HubMetrics()
    store = EmbeddedProfileStore(data_dir / STORE_FILE, region=settings.default_region)
    providers = list(providers) if providers is not None else build_providers(settings, store)
    chain = ProviderChain(providers, metrics)
    broker = InProcessScreenPopBroker()
    hub_db = ThreadLocalDatabase(data_dir / HUB_FILE, LEDGER_SCHEMA)
    router = AgentRouter(settings.hub.agents, settings.hub.routing.default_agent,
                         settings.default_region)
    calls = InboundCallHandler(settings, chain, router, SqliteCallLedger(hub_db), broker, metrics)
    return HubServices(settings=settings, store=store, providers=providers, chain=chain,
                       broker=broker, calls=calls, metrics=metrics, extras={"hub_db": hub_db})


def _secret_key(settings: Settings) -> str:
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    log.warning("CAHUB_SECRET_KEY is not set: console logins last until the server restarts")
    return secrets.token_urlsafe(32)


def create_app(
    settings: Settings | None = None, *, providers: Sequence[ProfileProvider] | None = None
) -> Flask:
    """The Flask app, with its services on ``app.extensions["cahub"]``."""
    from hub import web

    settings = settings if settings is not None else Settings()
    install_masking()
    app = Flask(__name__.split(".")[0], instance_path=str(Path(settings.data_dir).resolve()))
    app.secret_key = _secret_key(settings)
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax")
    app.extensions[EXTENSION_KEY] = build_services(settings, providers)
    web.init_app(app)
    return app


def close_app(app: Flask) -> None:
    """Release what the app holds (threads, connections); for tests and clean shutdown."""
    hub = app.extensions[EXTENSION_KEY]
    hub.calls.close()
    hub.store.close()
    hub.extras["hub_db"].close()
