"""``cahub simulate-call``: send a running hub the webhook Twilio would send, correctly signed.

It signs with the configured auth token, so a simulated call passes exactly the same
validation as a real one; nothing is special-cased on the server.
"""

from __future__ import annotations

import secrets
import time
from email.utils import formatdate

import click
import requests

from hub.settings import Settings
from integrations.twilio import sign

VOICE_PATH = "/twilio/voice"
STATUS_PATH = "/twilio/status"
DEMO_ACCOUNT_SID = "AC" + "0" * 32


def inbound_call_form(call_sid: str, from_: str, to: str, account_sid: str) -> dict[str, str]:
    """The form fields of Twilio's "a call comes in" webhook."""
    return {
        "CallSid": call_sid, "AccountSid": account_sid, "From": from_, "To": to,
        "Caller": from_, "Called": to, "CallStatus": "ringing", "Direction": "inbound",
        "ApiVersion": "2010-04-01",
    }


def leg_status_form(parent: str, leg: str, status: str, to: str, account_sid: str,
                    duration_s: int | None = None, sequence: int = 0) -> dict[str, str]:
    """A status callback of the leg ``leg`` (ringing ``to``) of the call ``parent``."""
    form = {"CallSid": leg, "ParentCallSid": parent, "AccountSid": account_sid,
            "CallStatus": status, "To": to, "Direction": "outbound-dial",
            "SequenceNumber": str(sequence), "CallbackSource": "call-progress-events",
            "Timestamp": formatdate(usegmt=True)}
    if duration_s is not None:
        form["CallDuration"] = str(duration_s)
    return form


def outbound_form(call_sid: str, client: str, to: str, account_sid: str) -> dict[str, str]:
    """The TwiML App's request for a call the agent ``client`` places to ``to``."""
    return {"CallSid": call_sid, "AccountSid": account_sid, "From": f"client:{client}",
            "Caller": f"client:{client}", "To": to, "CallStatus": "ringing",
            "Direction": "inbound", "ApiVersion": "2010-04-01"}


def ended_form(call_sid: str, account_sid: str, duration_s: int,
               sequence: int = 1) -> dict[str, str]:
    """The status callback of a whole call that has ended after ``duration_s``."""
    return {"CallSid": call_sid, "AccountSid": account_sid, "CallStatus": "completed",
            "CallDuration": str(duration_s), "SequenceNumber": str(sequence),
            "CallbackSource": "call-progress-events", "Timestamp": formatdate(usegmt=True)}


def status_forms(call: dict[str, str], duration_s: int) -> list[dict[str, str]]:
    """The call progress callbacks of an answered call that ends after ``duration_s``."""
    base = {k: call[k] for k in ("CallSid", "AccountSid", "From", "To", "Direction",
                                 "ApiVersion")}
    base["CallbackSource"] = "call-progress-events"
    answered = base | {"CallStatus": "in-progress", "SequenceNumber": "0"}
    ended = base | {"CallStatus": "completed", "SequenceNumber": "1",
                    "CallDuration": str(duration_s), "Timestamp": formatdate(usegmt=True)}
    return [answered, ended]


def new_call_sid() -> str:
    return "CA" + secrets.token_hex(16)


def post_signed(
    url: str, form: dict[str, str], auth_token: str, signed_as: str | None = None,
    timeout: float = 10.0, session: requests.Session | None = None,
) -> requests.Response:
    """POST ``form`` to ``url`` with the signature Twilio would compute for ``signed_as``."""
    signature = sign(auth_token, signed_as or url, form)
    poster = session.post if session is not None else requests.post
    return poster(url, data=form, headers={"X-Twilio-Signature": signature}, timeout=timeout)


@click.command("simulate-call")
@click.option("--from", "from_", required=True, help="Caller number, e.g. +14155550134.")
@click.option("--to", default="+18005550100", show_default=True, help="The Twilio number called.")
@click.option("--url", "base", default="http://127.0.0.1:5000", show_default=True,
              help="Base URL of the running hub.")
@click.option("--call-sid", default=None, help="Reuse a CallSid (to test a retried webhook).")
@click.option("--hangup-after", type=click.IntRange(0), default=None, metavar="S",
              help="Then hang up after S seconds: send the status callbacks too.")
@click.option("--verstat", default=None, metavar="VERDICT",
              help="The caller ID's STIR/SHAKEN verdict, e.g. TN-Validation-Passed-A.")
def simulate_call(from_: str, to: str, base: str, call_sid: str | None,
                  hangup_after: int | None, verstat: str | None) -> None:
    """Send a signed inbound-call webhook to a running hub and print its TwiML."""
    settings = Settings()
    if settings.twilio_auth_token is None:
        raise click.ClickException("set CAHUB_TWILIO_AUTH_TOKEN to the token the hub uses")
    form = inbound_call_form(call_sid or new_call_sid(), from_, to,
                             settings.twilio_account_sid or DEMO_ACCOUNT_SID)
    if verstat:
        form["StirVerstat"] = verstat
    url = base.rstrip("/") + VOICE_PATH
    signed_as = (settings.public_base_url + VOICE_PATH) if settings.public_base_url else url
    reply = _send(url, form, settings.twilio_auth_token.get_secret_value(), signed_as)
    click.echo(f"{form['CallSid']} -> HTTP {reply.status_code}", err=True)
    click.echo(reply.text)
    if reply.status_code != 200:
        raise SystemExit(1)
    if hangup_after is not None:
        _hang_up(base, settings, form, hangup_after)


def _hang_up(base: str, settings: Settings, call: dict[str, str], seconds: int) -> None:
    """Send the answered and completed status callbacks, ``seconds`` apart."""
    url = base.rstrip("/") + STATUS_PATH
    signed_as = (settings.public_base_url + STATUS_PATH) if settings.public_base_url else url
    token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else ""
    for index, form in enumerate(status_forms(call, seconds)):
        if index:
            time.sleep(seconds)
        reply = _send(url, form, token, signed_as)
        click.echo(f"{form['CallSid']} {form['CallStatus']} -> HTTP {reply.status_code}",
                   err=True)
        if reply.status_code != 200:
            raise SystemExit(1)


def _send(url: str, form: dict[str, str], token: str, signed_as: str) -> requests.Response:
    """``post_signed``, with a hub that cannot be reached (stopped meanwhile, say) told in
    one line rather than a traceback."""
    try:
        return post_signed(url, form, token, signed_as)
    except requests.RequestException as exc:
        raise click.ClickException(f"could not reach the hub at {url}: {exc}") from exc
