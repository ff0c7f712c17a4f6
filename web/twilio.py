"""Twilio's webhooks. Every route checks ``X-Twilio-Signature`` and fails closed:
403 when the signature is missing or wrong, or no auth token is configured.
"""

from __future__ import annotations

import logging
import time

from flask import Blueprint, Response, request
from pydantic import ValidationError

from app import services
from hub.models import CallStatusUpdate, InboundCall
from hub.state_writer import StateUnavailable
from integrations.twilio import hold_in_queue, is_valid_signature, route_call, signed_url

log = logging.getLogger(__name__)
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
        body = route_call(decision.agent, decision.summary, hub.settings.hub.routing)
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


def _fields(exc: ValidationError) -> str:
    return ", ".join(".".join(str(p) for p in err["loc"]) for err in exc.errors())
