"""HTTP plumbing shared by every HTTP sink: one session, timeouts, and error translation.

This is the one place where an HTTP status or a ``requests`` exception becomes the
hub's ``TransientError`` (408, 425, 429, 5xx, timeouts, refused connections; with the
``Retry-After`` the service sent) or ``PermanentError`` (anything else), and where a
sink's settings are checked. What the CRM sinks share about records is in
``crm_records``. Error messages carry statuses and vendor error codes, never vendor
message text, URLs with queries, tokens or phone numbers.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any, Protocol

import requests
import requests.auth

from hub.ports import HubError, PermanentError, TransientError

DEFAULT_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 3.05
USER_AGENT = "customer-activity-hub/0.1"
TRANSIENT_STATUSES = frozenset({408, 425, 429})
MAX_RETRY_AFTER_S = 86_400.0
CODE = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}|[0-9]{1,6}")

ON_MISSING = ("create", "skip")

Classifier = Callable[[requests.Response], HubError | None]


class SinkSettings(Protocol):
    """The settings every CRM sink reads (``CAHUB_CRM_ON_MISSING``, ``CAHUB_SINK_TIMEOUT_S``)."""

    @property
    def crm_on_missing(self) -> str: ...

    @property
    def sink_timeout_s(self) -> float: ...


def check_on_missing(value: str) -> str:
    """``on_missing`` must be "create" (a new record with the phone) or "skip"."""
    if value not in ON_MISSING:
        raise ValueError(f"on_missing must be one of {ON_MISSING}, not {value!r}")
    return value


def required(value: str | None, setting: str) -> str:
    """A setting the sink cannot work without; ``ValueError`` naming it when unset."""
    if not value:
        raise ValueError(f"{setting} is not set")
    return value


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date; None if unusable."""
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = moment.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def vendor_code(response: requests.Response) -> str | None:
    """The machine-readable error code in a vendor's error body (never its free text)."""
    try:
        body = response.json()
    except ValueError:
        return None
    if isinstance(body, list) and body and isinstance(body[0], Mapping):
        body = body[0]  # Salesforce answers a list of {message, errorCode, fields}
    if not isinstance(body, Mapping):
        return None
    for name in ("errorCode", "category", "error", "code"):
        value = body.get(name)
        # Only code-like values: a receiver's free text could quote a phone number.
        if isinstance(value, str | int) and CODE.fullmatch(str(value)):
            return str(value)
    return None


def error_for(service: str, response: requests.Response,
              transient: Collection[int] = TRANSIENT_STATUSES) -> HubError:
    """The hub error an unsuccessful ``response`` means."""
    code = vendor_code(response)
    message = f"{service}: HTTP {response.status_code}" + (f" {code}" if code else "")
    status = response.status_code
    if status in transient or status >= 500:
        return TransientError(message, parse_retry_after(response.headers.get("Retry-After")))
    return PermanentError(message)


class BearerAuth(requests.auth.AuthBase):
    """``Authorization: Bearer <token>`` on every request (the token is never logged)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request


class ApiClient:
    """One remote service's HTTP: base URL, shared session, timeouts, translated errors.

    Paths are appended to ``base_url`` (give it without a trailing slash); an empty
    path requests ``base_url`` itself, exactly as configured.
    """

    def __init__(self, service: str, base_url: str, *, session: requests.Session | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S, auth: Any = None,
                 transient: Collection[int] = TRANSIENT_STATUSES,
                 classify: Classifier | None = None) -> None:
        self.service = service
        self.base_url = base_url
        self._owns_session = session is None
        self._session = session if session is not None else requests.Session()
        self._timeout = (min(CONNECT_TIMEOUT_S, timeout_s), timeout_s)
        self._auth = auth
        self._transient = frozenset(transient)
        self._classify = classify

    def send(self, method: str, path: str, *, passthrough: Collection[int] = (),
             **kwargs: Any) -> requests.Response:
        """One request: a 2xx (or a ``passthrough`` status) is returned, anything else raised."""
        response = self._request(method, path, **kwargs)
        if 200 <= response.status_code < 300 or response.status_code in passthrough:
            return response
        raise self.error(response)

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """``send`` and decode the JSON body (an empty body is None)."""
        return decode_json(self.service, self.send(method, path, **kwargs))

    def error(self, response: requests.Response) -> HubError:
        """The hub error for an unsuccessful response, sink-specific rules first."""
        special = self._classify(response) if self._classify else None
        return special or error_for(self.service, response, self._transient)

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = f"{self.base_url}{path}" if path else self.base_url
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json",
                   **kwargs.pop("headers", {})}
        kwargs.setdefault("auth", self._auth)
        try:
            return self._session.request(method, url, headers=headers, timeout=self._timeout,
                                         allow_redirects=False, **kwargs)
        except (requests.Timeout, requests.ConnectionError) as exc:
            # Not str(exc): it repeats the URL, and queries carry phone numbers.
            raise TransientError(f"{self.service}: {type(exc).__name__}") from exc
        except requests.RequestException as exc:
            raise PermanentError(f"{self.service}: {type(exc).__name__}") from exc


def decode_json(service: str, response: requests.Response) -> Any:
    """The JSON body; a success that is not JSON is treated as a passing fault."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError as exc:
        raise TransientError(f"{service}: HTTP {response.status_code} body is not JSON") from exc


def field(service: str, body: Any, *path: str | int) -> Any:
    """``body[path...]``, or a ``TransientError`` when the response lacks it."""
    value = body
    try:
        for step in path:
            value = value[step]
    except (KeyError, IndexError, TypeError) as exc:
        raise TransientError(f"{service}: unexpected response shape") from exc
    return value
