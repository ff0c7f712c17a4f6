"""The composition root: ``create_app()`` reads the settings and builds every adapter.

Nothing else in the hub reads configuration, opens a connection or starts a thread;
importing this module does none of those either.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from flask import Flask, current_app
from werkzeug.middleware.proxy_fix import ProxyFix

from hub.call_state import CallState
from hub.calls import InboundCallHandler
from hub.deliveries import DeliveryPlanner
from hub.desk_changes import CallStates, DeskWriter
from hub.dispatch import Dispatcher
from hub.forget_guard import ForgetGuard
from hub.forgetting import Forgetting
from hub.greenlets import cooperative
from hub.metrics import HubMetrics
from hub.models import Summary
from hub.outbound import OutboundCalls
from hub.ports import (
    AgentDesk,
    CallLedger,
    ForgetLog,
    InspectableOutbox,
    ProfileCache,
    ProfileProvider,
    ScreenPopBroker,
    SessionRevocations,
    Sink,
)
from hub.privacy import install_masking
from hub.progress import WRAPUP_SINK, CallProgress
from hub.routing import AgentRouter
from hub.settings import Settings
from hub.transfer import WarmTransfer
from hub.wrapup import AfterCallWork, WrapUpDeadline
from integrations.sms import TwilioSmsSink, fit_sms
from integrations.twilio_calls import TwilioCallControl
from integrations.twilio_tokens import VoiceTokenMinter
from lookup.aep import AepProfileProvider
from lookup.chain import ProviderChain
from lookup.resilience import LOCAL_ENTRIES, CachedProvider, CircuitBreaker
from lookup.segment import SegmentProfileProvider
from lookup.store import EmbeddedProfileStore, ProfileStore
from lookup.writeback import ProfileWriteBackSink
from state.cache.redis import RedisProfileCache
from state.desk.sqlite import SCHEMA as DESK_SCHEMA
from state.desk.sqlite import SqliteAgentDesk
from state.forgets.sqlite import SCHEMA as FORGETS_SCHEMA
from state.forgets.sqlite import SqliteForgetLog
from state.ledger.sqlite import SCHEMA as LEDGER_SCHEMA
from state.ledger.sqlite import SqliteCallLedger
from state.outbox.sqlite import SCHEMA as OUTBOX_SCHEMA
from state.outbox.sqlite import SqliteOutbox
from state.outbox.sqlite import upgrade as upgrade_outbox
from state.pops.memory import InProcessScreenPopBroker
from state.pops.redis import RedisScreenPopBroker
from state.sessions.sqlite import SCHEMA as SESSIONS_SCHEMA
from state.sessions.sqlite import SqliteSessionRevocations
from state.sqlite import ThreadLocalDatabase

if TYPE_CHECKING:
    from state.postgres import PostgresDatabase

    HubDatabase = ThreadLocalDatabase | PostgresDatabase

log = logging.getLogger(__name__)
EXTENSION_KEY = "cahub"
STORE_FILE = "profiles.sqlite3"
HUB_FILE = "hub.sqlite3"


@dataclass
class DeskServices:
    """The agent desk: each call's state beside its pop, its after-call work."""

    store: AgentDesk
    states: CallStates
    progress: CallProgress
    work: AfterCallWork
    outbound: OutboundCalls
    transfers: WarmTransfer | None = None
    control: TwilioCallControl | None = None


@dataclass
class HubServices:
    """Every adapter and use case of one app instance, kept on ``app.extensions["cahub"]``.

    Entry points fetch them with ``services()``; tests swap in fakes by building it themselves.
    """

    settings: Settings
    store: ProfileStore
    providers: list[ProfileProvider]
    chain: ProviderChain
    broker: ScreenPopBroker
    calls: InboundCallHandler
    metrics: HubMetrics
    outbox: InspectableOutbox
    sinks: dict[str, Sink]
    dispatcher: Dispatcher
    hub_db: HubDatabase
    sessions: SessionRevocations
    guard: ForgetGuard
    forgetting: Forgetting
    desk: DeskServices
    tokens: VoiceTokenMinter | None = None


def build_store(settings: Settings, path: Path) -> ProfileStore:
    """The profile store with the TOML file's identity rules, merge policy, retention and
    field map (whose score fields are checked as records are loaded): in PostgreSQL with
    ``CAHUB_DATABASE_URL`` (shared by every server), else in the SQLite file ``path``."""
    hub = settings.hub
    rules: dict[str, Any] = dict(
        region=settings.default_region, unique_namespaces=hub.identity.unique_namespaces,
        max_identities=hub.identity.max_identities, merge_policy=hub.merge.policy,
        dataset_order=hub.merge.order, event_retention_days=hub.events.retention_days,
        computed=hub.computed, audience_rules=hub.audiences, fields=hub.fields,
        # Under gevent (the production server) a pool's pipes would block the event loop: the
        # ingest API parses in process, on a thread of its own (web.ingest).
        ingest_workers=0 if cooperative() else settings.ingest_workers,
    )
    if settings.database_url is not None:
        from lookup.store.postgres.store import PostgresProfileStore

        return PostgresProfileStore(settings.database_url.get_secret_value(), **rules)
    return EmbeddedProfileStore(path, **rules)


def guarded(provider: ProfileProvider, settings: Settings,
            cache_secret: Callable[[], bytes] | None = None) -> CachedProvider:
    """A remote provider behind a cache and a circuit breaker (PRODUCT.md §9). With
    ``CAHUB_REDIS_URL`` the cache has a second level, shared by every server, whose key
    names are keyed digests (``cache_secret()``: the forget log's, see ``shared_cache``)."""
    breaker = CircuitBreaker(provider, settings.breaker_failures, settings.breaker_reset_s)
    shared = shared_cache(settings, provider.name, cache_secret)
    return CachedProvider(breaker, settings.lookup_cache_ttl_s, settings.lookup_miss_ttl_s,
                          max_entries=LOCAL_ENTRIES if shared else 100_000, shared=shared)


def shared_cache(settings: Settings, provider: str,
                 secret: Callable[[], bytes] | None) -> ProfileCache | None:
    """The Redis level of ``provider``'s cache, or None without ``CAHUB_REDIS_URL``.

    Its key names are HMACs keyed by the forget log's secret: made once per hub database
    and read by every server of it (the same servers that must share the cache and apply
    the same forgets), with nothing to configure, and unlike ``CAHUB_SECRET_KEY`` never
    missing (each process would then make its own, and share nothing).
    """
    if settings.redis_url is None or secret is None:
        return None
    timeout = settings.lookup_cache_timeout_ms / 1000
    return RedisProfileCache(settings.redis_url.get_secret_value(), provider=provider,
                             secret=secret(), hit_ttl=settings.lookup_cache_ttl_s,
                             miss_ttl=settings.lookup_miss_ttl_s, prefix=settings.redis_prefix,
                             timeout_s=timeout, connect_timeout_s=2 * timeout)


def build_providers(settings: Settings, store: ProfileStore,
                    cache_secret: Callable[[], bytes] | None = None) -> list[ProfileProvider]:
    """The configured providers, in lookup order; remote ones guarded."""
    providers: list[ProfileProvider] = []
    for name in settings.profile_providers:
        if name == "embedded":
            providers.append(store)
        elif name == "aep":
            providers.append(guarded(AepProfileProvider.from_settings(settings), settings,
                                     cache_secret))
        else:
            providers.append(guarded(SegmentProfileProvider.from_settings(settings), settings,
                                     cache_secret))
    return providers


def build_crm_sink(settings: Settings) -> Sink:
    """The CRM sink named by ``CAHUB_CRM`` (its module is imported only when chosen)."""
    if settings.crm == "salesforce":
        from integrations.salesforce import SalesforceTaskSink
        return SalesforceTaskSink.from_settings(settings)
    if settings.crm == "hubspot":
        from integrations.hubspot import HubSpotNoteSink
        return HubSpotNoteSink.from_settings(settings)
    if settings.crm == "zendesk":
        from integrations.zendesk import ZendeskNoteSink
        return ZendeskNoteSink.from_settings(settings)
    from integrations.webhook import WebhookSink
    return WebhookSink.from_settings(settings)


def build_sinks(settings: Settings, store: ProfileStore) -> dict[str, Sink]:
    """Every sink deliveries can go to, by name: the profile write-back, the CRM, SMS."""
    sinks: list[Sink] = [ProfileWriteBackSink(store)]
    if settings.crm != "none":
        sinks.append(build_crm_sink(settings))
    if settings.sms_from:
        sinks.append(TwilioSmsSink.from_settings(settings))
    return {sink.name: sink for sink in sinks}


@dataclass(frozen=True)
class HubState:
    """The hub's own state: its database and the adapters of the ports kept in it."""

    db: HubDatabase
    ledger: CallLedger
    outbox: InspectableOutbox
    sessions: SessionRevocations
    forgets: ForgetLog
    desk: AgentDesk


def build_state(settings: Settings) -> HubState:
    """The hub's own state: in PostgreSQL with ``CAHUB_DATABASE_URL``, else in a SQLite file.

    PostgreSQL's modules (and Alembic's, for its migrations) are imported only when chosen.
    """
    lease = timedelta(seconds=settings.outbox_lease_s)
    if settings.database_url is None:
        sqlite = ThreadLocalDatabase(
            Path(settings.data_dir) / HUB_FILE,
            LEDGER_SCHEMA + OUTBOX_SCHEMA + SESSIONS_SCHEMA + FORGETS_SCHEMA + DESK_SCHEMA,
            upgrades=[upgrade_outbox])
        return HubState(sqlite, SqliteCallLedger(sqlite), SqliteOutbox(sqlite, lease=lease),
                        SqliteSessionRevocations(sqlite), SqliteForgetLog(sqlite),
                        SqliteAgentDesk(sqlite))
    from state.desk.postgres import PostgresAgentDesk
    from state.forgets.postgres import PostgresForgetLog
    from state.ledger.postgres import PostgresCallLedger
    from state.outbox.postgres import PostgresOutbox
    from state.postgres import PostgresDatabase
    from state.sessions.postgres import PostgresSessionRevocations

    postgres = PostgresDatabase.open(settings.database_url.get_secret_value(),
                                     settings.database_pool_size)
    return HubState(postgres, PostgresCallLedger(postgres), PostgresOutbox(postgres, lease=lease),
                    PostgresSessionRevocations(postgres), PostgresForgetLog(postgres),
                    PostgresAgentDesk(postgres))


def build_broker(settings: Settings) -> ScreenPopBroker:
    """Screen pops and call states in this process, or through Redis for several
    (``CAHUB_REDIS_URL``)."""
    if settings.redis_url is None:
        return InProcessScreenPopBroker()
    return RedisScreenPopBroker(settings.redis_url.get_secret_value(),
                                prefix=settings.redis_prefix)


def build_tokens(settings: Settings) -> VoiceTokenMinter | None:
    """The softphone's token minter, when an API key, its secret and a TwiML App are set."""
    secret = settings.twilio_api_key_secret
    if not (settings.twilio_account_sid and settings.twilio_api_key_sid and secret
            and settings.twilio_twiml_app_sid):
        return None
    return VoiceTokenMinter(settings.twilio_account_sid, settings.twilio_api_key_sid,
                            secret.get_secret_value(), settings.twilio_twiml_app_sid,
                            settings.voice_token_ttl_s)


def build_services(
    settings: Settings, providers: Sequence[ProfileProvider] | None = None
) -> HubServices:
    """Every adapter and use case, wired from ``settings``.

    ``providers`` replaces the configured provider chain (tests and benchmarks).
    """
    data_dir = Path(settings.data_dir)
    metrics = HubMetrics()
    store = build_store(settings, data_dir / STORE_FILE)
    state = build_state(settings)
    providers = list(providers) if providers is not None else build_providers(
        settings, store, state.forgets.secret)
    chain = ProviderChain(providers, metrics)
    broker = build_broker(settings)
    guard = ForgetGuard(state.forgets, f"{socket.gethostname()}:{os.getpid()}")
    sinks = build_sinks(settings, store)
    planner = DeliveryPlanner(settings.crm, settings.sms_from, settings.hub.data_usage, fit_sms)
    writer = DeskWriter(state.desk, state.outbox, state.db.transaction,
                        notify=lambda: dispatcher.notify())
    states = CallStates(broker, settings)
    progress = CallProgress(settings, state.ledger, writer, states, planner)
    work = AfterCallWork(settings, state.ledger, writer, states, planner, metrics)
    # Each sink's share of a drain stays within half the lease, so no row outlives it. The
    # wrap-up deadlines are the desk's own, not a sink to ping.
    desk_kept = _retention(settings.desk_retention_h)
    dispatcher = Dispatcher(state.outbox, {**sinks, WRAPUP_SINK: WrapUpDeadline(work)}, metrics,
                            lease_budget=settings.outbox_lease_s / 2,
                            keep_done=_retention(settings.outbox_done_retention_h), guard=guard,
                            purges=[partial(writer.purge, desk_kept)] if desk_kept else [])
    router = AgentRouter(settings.hub.agents, settings.hub.routing.default_agent,
                         settings.default_region)
    call_state = CallState(state.ledger, state.outbox, planner, state.db.transaction,
                           guard=guard, notify=dispatcher.notify, end=progress)
    calls = InboundCallHandler(settings, chain, router, call_state, broker, metrics, guard=guard)
    add_cleaners(guard, call_state, broker, providers)
    forgetting = Forgetting(state.ledger, state.outbox, state.forgets, state.db.transaction,
                            wait_s=settings.forget_wait_s, desk=state.desk)
    control = TwilioCallControl.from_settings(settings, settings.hub.routing)
    transfers = WarmTransfer(settings, state.ledger, writer, states, control) if control else None
    desk = DeskServices(state.desk, states, progress, work,
                        OutboundCalls(settings, calls, state.desk, broker),
                        transfers, control)
    return HubServices(settings=settings, store=store, providers=providers, chain=chain,
                       broker=broker, calls=calls, metrics=metrics, outbox=state.outbox,
                       sinks=sinks, dispatcher=dispatcher, hub_db=state.db,
                       sessions=state.sessions, guard=guard, forgetting=forgetting, desk=desk,
                       tokens=build_tokens(settings))


def _retention(hours: float) -> timedelta | None:
    return timedelta(hours=hours) if hours > 0 else None


def add_cleaners(guard: ForgetGuard, state: CallState, broker: ScreenPopBroker,
                 providers: Sequence[ProfileProvider]) -> None:
    """Everything a server process holds in memory that a forget must reach."""
    guard.add_cleaner("calls not yet saved", state.forget)
    guard.add_cleaner("screen-pop replay history", broker.forget)
    for provider in providers:
        if isinstance(provider, CachedProvider):
            guard.add_cleaner(f"{provider.name} cache", _emptied(provider))


def _emptied(cache: CachedProvider) -> Callable[[Callable[[Summary], bool]], int]:
    """A cleaner that empties a remote provider's cache (it cannot tell whose a profile is)."""
    return lambda _: cache.forget()


def _secret_key(settings: Settings, serving: bool) -> str:
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    if serving:
        log.warning("CAHUB_SECRET_KEY is not set: console logins last until the server restarts")
    return secrets.token_urlsafe(32)


def create_app(
    settings: Settings | None = None, *, providers: Sequence[ProfileProvider] | None = None,
    start_background: bool = True,
) -> Flask:
    """The Flask app, with its services on ``app.extensions["cahub"]``.

    ``start_background`` starts the forget guard (which applies ``cahub forget`` to what
    this process holds in memory) and the delivery dispatcher, unless
    ``CAHUB_DELIVERIES_IN_SERVER`` leaves deliveries to ``cahub worker``; commands that
    only read or load data turn both off.
    """
    import web

    settings = settings if settings is not None else Settings()
    install_masking()
    app = Flask(__name__.split(".")[0], instance_path=str(Path(settings.data_dir).resolve()))
    app.secret_key = _secret_key(settings, serving=start_background)
    if settings.proxy_hops:
        # Only the client address: rate limits count per client, not per load balancer.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.proxy_hops,  # type: ignore[method-assign]
                                x_proto=0, x_host=0, x_port=0, x_prefix=0)
    hub = app.extensions[EXTENSION_KEY] = build_services(settings, providers)
    web.init_app(app)
    if start_background:
        hub.guard.start()
    if start_background and settings.deliveries_in_server:
        hub.dispatcher.start()
    return app


def services(app: Flask | None = None) -> HubServices:
    """The services of ``app`` (default: the current app), for the web and CLI entry points."""
    target = app if app is not None else current_app
    return cast(HubServices, target.extensions[EXTENSION_KEY])


def close_app(app: Flask) -> None:
    """Release what the app holds (threads, connections); for tests and clean shutdown."""
    hub = app.extensions[EXTENSION_KEY]
    hub.guard.stop()
    hub.dispatcher.stop()
    hub.calls.close()
    for resource in [*hub.providers, *hub.sinks.values(), hub.broker]:
        close = getattr(resource, "close", None)
        if callable(close) and resource is not hub.store:
            close()
    if hub.desk.control is not None:
        hub.desk.control.close()
    hub.store.close()
    hub.hub_db.close()
