"""Frozen data models that cross layers: calls, identities, profiles and the summary.

They are validated once, at the edge where data enters (a webhook form, a JSON Lines
record, a provider's response); code inside trusts them.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Frozen(BaseModel):
    """Base for immutable models."""

    model_config = ConfigDict(frozen=True)


class CallerKind(StrEnum):
    """What Twilio's ``From`` turned out to be."""

    NUMBER = "number"
    WITHHELD = "withheld"
    CLIENT = "client"
    SIP = "sip"
    INVALID = "invalid"


class InboundCall(Frozen):
    """Twilio's "a call comes in" webhook form.

    Every field Twilio sends is kept (``extra="allow"``) so that the raw form is at
    hand for routing rules; only the three the hub cannot work without are required.
    """

    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True)

    call_sid: str = Field(alias="CallSid", pattern=r"^CA[0-9a-fA-F]{32}$")
    from_: str = Field(alias="From")
    to: str = Field(alias="To")
    account_sid: str | None = Field(default=None, alias="AccountSid")
    call_status: str | None = Field(default=None, alias="CallStatus")
    direction: str | None = Field(default=None, alias="Direction")
    caller_name: str | None = Field(default=None, alias="CallerName")
    # The caller ID's STIR/SHAKEN verdict: US calls with a SHAKEN PASSporT only.
    stir_verstat: str | None = Field(default=None, alias="StirVerstat", max_length=64)


class CallStatusUpdate(Frozen):
    """Twilio's call status callback form (call progress events)."""

    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True)

    call_sid: str = Field(alias="CallSid", pattern=r"^CA[0-9a-fA-F]{32}$")
    call_status: str = Field(alias="CallStatus", min_length=1)
    # Bounded so that what a database stores as an integer can hold them (64 bits and less).
    sequence: int = Field(default=0, alias="SequenceNumber", ge=0, le=2**31 - 1)
    duration_s: int | None = Field(default=None, alias="CallDuration", ge=0, le=10**9)
    timestamp: str | None = Field(default=None, alias="Timestamp")

    def essentials(self) -> CallStatusUpdate:
        """This callback without the form fields the hub does not use (numbers, say)."""
        known = set(CallStatusUpdate.model_fields)
        return CallStatusUpdate.model_validate(self.model_dump(include=known))


class LegStatusUpdate(CallStatusUpdate):
    """A status callback of one leg of a call: the agent's, or the number an agent dialled.

    ``CallSid`` is the leg's own; ``ParentCallSid`` the call it belongs to (the caller's,
    or the agent's browser for a call out); ``To`` who the leg rings (``client:<identity>``).
    """

    parent_call_sid: str = Field(alias="ParentCallSid", pattern=r"^CA[0-9a-fA-F]{32}$")
    to: str = Field(default="", alias="To")


class OutboundCall(Frozen):
    """The TwiML App's request for a call an agent places from the softphone: ``From`` is
    ``client:<identity>``, ``To`` the number they dialled (a parameter of ``connect()``)."""

    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True)

    call_sid: str = Field(alias="CallSid", pattern=r"^CA[0-9a-fA-F]{32}$")
    from_: str = Field(alias="From")
    to: str = Field(default="", alias="To", max_length=64)


class Identity(Frozen):
    """A fully qualified identity: a value within an identity namespace."""

    namespace: str
    id: str


class Caller(Frozen):
    """The caller as the hub understands it: its kind, E.164 number and identity candidates."""

    kind: CallerKind
    raw: str
    e164: str | None = None
    candidates: tuple[Identity, ...] = ()


class AudienceMembership(Frozen):
    """Membership of one audience, with AEP's status vocabulary."""

    id: str
    name: str | None = None
    status: str = "realized"


class ExperienceEvent(Frozen):
    """One XDM experience event of the person, kept as received."""

    id: str
    timestamp: datetime
    type: str
    data: dict[str, Any] = Field(default_factory=dict)


class Profile(Frozen):
    """A person's stitched profile as a provider returns it.

    ``attributes`` is the merged XDM record (dotted paths are resolved by the summary's
    field map), ``events`` are newest first.
    """

    source: str
    profile_id: str
    attributes: dict[str, Any] = Field(default_factory=dict)
    identities: tuple[Identity, ...] = ()
    audiences: tuple[AudienceMembership, ...] = ()
    events: tuple[ExperienceEvent, ...] = ()


class AmbiguousMatch(Frozen):
    """An identity that belongs to several unrelated people (a family landline, a switchboard).

    It is reported, never resolved to one of them. ``candidates`` are the people it
    touches, as far as the provider can tell (AEP answers 422 without naming them);
    ``count`` is how many people it touches (None when unknown).
    """

    source: str
    identity: Identity
    count: int | None
    candidates: tuple[Profile, ...] = ()


class CallInfo(Frozen):
    """The ``call`` block of the summary.

    ``caller_kind`` is the kind of the customer's number: ``from`` on an inbound call,
    ``to`` on an outbound one (the agent's caller ID is ``from`` then).
    """

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    sid: str | None
    from_: str | None = Field(alias="from")
    to: str | None
    caller_kind: CallerKind
    direction: Literal["inbound", "outbound"] = "inbound"
    verstat: str | None = None

    @property
    def customer(self) -> str | None:
        """The customer's number: the caller, or the number an agent dialled."""
        return self.to if self.direction == "outbound" else self.from_


class SummaryAudience(Frozen):
    id: str
    name: str | None
    status: str


class SummaryEvent(Frozen):
    timestamp: datetime
    type: str
    title: str


class PersonFacts(Frozen):
    """What the agent is told about one person (the summary's person fields)."""

    source: str | None = None
    profile_id: str | None = None
    name: str | None = None
    email: str | None = None
    loyalty_tier: str | None = None
    lifetime_value: float | None = None
    churn_propensity: float | None = None
    audiences: tuple[SummaryAudience, ...] = ()
    recent_events: tuple[SummaryEvent, ...] = ()
    last_campaign: str | None = None


class Ambiguity(Frozen):
    """The caller's number belongs to several people: who they are, for the agent to choose."""

    count: int | None
    candidates: tuple[PersonFacts, ...] = ()


class Summary(PersonFacts):
    """What the agent sees: PRODUCT.md §7, with stable field names.

    For a shared number ``found`` is true, the person fields stay null, and
    ``ambiguous`` lists the people the number touches; it is null otherwise.
    """

    call: CallInfo
    identity: Identity | None
    found: bool
    ambiguous: Ambiguity | None = None
    lookup_ms: float | None = None

    def to_json_dict(self) -> dict[str, Any]:
        """The summary as the JSON object of PRODUCT.md §7, in its field order."""
        data = self.model_dump(mode="json", by_alias=True)
        first = ("call", "identity", "found")
        return {**{key: data[key] for key in first},
                **{key: value for key, value in data.items() if key not in first}}


class DeliveryAction(StrEnum):
    """What a delivery does at its sink."""

    NOTE = "note"
    SMS = "sms"
    CALL_LOG = "call_log"
    # The end of a call's wrap-up time: the call is then logged with the draft notes.
    WRAPUP_DUE = "wrapup_due"


class NewDelivery(Frozen):
    """A delivery to make for an accepted call; unique per (call_sid, sink, action).

    ``payload`` is already rendered and filtered by the channel's data-usage policy:
    sinks only transport it.
    """

    call_sid: str
    sink: str
    action: DeliveryAction
    payload: dict[str, Any]

    @property
    def key(self) -> str:
        """The idempotency key a sink sends where its API takes one."""
        return f"{self.call_sid}:{self.sink}:{self.action.value}"


class Delivery(NewDelivery):
    """A delivery as the outbox holds it."""

    id: int
    attempts: int = 0
    status: str = "pending"
    last_error: str | None = None
    created_at: datetime
    next_attempt_at: datetime
