"""Click-to-dial: a call an agent places from the console, through the TwiML App.

Twilio asks the hub what to do with it (``/twilio/outbound``, ``From=client:<identity>``,
``To`` the number dialled). The hub looks the number up like a caller's, pops the person on
the agent's card, and answers with a dial to the number showing the agent's caller ID. From
then on the call is like any other on the desk: its state on the card, after-call work, the
call log and the write-back, as an outbound call. A retried request gets the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hub.calls import InboundCallHandler
from hub.desk import DeskCall
from hub.models import Caller, CallerKind, CallInfo, OutboundCall, Summary
from hub.ports import AgentDesk, CallLedger, ScreenPopBroker
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

    def __init__(self, settings: Settings, calls: InboundCallHandler, ledger: CallLedger,
                 desk: AgentDesk, broker: ScreenPopBroker) -> None:
        self._settings, self._calls, self._ledger = settings, calls, ledger
        self._desk, self._broker = desk, broker

    def place(self, call: OutboundCall, now: datetime) -> Dialled:
        """Pop the person dialled on the agent's card and say whom to dial, from which number."""
        agent = self._agent(call.from_)
        if agent is None:
            return Dialled(refusal=NO_AGENT)
        if not agent.caller_id:
            return Dialled(refusal=NO_CALLER_ID)
        stored = self._ledger.get(call.call_sid)
        if stored is not None:
            return Dialled(agent.caller_id, stored.summary.call.to)
        callee = self._calls.classify(call.to)
        if callee.kind is not CallerKind.NUMBER or callee.e164 is None:
            return Dialled(refusal=NOT_A_NUMBER)
        summary = self._summary(call.call_sid, agent.caller_id, callee)
        if self._ledger.claim(call.call_sid, agent.id, summary):
            self._desk.create(DeskCall(call_sid=call.call_sid, agent_id=agent.id,
                                       direction="outbound", updated_at=now))
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
