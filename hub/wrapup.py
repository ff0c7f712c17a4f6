"""After-call work: the notes an agent types on the card, the outcome they pick when the call
is over, and the wrap-up deadline.

The hub keeps the draft as it is typed (the console saves it a moment after each change), so
a closed tab or a crashed browser loses nothing: the reopened console lists the agent's open
calls with their drafts. Saving the wrap-up writes the call log (CRM and profile) with the
outcome and the notes; if it never comes, the deadline that the end of the call left in the
outbox (``hub.progress``) logs the call with the draft notes once its time has run out, on
whichever server takes it, after a restart too. A wrap-up that comes after that is refused:
the call has been logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from hub.deliveries import DeliveryPlanner
from hub.desk import AFTER_CALL, LIVE, MAX_NOTES, CallState, DeskCall, without_nul
from hub.desk_changes import CallStates, Change, Decide, Decision, DeskWriter
from hub.metrics import HubMetrics
from hub.models import Delivery, Summary
from hub.ports import CallLedger, CallRecord, HubError
from hub.progress import WRAPUP_SINK, after_call
from hub.settings import Settings

OPEN_WORK_HOURS = 12  # a shift: older calls are not listed again
STALE_RINGING_S = 120  # a call still "ringing" after this long never reported its end


class DeskRefusal(HubError):
    """What an agent asked of a call cannot be done; ``code`` says why, ``status`` as HTTP."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(message)
        self.code, self.status = code, status


def not_found() -> DeskRefusal:
    return DeskRefusal("unknown_call", "The hub routed no call with that CallSid.", 404)


def not_yours() -> DeskRefusal:
    return DeskRefusal("not_your_call", "That call is with another agent.", 403)


@dataclass(frozen=True)
class OpenCall:
    """A call still on an agent's desk, as a reopened console shows it."""

    summary: Summary
    state: CallState
    notes: str


class AfterCallWork:
    """Drafts, wrap-ups and deadlines of the calls on the agents' desks."""

    def __init__(self, settings: Settings, ledger: CallLedger, writer: DeskWriter,
                 states: CallStates, planner: DeliveryPlanner,
                 metrics: HubMetrics | None = None) -> None:
        self._settings, self._ledger, self._writer = settings, ledger, writer
        self._states, self._planner = states, planner
        self._metrics = metrics or HubMetrics()

    def save_draft(self, agent_id: str, call_sid: str, notes: str) -> DeskCall:
        """Keep what the agent has typed so far; refused once the call is wrapped up."""
        record = self._record(call_sid)
        notes = without_nul(notes)
        _check_length(notes)

        def decide(call: DeskCall | None) -> Decision | None:
            current = self._held(call, record, agent_id)
            if current.phase in ("wrapped_up", "logged"):
                raise _closed(current)
            return None if call is not None and current.notes == notes else Decision(
                current.model_copy(update={"notes": notes}))

        change = self._writer.change(call_sid, decide)
        if change is not None and change.after.transfer_to:
            self._states.announce(change)  # the agent the transfer rings sees the notes grow
        return change.after if change is not None else self._stored(call_sid)

    def wrap_up(self, agent_id: str, call_sid: str, outcome_id: str, notes: str) -> CallState:
        """End the after-call work: the call is logged with the outcome and the notes (at
        once if the call is over, else when it is)."""
        outcome = self._settings.hub.wrapup.outcome(outcome_id)
        if outcome is None:
            raise DeskRefusal("unknown_outcome", f"{outcome_id!r} is not one of the outcome "
                              "codes ([wrapup] outcomes).", 400)
        notes = without_nul(notes)
        _check_length(notes)
        record = self._record(call_sid)
        change = self._change(call_sid, lambda call: self._wrap(call, record, agent_id,
                                                                outcome.id, notes))
        self._count("agent", change.after)
        return self._states.view(change.after, agent_id)

    def expire(self, call_sid: str) -> None:
        """The wrap-up time of an ended call ran out: log it with the draft notes."""
        record = self._ledger.get(call_sid)
        if record is None:
            return
        change = self._writer.change(call_sid, lambda call: self._expired(call, record))
        if change is not None:
            self._count("deadline", None)
            self._states.announce(change)

    def open_work(self, agent_id: str) -> list[OpenCall]:
        """The calls on ``agent_id``'s desk not yet done with, newest first."""
        now = self._writer.clock()
        calls = self._writer.open_for(agent_id, now - timedelta(hours=OPEN_WORK_HOURS))
        fresh = now - timedelta(seconds=STALE_RINGING_S)
        work = []
        for call in calls:
            record = self._ledger.get(call.call_sid)
            if record is None or call.phase not in LIVE | AFTER_CALL:
                continue
            if call.phase == "ringing" and call.updated_at < fresh:
                continue
            summary = self._settings.hub.data_usage.filter(record.summary, "pop")
            work.append(OpenCall(summary, self._states.view(call, agent_id), call.notes))
        return work

    def _count(self, by: str, wrapped: DeskCall | None) -> None:
        """One more wrap-up; with the time the agent took once their part of the call was over
        (none for a call wrapped up while it went on)."""
        self._metrics.wrapups.labels(by).inc()
        if wrapped is not None and wrapped.ended_at and wrapped.wrapped_at:
            after_call = (wrapped.wrapped_at - wrapped.ended_at).total_seconds()
            if after_call >= 0:
                self._metrics.after_call_seconds.observe(after_call)

    def _wrap(self, call: DeskCall | None, record: CallRecord, agent_id: str, outcome: str,
              notes: str) -> Decision:
        current = self._held(call, record, agent_id)
        if current.phase in ("wrapped_up", "logged") or (current.phase == "missed"
                                                         and current.ended is not None):
            raise _closed(current)
        wrapped = current.model_copy(update={"phase": "wrapped_up", "outcome": outcome,
                                             "notes": notes, "wrapped_at": self._writer.clock(),
                                             "transfer_to": None})
        if current.ended is None:
            return Decision(wrapped)  # logged when the call ends (hub.progress)
        after = after_call(wrapped, self._settings)
        return Decision(wrapped, self._planner.on_end(record.summary, current.ended, after))

    def _expired(self, call: DeskCall | None, record: CallRecord) -> Decision | None:
        if call is None or call.phase != "ended" or call.ended is None:
            return None  # wrapped up in time (or never waiting): nothing to do
        logged = call.model_copy(update={"phase": "logged"})
        after = after_call(call, self._settings)
        return Decision(logged, self._planner.on_end(record.summary, call.ended, after))

    def _held(self, call: DeskCall | None, record: CallRecord, agent_id: str) -> DeskCall:
        """The call as the agent holding it has it; a call no leg reported on yet is put on
        the desk of the agent it was routed to."""
        if call is None:
            if record.agent_id != agent_id:
                raise not_yours()
            return DeskCall(call_sid=record.call_sid, agent_id=agent_id,
                            direction=record.summary.call.direction,
                            updated_at=self._writer.clock())
        if call.agent_id != agent_id:
            raise not_yours()
        return call

    def _change(self, call_sid: str, decide: Decide) -> Change:
        change = self._writer.change(call_sid, decide)
        assert change is not None  # every decision above changes the call or raises
        self._states.announce(change)
        return change

    def _record(self, call_sid: str) -> CallRecord:
        record = self._ledger.get(call_sid)
        if record is None:
            raise not_found()
        return record

    def _stored(self, call_sid: str) -> DeskCall:
        stored = self._writer.get(call_sid)
        assert stored is not None
        return stored


class WrapUpDeadline:
    """The sink the outbox hands a call's wrap-up deadline to, once its time has come."""

    name = WRAPUP_SINK

    def __init__(self, work: AfterCallWork) -> None:
        self._work = work

    def deliver(self, delivery: Delivery) -> None:
        self._work.expire(delivery.call_sid)

    def ping(self) -> None:
        return None


def _check_length(notes: str) -> None:
    if len(notes) > MAX_NOTES:
        raise DeskRefusal("notes_too_long", f"Notes hold at most {MAX_NOTES} characters.", 400)


def _closed(call: DeskCall) -> DeskRefusal:
    if call.phase == "logged":
        return DeskRefusal("wrapup_closed", "The wrap-up time ran out: the call was logged "
                           "with your draft notes.", 409)
    return DeskRefusal("wrapup_closed", "This call is already wrapped up.", 409)
