"""The softphone's costs: minting an access token, saving a draft, and what the console weighs.

Tokens are minted by the library alone and through ``POST /console/token`` (session check,
CSRF check, JSON); drafts are saved through ``PUT /console/calls/<CallSid>/notes`` on a call
on the desk (the console sends one a moment after each pause in typing). Page weight is
what a console downloads: the page, its stylesheet and scripts, and the Voice SDK, raw and
gzipped (a reverse proxy in front of the hub would compress them).

    .venv/bin/python -m bench.softphone [--mints 2000] [--requests 500]
"""

from __future__ import annotations

import argparse
import gzip
import tempfile
import time
from pathlib import Path

from app import close_app, create_app
from bench.report import DOC, describe, machine, record
from integrations.twilio_tokens import VoiceTokenMinter
from integrations.voice_sdk import VERSION, VoiceSdkError, install
from tests.support import call_form, console_login, csrf_token, leg_form, make_settings, signed_post

SOFTPHONE = {"twilio_account_sid": "AC" + "a1" * 16, "twilio_api_key_sid": "SK" + "b2" * 16,
             "twilio_api_key_secret": "api-key-secret-0123456789abcdef0123",
             "twilio_twiml_app_sid": "AP" + "c3" * 16}
STATIC = ("console.css", "console.js", "desk.js", "phone.js")
SID = "CA" + "d" * 32
SECTION = "Softphone: tokens, drafts, page weight"


def timed_ms(action: object, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        action()  # type: ignore[operator]
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def weight(label: str, data: bytes) -> str:
    return f"| {label} | {len(data) / 1024:.1f} | {len(gzip.compress(data, 6)) / 1024:.1f} |"


def _sdk(data_dir: Path) -> bytes | None:
    """The pinned SDK, installed as ``cahub voice-sdk`` does (from the npm registry)."""
    try:
        return install(data_dir, "https://registry.npmjs.org").read_bytes()
    except VoiceSdkError:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mints", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    minter = VoiceTokenMinter(SOFTPHONE["twilio_account_sid"], SOFTPHONE["twilio_api_key_sid"],
                              SOFTPHONE["twilio_api_key_secret"],
                              SOFTPHONE["twilio_twiml_app_sid"], 3600)
    raw = timed_ms(lambda: minter.mint("grace"), args.mints)
    with tempfile.TemporaryDirectory() as scratch:
        app = create_app(make_settings(Path(scratch), **SOFTPHONE), start_background=False)
        try:
            client = app.test_client()
            console_login(client, "grace-token")
            token = csrf_token(client)
            route = timed_ms(lambda: client.post("/console/token",
                                                 headers={"X-CSRFToken": token}), args.requests)
            signed_post(client, "/twilio/voice", call_form(SID))
            signed_post(client, "/twilio/leg-status", leg_form(SID, "CA" + "e" * 32, "in-progress"))
            texts = iter(range(10**9))
            drafts = timed_ms(lambda: client.put(
                f"/console/calls/{SID}/notes", json={"notes": f"Draft {next(texts)} " * 20},
                headers={"X-CSRFToken": token}), args.requests)
            page = client.get("/console").data
            files = {name: client.get(f"/console/static/{name}").data for name in STATIC}
        finally:
            close_app(app)
        sdk = _sdk(Path(scratch))
    rows = [weight("console page (HTML)", page),
            *(weight(name, data) for name, data in files.items()),
            weight("**the console's own, in all**", page + b"".join(files.values())),
            weight(f"Voice SDK {VERSION} (`twilio.min.js`)", sdk) if sdk else
            "| Voice SDK | not measured: the npm registry could not be reached | |"]
    record(SECTION, f"""
`.venv/bin/python -m bench.softphone --mints {args.mints} --requests {args.requests}` — {machine()}.

| figure (ms) | median / p99 / max |
|---|---|
| mint an access token (twilio's `AccessToken`, HS256) | {describe(raw)} |
| `POST /console/token` (session, CSRF, mint, JSON) | {describe(route)} |
| `PUT /console/calls/<CallSid>/notes` (a draft of ~300 characters) | {describe(drafts)} |

What a console downloads (the SDK once: its URL names its version, cached for a year):

| file | KiB | KiB gzipped |
|---|---|---|
{chr(10).join(rows)}
""")
    text = DOC.read_text()
    print(text.split(f"## {SECTION}")[1].split("\n## ")[0])


if __name__ == "__main__":
    main()
