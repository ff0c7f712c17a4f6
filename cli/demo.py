"""``cahub demo``: load the bundled demo data, then serve with a demo agent.

The demo's secrets (the agent's console token and a Twilio auth token for simulated
calls) are made once per data directory and kept there, so a bookmarked console URL
keeps working. Settings from the environment or ``CAHUB_CONFIG`` take precedence.
"""

from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path
from typing import Any

import click
from pydantic import SecretStr

from app import close_app, services
from cli.command_app import command_app
from hub.private_files import write_private_text
from hub.settings import Agent, Settings
from lookup.demo import DEMO_CALLER, DEMO_FILES, load_demo
from web.serving import development_handler

DEMO_NUMBER = "+18005550100"
SECRETS_FILE = "demo-secrets.json"


def demo_secrets(data_dir: Path) -> dict[str, str]:
    """The demo's agent token and auth token, made on first use and kept in ``data_dir``."""
    path = data_dir / SECRETS_FILE
    if path.exists():
        stored: dict[str, str] = json.loads(path.read_text())
        return stored
    made = {"agent_token": secrets.token_urlsafe(24), "auth_token": secrets.token_hex(16)}
    write_private_text(path, json.dumps(made))
    return made


def demo_settings(base: Settings) -> Settings:
    """``base`` completed with a demo agent and auth token where the user set none."""
    made = demo_secrets(Path(base.data_dir))
    update: dict[str, Any] = {}
    if base.twilio_auth_token is None:
        update["twilio_auth_token"] = SecretStr(made["auth_token"])
    if not base.hub.agents:
        agent = Agent(id="demo", name="Grace Hopper", client="grace", numbers=(DEMO_NUMBER,),
                      token=made["agent_token"], caller_id=DEMO_NUMBER)
        update["hub"] = base.hub.model_copy(update={"agents": (agent,)})
    if base.twilio_api_key_sid is None:
        update["voice_simulator"] = True  # no Twilio to ring a browser: the demo's phone
    return base.model_copy(update=update) if update else base


def _cahub_command() -> str:
    script = Path(sys.executable).parent / "cahub"
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script) if script.exists() else "cahub"


def _banner(settings: Settings, host: str, port: int) -> str:
    base = f"http://{host}:{port}"
    agent = settings.hub.agents[0]
    token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else ""
    to = agent.numbers[0] if agent.numbers else DEMO_NUMBER
    return "\n".join([
        "",
        f"  Agent console ({agent.name}):",
        # After "#": browsers never send it, so the token stays out of every server log.
        f"    {base}/console#token={agent.token.get_secret_value()}",
        "  Turn the phone on there, then place a call from a known customer (in another "
        "terminal):",
        f"    CAHUB_TWILIO_AUTH_TOKEN={token} {_cahub_command()} simulate-call "
        f"--from '{DEMO_CALLER}' --to '{to}' --url {base} --verstat TN-Validation-Passed-A",
        "",
    ])


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, envvar="PORT", type=int)
def demo(host: str, port: int) -> None:
    """Load the demo data into the embedded store and serve."""
    app = command_app(lambda: demo_settings(Settings()), serving_on=host)
    settings = services(app).settings
    reports = load_demo(services(app).store)
    for (_, _, path), report in zip(DEMO_FILES, reports, strict=True):
        click.echo(f"  {path.name}: {report.loaded} loaded, {len(report.rejected)} rejected")
    click.echo(_banner(settings, host, port))
    try:
        app.run(host=host, port=port, threaded=True,
                request_handler=development_handler(settings.body_timeout_s))
    finally:
        close_app(app)
