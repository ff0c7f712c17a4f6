"""SMS summaries for the sales rep: fitting the text into one segment, and sending it.

Text: GSM-7 carries 160 septets in one segment (153 per part when concatenated; the
extension characters ``^{}\\[~]|€`` and form feed take two); any other character makes
the whole message UCS-2, 70 UTF-16 units (67 per part, an emoji taking two).

Sending goes through twilio-python with a request timeout (its default is none: a hung
request would hold a worker for ever) and the API host from ``CAHUB_TWILIO_BASE_URL``.
Idempotency: the Messages API takes no idempotency key. Before sending, the sink lists
the latest messages from the same sender to the same number and takes one with the same
body, created (by Twilio's clock) since the delivery was made (by the hub's) less
``CLOCK_SKEW``, as already sent. The allowance keeps a hub clock running ahead of
Twilio's from missing the earlier send. Each call's body ends with its own reference
(``Ref`` and the CallSid's last six characters, see ``hub.deliveries``), so the check is
per call: the same caller calling again within those minutes still texts the rep.
What is left is a narrow at-least-once window: a create whose answer was lost *and* whose
message Twilio had not yet recorded when the retry looked; the rep may then get it twice.
"""

from __future__ import annotations

import json
import logging
import threading
from bisect import bisect_right
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import requests
from pydantic import SecretStr
from twilio.base.exceptions import TwilioException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from hub.models import Delivery, DeliveryAction
from hub.ports import HubError, PermanentError, TransientError
from integrations.crm_http import DEFAULT_TIMEOUT_S, parse_retry_after, required

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")
ELLIPSIS = "..."
PERMANENT_CODES = frozenset({21211, 21610, 21614})  # invalid To, unsubscribed, not SMS-capable
RECENT_MESSAGES = 20
CLOCK_SKEW = timedelta(minutes=5)  # how far the hub's clock may run ahead of Twilio's
# twilio-python logs every request URL at INFO, and listing messages puts the numbers in
# the query (URL-encoded, past the hub's log masking): its log goes nowhere instead.
_UNLOGGED = logging.Logger("cahub.twilio.unlogged", logging.CRITICAL + 1)


def _septets(text: str) -> list[int] | None:
    costs = []
    for char in text:
        if char in GSM7_BASIC:
            costs.append(1)
        elif char in GSM7_EXTENSION:
            costs.append(2)
        else:
            return None
    return costs


def gsm7_length(text: str) -> int | None:
    """Septets ``text`` takes in GSM-7 (extension characters count 2); None if not GSM-7."""
    costs = _septets(text)
    return None if costs is None else sum(costs)


def _parts(costs: Sequence[int], single: int, each: int) -> int:
    if sum(costs) <= single:
        return 1
    count, used = 1, 0
    for cost in costs:  # a two-unit character is never split between parts
        if used + cost > each:
            count, used = count + 1, 0
        used += cost
    return count


def segments(text: str) -> int:
    """How many SMS segments ``text`` is sent as (GSM-7 160/153, UCS-2 70/67)."""
    costs = _septets(text)
    if costs is not None:
        return _parts(costs, 160, 153)
    return _parts([len(char.encode("utf-16-le")) // 2 for char in text], 70, 67)


def fit_sms(parts: Sequence[str], limit_chars: int = 320, separator: str = "\n", *,
            suffix: str = "") -> str:
    """Join ``parts`` (most important first) into one SMS body, ending with ``suffix``.

    When the first part fits one segment, the body is one segment: GSM-7 if the first
    part is (a trailing part that would turn the message into UCS-2 is dropped), UCS-2
    if it is not (a non-Latin name). Trailing parts that do not fit are dropped, the
    last that fits in part is truncated. Otherwise the body stays within ``limit_chars``.
    ``suffix`` (a call reference) is always kept, on its own last line, and counted.
    """
    kept = [part.strip() for part in parts if part and part.strip()]
    if not kept:
        return ""
    gsm7 = gsm7_length(kept[0]) is not None

    def whole(text: str) -> str:
        return f"{text}{separator}{suffix}" if suffix and text else text or suffix

    def in_alphabet(text: str) -> bool:
        return not gsm7 or gsm7_length(text) is not None

    def one_segment(text: str) -> bool:
        body = whole(text)
        return len(body) <= limit_chars and segments(body) == 1 and in_alphabet(body)

    if one_segment(kept[0]):
        return whole(_pack(kept, separator, one_segment, in_alphabet))
    return whole(_pack(kept, separator, lambda text: len(whole(text)) <= limit_chars,
                       lambda _: True))


def _pack(parts: Sequence[str], separator: str, fits: Callable[[str], bool],
          admissible: Callable[[str], bool]) -> str:
    body = ""
    for part in filter(admissible, parts):
        candidate = f"{body}{separator}{part}" if body else part
        if fits(candidate):
            body = candidate
            continue
        cut = _truncated(body, part, separator, fits)
        if cut is not None:
            return cut
    return body


def _truncated(body: str, part: str, separator: str, fits: Callable[[str], bool]) -> str | None:
    """``body`` plus the longest prefix of ``part`` (and an ellipsis) that fits, if useful."""
    def joined(size: int) -> str:
        cut = part[:size].rstrip() + ELLIPSIS
        return f"{body}{separator}{cut}" if body else cut

    # fits() only turns false as the prefix grows: find the first size that fails.
    size = bisect_right(range(len(part)), False, key=lambda n: not fits(joined(n))) - 1
    useful = size >= (1 if not body else min(12, len(part) // 2))
    return joined(size) if size >= 0 and useful else None


class SmsSettings(Protocol):
    @property
    def twilio_base_url(self) -> str: ...
    @property
    def twilio_account_sid(self) -> str | None: ...
    @property
    def twilio_auth_token(self) -> SecretStr | None: ...
    @property
    def sms_from(self) -> str | None: ...
    @property
    def sink_timeout_s(self) -> float: ...


class TwilioSmsSink:
    """Sends SMS deliveries (``{"to": "+1…", "body": "…"}``, optionally ``"from"``; the
    configured ``CAHUB_SMS_FROM`` otherwise) with Twilio's Messages API."""

    name = "sms"

    def __init__(self, account_sid: str, auth_token: str, from_number: str, *,
                 base_url: str = "https://api.twilio.com",
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self._from = from_number
        self._throttle = threading.local()
        self._http = TwilioHttpClient(timeout=timeout_s, logger=_UNLOGGED,
                                      request_hooks={"response": [self._note_retry_after]})
        self._client = Client(account_sid, auth_token, http_client=self._http)
        # The settings choose the host, not TWILIO_EDGE / TWILIO_REGION in the environment.
        self._client.edge = self._client.region = None
        self._client.api.base_url = base_url.rstrip("/")

    @classmethod
    def from_settings(cls, settings: SmsSettings,
                      session: requests.Session | None = None) -> TwilioSmsSink:
        """``session`` is accepted for symmetry with the HTTP sinks; twilio keeps its own."""
        token = settings.twilio_auth_token
        return cls(required(settings.twilio_account_sid, "CAHUB_TWILIO_ACCOUNT_SID"),
                   required(token.get_secret_value() if token else None,
                            "CAHUB_TWILIO_AUTH_TOKEN"),
                   required(settings.sms_from, "CAHUB_SMS_FROM"),
                   base_url=settings.twilio_base_url, timeout_s=settings.sink_timeout_s)

    def deliver(self, delivery: Delivery) -> None:
        to, body = _message(delivery)
        sender = str(delivery.payload.get("from") or self._from)
        messages = self._client.api.account.messages
        if not self._call(lambda: _already_sent(messages, to, sender, body, delivery)):
            self._call(lambda: messages.create(to=to, from_=sender, body=body))

    def ping(self) -> None:
        self._call(self._client.api.account.fetch)

    def close(self) -> None:
        if self._http.session is not None:
            self._http.session.close()

    def _note_retry_after(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._throttle.retry_after = parse_retry_after(response.headers.get("Retry-After"))

    def _call(self, action: Callable[[], Any]) -> Any:
        """Run a twilio call, its failures translated into the hub's errors."""
        self._throttle.retry_after = None
        try:
            return action()
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise TransientError(f"twilio: {type(exc).__name__}") from exc
        except requests.RequestException as exc:
            raise PermanentError(f"twilio: {type(exc).__name__}") from exc
        except TwilioException as exc:
            raise _twilio_error(exc, self._throttle.retry_after) from exc
        except (ValueError, KeyError, TypeError) as exc:  # twilio could not read the answer
            raise TransientError(f"twilio: unexpected response ({type(exc).__name__})") from exc


def _twilio_error(exc: TwilioException, retry_after: float | None) -> HubError:
    # A failed page fetch is a bare TwilioException with the response as its second arg.
    response = exc.args[1] if len(exc.args) > 1 else None
    status = getattr(exc, "status", getattr(response, "status_code", None))
    code = getattr(exc, "code", None) or _body_code(response)
    message = f"twilio: HTTP {status} code {code}"
    if code in PERMANENT_CODES:
        return PermanentError(message)
    if status is None or status == 429 or code == 20429 or status >= 500:
        return TransientError(message, retry_after)
    return PermanentError(message)


def _body_code(response: Any) -> int | None:
    """The Twilio error code in a failed response's JSON body, if it has one."""
    try:
        return int(json.loads(response.text)["code"])
    except (AttributeError, ValueError, TypeError, KeyError):
        return None


def _message(delivery: Delivery) -> tuple[str, str]:
    to, body = delivery.payload.get("to"), delivery.payload.get("body")
    if delivery.action is not DeliveryAction.SMS:
        raise PermanentError(f"the SMS sink cannot deliver {delivery.action.value!r}")
    if not isinstance(to, str) or not to or not isinstance(body, str) or not body.strip():
        raise PermanentError("invalid sms payload: needs 'to' and 'body'")
    return to, body


def _already_sent(messages: Any, to: str, from_: str, body: str, delivery: Delivery) -> bool:
    """Whether Twilio already holds this message, created since the delivery was made."""
    made = delivery.created_at
    since = (made.replace(tzinfo=UTC) if made.tzinfo is None else made) - CLOCK_SKEW
    since = since.replace(microsecond=0)  # Twilio's times are whole seconds
    for message in messages.list(to=to, from_=from_, limit=RECENT_MESSAGES):
        created = message.date_created
        same_body = (message.body or "").endswith(body)  # trial accounts prefix the body
        if same_body and isinstance(created, datetime) and created >= since:
            return True
    return False
