"""Twilio's REST API for calls in progress: the warm transfer's move of a caller.

``POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`` with ``Twiml`` makes the live
call leave what it is doing (the dial to the first agent, whose leg ends) and carry on with
the TwiML given: a dial to the second agent, whose ``action`` rings the first one again if
the second does not answer. HTTP Basic with an API key (its SID and secret) when one is
set, else the account SID and auth token. Errors go through the sinks' HTTP layer
(``crm_http``): 408, 429 and 5xx are ``TransientError``, the rest ``PermanentError`` with
Twilio's error code (21220: the call is no longer in progress).
"""

from __future__ import annotations

import requests

from hub.models import Summary
from hub.settings import Agent, Routing, Settings
from integrations.crm_http import DEFAULT_TIMEOUT_S, ApiClient
from integrations.twilio import Callbacks, dial_agent

SERVICE = "twilio"
API = "/2010-04-01/Accounts"


class TwilioCallControl:
    """``hub.ports.CallControl`` on Twilio's REST API."""

    def __init__(self, account_sid: str, auth: tuple[str, str], routing: Routing, *,
                 base_url: str = "https://api.twilio.com",
                 session: requests.Session | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self._http = ApiClient(SERVICE, base_url.rstrip("/"), session=session, timeout_s=timeout_s,
                               auth=auth)
        self._account_sid = account_sid
        self._routing = routing

    @classmethod
    def from_settings(cls, settings: Settings, routing: Routing,
                      session: requests.Session | None = None) -> TwilioCallControl | None:
        """The adapter, or None when the account or its credentials are not set."""
        account, auth = settings.twilio_account_sid, _auth(settings)
        if not account or auth is None:
            return None
        return cls(account, auth, routing, base_url=settings.twilio_base_url, session=session,
                   timeout_s=settings.sink_timeout_s)

    def ring_agent(self, call_sid: str, agent: Agent, summary: Summary, back_to: Agent,
                   base_url: str) -> None:
        callbacks = Callbacks.at(base_url).back_to(back_to)
        twiml = dial_agent(agent, summary, self._routing, callbacks, transferFrom=back_to.name)
        self._http.send("POST", f"{API}/{self._account_sid}/Calls/{call_sid}.json",
                        data={"Twiml": twiml})

    def close(self) -> None:
        self._http.close()


def _auth(settings: Settings) -> tuple[str, str] | None:
    key, secret = settings.twilio_api_key_sid, settings.twilio_api_key_secret
    if key and secret:
        return key, secret.get_secret_value()
    token = settings.twilio_auth_token
    if settings.twilio_account_sid and token:
        return settings.twilio_account_sid, token.get_secret_value()
    return None
