"""Test data and helpers shared by the test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import re
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient

from hub.desk import CallState, ConsoleEvent
from hub.models import CallerKind, CallInfo, Summary
from hub.settings import Agent, HubConfig, Settings
from integrations.simulate import leg_status_form
from integrations.simulate import outbound_form as simulated_outbound
from integrations.twilio import sign

__all__ = ["sign"]

AUTH_TOKEN = "test-auth-token-0123456789abcdef"
AGENT_NUMBER = "+18005550100"
OTHER_NUMBER = "+18005550199"
ADA_PHONE = "+14155550134"


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    agents = (
        Agent(id="grace", name="Grace Hopper", client="grace", numbers=(AGENT_NUMBER,),
              token="grace-token", caller_id=AGENT_NUMBER),
        Agent(id="alan", name="Alan Turing", client="alan", numbers=(OTHER_NUMBER,),
              token="alan-token"),
    )
    values: dict[str, Any] = {
        "data_dir": data_dir, "twilio_auth_token": AUTH_TOKEN, "api_keys": ["test-api-key"],
        "secret_key": "test-secret", "hub": HubConfig(agents=agents),
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


def call_form(call_sid: str, from_: str = ADA_PHONE, to: str = AGENT_NUMBER) -> dict[str, str]:
    return {"CallSid": call_sid, "AccountSid": "AC" + "1" * 32, "From": from_, "To": to,
            "CallStatus": "ringing", "Direction": "inbound", "ApiVersion": "2010-04-01"}


def signed_post(client: FlaskClient, path: str, form: dict[str, str],
                token: str = AUTH_TOKEN) -> Any:
    """POST ``form`` as Twilio would, signed for the test server's URL."""
    signature = sign(token, f"http://localhost{path}", form)
    return client.post(path, data=form, headers={"X-Twilio-Signature": signature})


CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def csrf_token(client: FlaskClient, path: str = "/console") -> str:
    """The CSRF token the console page at ``path`` holds, as its script would read it."""
    page = client.get(path).get_data(as_text=True)
    match = CSRF_META.search(page)
    assert match is not None, f"{path} carries no <meta name=\"csrf-token\">"
    return match.group(1)


def console_login(client: FlaskClient, token: str) -> Any:
    """Log in as a browser does: the login page, then its form with the CSRF token."""
    return client.post("/console", data={"token": token, "csrf_token": csrf_token(client)})


def console_logout(client: FlaskClient) -> Any:
    """The console's "Sign out" form, with the page's CSRF token."""
    return client.post("/console/logout", data={"csrf_token": csrf_token(client)})


def pop_summary(number: int, name: str | None = "Ada Lovelace") -> Summary:
    """A screen pop's summary whose call sid carries ``number``."""
    call = CallInfo(sid=f"CA{number:032x}", from_=ADA_PHONE, to=AGENT_NUMBER,
                    caller_kind=CallerKind.NUMBER)
    return Summary(call=call, identity=None, found=True, name=name)


def call_state(number: int, phase: str = "connected", notes: str = "") -> CallState:
    """A call state of the call whose sid carries ``number`` (that of ``pop_summary(number)``),
    with every kind of field filled in."""
    at = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    return CallState.model_validate({
        "call_sid": f"CA{number:032x}", "phase": phase, "direction": "inbound",
        "answered_at": at, "talk_s": 42, "wrapup_due_at": at + timedelta(minutes=5),
        "handoffs": [{"agent_id": "alan", "agent_name": "Alan", "notes": notes, "at": at}],
        "transfer_to": "grace", "transfer_to_name": "Grace Hopper"})


def take_pops(stream: Any, count: int, wait: float = 5.0) -> list[tuple[str, ConsoleEvent]]:
    """The next ``count`` pops of a ``PopStream``, each waited for at most ``wait`` seconds."""
    pops = []
    while len(pops) < count:
        pop = stream.next(wait)
        assert pop is not None, f"only {len(pops)} of {count} pops arrived"
        pops.append(pop)
    return pops


def modes(directory: Path) -> dict[str, str]:
    """Every path under ``directory`` (itself included) with its permission bits, in octal."""
    found = {".": oct(stat.S_IMODE(directory.stat().st_mode))}
    for path in directory.rglob("*"):
        found[str(path.relative_to(directory))] = oct(stat.S_IMODE(path.stat().st_mode))
    return found


def open_to_others(directory: Path) -> dict[str, str]:
    """The paths under ``directory`` that give its group or others any access."""
    return {name: mode for name, mode in modes(directory).items() if int(mode, 8) & 0o077}


def leg_form(parent: str, leg: str, status: str, to: str = "client:grace",
             duration: int | None = None, sequence: int = 0) -> dict[str, str]:
    """A status callback of the leg ``leg`` of the call ``parent``, as Twilio sends it."""
    return leg_status_form(parent, leg, status, to, "AC" + "1" * 32, duration, sequence)


def status_form(call_sid: str, status: str = "completed", duration: int = 95,
                sequence: int = 1) -> dict[str, str]:
    """The status callback of a whole call, as Twilio sends it."""
    return {"CallSid": call_sid, "AccountSid": "AC" + "1" * 32, "CallStatus": status,
            "CallDuration": str(duration), "SequenceNumber": str(sequence),
            "Timestamp": "Fri, 20 Nov 2026 10:04:00 +0000", "From": ADA_PHONE, "To": AGENT_NUMBER}


def outbound_form(call_sid: str, to: str, client: str = "grace") -> dict[str, str]:
    """The TwiML App's request for a call an agent places, as Twilio sends it."""
    return simulated_outbound(call_sid, client, to, "AC" + "1" * 32)
