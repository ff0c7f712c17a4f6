"""Agent console sessions: who is signed in, for how long, and when it ends; and the CSRF
protection of the console.

A login starts a session. Its signed cookie (Flask's session, scoped to ``/console`` and read
nowhere else) holds the agent id, a keyed fingerprint of the agent's token (a rotated token
ends every session made with the old one, on every server given the new one), a random
session id and the login time. The cookie lasts ``console_session_idle_s`` and every console
request renews it (the open console asks every few minutes); no session outlives
``console_session_max_s`` after its login. A logout records the session id in the
``SessionRevocations`` store that every server shares, for as long as the session could still
be used, so no copy of the cookie opens anything on any server.

CSRF (Flask-WTF) guards exactly what the cookie authenticates: every POST, PUT, PATCH and
DELETE under ``/console`` carries the token the page holds (a form field, or the
``X-CSRFToken`` header). Twilio's webhooks (``/twilio/*``, signed by Twilio) and the API
(``/api/*``, bearer keys) are exempt: no browser sends them a credential on its own, so a
forged request has nothing to ride on.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta

from flask import Flask, Request, Response, current_app, g, request, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_wtf.csrf import CSRFError, CSRFProtect

from app import services
from hub.ports import TransientError
from hub.settings import Agent, Settings
from web import json_error

log = logging.getLogger(__name__)

COOKIE_NAME = "cahub_console"
COOKIE_PATH = "/console"
STATIC_PATH = "/console/static/"
SESSION_AGENT = "console_agent"
SESSION_FINGERPRINT = "console_token"
SESSION_ID = "console_session"
SESSION_SINCE = "console_since"
# Servers' clocks may disagree a little on when a session ends: its revocation outlasts it.
CLOCK_SKEW_S = 60
_warned_at = -60.0  # when an unreachable revocation store was last logged (monotonic s)


def is_console_path(path: str) -> bool:
    return path == COOKIE_PATH or path.startswith(COOKIE_PATH + "/")


class ConsoleSessions(SecureCookieSessionInterface):
    """The signed session cookie is the console's alone. Other routes (Twilio's webhooks,
    the API) and the console's static files get an empty session and never read the cookie:
    it means nothing to them, a webhook is spared the cost of checking it, and a script or
    a stylesheet is never sent with a renewed cookie."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if not is_console_path(request.path) or request.path.startswith(STATIC_PATH):
            return self.session_class()
        return super().open_session(app, request)


@dataclass(frozen=True)
class ConsoleSession:
    """One agent's signed-in browser: what its cookie says."""

    agent: Agent
    fingerprint: str
    session_id: str
    since: float


def start(agent: Agent) -> None:
    """Sign ``agent`` in: a new session id, a new CSRF token, the cookie kept while used."""
    session.clear()
    g.pop("csrf_token", None)  # Flask-WTF's cached token belonged to the cleared session
    session.permanent = True
    session[SESSION_AGENT] = agent.id
    session[SESSION_FINGERPRINT] = fingerprint(agent)
    session[SESSION_ID] = secrets.token_urlsafe(16)
    session[SESSION_SINCE] = time.time()


def current() -> ConsoleSession | None:
    """The signed-in agent's session, while it is open."""
    found = _from_cookie()
    return found if found is not None and is_open(found) else None


def is_open(console: ConsoleSession, *, keepalive: bool = False) -> bool:
    """Its agent is still configured with the same token, its shift is not over, and no
    server has recorded its logout. An open console's ``keepalive`` check takes the logouts
    from this process's list of them, at most a second old (``hub.revocations``)."""
    hub = services()
    agent = hub.settings.agent(console.agent.id)
    if agent is None or not hmac.compare_digest(console.fingerprint, fingerprint(agent)):
        return False
    if time.time() >= console.since + hub.settings.console_session_max_s:
        return False
    try:
        if keepalive:
            return not hub.sessions.recently_revoked(console.session_id)
        return not hub.sessions.is_revoked(console.session_id)
    except TransientError as exc:
        # Signing every agent out because a store is away would cost calls; the cookie is
        # still signed and ends with its shift.
        _warn_unreachable(exc)
        return True


def _warn_unreachable(exc: TransientError) -> None:
    """Once a minute at most: every open console asks at every keep-alive."""
    global _warned_at
    if time.monotonic() - _warned_at >= 60:
        _warned_at = time.monotonic()
        log.warning("session revocations unreachable, honouring signed sessions: %s", exc)


def end() -> None:
    """Sign out: forget the cookie, and have every server refuse its copies from now on."""
    session_id, since = session.get(SESSION_ID), session.get(SESSION_SINCE)
    session.clear()
    if not isinstance(session_id, str) or not isinstance(since, int | float):
        return
    remaining = since + services().settings.console_session_max_s - time.time()
    try:
        services().sessions.revoke(session_id, remaining + CLOCK_SKEW_S)
    except TransientError as exc:
        log.error("session revocations unreachable, a copy of the signed-out cookie would "
                  "still work until its shift ends: %s", exc)


def fingerprint(agent: Agent) -> str:
    """A keyed digest of the agent's token: changes when the token does, reveals nothing."""
    key = current_app.secret_key or ""
    key_bytes = key.encode() if isinstance(key, str) else key
    token = agent.token.get_secret_value().encode()
    return hmac.new(key_bytes, b"console:" + token, hashlib.sha256).hexdigest()[:32]


def _from_cookie() -> ConsoleSession | None:
    agent_id, session_id = session.get(SESSION_AGENT), session.get(SESSION_ID)
    since, print_ = session.get(SESSION_SINCE), session.get(SESSION_FINGERPRINT)
    if not (isinstance(agent_id, str) and isinstance(session_id, str)
            and isinstance(since, int | float) and isinstance(print_, str)):
        return None
    agent = services().settings.agent(agent_id)
    return ConsoleSession(agent, print_, session_id, float(since)) if agent else None


def init_app(app: Flask, settings: Settings) -> None:
    """The console's cookie, its lifetimes, and CSRF protection of every console route."""
    https = (settings.public_base_url or "").startswith("https://")
    app.config.update(
        SESSION_COOKIE_NAME=COOKIE_NAME, SESSION_COOKIE_PATH=COOKIE_PATH,
        SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SECURE=https,
        # Lax: sent when an agent follows a link to the console, never with another site's
        # POST or with its scripts' requests.
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(seconds=settings.console_session_idle_s),
        # Checked below for console routes only; the token lives as long as its session.
        WTF_CSRF_CHECK_DEFAULT=False, WTF_CSRF_TIME_LIMIT=None,
    )
    app.session_interface = ConsoleSessions()
    csrf = CSRFProtect(app)

    def protect_console() -> None:
        if is_console_path(request.path):
            csrf.protect()

    app.before_request(protect_console)
    app.register_error_handler(CSRFError, csrf_failed)


def csrf_failed(exc: CSRFError) -> tuple[Response, int]:
    """The JSON error a console request that failed its CSRF check gets."""
    return json_error(400, "csrf_failed", exc.description or "CSRF validation failed.")
