"""Changing a call on the agent's desk, and telling the consoles that show it.

``DeskWriter.change`` reads a call, lets a decision make the new one and the deliveries it
brings (a call log, a wrap-up deadline), and stores both in one transaction: a crash
between them cannot keep one without the other. The store compares and sets each call's
version; a decision made from a stale read is made again from a fresh one.

``CallStates`` turns a call into what each agent's console is told (``callstate`` events
through the ``ScreenPopBroker``): the agent holding it sees its phase, an agent a transfer
rings sees it ringing with the notes of the agents before, and the agent who handed it on
sees it transferred.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta

from hub.desk import ABANDONED_AFTER, CallState, DeskCall, Handoff
from hub.models import NewDelivery, Summary
from hub.outbox import utc_now
from hub.ports import AgentDesk, Outbox, ScreenPopBroker, TransientError
from hub.settings import Settings

log = logging.getLogger(__name__)
MAX_TRIES = 5


@dataclass(frozen=True)
class Decision:
    """A call's new state, and the deliveries it brings, due after ``delay`` seconds."""

    call: DeskCall
    deliveries: Sequence[NewDelivery] = ()
    delay: float = 0.0


@dataclass(frozen=True)
class Change:
    """A call as it was (None: it was not on the desk) and as it is now."""

    before: DeskCall | None
    after: DeskCall


Decide = Callable[[DeskCall | None], Decision | None]


class DeskWriter:
    """Applies decisions to calls on the desk, with their deliveries, atomically."""

    def __init__(self, desk: AgentDesk, outbox: Outbox,
                 transaction: Callable[[], AbstractContextManager[object]],
                 notify: Callable[[], None] = lambda: None,
                 clock: Callable[[], datetime] = utc_now) -> None:
        self.desk, self._outbox, self._transaction = desk, outbox, transaction
        self._notify, self.clock = notify, clock

    def get(self, call_sid: str) -> DeskCall | None:
        return self.desk.get(call_sid)

    def open_for(self, agent_id: str, since: datetime) -> list[DeskCall]:
        return self.desk.open_for(agent_id, since)

    def enqueue(self, deliveries: Sequence[NewDelivery]) -> bool:
        """Deliveries due now that concern no call on the desk; whether any was new."""
        return bool(deliveries) and self._outbox.enqueue(deliveries) > 0

    def purge(self, retention: timedelta) -> int:
        """Delete the calls finished with longer than ``retention`` ago, and those abandoned
        (unchanged for ``ABANDONED_AFTER``, or the retention if longer)."""
        now = self.clock()
        purged = self.desk.purge(now - retention, now - max(retention, ABANDONED_AFTER))
        if purged:
            log.info("purged %d calls from the agents' desks", purged)
        return purged

    def change(self, call_sid: str, decide: Decide) -> Change | None:
        """Apply ``decide`` to the call as stored now; None when it decided to change nothing."""
        for _ in range(MAX_TRIES):
            with self._transaction():
                before = self.desk.get(call_sid)
                decision = decide(before)
                if decision is None:
                    return None
                after = decision.call.model_copy(update={"updated_at": self.clock()})
                if not (self.desk.create(after) if before is None else self.desk.save(after)):
                    continue  # another server changed it since: decide again from a fresh read
                queued = bool(decision.deliveries) and self._outbox.enqueue(
                    decision.deliveries, decision.delay) > 0
            if queued and decision.delay == 0:
                self._notify()
            version = 0 if before is None else after.version + 1
            return Change(before, after.model_copy(update={"version": version}))
        raise TransientError(f"call {call_sid} changed too often to be saved; try again")


class CallStates:
    """What each agent's console is told about a call, published through the broker."""

    def __init__(self, broker: ScreenPopBroker, settings: Settings) -> None:
        self._broker = broker
        self._settings = settings

    def announce(self, change: Change) -> None:
        """Tell every agent the change concerns: who holds the call, who it rings, and who
        held it or was rung before the change."""
        before, after = change.before, change.after
        agents = {after.agent_id, after.transfer_to, after.transfer_failed}
        if before is not None:
            agents |= {before.agent_id, before.transfer_to}
        for agent_id in sorted(a for a in agents if a):
            self._broker.publish(agent_id, self.view(after, agent_id))

    def pop(self, agent_id: str, summary: Summary) -> None:
        """Pop ``summary`` on ``agent_id``'s console (a transfer brings them the call's card)."""
        self._broker.publish(agent_id, summary)

    def view(self, call: DeskCall, agent_id: str) -> CallState:
        """``call`` as ``agent_id``'s console shows it."""
        base = {"call_sid": call.call_sid, "direction": call.direction,
                "answered_at": call.answered_at}
        handoffs = tuple(h.model_copy(update={"agent_name": self._name(h.agent_id) or ""})
                         for h in call.handoffs)
        if agent_id == call.transfer_to:
            return CallState(**base, phase="ringing", handoffs=(*handoffs, self._handoff(call)))
        if agent_id != call.agent_id:
            missed = agent_id == call.transfer_failed
            return CallState(**base, phase="missed" if missed else "transferred",
                             transfer_to=call.agent_id, transfer_to_name=self._name(call.agent_id))
        outcome = self._settings.hub.wrapup.outcome(call.outcome) if call.outcome else None
        return CallState(
            **base, phase=call.phase, ended_at=call.ended_at, talk_s=call.talk_s,
            outcome=call.outcome, outcome_label=outcome.label if outcome else None,
            wrapup_due_at=call.log_due_at, handoffs=handoffs, transfer_to=call.transfer_to,
            transfer_to_name=self._name(call.transfer_to),
            transfer_failed=self._name(call.transfer_failed))

    def _handoff(self, call: DeskCall) -> Handoff:
        """The notes of the agent handing the call on, as the agent a transfer rings sees them."""
        holder = call.agent_id or ""
        return Handoff(agent_id=holder, agent_name=self._name(holder) or holder, notes=call.notes,
                       at=call.updated_at)

    def _name(self, agent_id: str | None) -> str | None:
        agent = self._settings.agent(agent_id) if agent_id else None
        return agent.name if agent else agent_id
