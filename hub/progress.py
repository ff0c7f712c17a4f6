"""A call's progress on the agent's card, from Twilio's status callbacks.

The agent's leg (the ``<Client>`` the hub dials, or the ``<Number>`` an agent dials out)
reports ringing, answered and over; the card follows: ringing, connected (with the time it
was answered, for a running clock), ended (with the talk time), or missed. Callbacks may
come twice or out of order: a call never goes back to an earlier phase.

When the whole call has ended (``completed`` on ``/twilio/status``), its log waits for the
agent's wrap-up: a call an agent answered gets a wrap-up deadline, kept in the outbox like
any delivery, so it holds across a restart; the wrap-up or the deadline (with the draft
notes) then writes the log (``hub.wrapup``). A call no agent answered is logged at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from hub.deliveries import AfterCall, DeliveryPlanner
from hub.desk import DeskCall, Handoff
from hub.desk_changes import CallStates, Decision, DeskWriter
from hub.models import CallStatusUpdate, DeliveryAction, LegStatusUpdate, NewDelivery
from hub.ports import CallLedger, CallRecord, Outbox
from hub.settings import Settings

log = logging.getLogger(__name__)

WRAPUP_SINK = "wrapup"
NOT_ANSWERED = frozenset({"busy", "no-answer", "failed", "canceled"})
RINGING = frozenset({"initiated", "ringing", "queued"})


@dataclass(frozen=True)
class ScheduledLog:
    """What the end of a call scheduled: whether deliveries are due now, and the consoles'
    news to publish once the transaction has committed."""

    queued: bool = False
    announce: Callable[[], None] = field(default=lambda: None)


class EndOfCall(Protocol):
    """What the end of a call schedules, inside the status callback's transaction."""

    def schedule(self, record: CallRecord, update: CallStatusUpdate) -> ScheduledLog: ...


class ImmediateLog:
    """The end of a call without a desk: its log is due at once (the hub without consoles)."""

    def __init__(self, outbox: Outbox, planner: DeliveryPlanner) -> None:
        self._outbox, self._planner = outbox, planner

    def schedule(self, record: CallRecord, update: CallStatusUpdate) -> ScheduledLog:
        return ScheduledLog(self._outbox.enqueue(self._planner.on_end(record.summary, update)) > 0)


class CallProgress:
    """Moves calls along on the desk as their legs report, and schedules their logs."""

    def __init__(self, settings: Settings, ledger: CallLedger, writer: DeskWriter,
                 states: CallStates, planner: DeliveryPlanner) -> None:
        self._settings, self._ledger, self._writer = settings, ledger, writer
        self._states, self._planner = states, planner

    def leg(self, update: LegStatusUpdate) -> None:
        """A status callback of an agent's leg (or a dialled number's): the card follows."""
        record = self._ledger.get(update.parent_call_sid)
        agent_id = self._leg_agent(update, record)
        if record is None or agent_id is None:
            log.info("leg status for a call the hub did not route; ignored")
            return
        change = self._writer.change(record.call_sid,
                                     lambda call: self._on_leg(call, record, agent_id, update))
        if change is not None:
            self._states.announce(change)

    def schedule(self, record: CallRecord, update: CallStatusUpdate) -> ScheduledLog:
        """The whole call ended (inside the status callback's transaction): log it now, or
        once its after-call work is done."""
        change = self._writer.change(record.call_sid, lambda call: self._on_end(call, record,
                                                                              update))
        if change is None:  # no agent's desk had the call: nothing to wait for
            return ScheduledLog(self._writer.enqueue(self._planner.on_end(record.summary, update)))
        return ScheduledLog(queued=change.after.phase != "ended",
                            announce=lambda: self._states.announce(change))

    def _leg_agent(self, update: LegStatusUpdate, record: CallRecord | None) -> str | None:
        """The agent whose leg it is: the identity a ``client:`` leg rings, else (a number an
        agent dialled) the agent who placed the call."""
        if update.to.startswith("client:"):
            identity = update.to.removeprefix("client:")
            return next((a.id for a in self._settings.hub.agents if a.client == identity), None)
        return record.agent_id if record is not None else None

    def _on_leg(self, call: DeskCall | None, record: CallRecord, agent_id: str,
                update: LegStatusUpdate) -> Decision | None:
        now = self._writer.clock()
        current = call or DeskCall(call_sid=record.call_sid, agent_id=record.agent_id or agent_id,
                                   direction=record.summary.call.direction, updated_at=now)
        moved = leg_moves(current, agent_id, update, now)
        if moved is None or (call is not None and moved == call):
            return None
        return Decision(moved)

    def _on_end(self, call: DeskCall | None, record: CallRecord,
                update: CallStatusUpdate) -> Decision | None:
        if call is None:
            return None
        ended = update.essentials()
        if call.phase == "wrapped_up":
            return Decision(call.model_copy(update={"ended": ended}), self._planner.on_end(
                record.summary, ended, after_call(call, self._settings)))
        if not call.answered and not call.notes.strip():
            missed = call.model_copy(update={"phase": "missed", "ended": ended,
                                             "transfer_to": None})
            return Decision(missed, self._planner.on_end(record.summary, _missed(call, ended)))
        return self._await_wrapup(call, ended)

    def _await_wrapup(self, call: DeskCall, ended: CallStatusUpdate) -> Decision:
        """An answered call: after-call work is due, with a deadline kept in the outbox."""
        now = self._writer.clock()
        timeout = self._settings.hub.wrapup.timeout_s
        waiting = call.model_copy(update={
            "phase": "ended", "ended": ended, "ended_at": call.ended_at or now,
            "log_due_at": now + timedelta(seconds=timeout), "transfer_to": None})
        deadline = NewDelivery(call_sid=call.call_sid, sink=WRAPUP_SINK,
                               action=DeliveryAction.WRAPUP_DUE, payload={})
        return Decision(waiting, [deadline], delay=timeout)


def _missed(call: DeskCall, ended: CallStatusUpdate) -> CallStatusUpdate:
    """The end of a call nobody answered: for a call out, how the dialled number's leg ended
    (no-answer, busy...), since the agent's own leg "completed" even so."""
    if call.direction != "outbound" or call.leg_status is None:
        return ended
    return ended.model_copy(update={"call_status": call.leg_status})


def after_call(call: DeskCall, settings: Settings) -> AfterCall:
    """The after-call work a call's log carries: the outcome picked, and the notes of every
    agent who had the call (each named, once the call has been handed on)."""
    outcome = settings.hub.wrapup.outcome(call.outcome) if call.outcome else None
    written = [(h.agent_id, h.notes) for h in call.handoffs if h.notes.strip()]
    if call.notes.strip():
        written.append((call.agent_id or "", call.notes))
    if call.handoffs:
        notes = "\n\n".join(f"{_name(settings, a)}: {text.strip()}" for a, text in written)
    else:
        notes = call.notes
    return AfterCall(outcome_id=call.outcome, outcome=outcome.label if outcome else None,
                     notes=notes)


def _name(settings: Settings, agent_id: str) -> str:
    agent = settings.agent(agent_id)
    return agent.name if agent else agent_id


def leg_moves(call: DeskCall, agent_id: str, update: LegStatusUpdate,
              now: datetime) -> DeskCall | None:
    """``call`` after ``agent_id``'s leg reported ``update``; None when nothing changes."""
    if call.transfer_to == agent_id:
        return _transfer_leg(call, agent_id, update, now)
    if call.agent_id != agent_id:
        return None  # the leg of an agent the call has left
    status = update.call_status
    if status in RINGING:
        return call.model_copy(update={"leg_sid": update.call_sid}) if call.phase == "ringing" \
            else None
    if status == "in-progress":
        if call.phase not in ("ringing", "missed"):
            return None
        return call.model_copy(update={"phase": "connected", "leg_sid": update.call_sid,
                                       "answered_at": call.answered_at or now})
    if status == "completed":
        return _leg_over(call, update, now)
    if status in NOT_ANSWERED and call.phase == "ringing":
        return call.model_copy(update={"phase": "missed", "leg_status": status})
    return None


def _leg_over(call: DeskCall, update: LegStatusUpdate, now: datetime) -> DeskCall | None:
    """The agent's leg is over: their part of the call has ended (unless a transfer took
    the caller on, or they already wrapped up, when only the times are kept)."""
    if call.phase == "transferring" or call.ended_at is not None:
        return None
    times = {"ended_at": now, "talk_s": update.duration_s,
             "answered_at": call.answered_at or now}
    if call.phase in ("connected", "ringing"):
        return call.model_copy(update={**times, "phase": "ended"})
    return call.model_copy(update=times) if call.phase == "wrapped_up" else None


def _transfer_leg(call: DeskCall, agent_id: str, update: LegStatusUpdate,
                  now: datetime) -> DeskCall | None:
    """The leg of the agent a warm transfer rings: answered, they hold the call (with the
    notes of the agent before); not answered, the caller goes back to the agent before."""
    status = update.call_status
    if status in ("in-progress", "completed"):
        handoff = Handoff(agent_id=call.agent_id or "", agent_name="", notes=call.notes, at=now)
        taken = call.model_copy(update={
            "agent_id": agent_id, "phase": "connected", "leg_sid": update.call_sid,
            "transfer_to": None, "transfer_failed": None, "notes": "",
            "handoffs": (*call.handoffs, handoff), "answered_at": call.answered_at or now})
        return _leg_over(taken, update, now) if status == "completed" else taken
    if status in NOT_ANSWERED:
        return call.model_copy(update={"transfer_to": None, "transfer_failed": agent_id,
                                       "phase": "ringing"})
    return None
