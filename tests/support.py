"""Test data and helpers shared by the test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient

from hub.settings import Agent, HubConfig, Settings
from integrations.twilio import sign

__all__ = ["sign"]

AUTH_TOKEN = "test-auth-token-0123456789abcdef"
AGENT_NUMBER = "+18005550100"
OTHER_NUMBER = "+18005550199"
ADA_PHONE = "+14155550134"


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    agents = (
        Agent(id="grace", name="Grace Hopper", client="grace", numbers=(AGENT_NUMBER,),
              token="grace-token"),
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


def modes(directory: Path) -> dict[str, str]:
    """Every path under ``directory`` (itself included) with its permission bits, in octal."""
    found = {".": oct(stat.S_IMODE(directory.stat().st_mode))}
    for path in directory.rglob("*"):
        found[str(path.relative_to(directory))] = oct(stat.S_IMODE(path.stat().st_mode))
    return found


def open_to_others(directory: Path) -> dict[str, str]:
    """The paths under ``directory`` that give its group or others any access."""
    return {name: mode for name, mode in modes(directory).items() if int(mode, 8) & 0o077}
