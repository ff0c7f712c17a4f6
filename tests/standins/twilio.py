"""A stand-in for Twilio's Messages API: the SMS the hub sends to a sales rep.

It speaks the shapes of ``reference/twilio-cti.md`` §5: ``POST
/2010-04-01/Accounts/{sid}/Messages.json`` (form-encoded ``To``, ``From``, ``Body``; HTTP
Basic with the account SID and auth token) answers 201 with the message JSON (``sid``
``SM…``, ``status`` ``queued``, ``num_segments`` as a string, RFC 2822 dates);
``GET`` on the same path lists the account's messages newest first, filtered by ``To``
and ``From``, one page of ``PageSize``; ``GET /2010-04-01/Accounts/{sid}.json`` is the
account (the hub's health ping). Errors are Twilio's legacy JSON ``{code, message,
more_info, status}``: 401/20003 for bad credentials, 400/21604 or 21602 for a missing
``To`` or ``Body``, 400 with the code given to ``refuse()`` for a recipient (21610: the
rep replied STOP), 429/20429 with ``Retry-After`` for ``fail_next(status=429)``.

The Calls API for calls in progress: ``POST /2010-04-01/Accounts/{sid}/Calls/{CallSid}.json``
with ``Twiml`` (at most 4,000 characters), ``Url`` or ``Status`` updates a call the test
declared live (``live_calls``), answering the call JSON; a call not live answers 404/20404,
one that has ended (``ended_calls``) 400/21220 "Call is not in-progress. Cannot redirect".
Credentials are the account SID and auth token, or an API key given to ``add_api_key``.

Request kinds: ``account``, ``messages_list``, ``messages_create``, ``calls_update``.
``hold_next()`` makes the next creates store the message and then hold their answer, as
when Twilio accepted a message but its answer never came back.
"""

from __future__ import annotations

import itertools
import math
import secrets
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from flask import Response, jsonify, request

from tests.standins import StandIn

API = "/2010-04-01/Accounts/<account_sid>"
MAX_BODY = 1600
MAX_PAGE_SIZE = 1000
# Twilio's own segment count (GSM 03.38 basic set and its escaped extension characters).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")
ERROR_MESSAGES = {
    20003: "Authenticate", 20429: "Too Many Requests", 20500: "Internal Server Error",
    21211: "Invalid 'To' Phone Number", 21602: "Message body is required.",
    21604: "A 'To' phone number is required.", 21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number", 21617: "The concatenated message body "
    "exceeds the 1600 character limit.", 20404: "The requested resource was not found",
    21220: "Call is not in-progress. Cannot redirect.", 21218: "Invalid ApplicationSid",
}
MAX_TWIML = 4000


def num_segments(body: str) -> int:
    """How many segments Twilio bills ``body`` as (GSM-7 160/153, UCS-2 70/67)."""
    if all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in body):
        units, single, each = len(body) + sum(ch in GSM7_EXTENSION for ch in body), 160, 153
    else:
        units, single, each = len(body.encode("utf-16-le")) // 2, 70, 67
    return 1 if units <= single else math.ceil(units / each)


class TwilioStandIn(StandIn):
    """One Twilio account's Messages API, keeping every message it accepted."""

    HELD_KIND = "messages_create"

    def __init__(self, account_sid: str, auth_token: str) -> None:
        super().__init__()
        self.account_sid, self.auth_token = account_sid, auth_token
        self.messages: list[dict[str, Any]] = []
        self.refusals: dict[str, int] = {}
        self.api_keys: dict[str, str] = {}
        self.live_calls: set[str] = set()
        self.ended_calls: set[str] = set()
        self.call_updates: list[dict[str, str]] = []
        self._serial = itertools.count(1)
        self.app.add_url_rule(f"{API}.json", "account", self._account)
        self.app.add_url_rule(f"{API}/Messages.json", "messages_list", self._list)
        self.app.add_url_rule(f"{API}/Messages.json", "messages_create", self._create,
                              methods=["POST"])
        self.app.add_url_rule(f"{API}/Calls/<call_sid>.json", "calls_update", self._update_call,
                              methods=["POST"])

    def add_api_key(self, sid: str, secret: str) -> None:
        """An API key of the account: its SID and secret authenticate like the auth token."""
        self.api_keys[sid] = secret

    def refuse(self, number: str, code: int = 21610) -> None:
        """Answer every message to ``number`` with a synchronous 400 and ``code``."""
        self.refusals[number] = code

    def sent_to(self, number: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["to"] == number]

    def error_response(self, status: int, retry_after_ms: int | None) -> Response:
        code = {401: 20003, 429: 20429}.get(status, 20500 if status >= 500 else 21211)
        response = _error(code, status)
        return self.throttle(response, retry_after_ms) if status == 429 else response

    def _account(self, account_sid: str) -> Response:
        refused = self._unauthorized(account_sid)
        if refused is not None:
            return refused
        return _json({"sid": account_sid, "friendly_name": "Stand-in account", "status": "active",
                      "type": "Full", "uri": f"/2010-04-01/Accounts/{account_sid}.json"})

    def _list(self, account_sid: str) -> Response:
        refused = self._unauthorized(account_sid)
        if refused is not None:
            return refused
        size = min(int(request.args.get("PageSize", "50")), MAX_PAGE_SIZE)
        wanted = {key.lower(): request.args[key] for key in ("To", "From") if key in request.args}
        with self._lock:
            found = [m for m in reversed(self.messages)
                     if all(m[key] == value for key, value in wanted.items())]
        uri = f"/2010-04-01/Accounts/{account_sid}/Messages.json"
        page = found[:size]
        return _json({"messages": page, "page": 0, "page_size": size, "start": 0,
                      "end": max(len(page) - 1, 0), "uri": f"{uri}?PageSize={size}&Page=0",
                      "first_page_uri": f"{uri}?PageSize={size}&Page=0",
                      "next_page_uri": None, "previous_page_uri": None})

    def _create(self, account_sid: str) -> Response:
        refused = self._unauthorized(account_sid)
        if refused is not None:
            return refused
        to, from_, body = (request.form.get(key, "") for key in ("To", "From", "Body"))
        problem = (21604 if not to else 21602 if not body else 21617 if len(body) > MAX_BODY
                   else self.refusals.get(to))
        if problem is not None:
            return _error(problem, 400)
        message = self._message(account_sid, to, from_, body)
        with self._lock:
            self.messages.append(message)
        self.hold("messages_create")
        return _json(message, 201)

    def _update_call(self, account_sid: str, call_sid: str) -> Response:
        refused = self._unauthorized(account_sid)
        if refused is not None:
            return refused
        if call_sid in self.ended_calls:
            return _error(21220, 400)
        if call_sid not in self.live_calls:
            return _error(20404, 404)
        update = dict(request.form.items())
        if len(update.get("Twiml", "")) > MAX_TWIML:
            return _error(21218, 400)
        with self._lock:
            self.call_updates.append({"CallSid": call_sid, **update})
        return _json({"sid": call_sid, "account_sid": account_sid, "status": "in-progress",
                      "uri": f"/2010-04-01/Accounts/{account_sid}/Calls/{call_sid}.json"})

    def _message(self, account_sid: str, to: str, from_: str, body: str) -> dict[str, Any]:
        sid = f"SM{next(self._serial):08x}{secrets.token_hex(12)}"
        now = format_datetime(datetime.now(UTC).replace(microsecond=0))
        return {
            "account_sid": account_sid, "api_version": "2010-04-01", "body": body,
            "date_created": now, "date_sent": None, "date_updated": now,
            "direction": "outbound-api", "error_code": None, "error_message": None,
            "from": from_, "messaging_service_sid": None, "num_media": "0",
            "num_segments": str(num_segments(body)), "price": None, "price_unit": "USD",
            "sid": sid, "status": "queued", "to": to,
            "subresource_uris": {"media": f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}"
                                          "/Media.json"},
            "uri": f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}.json",
        }

    def _unauthorized(self, account_sid: str) -> Response | None:
        auth = request.authorization
        secrets = {self.account_sid: self.auth_token, **self.api_keys}
        if (auth is None or secrets.get(auth.username or "") != auth.password
                or account_sid != self.account_sid):
            return _error(20003, 401)
        return None


def _error(code: int, status: int) -> Response:
    return _json({"code": code, "message": ERROR_MESSAGES.get(code, "Error"),
                  "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status},
                 status)


def _json(body: Any, status: int = 200) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response
