"""Which agent a call goes to: by the Twilio number that was called, else the default."""

from __future__ import annotations

from collections.abc import Sequence

from hub.settings import Agent
from lookup.phone import to_e164


class AgentRouter:
    """Maps the called number (``To``) to the agent who takes calls on it."""

    def __init__(self, agents: Sequence[Agent], default_agent: str | None, region: str) -> None:
        self._region = region
        self._by_number: dict[str, Agent] = {}
        for agent in agents:
            for number in agent.numbers:
                self._by_number[to_e164(number, region) or number] = agent
        self._default = next((a for a in agents if a.id == default_agent), None)
        if default_agent and self._default is None:
            raise ValueError(f"routing.default_agent {default_agent!r} is not one of the agents")

    def route(self, to: str) -> Agent | None:
        """The agent for calls to ``to``, or the default agent, or None."""
        number = to_e164(to, self._region) or to
        return self._by_number.get(number, self._default)
