"""Twilio's side of a call: request signatures and the TwiML that routes the call.

Signatures are checked against the URL Twilio was given (``CAHUB_PUBLIC_BASE_URL``
plus the raw path and query), never against what a proxy or tunnel forwarded, so
validation works behind ngrok and load balancers.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import VoiceResponse

from hub.models import Summary
from hub.settings import Agent, Routing

DIAL_TIMEOUT_SECONDS = 20
DIAL_DONE_PATH = "/twilio/dial-done"
LEG_STATUS_PATH = "/twilio/leg-status"
LEG_EVENTS = "initiated ringing answered completed"
# DialCallStatus values of a dial someone answered; the others are busy, no-answer,
# failed and canceled.
ANSWERED = frozenset({"completed", "answered"})
PARAMETER_MAX_CHARS = 200
XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'


def signed_url(base_url: str, path: str, raw_query: bytes) -> str:
    """The URL Twilio signed: the public base, the path, and the query exactly as sent."""
    query = raw_query.decode("latin-1")
    return f"{base_url.rstrip('/')}{path}" + (f"?{query}" if query else "")


def is_valid_signature(
    auth_token: str, url: str, params: Mapping[str, Any], signature: str | None
) -> bool:
    """True when ``signature`` is Twilio's HMAC of ``url`` and ``params``; False when absent."""
    if not signature or not auth_token:
        return False
    return bool(RequestValidator(auth_token).validate(url, params, signature))


def sign(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """The ``X-Twilio-Signature`` Twilio would send (for ``cahub simulate-call`` and tests)."""
    return str(RequestValidator(auth_token).compute_signature(url, dict(params)))


def call_parameters(summary: Summary, names: Sequence[str]) -> dict[str, str]:
    """The summary fields to carry as ``<Parameter>``s, short and without empties."""
    values = summary.to_json_dict()
    params = {"callSid": summary.call.sid or "", "found": "true" if summary.found else "false"}
    if summary.ambiguous is not None:
        params["ambiguous"] = str(summary.ambiguous.count or "several")
    for name in names:
        value = values.get(name)
        if value not in (None, "", [], {}):
            params[name] = str(value)[:PARAMETER_MAX_CHARS]
    return params


def twiml_text(response: VoiceResponse) -> str:
    """``response.to_xml()``, character for character, at about 60% of its cost: the
    library's element tree, serialised to text directly rather than through a UTF-8
    byte stream (this runs on every webhook)."""
    return XML_DECLARATION + ET.tostring(response.xml(), encoding="unicode")


@dataclass(frozen=True)
class Callbacks:
    """Where Twilio reports on a dial: the ``<Dial action>`` it asks what next once the dial
    is over (without one, a caller whose agent hung up would go on to the queue), and the
    status callback of the agent's leg (ringing, answered, over) that the card shows."""

    dial_done: str = DIAL_DONE_PATH
    leg_status: str = LEG_STATUS_PATH

    @classmethod
    def at(cls, base_url: str) -> Callbacks:
        """The callbacks on the hub at ``base_url`` (the URL Twilio reaches it by)."""
        base = base_url.rstrip("/")
        return cls(base + DIAL_DONE_PATH, base + LEG_STATUS_PATH)

    def back_to(self, agent: Agent) -> Callbacks:
        """These callbacks, with a dial that goes unanswered ringing ``agent`` again."""
        return self._asking({"back_to": agent.id})

    def hanging_up(self) -> Callbacks:
        """These callbacks, with the call ending once the dial is over, answered or not (a
        call an agent placed: nobody is left to queue)."""
        return self._asking({"then": "hangup"})

    def _asking(self, query: dict[str, str]) -> Callbacks:
        joiner = "&" if "?" in self.dial_done else "?"
        return replace(self, dial_done=f"{self.dial_done}{joiner}{urlencode(query)}")


def _then_queue(response: VoiceResponse, routing: Routing) -> None:
    response.say(routing.fallback_message)
    response.enqueue(routing.queue)


def dial_agent(agent: Agent, summary: Summary, routing: Routing,
               callbacks: Callbacks = Callbacks(), **parameters: str) -> str:
    """``<Dial answerOnBridge><Client>`` to the agent; when the dial is over Twilio asks
    ``callbacks.dial_done`` what next (the queue, when the agent did not answer)."""
    response = VoiceResponse()
    dial = response.dial(answer_on_bridge=True, timeout=DIAL_TIMEOUT_SECONDS,
                         action=callbacks.dial_done)
    client = dial.client(status_callback=callbacks.leg_status,
                         status_callback_event=LEG_EVENTS)
    client.identity(agent.client)
    for name, value in {**call_parameters(summary, routing.parameters), **parameters}.items():
        client.parameter(name=name, value=value)
    return twiml_text(response)


def dial_number(caller_id: str, number: str, callbacks: Callbacks = Callbacks()) -> str:
    """``<Dial callerId><Number>``: an agent's call out, showing their caller ID."""
    response = VoiceResponse()
    dial = response.dial(caller_id=caller_id, answer_on_bridge=True, action=callbacks.dial_done)
    dial.number(number, status_callback=callbacks.leg_status, status_callback_event=LEG_EVENTS)
    return twiml_text(response)


def after_dial(status: str, routing: Routing, hang_up: bool = False) -> str:
    """What a caller gets once a dial is over: the end of the call when someone answered (or
    ``hang_up`` says so), the queue otherwise (the agent did not answer, was busy, declined)."""
    if status in ANSWERED or hang_up:
        response = VoiceResponse()
        response.hangup()
        return twiml_text(response)
    return hold_in_queue(routing)


def spoken(message: str) -> str:
    """A message, then the end of the call (an outbound call that cannot be placed)."""
    response = VoiceResponse()
    response.say(message)
    response.hangup()
    return twiml_text(response)


def enqueue_task(summary: Summary, routing: Routing) -> str:
    """``<Enqueue workflowSid><Task>`` carrying the summary's key fields for TaskRouter."""
    response = VoiceResponse()
    enqueue = response.enqueue(None, workflow_sid=routing.workflow_sid)
    task = {"type": "inbound_call", "call_sid": summary.call.sid, "from": summary.call.from_}
    task.update(call_parameters(summary, routing.parameters))
    enqueue.task(json.dumps(task, separators=(",", ":"), sort_keys=True))
    return twiml_text(response)


def hold_in_queue(routing: Routing) -> str:
    """A spoken fallback and the shared queue, for calls no agent is routed to."""
    response = VoiceResponse()
    _then_queue(response, routing)
    return twiml_text(response)


def route_call(agent: Agent | None, summary: Summary, routing: Routing,
               callbacks: Callbacks = Callbacks()) -> str:
    """The TwiML answer for one call."""
    if routing.workflow_sid:
        return enqueue_task(summary, routing)
    if agent is not None:
        return dial_agent(agent, summary, routing, callbacks)
    return hold_in_queue(routing)
