"""Adobe IMS OAuth server-to-server access tokens for the AEP adapter.

A token lives ``expires_in`` seconds (24 h for Adobe); it is reused until shortly
before then, and when it must be renewed one thread fetches it while the others
wait (never past their own deadline). A token the Platform refuses (401) is
forgotten, so the next request fetches a fresh one. The client secret and the
tokens never reach a log line or an error message.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import requests
from pydantic import SecretStr

from hub.ports import PermanentError, TransientError
from lookup.remote import check_status, json_body, send, time_left

TOKEN_PATH = "/ims/token/v3"  # noqa: S105 - a URL path, not a password
# Renew early, so no request leaves with a token about to expire on the way.
RENEW_MARGIN_SECONDS = 300.0
RENEW_MARGIN_SHARE = 0.1  # ... or a tenth of the lifetime, for short-lived tokens


@dataclass(frozen=True)
class ImsCredentials:
    """What IMS needs to issue a token (OAuth client credentials)."""

    base_url: str
    client_id: str
    client_secret: SecretStr
    scopes: str

    def __repr__(self) -> str:
        return f"ImsCredentials({self.base_url!r}, client_id={self.client_id!r})"


@dataclass(frozen=True)
class _Token:
    value: str
    renew_at: float  # time.monotonic()

    def __repr__(self) -> str:
        return f"_Token(renew_at={self.renew_at})"


class ImsTokenSource:
    """Hands out a cached bearer token, fetching a new one when it is about to expire."""

    def __init__(
        self, credentials: ImsCredentials, session: requests.Session, timeout: float
    ) -> None:
        self._credentials = credentials
        self._session = session
        self._timeout = timeout
        self._token: _Token | None = None
        self._lock = threading.Lock()

    def token(self, deadline: float) -> str:
        """A valid access token; fetched from IMS only when the cached one is due."""
        current = self._token
        if current is not None and time.monotonic() < current.renew_at:
            return current.value
        return self._renew(deadline)

    def invalidate(self, value: str) -> None:
        """Forget ``value`` (the Platform refused it) unless it was replaced meanwhile."""
        with self._lock:
            if self._token is not None and self._token.value == value:
                self._token = None

    def _renew(self, deadline: float) -> str:
        """One fetch at a time; whoever waited uses the token the first one got."""
        if not self._lock.acquire(timeout=time_left(deadline, self._timeout)):
            raise TransientError("deadline")
        try:
            current = self._token
            if current is None or time.monotonic() >= current.renew_at:
                current = self._token = self._fetch(deadline)
            return current.value
        finally:
            self._lock.release()

    def _fetch(self, deadline: float) -> _Token:
        asked_at = time.monotonic()
        response = send(
            self._session, "POST", self._credentials.base_url.rstrip("/") + TOKEN_PATH,
            deadline=deadline, timeout=self._timeout, what="IMS token",
            data=self._form(), headers={"Accept": "application/json"},
        )
        if response.status_code in (400, 401, 403):
            raise PermanentError(f"IMS token: HTTP {response.status_code} {_error_code(response)}")
        check_status(response, "IMS token")
        return _parse_token(json_body(response, "IMS token"), asked_at)

    def _form(self) -> dict[str, str]:
        """The form IMS expects; in the body, since query strings end up in logs."""
        return {
            "grant_type": "client_credentials",
            "client_id": self._credentials.client_id,
            "client_secret": self._credentials.client_secret.get_secret_value(),
            "scope": self._credentials.scopes,
        }


def _parse_token(body: Any, asked_at: float) -> _Token:
    """``{"access_token": "...", "expires_in": 86399}`` (seconds) as a cached token."""
    value = body.get("access_token") if isinstance(body, dict) else None
    lifetime = body.get("expires_in") if isinstance(body, dict) else None
    if not isinstance(value, str) or not value:
        raise PermanentError("IMS token: the answer carries no access_token")
    if isinstance(lifetime, bool) or not isinstance(lifetime, int | float) or lifetime <= 0:
        raise PermanentError("IMS token: the answer carries no usable expires_in")
    margin = min(RENEW_MARGIN_SECONDS, lifetime * RENEW_MARGIN_SHARE)
    return _Token(value=value, renew_at=asked_at + lifetime - margin)


def _error_code(response: requests.Response) -> str:
    """IMS's ``error`` code (``invalid_client``, ``invalid_scope``): safe to show."""
    try:
        body = response.json()
    except ValueError:
        return ""
    code = body.get("error") if isinstance(body, dict) else None
    return f"({code})" if isinstance(code, str) and code.isidentifier() else ""
