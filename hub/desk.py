"""The agent's desk beside the pop, as frozen models: the outcome codes of after-call work,
what the hub keeps of each call an agent handles (``DeskCall``, behind the ``AgentDesk``
port), and what a console is told about it (``CallState``, an SSE ``callstate`` event).

A call on the desk moves through phases: ``ringing`` (the agent's phone rings),
``connected`` (they talk), ``ended`` (their part is over, after-call work is due),
``wrapped_up`` (outcome and notes saved) or ``logged`` (the wrap-up time ran out and the
call was logged with the draft notes), or ``missed`` (it rang and nobody answered). A warm
transfer hands the call to another agent: ``transferring`` while their phone rings; the
first agent's notes travel with it as a ``Handoff``.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub.models import CallStatusUpdate, Frozen, Summary

Phase = Literal["ringing", "connected", "ended", "missed", "wrapped_up", "logged",
                "transferring"]
Direction = Literal["inbound", "outbound"]
LIVE: frozenset[str] = frozenset({"ringing", "connected", "transferring"})
AFTER_CALL: frozenset[str] = frozenset({"ended"})
DONE: frozenset[str] = frozenset({"missed", "wrapped_up", "logged"})
MAX_NOTES = 20_000  # characters; a Salesforce Task description holds 32,000
# A call on the desk unchanged this long is over, whatever its phase says: Twilio ends a call
# after 24 hours at most, and the outbox gives up on a wrap-up deadline 24 hours after it.
ABANDONED_AFTER = timedelta(days=3)


def without_nul(text: str) -> str:
    """``text`` without NUL characters: PostgreSQL stores none (in text or JSON), and no CRM
    wants them; a pasted note may carry one."""
    return text.replace("\x00", "")


class Outcome(BaseModel):
    """An outcome code (disposition) an agent picks at wrap-up (TOML ``[[wrapup.outcomes]]``).

    ``hubspot`` is the HubSpot call outcome GUID to log it as; by default one of HubSpot's
    own outcomes whose name is the label ("No answer", "Left voicemail", ...).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    # Salesforce's CallDisposition holds 255 characters.
    label: str = Field(min_length=1, max_length=255)
    hubspot: str | None = Field(default=None, pattern=r"^[0-9a-fA-F-]{36}$")


DEFAULT_OUTCOMES = (
    Outcome(id="resolved", label="Resolved"),
    Outcome(id="follow_up", label="Follow-up needed"),
    Outcome(id="refund_issued", label="Refund issued"),
    Outcome(id="left_voicemail", label="Left voicemail"),
    Outcome(id="no_answer", label="No answer"),
    Outcome(id="wrong_number", label="Wrong number"),
)


class WrapUpRules(BaseModel):
    """After-call work (TOML ``[wrapup]``): the outcome codes, and how long a call that ended
    waits for its wrap-up before it is logged without one (with the agent's draft notes)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    outcomes: tuple[Outcome, ...] = DEFAULT_OUTCOMES
    # Within the outbox's 24 hours for a delivery, with room for its retries.
    timeout_s: int = Field(default=300, ge=10, le=4 * 3600)

    @model_validator(mode="after")
    def _outcomes_are_distinct(self) -> WrapUpRules:
        ids = [outcome.id for outcome in self.outcomes]
        if not ids:
            raise ValueError("[wrapup] needs at least one outcome")
        if len(ids) != len(set(ids)):
            raise ValueError("wrap-up outcome ids must be unique")
        return self

    def outcome(self, outcome_id: str) -> Outcome | None:
        return next((o for o in self.outcomes if o.id == outcome_id), None)


class Handoff(Frozen):
    """An agent who handed the call on, with the notes they had written."""

    agent_id: str
    agent_name: str
    notes: str = ""
    at: datetime


class DeskCall(Frozen):
    """What the hub keeps of one call an agent handles.

    ``leg_sid`` is the agent's own leg (their browser's call, or the number an agent dialled);
    ``ended`` is Twilio's final status callback of the whole call, which the call log is
    built from; ``version`` grows with every change (the port's writes compare and set it).
    """

    call_sid: str
    agent_id: str | None
    direction: Direction = "inbound"
    phase: Phase = "ringing"
    leg_sid: str | None = None
    leg_status: str | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    talk_s: int | None = None
    ended: CallStatusUpdate | None = None
    notes: str = Field(default="", max_length=MAX_NOTES)
    outcome: str | None = None
    wrapped_at: datetime | None = None
    log_due_at: datetime | None = None
    handoffs: tuple[Handoff, ...] = ()
    transfer_to: str | None = None
    transfer_failed: str | None = None
    version: int = 0
    updated_at: datetime

    @property
    def answered(self) -> bool:
        return self.answered_at is not None

    def handed_over_by(self, agent_id: str) -> bool:
        return any(h.agent_id == agent_id for h in self.handoffs)


class CallState(Frozen):
    """A call's state as one agent's console shows it (the ``callstate`` event's data).

    ``phase`` is ``transferred`` for the agent who handed the call on; ``handoffs`` carry
    the notes of the agents before, for the one who has it now.
    """

    call_sid: str
    phase: Phase | Literal["transferred"]
    direction: Direction = "inbound"
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    talk_s: int | None = None
    outcome: str | None = None
    outcome_label: str | None = None
    wrapup_due_at: datetime | None = None
    handoffs: tuple[Handoff, ...] = ()
    transfer_to: str | None = None
    transfer_to_name: str | None = None
    transfer_failed: str | None = None


ConsoleEvent = Summary | CallState


def event_name(event: ConsoleEvent) -> Literal["screenpop", "callstate"]:
    """The SSE event name of ``event``: ``screenpop`` for a summary, else ``callstate``."""
    return "callstate" if isinstance(event, CallState) else "screenpop"


def encode_event(event: ConsoleEvent) -> str:
    """``event`` as JSON text that ``decode_event`` turns back into the same model (for a
    broker that carries events between servers)."""
    data = event.model_dump(mode="json", by_alias=True)
    return json.dumps({"kind": event_name(event), "data": data}, separators=(",", ":"))


def decode_event(text: str | bytes) -> ConsoleEvent:
    raw = json.loads(text)
    model: type[ConsoleEvent] = CallState if raw["kind"] == "callstate" else Summary
    return model.model_validate(raw["data"])
