"""``cahub voice-sdk``: install the pinned Twilio Voice JavaScript SDK for the console.

``make demo`` runs it before serving. Without the SDK (a registry out of reach, say) the
hub still serves calls and pops; the console says plainly that the softphone is unavailable.
"""

from __future__ import annotations

from pathlib import Path

import click
from pydantic import ValidationError

from hub.settings import Settings
from integrations.voice_sdk import PACKAGE, VERSION, VoiceSdkError, install, installed

UNAVAILABLE = ("The console will work without it and say that the softphone is unavailable; "
               "run `cahub voice-sdk` again once the registry can be reached, or set "
               "CAHUB_VOICE_SDK_URL to a copy of your own.")


@click.command("voice-sdk")
@click.option("--registry", default=None, metavar="URL",
              help="npm registry to fetch from (default: CAHUB_NPM_REGISTRY, "
                   "https://registry.npmjs.org).")
def voice_sdk(registry: str | None) -> None:
    """Install the pinned Voice SDK, its integrity checked, for the hub to serve."""
    try:
        settings = Settings()
    except ValidationError as exc:
        raise click.ClickException(f"configuration: {exc}") from exc
    data_dir = Path(settings.data_dir)
    if installed(data_dir) is not None:
        click.echo(f"{PACKAGE}@{VERSION} is installed in {data_dir / 'voice-sdk'}")
        return
    source = registry or settings.npm_registry
    try:
        path = install(data_dir, source)
    except VoiceSdkError as exc:
        raise click.ClickException(f"{exc}\n{UNAVAILABLE}") from exc
    click.echo(f"{PACKAGE}@{VERSION} installed in {path.parent} (integrity checked)")
