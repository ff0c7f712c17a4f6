"""Settings: ``CAHUB_*`` environment variables (and ``.env``), plus the TOML file.

Flat values come from the environment; structured ones (agents, routing, the field
map, the merge policy) from the TOML file named by ``CAHUB_CONFIG``. Only
``app.create_app`` builds a ``Settings``.
"""

from __future__ import annotations

import re
import tomllib
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import limits
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from hub.desk import WrapUpRules
from hub.policy import Channel, ChannelPolicy, DataUsage
from lookup.store.audience_rules import AudienceRule
from lookup.store.computed import ComputedAttribute

KNOWN_PROVIDERS = ("embedded", "aep", "segment")
KNOWN_CRMS = ("none", "salesforce", "hubspot", "zendesk", "webhook")
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


class Agent(BaseModel):
    """An agent who takes calls (TOML ``[[agents]]``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    name: str
    client: str = Field(pattern=r"^[A-Za-z0-9_]{1,256}$", description="Twilio Voice SDK identity")
    numbers: tuple[str, ...] = ()
    sms: str | None = None
    token: SecretStr
    caller_id: str | None = Field(default=None, description="the number outbound calls show")


class Routing(BaseModel):
    """How calls are routed (TOML ``[routing]``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    workflow_sid: str | None = Field(default=None, pattern=r"^WW[0-9a-fA-F]{32}$")
    default_agent: str | None = None
    queue: str = Field(default="support", max_length=64)
    fallback_message: str = "Thank you for calling. Please hold while we connect you to an agent."
    parameters: tuple[str, ...] = ("name", "loyalty_tier", "lifetime_value", "churn_propensity")


class IdentityRules(BaseModel):
    """How the embedded store links identities into people (TOML ``[identity]``).

    A person holds at most one value of each unique namespace, so a number shared by
    two people with different CRM ids is reported as shared instead of merging them.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    unique_namespaces: tuple[str, ...] = ("CRMID", "loyaltyId")
    max_identities: int = Field(default=50, ge=2, le=10_000)


class MergePolicy(BaseModel):
    """Which fragment's value wins when a person's records disagree (TOML ``[merge]``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    policy: Literal["timestamp_ordered", "dataset_precedence"] = "timestamp_ordered"
    order: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _precedence_needs_an_order(self) -> MergePolicy:
        if self.policy == "dataset_precedence" and not self.order:
            raise ValueError('merge policy "dataset_precedence" needs order = ["dataset", ...]')
        return self


class EventRetention(BaseModel):
    """How long experience events are kept (TOML ``[events]``); None keeps them all."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    retention_days: int | None = Field(default=None, ge=1)


class HubConfig(BaseModel):
    """The structured part of the configuration, read from the TOML file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    agents: tuple[Agent, ...] = ()
    routing: Routing = Routing()
    fields: dict[str, str | list[str]] = Field(default_factory=dict)
    identity: IdentityRules = IdentityRules()
    merge: MergePolicy = MergePolicy()
    events: EventRetention = EventRetention()
    labels: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    policies: dict[Channel, ChannelPolicy] = Field(default_factory=dict)
    computed: tuple[ComputedAttribute, ...] = ()
    audiences: tuple[AudienceRule, ...] = ()
    wrapup: WrapUpRules = WrapUpRules()

    @cached_property
    def data_usage(self) -> DataUsage:
        """Field labels and channel policies, over the defaults."""
        return DataUsage(labels=self.labels, policies=self.policies)

    @model_validator(mode="after")
    def _labels_are_valid(self) -> HubConfig:
        DataUsage(labels=self.labels, policies=self.policies)
        return self

    @model_validator(mode="after")
    def _agents_are_distinct(self) -> HubConfig:
        ids = [agent.id for agent in self.agents]
        if len(ids) != len(set(ids)):
            raise ValueError("agent ids must be unique")
        tokens = [agent.token.get_secret_value() for agent in self.agents]
        if len(tokens) != len(set(tokens)):
            raise ValueError("agent tokens must be unique")
        names = [attribute.name for attribute in self.computed]
        if len(names) != len(set(names)):
            raise ValueError("computed attribute names must be unique")
        audience_ids = [rule.id for rule in self.audiences]
        if len(audience_ids) != len(set(audience_ids)):
            raise ValueError("rule audience ids must be unique")
        return self


def _comma_list(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


CommaList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    """Everything the hub can be told, with PRODUCT.md §5's names."""

    model_config = SettingsConfigDict(
        env_prefix="CAHUB_", env_file=".env", extra="ignore", frozen=True
    )

    data_dir: Path = Path("instance")
    config: Path | None = None
    public_base_url: str | None = None
    secret_key: SecretStr | None = None
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    # Agent console sessions: a cookie left unused this long expires (an open console renews
    # its own), and every session ends this long after its login (a long shift).
    console_session_idle_s: int = Field(default=3600, ge=1, le=7 * 86400)
    console_session_max_s: int = Field(default=12 * 3600, ge=60, le=30 * 86400)
    # Rate limits, in Flask-Limiter's notation: refused console logins per client address (a
    # browser that signed in before counts on its own), requests with a wrong API key per
    # client address, lookups per API key.
    console_login_limit: str = "10 per minute; 50 per hour"
    api_auth_limit: str = "20 per minute; 200 per hour"
    api_lookup_limit: str = "100 per second"
    # The real-time ingest API: its requests per API key, and the largest body it reads (a
    # few records at a time; bulk loads go through `cahub ingest`).
    api_ingest_limit: str = "50 per second"
    ingest_max_body_bytes: int = Field(default=1 << 20, ge=1024, le=64 << 20)
    # Reverse proxies in front of the hub that append to X-Forwarded-For: the client address
    # is read that many hops back (0: the connection's own peer; the header is not trusted).
    proxy_hops: int = Field(default=0, ge=0, le=5)

    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    default_region: str = "US"
    # The softphone: a Standard API key signs the agents' access tokens (never the auth
    # token), the TwiML App takes the calls they place. Tokens live ``voice_token_ttl_s``
    # (Twilio allows 24 h at most) and the console renews them before they expire.
    twilio_api_key_sid: str | None = Field(default=None, pattern=r"^SK[0-9a-fA-F]{32}$")
    twilio_api_key_secret: SecretStr | None = None
    twilio_twiml_app_sid: str | None = Field(default=None, pattern=r"^AP[0-9a-fA-F]{32}$")
    voice_token_ttl_s: int = Field(default=3600, ge=300, le=86400)
    # Where the console loads the Voice SDK from (default: the copy ``cahub voice-sdk``
    # installed, served by the hub), the Twilio edges it may connect to, and the registry
    # the set-up fetches the pinned SDK from.
    voice_sdk_url: str | None = None
    voice_edges: CommaList = Field(default_factory=lambda: ["roaming"])
    npm_registry: str = "https://registry.npmjs.org"
    # A phone in the browser that plays Twilio's part (the demo's, and the tests'): it
    # signs call progress with the auth token as Twilio would. Never in production.
    voice_simulator: bool = False

    profile_providers: CommaList = Field(default_factory=lambda: ["embedded"])
    identity_namespaces: CommaList = Field(default_factory=lambda: ["Phone_E.164", "Phone"])
    lookup_deadline_ms: int = Field(default=1000, ge=50, le=14000)
    # How long a lookup may go on after the webhook answered, to pop late (each provider
    # is still bounded by its own timeout).
    late_lookup_ms: int = Field(default=5000, ge=50, le=60000)
    # Processes that parse JSON Lines while the store writes, in large loads (0: none).
    # One keeps up with the single SQLite writer; more only take cores from it.
    ingest_workers: int = Field(default=1, ge=0, le=32)
    # Request bodies (web.body_limits): Twilio's webhooks and the console's requests are a few
    # kilobytes; a route that needs more (a bulk load) has a limit of its own.
    max_body_bytes: int = Field(default=65536, ge=1024)
    body_timeout_s: float = Field(default=5.0, gt=0, le=300)
    lookup_cache_ttl_s: float = Field(default=300.0, ge=0)
    lookup_miss_ttl_s: float = Field(default=30.0, ge=0)
    # With CAHUB_REDIS_URL, the most a lookup waits on each command to the shared cache
    # (connecting: twice that); past it, the lookup goes on without the shared cache.
    lookup_cache_timeout_ms: int = Field(default=10, ge=1, le=100)
    breaker_failures: int = Field(default=5, ge=1)
    breaker_reset_s: float = Field(default=30.0, gt=0)

    aep_base_url: str = "https://platform.adobe.io"
    aep_ims_base_url: str = "https://ims-na1.adobelogin.com"
    aep_client_id: str | None = None
    aep_client_secret: SecretStr | None = None
    aep_org_id: str | None = None
    aep_sandbox: str = "prod"
    aep_merge_policy_id: str | None = None
    aep_scopes: str = (
        "openid,AdobeID,read_organizations,additional_info.projectedProductContext,session"
    )
    aep_fields: CommaList = Field(default_factory=list)
    aep_events: bool = True
    aep_timeout_ms: int = Field(default=800, ge=50, le=14000)

    segment_base_url: str = "https://profiles.segment.com"
    segment_space_id: str | None = None
    segment_token: SecretStr | None = None
    segment_identifiers: CommaList = Field(default_factory=lambda: ["phone", "email", "user_id"])
    segment_timeout_ms: int = Field(default=500, ge=50, le=14000)

    twilio_base_url: str = "https://api.twilio.com"
    salesforce_base_url: str | None = None
    hubspot_base_url: str = "https://api.hubapi.com"
    zendesk_base_url: str | None = None

    crm: str = "none"
    crm_on_missing: Literal["create", "skip"] = "create"
    sink_timeout_s: float = Field(default=5.0, gt=0, le=120)
    outbox_lease_s: float = Field(default=60.0, gt=0)
    # Delivered and cancelled rows are deleted this long after they were finished (dead
    # ones stay for an operator); 0 keeps them until `cahub outbox purge`.
    outbox_done_retention_h: float = Field(default=24.0, ge=0)
    # Calls on the agents' desks (draft notes, outcome) are deleted this long after they were
    # finished with (ended and logged: the CRM has them); 0 keeps them until `cahub forget`.
    desk_retention_h: float = Field(default=24.0, ge=0)
    # False: the web servers leave deliveries to `cahub worker` processes.
    deliveries_in_server: bool = True
    # The call ledger and the outbox in PostgreSQL (several servers), instead of SQLite
    # files in data_dir; a secret, since the URL may carry a password.
    database_url: SecretStr | None = None
    database_pool_size: int = Field(default=10, ge=1, le=1000)
    # Several servers: screen pops through Redis Streams, and the rate limits' counters
    # (unset: both in this process only). A SecretStr, as the URL may carry a password; the
    # prefix lets hubs share one Redis.
    redis_url: SecretStr | None = None
    redis_prefix: str = Field(default="cahub:", pattern=r"^[A-Za-z0-9_.:{}-]{0,64}$")
    # How long `cahub forget` waits for every running server to confirm it applied a forget.
    forget_wait_s: float = Field(default=15.0, gt=0, le=600)
    sms_from: str | None = None

    salesforce_client_id: str | None = None
    salesforce_client_secret: SecretStr | None = None
    # The JWT bearer flow, instead of the client secret: the user the hub acts for, the PEM
    # private key of the app's certificate, and the login host the JWT is meant for.
    salesforce_username: str | None = None
    salesforce_private_key_file: Path | None = None
    salesforce_audience: str = "https://login.salesforce.com"
    salesforce_api_version: str = "v62.0"
    salesforce_task_key_field: str | None = None
    hubspot_token: SecretStr | None = None
    zendesk_email: str | None = None
    zendesk_api_token: SecretStr | None = None
    zendesk_ticket: Literal["new", "open"] = "new"
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None

    hub: HubConfig = Field(default_factory=HubConfig, exclude=True)

    @field_validator("profile_providers", "identity_namespaces", "api_keys", "aep_fields",
                     "segment_identifiers", "voice_edges", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        return _comma_list(value)

    @field_validator("profile_providers")
    @classmethod
    def _known_providers(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in KNOWN_PROVIDERS]
        if unknown:
            raise ValueError(f"unknown provider(s) {unknown}; choose from {list(KNOWN_PROVIDERS)}")
        return value

    @field_validator("console_login_limit", "api_auth_limit", "api_lookup_limit",
                     "api_ingest_limit")
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        try:
            limits.parse_many(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a rate limit such as '10 per minute': "
                             f"{exc}") from exc
        return value

    @field_validator("crm")
    @classmethod
    def _known_crm(cls, value: str) -> str:
        if value not in KNOWN_CRMS:
            raise ValueError(f"unknown CRM {value!r}; choose from {list(KNOWN_CRMS)}")
        return value

    @field_validator("voice_edges")
    @classmethod
    def _edge_names(cls, value: list[str]) -> list[str]:
        bad = [edge for edge in value if not re.fullmatch(r"[a-z0-9-]{1,32}", edge)]
        if bad or not value:
            raise ValueError(f"edges are Twilio edge names such as 'roaming' or 'ashburn', "
                             f"not {bad or value}")
        return value

    @field_validator("public_base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(REDIS_SCHEMES):
            raise ValueError(f"must start with one of {', '.join(REDIS_SCHEMES)}, "
                             "e.g. redis://127.0.0.1:6379/0")
        return value

    @model_validator(mode="after")
    def _read_toml(self) -> Settings:
        if self.config is not None and not self.hub.agents:
            object.__setattr__(self, "hub", load_hub_config(self.config))
        return self

    def agent(self, agent_id: str) -> Agent | None:
        return next((a for a in self.hub.agents if a.id == agent_id), None)


def load_hub_config(path: Path) -> HubConfig:
    """Read and validate the TOML file; errors name the file."""
    try:
        with path.open("rb") as handle:
            raw = tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ValueError(f"CAHUB_CONFIG file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"CAHUB_CONFIG file {path} is not valid TOML: {exc}") from exc
    return HubConfig.model_validate(raw)
