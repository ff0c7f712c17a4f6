"""What the softphone's browser tests share: the hub with a fake Voice SDK, and Twilio's part.

The Voice SDK cannot reach Twilio here, so the hub's console loads the simulator of it
(``web/static/voice_simulator.js``) from another origin, through ``CAHUB_VOICE_SDK_URL``, as a
site serving its own copy would; the page's policy must allow exactly that origin. The test
plays Twilio: it sends the hub the signed webhooks and status callbacks Twilio would, and
rings the fake phone through ``window.TwilioSimulator``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import Flask, Response

from integrations.simulate import inbound_call_form, post_signed
from tests.e2e.browser import serve
from tests.support import AGENT_NUMBER, AUTH_TOKEN, leg_form, status_form

SIMULATOR = Path(__file__).resolve().parents[2] / "web" / "static" / "voice_simulator.js"
SHOTS = Path("/tmp/cahub-shots")
ACCOUNT_SID = "AC" + "a1" * 16
KEY_SECRET = "api-key-secret-0123456789abcdef0123"
SOFTPHONE = {"twilio_account_sid": ACCOUNT_SID, "twilio_api_key_sid": "SK" + "b2" * 16,
             "twilio_api_key_secret": KEY_SECRET, "twilio_twiml_app_sid": "AP" + "c3" * 16}


@contextmanager
def fake_sdk_site() -> Iterator[str]:
    """A static site serving the simulator as ``twilio.min.js``; yields its URL."""
    site = Flask("sdk-site")

    @site.get("/voice-sdk/twilio.min.js")
    def script() -> Response:
        return Response(SIMULATOR.read_bytes(), mimetype="text/javascript")

    with serve(site) as base:
        yield f"{base}/voice-sdk/twilio.min.js"


class Twilio:
    """Plays Twilio against the hub at ``base``: signed webhooks and status callbacks."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.sequence = 0

    def post(self, path: str, form: dict[str, str]) -> Any:
        reply = post_signed(f"{self.base}{path}", form, AUTH_TOKEN)
        assert 200 == reply.status_code, f"{path}: HTTP {reply.status_code}"
        return reply

    def call(self, sid: str, caller: str, **extra: str) -> Any:
        form = inbound_call_form(sid, caller, AGENT_NUMBER, ACCOUNT_SID) | extra
        return self.post("/twilio/voice", form)

    def leg(self, parent: str, leg: str, status: str, to: str = "client:grace",
            duration: int | None = None) -> None:
        self.sequence += 1
        self.post("/twilio/leg-status", leg_form(parent, leg, status, to, duration, self.sequence))

    def ended(self, sid: str, duration: int = 95) -> None:
        self.post("/twilio/status", status_form(sid, duration=duration))


def shot(page: Any, name: str) -> Path:
    """A screenshot for a person to look at, outside the repository."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True, animations="disabled")
    return path
