"""The console's softphone: which phone the page gets, the Voice SDK the hub serves itself, the
page's Content-Security-Policy for it, and the agent's access tokens (``POST /console/token``).

The phone is Twilio's Voice JavaScript SDK once the hub can mint tokens (an API key and a
TwiML App are set) and has an SDK to give the page: the copy ``cahub voice-sdk`` installed,
served here under a versioned URL with its integrity, or ``CAHUB_VOICE_SDK_URL``. The
simulator (``CAHUB_VOICE_SIMULATOR``: the demo's phone) plays Twilio's part in the browser.
Otherwise the console still pops, and says plainly why the softphone is unavailable. The
page's policy lets scripts come from the hub (and the SDK's own origin, when elsewhere) and
connections go to the Twilio hosts the SDK documents for the configured edges (the
package's README, "Content Security Policy (CSP)"), nothing more.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from flask import Blueprint, Response, jsonify, url_for
from werkzeug.exceptions import NotFound

from app import services
from hub.settings import Settings
from integrations.voice_sdk import VERSION, installed, subresource_integrity
from web import json_error, sessions

log = logging.getLogger(__name__)
bp = Blueprint("softphone", __name__)

BASE_POLICY = ("default-src 'self'; img-src 'self' data:; object-src 'none'; "
               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
# What the SDK fetches: its sounds and insights over https, signalling over wss per edge.
TWILIO_HTTPS = ("https://eventgw.twilio.com", "https://media.twiliocdn.com",
                "https://sdk.twilio.com")
TWILIO_MEDIA = ("mediastream:", "https://media.twiliocdn.com", "https://sdk.twilio.com")
NOT_SET_UP = ("The softphone is not set up on this hub (it needs CAHUB_TWILIO_API_KEY_SID, "
              "CAHUB_TWILIO_API_KEY_SECRET, CAHUB_TWILIO_TWIML_APP_SID and "
              "CAHUB_TWILIO_ACCOUNT_SID). Calls still pop here; answer them on another phone.")
NO_SDK = ("The softphone is unavailable: this hub has no copy of Twilio's Voice SDK (run "
          "\u201ccahub voice-sdk\u201d on the hub, or set CAHUB_VOICE_SDK_URL). Calls still pop "
          "here.")
SDK_ROUTE = "/console/static/vendor/twilio-voice-<version>.min.js"


@dataclass(frozen=True)
class Phone:
    """The phone a console page gets: its kind, where its script is, and why not when not."""

    mode: Literal["twilio", "simulator", "unavailable"]
    script_url: str | None = None
    integrity: str | None = None
    reason: str | None = None
    edges: tuple[str, ...] = ()

    def policy(self) -> str:
        """The page's Content-Security-Policy: the base one, plus what the SDK needs."""
        if self.mode != "twilio" or self.script_url is None:
            return BASE_POLICY
        origin = _origin(self.script_url)
        scripts = "'self'" + (f" {origin}" if origin else "")
        sockets = " ".join(f"wss://voice-js.{edge}.twilio.com" for edge in self.edges)
        return (f"{BASE_POLICY}; script-src {scripts}; "
                f"connect-src 'self' {' '.join(TWILIO_HTTPS)} {sockets}; "
                f"media-src 'self' {' '.join(TWILIO_MEDIA)}")


def phone_for(settings: Settings) -> Phone:
    """The phone this hub can give its agents."""
    if settings.voice_simulator:
        return Phone("simulator", url_for("console.static", filename="voice_simulator.js"))
    if services().tokens is None:
        return Phone("unavailable", reason=NOT_SET_UP)
    edges = tuple(settings.voice_edges)
    if settings.voice_sdk_url:
        return Phone("twilio", settings.voice_sdk_url, edges=edges)
    script = installed(Path(settings.data_dir))
    if script is None:
        return Phone("unavailable", reason=NO_SDK)
    return Phone("twilio", url_for("softphone.voice_sdk", version=VERSION),
                 integrity=_integrity(script, script.stat().st_mtime_ns), edges=edges)


def _origin(url: str) -> str | None:
    """The scheme and host of an absolute URL; None for one on the hub itself."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


@functools.lru_cache(maxsize=2)
def _script(script: Path, mtime_ns: int) -> bytes:
    """The installed script, read once (per file and change of it)."""
    return script.read_bytes()


def _integrity(script: Path, mtime_ns: int) -> str:
    """The installed script's sha384, for ``<script integrity>``."""
    return _sha384(_script(script, mtime_ns))


@functools.lru_cache(maxsize=2)
def _sha384(data: bytes) -> str:
    return subresource_integrity(data)


@bp.get(SDK_ROUTE)
def voice_sdk(version: str) -> Response:
    """The installed SDK: cached for a year, since its URL names its version."""
    script = installed(Path(services().settings.data_dir))
    if version != VERSION or script is None:
        raise NotFound("This hub serves no such Voice SDK.")
    response = Response(_script(script, script.stat().st_mtime_ns), mimetype="text/javascript")
    response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.post("/console/token")
def token() -> Response | tuple[Response, int]:
    """A new access token for the signed-in agent's softphone."""
    console = sessions.current()
    if console is None:
        return json_error(401, "unauthorized", "Log in to the agent console first.")
    minter = services().tokens
    if minter is None:
        return json_error(503, "softphone_unavailable", NOT_SET_UP)
    minted = minter.mint(console.agent.client)
    response = jsonify(token=minted.token, identity=minted.identity, ttl=minted.ttl)
    response.headers["Cache-Control"] = "no-store"
    return response
