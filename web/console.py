"""The agent console: token login, the console page and its server-sent-events stream.

An agent logs in with the token from the TOML ``[[agents]]`` table (``?token=`` once, or the
login form); the signed Flask session then holds the agent id plus a keyed fingerprint of the
token, so rotating an agent's token logs out its open consoles. ``/console/events`` streams
only that agent's pops from the ``ScreenPopBroker`` and honours ``Last-Event-ID``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator

from flask import (
    Blueprint,
    Flask,
    Request,
    Response,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    stream_with_context,
    url_for,
)
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from werkzeug.wrappers import Response as HttpResponse

from app import services
from hub.models import Summary
from hub.ports import PopStream
from hub.settings import Agent

bp = Blueprint(
    "console",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/console/static",
)

SESSION_AGENT = "console_agent"
SESSION_FINGERPRINT = "console_token"
LOGIN_REFUSED = "That token is not valid. Check it, or ask your supervisor for a new one."
PAGE_POLICY = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class ConsoleSessions(SecureCookieSessionInterface):
    """The signed session cookie is the console's alone. Other routes (Twilio's webhooks,
    the API) get an empty session and never read the cookie: it means nothing to them,
    and a webhook is spared the cost of checking it."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if request.path != "/console" and not request.path.startswith("/console/"):
            return self.session_class()
        return super().open_session(app, request)


@bp.get("/console")
def page() -> HttpResponse:
    """The console for a logged-in agent; ``?token=`` logs in; otherwise the login form."""
    token = request.args.get("token")
    if token is not None:
        return _log_in(token)
    agent = _session_agent()
    if agent is None:
        return _html(render_template("console_login.html"))
    currency = current_app.config.get("CAHUB_CONSOLE_CURRENCY", "USD")
    return _html(render_template("console.html", agent=agent, currency=currency))


@bp.post("/console")
def log_in() -> HttpResponse:
    """The login form's target."""
    return _log_in(request.form.get("token", ""))


@bp.post("/console/logout")
def log_out() -> HttpResponse:
    """Forget the agent; the console's stream stops at its next reconnect."""
    session.pop(SESSION_AGENT, None)
    session.pop(SESSION_FINGERPRINT, None)
    return redirect(url_for("console.page"), code=303)


@bp.get("/console/events")
def events() -> HttpResponse:
    """The logged-in agent's screen pops as ``text/event-stream``."""
    agent = _session_agent()
    if agent is None:
        return _unauthorized()
    stream = services().broker.subscribe(agent.id, _last_event_id())
    keepalive = float(current_app.config.get("CAHUB_SSE_KEEPALIVE", 15.0))
    response = Response(
        stream_with_context(_event_stream(stream, keepalive)),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
    # Covers a client that leaves before the generator first runs (its finally never would).
    response.call_on_close(stream.close)
    return response


def _last_event_id() -> str | None:
    """The browser's ``Last-Event-ID`` header, else the console's ``lastEventId`` parameter.

    EventSource sends the header when it reconnects by itself; after it gave up, the console
    opens a new one and can only pass the id in the URL.
    """
    return request.headers.get("Last-Event-ID") or request.args.get("lastEventId") or None


def _event_stream(stream: PopStream, keepalive: float) -> Iterator[str]:
    """``retry`` first, then each pop as a ``screenpop`` event, with keep-alive comments."""
    try:
        yield "retry: 2000\n\n"
        while True:
            pop = stream.next(keepalive)
            yield ": keep-alive\n\n" if pop is None else format_event(*pop)
    finally:
        stream.close()


def format_event(event_id: str, summary: Summary) -> str:
    """One SSE ``screenpop`` event whose data is the summary JSON on a single line."""
    data = json.dumps(summary.to_json_dict(), separators=(",", ":"))
    return f"id: {event_id}\nevent: screenpop\ndata: {data}\n\n"


def _log_in(token: str) -> HttpResponse:
    agent = _agent_for_token(token)
    if agent is None:
        return _html(render_template("console_login.html", error=LOGIN_REFUSED), status=403)
    session.clear()
    session[SESSION_AGENT] = agent.id
    session[SESSION_FINGERPRINT] = _fingerprint(agent)
    # Redirecting takes the token out of the address bar and the browser history.
    return redirect(url_for("console.page"), code=303)


def _agent_for_token(token: str) -> Agent | None:
    """The agent whose token is ``token``; every agent is compared, in constant time."""
    offered = token.encode()
    found = None
    for agent in services().settings.hub.agents:
        if hmac.compare_digest(offered, agent.token.get_secret_value().encode()):
            found = agent
    return found if offered else None


def _session_agent() -> Agent | None:
    """The logged-in agent, while it still exists with the token it logged in with."""
    agent_id = session.get(SESSION_AGENT)
    agent = services().settings.agent(agent_id) if isinstance(agent_id, str) else None
    if agent is None:
        return None
    fingerprint = str(session.get(SESSION_FINGERPRINT, ""))
    return agent if hmac.compare_digest(fingerprint, _fingerprint(agent)) else None


def _fingerprint(agent: Agent) -> str:
    """A keyed digest of the agent's token: changes when the token does, reveals nothing."""
    key = current_app.secret_key or ""
    key_bytes = key.encode() if isinstance(key, str) else key
    token = agent.token.get_secret_value().encode()
    return hmac.new(key_bytes, b"console:" + token, hashlib.sha256).hexdigest()[:32]


def _html(body: str, status: int = 200) -> Response:
    """A console page: no caching, no framing, only our own scripts and styles."""
    response = Response(body, status=status, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = PAGE_POLICY
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _unauthorized() -> Response:
    message = "Log in to the agent console first (GET /console)."
    response = jsonify(error={"code": "unauthorized", "message": message})
    response.status_code = 401
    return response
