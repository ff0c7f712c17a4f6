"""The demo's phone: Twilio's part of the softphone, played by the hub for the browser.

With ``CAHUB_VOICE_SIMULATOR`` (what ``cahub demo`` turns on when no Twilio API key is set),
the console's phone is ``voice_simulator.js``; when the agent answers, hangs up or dials
out, it asks these routes to do what Twilio would: send the hub the signed status callbacks
of the agent's leg and of the call (and, for a call out, the TwiML App's request), exactly
as ``cahub simulate-call`` sends a call's webhook. Nothing is special-cased on the hub's side
of them. The routes exist only while the simulator is on, for the signed-in agent's calls.
"""

from __future__ import annotations

import threading
import time
import xml.etree.ElementTree as ET

import requests
from flask import Blueprint, Flask, Response, jsonify, request

from app import services
from hub.settings import Agent
from integrations.simulate import (
    DEMO_ACCOUNT_SID,
    ended_form,
    leg_status_form,
    new_call_sid,
    outbound_form,
    post_signed,
)
from web import json_error, sessions

bp = Blueprint("simulator", __name__, url_prefix="/console/simulator")
_answered: dict[str, float] = {}  # leg CallSid -> when it was answered (monotonic s)
_sequence = iter(range(1, 1 << 62))
_lock = threading.Lock()


@bp.post("/answer")
def answer() -> Response | tuple[Response, int]:
    """The agent (or, for a call out, the person dialled) answered: the leg is in progress."""
    agent, body = _agent(), _body()
    if agent is None or body is None:
        return _refused()
    with _lock:
        _answered[body["leg_sid"]] = time.monotonic()
    _leg(body, "in-progress", agent)
    return jsonify(ok=True)


@bp.post("/hangup")
def hangup() -> Response | tuple[Response, int]:
    """The agent hung up (or declined): the leg is over, and so is the call."""
    agent, body = _agent(), _body()
    if agent is None or body is None:
        return _refused()
    with _lock:
        started = _answered.pop(body["leg_sid"], None)
    talk = int(time.monotonic() - started) if started is not None else None
    _leg(body, "completed" if talk is not None else "busy", agent, talk)
    _send("/twilio/status", ended_form(body["call_sid"], _account(), (talk or 0) + 3,
                                       next(_sequence)))
    return jsonify(ok=True)


@bp.post("/dial")
def dial() -> Response | tuple[Response, int]:
    """The agent dials a number: the TwiML App's request, then the number rings."""
    agent = _agent()
    payload = request.get_json(silent=True)
    to = payload.get("to") if isinstance(payload, dict) else None
    if agent is None or not isinstance(to, str):
        return _refused()
    call_sid, leg_sid = new_call_sid(), new_call_sid()
    reply = _send("/twilio/outbound", outbound_form(call_sid, agent.client, to, _account()))
    # The hub's own TwiML, just made by this process: no outside XML is parsed here.
    twiml = ET.fromstring(reply.text)  # noqa: S314
    number = twiml.findtext("Dial/Number")
    if number is None:
        return json_error(409, "not_dialled", twiml.findtext("Say") or "")
    _leg({"call_sid": call_sid, "leg_sid": leg_sid, "direction": "outbound"}, "ringing", agent,
         number=number)
    return jsonify(call_sid=call_sid, leg_sid=leg_sid, to=number, **{"from": agent.caller_id})


def _leg(body: dict[str, str], status: str, agent: Agent, talk: int | None = None,
         number: str | None = None) -> None:
    """A status callback of the agent's leg (or of the number dialled, for a call out)."""
    to = f"client:{agent.client}"
    if body.get("direction") == "outbound":
        to = number or body.get("to") or to
    form = leg_status_form(body["call_sid"], body["leg_sid"], status, to, _account(), talk,
                           next(_sequence))
    _send("/twilio/leg-status", form)


def _send(path: str, form: dict[str, str]) -> requests.Response:
    """POST ``form`` to the hub's own ``path``, signed as Twilio signs it."""
    settings = services().settings
    token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else ""
    base = settings.public_base_url or request.host_url
    return post_signed(request.host_url.rstrip("/") + path, form, token,
                       signed_as=base.rstrip("/") + path)


def _account() -> str:
    return services().settings.twilio_account_sid or DEMO_ACCOUNT_SID


def _agent() -> Agent | None:
    console = sessions.current()
    return console.agent if console is not None else None


def _body() -> dict[str, str] | None:
    """``{call_sid, leg_sid, direction}`` (and ``to``, the number a call out dialled)."""
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        return None
    fields = {key: payload.get(key) for key in ("call_sid", "leg_sid", "direction")}
    if not all(isinstance(value, str) and value for value in fields.values()):
        return None
    to = payload.get("to")
    return {key: str(value) for key, value in fields.items()} | (
        {"to": to} if isinstance(to, str) else {})


def _refused() -> tuple[Response, int]:
    return json_error(400, "bad_request", "Sign in, and name the call and its leg.")


def init_app(app: Flask) -> None:
    """Register the simulator's routes when the settings turn it on."""
    if services(app).settings.voice_simulator:
        app.register_blueprint(bp)
