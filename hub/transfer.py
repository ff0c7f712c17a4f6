"""Warm transfer that keeps the context: an agent hands a live call to a colleague.

The colleague's console pops the same summary and rings with the first agent's notes, and
their phone rings: Twilio's REST API moves the caller from the first agent's dial to a dial
to them (``CallControl``). The first agent's leg ends; if the colleague does not answer,
the dial's action rings the first agent again, and the queue takes the caller after that:
nobody is dropped. The colleague who answers holds the call from then on, its after-call
work included; the first agent's notes go into the call log with theirs.

Only calls that came in are transferred: on a call an agent placed, the customer is the
dialled leg, which the hub does not steer.
"""

from __future__ import annotations

from hub.desk import CallState, DeskCall
from hub.desk_changes import CallStates, Decision, DeskWriter
from hub.models import Summary
from hub.ports import CallControl, CallLedger, HubError, PermanentError
from hub.settings import Agent, Settings
from hub.wrapup import DeskRefusal, not_found, not_yours


class WarmTransfer:
    """Moves live calls from one agent to another, with their context."""

    def __init__(self, settings: Settings, ledger: CallLedger, writer: DeskWriter,
                 states: CallStates, control: CallControl) -> None:
        self._settings, self._ledger, self._writer = settings, ledger, writer
        self._states, self._control = states, control

    def start(self, agent_id: str, call_sid: str, to_agent_id: str, base_url: str) -> CallState:
        """Ring ``to_agent_id`` with the call ``agent_id`` is on; the caller follows."""
        colleague = self._settings.agent(to_agent_id)
        me = self._settings.agent(agent_id)
        if colleague is None or me is None or colleague.id == agent_id:
            raise DeskRefusal("unknown_agent", "Pick a colleague to transfer the call to.", 400)
        record = self._ledger.get(call_sid)
        if record is None:
            raise not_found()
        change = self._writer.change(call_sid, lambda call: _hand_on(call, agent_id, colleague))
        assert change is not None  # _hand_on changes the call or raises
        summary = self._settings.hub.data_usage.filter(record.summary, "pop")
        self._states.announce(change)
        self._states.pop(colleague.id, summary)
        try:
            self._control.ring_agent(call_sid, colleague, record.summary, me, base_url)
        except HubError as exc:
            self._undo(call_sid, colleague)
            raise _refusal(exc) from exc
        return self._states.view(change.after, agent_id)

    def returning(self, call_sid: str, agent_id: str) -> tuple[Agent, Summary] | None:
        """The agent a transfer nobody answered goes back to, and the call's summary (the
        parameters of the dial that rings them again)."""
        agent = self._settings.agent(agent_id)
        record = self._ledger.get(call_sid)
        return (agent, record.summary) if agent is not None and record is not None else None

    def _undo(self, call_sid: str, colleague: Agent) -> None:
        """Twilio refused the move: the call stays with the agent, as it was."""
        def back(call: DeskCall | None) -> Decision | None:
            if call is None or call.transfer_to != colleague.id:
                return None
            return Decision(call.model_copy(update={"transfer_to": None, "phase": "connected"}))

        change = self._writer.change(call_sid, back)
        if change is not None:
            self._states.announce(change)


def _hand_on(call: DeskCall | None, agent_id: str, colleague: Agent) -> Decision:
    if call is None or call.agent_id != agent_id:
        raise not_yours()
    if call.direction != "inbound":
        raise DeskRefusal("cannot_transfer", "Only calls that came in can be transferred.", 409)
    if call.phase != "connected" or call.transfer_to:
        raise DeskRefusal("cannot_transfer", "Only a call you are on can be transferred.", 409)
    return Decision(call.model_copy(update={"phase": "transferring", "transfer_to": colleague.id,
                                            "transfer_failed": None}))


def _refusal(exc: HubError) -> DeskRefusal:
    if isinstance(exc, PermanentError):
        return DeskRefusal("transfer_refused", "Twilio refused the transfer (has the call "
                           f"ended?): {exc}", 409)
    return DeskRefusal("transfer_failed", f"The transfer could not reach Twilio: {exc}. "
                       "The caller is still with you; try again.", 502)
