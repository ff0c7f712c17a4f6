"""Click-to-dial: a call an agent places from the console, through the TwiML App.

Twilio asks the hub what to do with it (``/twilio/outbound``, ``From=client:<identity>``,
``To`` the number dialled). The hub looks the number up like a caller's, pops the person on
the agent's card, and answers with a dial to the number showing the agent's caller ID. From
then on the call is like any other on the desk: its state on the card, after-call work, the
call log and the write-back, as an outbound call. A retried request gets the same answer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from hub.call_state import CallState
from hub.calls import READ_BUDGET_S, InboundCallHandler
from hub.desk import DeskCall
from hub.models import Caller, CallerKind, CallInfo, OutboundCall, Summary
from hub.ports import AgentDesk, ScreenPopBroker
from hub.settings import Agent, Settings
from hub.summary import build_summary

NO_AGENT = "This phone is not one of the hub's agents."
NO_CALLER_ID = "No caller ID is set up for you: ask your supervisor to add one."
NOT_A_NUMBER = "That is not a number that can be dialled."


@dataclass(frozen=True)
class Dialled:
    """The call to place, or why it cannot be (``refusal``, spoken to the agent)."""

    caller_id: str | None = None
    number: str | None = None
    refusal: str | None = None


class OutboundCalls:
    """Decides each call an agent places, once."""

    def __init__(self, settings: Settings, calls: InboundCallHandler, desk: AgentDesk,
                 broker: ScreenPopBroker) -> None:
        self._settings, self._calls, self._desk, self._broker = settings, calls, desk, broker

    @property
    def _state(self) -> CallState:
        return self._calls.state

    def place(self, call: OutboundCall, now: datetime, received: float | None = None) -> Dialled:
        """Pop the person dialled on the agent's card and say whom to dial, from which number.

        Like an inbound call's, within the lookup deadline from ``received`` (a
        ``time.perf_counter()``) whatever the hub's database does: a record it has not
        taken by then is saved later, and a retried request is answered from memory.
        """
        received = time.perf_counter() if received is None else received
        deadline = received + self._settings.lookup_deadline_ms / 1000
        agent = self._agent(call.from_)
        if agent is None:
            return Dialled(refusal=NO_AGENT)
        if not agent.caller_id:
            return Dialled(refusal=NO_CALLER_ID)
        since = self._state.mark()
        stored = self._state.known(call.call_sid, received + READ_BUDGET_S)
        if stored is not None:
            return Dialled(agent.caller_id, stored.summary.call.to)
        callee = self._calls.classify(call.to)
        if callee.kind is not CallerKind.NUMBER or callee.e164 is None:
            return Dialled(refusal=NOT_A_NUMBER)
        summary = self._summary(call.call_sid, agent.caller_id, callee)
        desk_call = DeskCall(call_sid=call.call_sid, agent_id=agent.id, direction="outbound",
                             updated_at=now)
        if self._state.record_placed(call.call_sid, agent, summary, since=since,
                                     also=lambda: self._desk.create(desk_call),
                                     deadline=deadline):
            self._broker.publish(agent.id, self._settings.hub.data_usage.filter(summary, "pop"))
        return Dialled(agent.caller_id, callee.e164)

    def _summary(self, call_sid: str, caller_id: str, callee: Caller) -> Summary:
        result = self._calls.lookup(callee)
        info = CallInfo(sid=call_sid, **{"from": caller_id}, to=callee.e164,
                        caller_kind=CallerKind.NUMBER, direction="outbound")
        return build_summary(info, result.identity, result.profile, result.elapsed_ms,
                             self._settings.hub.fields)

    def _agent(self, from_: str) -> Agent | None:
        identity = from_.removeprefix("client:") if from_.startswith("client:") else None
        return next((a for a in self._settings.hub.agents if a.client == identity), None)
