"""HTTP calls of the remote profile providers (AEP, Segment), bounded by a deadline.

Every request waits at most ``min(the provider's timeout, what is left of the
deadline)``; ``requests``' failures and the vendors' error statuses leave here as the
hub's own ``TransientError`` / ``PermanentError``. Messages never carry a URL or a
body: a lookup URL holds the caller's phone number or e-mail address.

``requests`` applies the timeout to the connection and to each read, not to the
whole exchange: a server that trickles bytes could overrun the deadline a little.
"""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from hub.ports import PermanentError, TransientError

# Statuses worth retrying later besides 429 and 5xx: a request timeout and a conflict.
TRANSIENT_STATUSES = frozenset({408, 409})
# Lookups run on many threads at once; requests' default pool keeps only 10 connections.
POOL_SIZE = 32


def pooled_session() -> requests.Session:
    """A session that keeps enough connections alive for concurrent lookups."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=POOL_SIZE)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def time_left(deadline: float, timeout: float) -> float:
    """Seconds the next request may take; ``TransientError("deadline")`` when none are left."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TransientError("deadline")
    return min(timeout, left)


def send(
    session: requests.Session, method: str, url: str, *,
    deadline: float, timeout: float, what: str, **kwargs: Any,
) -> requests.Response:
    """One request within the deadline; connection failures become ``TransientError``."""
    wait = time_left(deadline, timeout)
    try:
        return session.request(method, url, timeout=wait, **kwargs)
    except requests.Timeout as exc:
        cut_short = wait < timeout
        raise TransientError("deadline" if cut_short else f"{what}: timed out") from exc
    except requests.RequestException as exc:
        raise TransientError(f"{what}: {type(exc).__name__}") from exc


def check_status(response: requests.Response, what: str) -> None:
    """Raise the hub's error for a failed response (429, 5xx: transient; other 4xx: not)."""
    status = response.status_code
    if status < 400:
        return
    if status == 429:
        raise TransientError(f"{what}: throttled (HTTP 429)", retry_after(response))
    if status >= 500 or status in TRANSIENT_STATUSES:
        raise TransientError(f"{what}: HTTP {status}", retry_after(response))
    raise PermanentError(f"{what}: HTTP {status}")


def json_body(response: requests.Response, what: str) -> Any:
    """The decoded JSON body; an unreadable one (a proxy's error page) is transient."""
    try:
        return response.json()
    except ValueError as exc:
        raise TransientError(f"{what}: the answer is not JSON") from exc


def retry_after(response: requests.Response) -> float | None:
    """Seconds to wait: AEP's ``retryAfterMs`` in the body, else the ``Retry-After`` header."""
    millis = _retry_after_ms(response)
    if millis is not None:
        return millis / 1000
    return _retry_after_header(response.headers.get("Retry-After"))


def _retry_after_ms(response: requests.Response) -> float | None:
    """AEP answers 429 with a list of ``{"retryAfterMs": "500", ...}`` (strings)."""
    try:
        body = response.json()
    except ValueError:
        return None
    items = body if isinstance(body, list) else [body]
    for item in items:
        value = item.get("retryAfterMs") if isinstance(item, dict) else None
        number = _number(value)
        if number is not None:
            return number
    return None


def _retry_after_header(value: str | None) -> float | None:
    """``Retry-After`` as delay-seconds or as an HTTP date."""
    if not value:
        return None
    number = _number(value)
    if number is not None:
        return number
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None
