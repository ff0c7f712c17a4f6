"""The agent's desk in the console: the calls still open on it, the draft notes the card keeps
saving, and the wrap-up that ends after-call work.

Every route needs the signed-in agent's session, and every PUT and POST the page's CSRF
token (``web.sessions``). An agent reaches only the calls on their own desk.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, jsonify, request

from app import services
from hub.desk import MAX_NOTES
from hub.ports import TransientError
from hub.wrapup import DeskRefusal
from web import json_error, sessions
from web.body_limits import body_limit

log = logging.getLogger(__name__)
bp = Blueprint("desk", __name__)
NO_TRANSFERS = ("Transfers need Twilio's REST API: set CAHUB_TWILIO_ACCOUNT_SID and the auth "
                "token (or an API key).")
CALL = "/console/calls/<string(length=34):call_sid>"
# Notes at their longest, however their JSON is written: an emoji is 4 bytes in UTF-8 (as the
# console sends it) and 12 escaped (\ud83d\ude00), beyond CAHUB_MAX_BODY_BYTES's 64 KiB.
NOTES_BODY_BYTES = MAX_NOTES * 12 + 4096


@bp.errorhandler(DeskRefusal)
def _refused(exc: DeskRefusal) -> tuple[Response, int]:
    return json_error(exc.status, exc.code, str(exc))


@bp.errorhandler(TransientError)
def _unavailable(exc: TransientError) -> tuple[Response, int]:
    """The desk's database cannot be reached now: the console keeps the draft and tries
    again (a 500 would say the request itself was at fault)."""
    log.warning("the desk could not be reached: %s", exc)
    response, _ = json_error(503, "desk_unavailable",
                             "The hub cannot save this now; it will be tried again.")
    response.headers["Retry-After"] = "5"
    return response, 503


@bp.get("/console/calls")
def open_calls() -> Response | tuple[Response, int]:
    """The calls on the agent's desk not yet done with, each with its summary, its state and
    the draft notes: what a reopened console shows again."""
    agent = _agent()
    if agent is None:
        return _unauthorized()
    work = services().desk.work.open_work(agent)
    return _no_store(jsonify(calls=[
        {"summary": item.summary.to_json_dict(), "state": item.state.model_dump(mode="json"),
         "notes": item.notes} for item in work]))


@bp.put(f"{CALL}/notes")
@body_limit(NOTES_BODY_BYTES)
def save_notes(call_sid: str) -> Response | tuple[Response, int]:
    """Keep the agent's draft notes (the card saves them a moment after each change)."""
    agent = _agent()
    if agent is None:
        return _unauthorized()
    body = _json_object()
    notes = body.get("notes")
    if not isinstance(notes, str):
        return json_error(400, "bad_request", 'Send {"notes": "…"} as JSON.')
    saved = services().desk.work.save_draft(agent, call_sid, notes)
    return _no_store(jsonify(notes=len(saved.notes), saved_at=saved.updated_at.isoformat()))


@bp.post(f"{CALL}/wrapup")
@body_limit(NOTES_BODY_BYTES)
def wrap_up(call_sid: str) -> Response | tuple[Response, int]:
    """End after-call work with an outcome code and the notes; the call is then logged."""
    agent = _agent()
    if agent is None:
        return _unauthorized()
    body = _json_object()
    outcome, notes = body.get("outcome"), body.get("notes", "")
    if not isinstance(outcome, str) or not isinstance(notes, str):
        return json_error(400, "bad_request", 'Send {"outcome": "<id>", "notes": "…"} as JSON.')
    state = services().desk.work.wrap_up(agent, call_sid, outcome, notes)
    return _no_store(jsonify(state=state.model_dump(mode="json")))


@bp.post(f"{CALL}/transfer")
def transfer(call_sid: str) -> Response | tuple[Response, int]:
    """Warm-transfer a live call to a colleague: their console rings with the call's summary
    and the notes so far; if they do not answer, the call comes back."""
    agent = _agent()
    if agent is None:
        return _unauthorized()
    target = _json_object().get("agent")
    if not isinstance(target, str):
        return json_error(400, "bad_request", 'Send {"agent": "<agent id>"} as JSON.')
    transfers = services().desk.transfers
    if transfers is None:
        return json_error(503, "transfers_unavailable", NO_TRANSFERS)
    base = services().settings.public_base_url or request.host_url
    state = transfers.start(agent, call_sid, target, base)
    return _no_store(jsonify(state=state.model_dump(mode="json")))


def desk_config(agent_id: str) -> dict[str, Any]:
    """What the console page needs to draw the desk: outcome codes, the colleagues a call can
    be transferred to, limits."""
    settings = services().settings
    wrapup = settings.hub.wrapup
    colleagues = [{"id": a.id, "name": a.name} for a in settings.hub.agents if a.id != agent_id]
    return {"outcomes": [{"id": o.id, "label": o.label} for o in wrapup.outcomes],
            "agents": colleagues, "timeout_s": wrapup.timeout_s, "max_notes": MAX_NOTES}


def _agent() -> str | None:
    console = sessions.current()
    return console.agent.id if console is not None else None


def _json_object() -> dict[str, Any]:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else {}


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


def _unauthorized() -> tuple[Response, int]:
    return json_error(401, "unauthorized", "Log in to the agent console first (GET /console).")
