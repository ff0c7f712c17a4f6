"""Twilio's webhooks. Every route checks ``X-Twilio-Signature`` and fails closed:
403 when the signature is missing or wrong, or no auth token is configured.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import TypeVar

from flask import Blueprint, Response, request
from pydantic import BaseModel, ValidationError

from app import services
from hub.models import CallStatusUpdate, InboundCall, LegStatusUpdate, OutboundCall
from hub.outbound import NOT_A_NUMBER
from hub.ports import TransientError
from hub.state_writer import StateUnavailable
from integrations.twilio import (
    ANSWERED,
    Callbacks,
    after_dial,
    dial_agent,
    dial_number,
    hold_in_queue,
    is_valid_signature,
    route_call,
    signed_url,
    spoken,
)

log = logging.getLogger(__name__)
Form = TypeVar("Form", bound=BaseModel)
bp = Blueprint("twilio", __name__, url_prefix="/twilio")
# What Twilio expects from a request that needs no instructions (or is refused).
EMPTY = "<Response/>"


def twiml(body: str, status: int = 200) -> Response:
    return Response(body, status=status, mimetype="text/xml")


def _signature_problem() -> str | None:
    """Why the request is not Twilio's, or None when its signature holds."""
    settings = services().settings
    if settings.twilio_auth_token is None:
        return "no_auth_token"
    if not request.headers.get("X-Twilio-Signature"):
        return "missing"
    base = settings.public_base_url or request.host_url
    url = signed_url(base, request.path, request.query_string)
    token = settings.twilio_auth_token.get_secret_value()
    if not is_valid_signature(token, url, request.form, request.headers["X-Twilio-Signature"]):
        return "invalid"
    return None


@bp.before_request
def _require_signature() -> Response | None:
    problem = _signature_problem()
    if problem is None:
        return None
    services().metrics.signature_failures.labels(problem).inc()
    log.warning("refused %s: signature %s", request.path, problem)
    return twiml(EMPTY, 403)


@bp.post("/voice")
def voice() -> Response:
    """A call comes in: answer with TwiML that routes it, within the lookup deadline."""
    received = time.perf_counter()
    hub = services()
    try:
        call = InboundCall.model_validate(request.form.to_dict())
    except ValidationError as exc:
        log.warning("voice webhook with an unusable form: %s", _fields(exc))
        return twiml(EMPTY, 400)
    try:
        decision = hub.calls.handle(call, received)
        body = route_call(decision.agent, decision.summary, hub.settings.hub.routing,
                          callbacks())
    except Exception:  # never drop a call: whatever broke, the caller still reaches the queue
        log.exception("inbound call %s failed; sending it to the queue", call.call_sid)
        body = hold_in_queue(hub.settings.hub.routing)
    hub.metrics.webhook_seconds.observe(time.perf_counter() - received)
    return twiml(body)


@bp.post("/status")
def status() -> Response:
    """A call status callback: once the call has ended, it is logged (idempotently).

    503 when the hub's database did not take it within the deadline: Twilio retries a
    5xx when the callback URL asks it to (``#rc=3&rp=5xx,ct,rt``; see the README), and
    the hub keeps trying to record it meanwhile; a retry is recorded once.
    """
    received = time.perf_counter()
    try:
        update = CallStatusUpdate.model_validate(request.form.to_dict())
    except ValidationError as exc:
        log.warning("status callback with an unusable form: %s", _fields(exc))
        return twiml(EMPTY, 400)
    try:
        services().calls.status(update, received)
    except StateUnavailable:
        log.warning("status of call %s not recorded in time; answering 503 for Twilio to retry",
                    update.call_sid)
        return twiml(EMPTY, 503)
    return twiml(EMPTY)


@bp.post("/leg-status")
def leg_status() -> Response:
    """A status callback of an agent's leg (ringing, answered, over): the card follows.

    503 when the desk cannot be reached for now: a 5xx is what Twilio may retry (a 500 would
    say the hub is broken); a retried callback changes the card once.
    """
    update = _form(LegStatusUpdate, "leg status callback")
    if update is None:
        return twiml(EMPTY, 400)
    try:
        services().desk.progress.leg(update)
    except TransientError as exc:
        log.warning("leg status of call %s not recorded (%s); answering 503",
                    update.parent_call_sid, exc)
        return twiml(EMPTY, 503)
    return twiml(EMPTY)


@bp.post("/dial-done")
def dial_done() -> Response:
    """Twilio asks what next once a dial is over: the end of the call when someone
    answered, else the queue."""
    status = request.form.get("DialCallStatus", "")
    hang_up = request.args.get("then") == "hangup"
    back = _back_to(status)
    if back is not None:
        return twiml(back)
    return twiml(after_dial(status, services().settings.hub.routing, hang_up))


def _back_to(status: str) -> str | None:
    """A transfer nobody answered: the agent who handed the call on is rung again (and the
    queue takes the caller if they do not answer either)."""
    hub = services()
    agent_id, call_sid = request.args.get("back_to"), request.form.get("CallSid", "")
    if status in ANSWERED or not agent_id or hub.desk.transfers is None:
        return None
    returning = hub.desk.transfers.returning(call_sid, agent_id)
    if returning is None:
        return None
    agent, summary = returning
    return dial_agent(agent, summary, hub.settings.hub.routing, callbacks())


@bp.post("/outbound")
def outbound() -> Response:
    """The TwiML App's Voice URL: a call an agent places from the console (``From`` is their
    ``client:`` identity, ``To`` the number): dial it, showing the agent's caller ID."""
    received = time.perf_counter()
    call = _form(OutboundCall, "outbound call request")
    if call is None:
        return twiml(EMPTY, 400)
    placed = services().desk.outbound.place(call, datetime.now(UTC), received)
    if placed.caller_id is None or placed.number is None:
        return twiml(spoken(placed.refusal or NOT_A_NUMBER))
    return twiml(dial_number(placed.caller_id, placed.number, callbacks().hanging_up()))


def callbacks() -> Callbacks:
    """Where Twilio reports on the dials the hub asks for: the hub's public URL."""
    return Callbacks.at(services().settings.public_base_url or request.host_url)


def _form(model: type[Form], what: str) -> Form | None:
    """The request's form as ``model``; None (and a line in the log) when it is unusable."""
    try:
        return model.model_validate(request.form.to_dict())
    except ValidationError as exc:
        log.warning("%s with an unusable form: %s", what, _fields(exc))
        return None


def _fields(exc: ValidationError) -> str:
    return ", ".join(".".join(str(p) for p in err["loc"]) for err in exc.errors())
