"""The agent console: sign-in, the console page, its session check and its event stream.

An agent signs in with the token from the TOML ``[[agents]]`` table through the login form.
The link ``cahub demo`` prints carries the token after ``#``, which browsers never send to a
server: the login page's script puts it in the form and submits it. A token in the query
string signs nobody in: a GET cannot carry the CSRF token, and the URL would be kept in
access logs, proxies' logs and the browser's history. ``web.sessions`` owns the session;
``/console/events`` streams only the agent's pops from the ``ScreenPopBroker``, honours
``Last-Event-ID``, and ends with a ``signedout`` event once the session has ended.

A server that is told to stop ends its open streams at once (``end_streams``, from the
gunicorn worker's SIGTERM): the consoles reconnect, through the load balancer to a server
that stays, with ``Last-Event-ID``, so no pop is lost. Otherwise each would hang on a
stopping server, popping nothing new there, until its graceful timeout cut it.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_limiter import RateLimitExceeded
from flask_wtf.csrf import CSRFError
from werkzeug.wrappers import Response as HttpResponse

from app import services
from hub.desk import ConsoleEvent, event_name
from hub.models import Summary
from hub.ports import PopStream
from hub.settings import Agent
from web import json_error, sessions
from web.desk import desk_config
from web.limits import remember_browser, retry_after_s
from web.softphone import BASE_POLICY, phone_for

logger = logging.getLogger(__name__)

STREAMS_KEY = "cahub.console_streams"

bp = Blueprint(
    "console",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/console/static",
)

LOGIN_REFUSED = "That token is not valid. Check it, or ask your supervisor for a new one."
FORM_EXPIRED = "This sign-in form expired. Sign in again."
TOO_MANY = "Too many refused sign-ins from here. Try again in {wait} s."
OLD_LINK = ("Links with ?token= no longer sign in: the token would be kept in server logs. "
            "Use a link with #token= instead, or sign in below.")
SIGNED_OUT = "event: signedout\ndata: {}\n\n"


@bp.get("/console")
def page() -> HttpResponse:
    """The console for a signed-in agent; otherwise the login form."""
    console = sessions.current()
    if console is None:
        notice = OLD_LINK if "token" in request.args else None
        return _login_page(notice=notice)
    settings = services().settings
    currency = current_app.config.get("CAHUB_CONSOLE_CURRENCY", "USD")
    renew_ms = settings.console_session_idle_s * 1000 // 3
    phone = phone_for(settings)
    page_html = render_template("console.html", agent=console.agent, currency=currency,
                                renew_ms=renew_ms, phone=phone,
                                desk=desk_config(console.agent.id))
    return _html(page_html, policy=phone.policy())


@bp.post("/console")
def log_in() -> HttpResponse:
    """The login form's target: a good token starts a new session."""
    agent = _agent_for_token(request.form.get("token", ""))
    if agent is None:
        return _login_page(error=LOGIN_REFUSED, status=403)
    sessions.end()  # whoever was signed in on this browser is signed out first
    sessions.start(agent)
    response = redirect(url_for("console.page"), code=303)
    remember_browser(response, agent)
    return response


@bp.post("/console/logout")
def log_out() -> HttpResponse:
    """End the session on every server; an open stream of it ends at its next keep-alive."""
    sessions.end()
    return redirect(url_for("console.page"), code=303)


@bp.get("/console/session")
def session_check() -> HttpResponse:
    """Whether the console is still signed in; asking renews the cookie (the page asks)."""
    console = sessions.current()
    if console is None:
        return _unauthorized()
    ends_in = console.since + services().settings.console_session_max_s - time.time()
    response = jsonify(agent=console.agent.id, ends_in_s=int(ends_in))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/console/events")
def events() -> HttpResponse:
    """The signed-in agent's screen pops as ``text/event-stream``."""
    console = sessions.current()
    if console is None:
        return _unauthorized()
    open_streams: OpenStreams = current_app.extensions[STREAMS_KEY]
    stream = services().broker.subscribe(console.agent.id, _last_event_id())
    if not open_streams.add(stream):
        stream.close()
        refusal, status = json_error(503, "stopping", "this server is stopping: connect again")
        refusal.status_code = status
        refusal.headers["Retry-After"] = "1"
        return refusal
    keepalive = float(current_app.config.get("CAHUB_SSE_KEEPALIVE", 15.0))
    response = Response(
        stream_with_context(_event_stream(
            stream, keepalive, lambda: sessions.is_open(console, keepalive=True),
            lambda: open_streams.draining)),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
    # Covers a client that leaves before the generator first runs (its finally never would).
    response.call_on_close(lambda: open_streams.discard(stream))
    return response


class OpenStreams:
    """The console streams this process serves, which ``drain`` ends at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streams: set[PopStream] = set()
        self.draining = False

    def add(self, stream: PopStream) -> bool:
        """Count ``stream`` in; False once draining (the caller refuses the console)."""
        with self._lock:
            if not self.draining:
                self._streams.add(stream)
            return not self.draining

    def discard(self, stream: PopStream) -> None:
        """Close ``stream`` and count it out; twice is harmless."""
        with self._lock:
            self._streams.discard(stream)
        stream.close()

    def drain(self) -> int:
        """End every open stream (their ``next`` returns at once) and refuse new ones;
        how many were open."""
        with self._lock:
            self.draining = True
            streams, self._streams = list(self._streams), set()
        for stream in streams:
            stream.close()
        return len(streams)


def init_app(app: Flask) -> None:
    """Keep count of the app's open console streams (``end_streams``)."""
    app.extensions[STREAMS_KEY] = OpenStreams()


def end_streams(app: object) -> int:
    """End every console stream ``app`` (the WSGI app of a server that is stopping) serves,
    and refuse new ones; how many there were. An app that is not the hub's: none."""
    streams = getattr(app, "extensions", {}).get(STREAMS_KEY)
    if not isinstance(streams, OpenStreams):
        return 0
    ended = streams.drain()
    logger.info("stopping: ended %d console stream(s); the consoles reconnect", ended)
    return ended


def _last_event_id() -> str | None:
    """The browser's ``Last-Event-ID`` header, else the console's ``lastEventId`` parameter.

    EventSource sends the header when it reconnects by itself; after it gave up, the console
    opens a new one and can only pass the id in the URL.
    """
    return request.headers.get("Last-Event-ID") or request.args.get("lastEventId") or None


def _event_stream(stream: PopStream, keepalive: float, still_open: Callable[[], bool],
                  stopping: Callable[[], bool]) -> Iterator[str]:
    """``retry`` first, then each pop and call state as its event, with keep-alive comments.

    At least once a keep-alive interval (pops or none) the session is checked; once it has
    ended, a ``signedout`` event ends the stream and no further pop is sent. Once the server
    is ``stopping`` the stream ends without a word, and the browser connects again.
    """
    try:
        yield "retry: 2000\n\n"
        check_at = time.monotonic() + keepalive
        while True:
            pop = stream.next(keepalive)
            if pop is None and stopping():
                return
            if time.monotonic() >= check_at:
                if not still_open():
                    yield SIGNED_OUT
                    return
                check_at = time.monotonic() + keepalive
            yield ": keep-alive\n\n" if pop is None else format_event(*pop)
    finally:
        stream.close()


def format_event(event_id: str, event: ConsoleEvent) -> str:
    """One SSE event on a single data line: ``screenpop`` (the summary JSON) or ``callstate``."""
    body = event.to_json_dict() if isinstance(event, Summary) else event.model_dump(mode="json")
    data = json.dumps(body, separators=(",", ":"))
    return f"id: {event_id}\nevent: {event_name(event)}\ndata: {data}\n\n"


def _agent_for_token(token: str) -> Agent | None:
    """The agent whose token is ``token``; every agent is compared, in constant time."""
    offered = token.encode()
    found = None
    for agent in services().settings.hub.agents:
        if hmac.compare_digest(offered, agent.token.get_secret_value().encode()):
            found = agent
    return found if offered else None


@bp.errorhandler(CSRFError)
def _csrf_failed(exc: CSRFError) -> HttpResponse | tuple[Response, int]:
    """The login form shows itself again; a sign-out that failed its check changes nothing
    (the console shows again); other console requests get the JSON error."""
    if request.endpoint == "console.log_in":
        return _login_page(error=FORM_EXPIRED, status=400)
    if request.endpoint == "console.log_out":
        return redirect(url_for("console.page"), code=303)
    return sessions.csrf_failed(exc)


@bp.errorhandler(RateLimitExceeded)
def _too_many(exc: RateLimitExceeded) -> HttpResponse:
    wait = retry_after_s()
    response = _login_page(error=TOO_MANY.format(wait=wait), status=429)
    response.headers["Retry-After"] = str(wait)
    return response


def _login_page(error: str | None = None, notice: str | None = None,
                status: int = 200) -> Response:
    return _html(render_template("console_login.html", error=error, notice=notice), status)


def _html(body: str, status: int = 200, policy: str = BASE_POLICY) -> Response:
    """A console page: no caching, no framing, only our own scripts and styles (and the
    softphone's, when it has one)."""
    response = Response(body, status=status, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = policy
    # The CSRF check over https compares the Referer with the host; no other site gets one.
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _unauthorized() -> Response:
    message = "Log in to the agent console first (GET /console)."
    response = jsonify(error={"code": "unauthorized", "message": message})
    response.status_code = 401
    return response
