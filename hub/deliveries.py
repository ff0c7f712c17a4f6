"""Which deliveries a call makes, rendered for each channel through its data-usage policy.

When the webhook is answered: a note on the caller's CRM record and an SMS to the
routed agent's rep. When the call's after-call work is done (or its time ran out): the call
logged to the CRM with the agent's outcome and notes, and written back into the profile
store as an experience event, so the next agent sees it. An outbound call is logged the
same way, against the number the agent dialled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from hub.models import CallerKind, CallStatusUpdate, DeliveryAction, NewDelivery, Summary
from hub.policy import Channel, DataUsage
from hub.render import facts, headline, summary_text
from hub.settings import Agent

PROFILE_SINK = "profile"
SMS_SINK = "sms"

REFERENCE_CHARS = 6  # of the CallSid's 32 hex digits: two calls share one 1 in 16 million


class SmsFitter(Protocol):
    """Joins an SMS body's parts, most important first, ending with ``suffix``."""

    def __call__(self, parts: Sequence[str], *, suffix: str = "") -> str: ...


def call_reference(call_sid: str) -> str:
    """A short reference to the call in its SMS ("Ref 9f3a1c").

    It makes every call's message distinct, so the SMS sink's check for a message
    already sent is per call, and lets the rep find the call in the CRM or the outbox.
    """
    return f"Ref {call_sid[-REFERENCE_CHARS:]}"


@dataclass(frozen=True)
class AfterCall:
    """The agent's after-call work on a call: the outcome they picked (its id and label) and
    their notes; empty when the call was logged without a wrap-up."""

    outcome_id: str | None = None
    outcome: str | None = None
    notes: str = ""


class DeliveryPlanner:
    """Turns a call's summary into the outbox rows it needs."""

    def __init__(self, crm: str, sms_from: str | None, usage: DataUsage, fit_sms: SmsFitter,
                 write_back: bool = True) -> None:
        self._crm = None if crm == "none" else crm
        # A generic webhook is its own channel; the CRMs share the "note" channel's policy.
        self._crm_channel: Channel = "webhook" if crm == "webhook" else "note"
        self._sms_from = sms_from
        self._usage = usage
        self._fit_sms = fit_sms
        self._write_back = write_back

    def on_answer(self, summary: Summary, agent: Agent | None) -> list[NewDelivery]:
        """The note and the SMS, for a caller with a number."""
        if not _is_call_from_a_number(summary):
            return []
        return self._note(summary) + self._sms(summary, agent)

    def on_end(self, summary: Summary, update: CallStatusUpdate,
               after: AfterCall = AfterCall()) -> list[NewDelivery]:
        """The call log in the CRM and the write-back into the profile store.

        ``outcome`` is the agent's outcome when they wrapped the call up, else Twilio's
        status of the call (``completed``, ``no-answer``...).
        """
        if not _is_call_from_a_number(summary):
            return []
        log = {"duration_s": update.duration_s or 0, "outcome": after.outcome or update.call_status,
               "outcome_id": after.outcome_id, "call_status": update.call_status,
               "notes": after.notes, "ended_at": update.timestamp,
               "direction": summary.call.direction}
        rows = []
        if self._crm:
            note = self._usage.filter(summary, self._crm_channel)
            payload = _crm_payload(note, summary) | log
            rows.append(_row(summary, self._crm, DeliveryAction.CALL_LOG, payload))
        if self._write_back:
            payload = {"phone": summary.call.customer, **log}
            rows.append(_row(summary, PROFILE_SINK, DeliveryAction.CALL_LOG, payload))
        return rows

    def _note(self, summary: Summary) -> list[NewDelivery]:
        if not self._crm:
            return []
        note = self._usage.filter(summary, self._crm_channel)
        return [_row(summary, self._crm, DeliveryAction.NOTE, _crm_payload(note, summary))]

    def _sms(self, summary: Summary, agent: Agent | None) -> list[NewDelivery]:
        if not (self._sms_from and agent and agent.sms and summary.found):
            return []
        sms = self._usage.filter(summary, "sms")
        body = self._fit_sms([headline(sms), *facts(sms)],
                             suffix=call_reference(summary.call.sid or ""))
        return [_row(summary, SMS_SINK, DeliveryAction.SMS,
                     {"to": agent.sms, "from": self._sms_from, "body": body})]


def _is_call_from_a_number(summary: Summary) -> bool:
    """A call from a number that is known (a forgotten caller's is not: nothing is made)."""
    return (summary.call.sid is not None and summary.call.caller_kind is CallerKind.NUMBER
            and summary.call.from_ is not None)


def _crm_payload(note: Summary, full: Summary) -> dict[str, object]:
    """A CRM payload: the filtered summary and text, and the number to find the record by."""
    direction = full.call.direction.title()
    return {"summary": note.to_json_dict(), "text": summary_text(note),
            "subject": f"{direction} call: {headline(note)}", "phone": full.call.customer}


def _row(summary: Summary, sink: str, action: DeliveryAction,
         payload: dict[str, object]) -> NewDelivery:
    assert summary.call.sid is not None
    return NewDelivery(call_sid=summary.call.sid, sink=sink, action=action, payload=payload)
