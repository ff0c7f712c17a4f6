"""Generic webhook sink: every delivery POSTed as signed JSON to ``CAHUB_WEBHOOK_URL``.

The body is ``{"key": ..., "action": ..., "payload": ...}``; ``X-Hub-Signature-256`` is
``sha256=`` and the hex HMAC-SHA256 of the exact body bytes with ``CAHUB_WEBHOOK_SECRET``
(GitHub's scheme, so receivers can reuse its verification code). ``Idempotency-Key`` is
the delivery key: a retry sends the same key and the same bytes, and the receiver
dedupes on the key. A 2xx is done; 408, 425, 429 and 5xx are retried (``Retry-After``
honoured); redirects and every other 4xx are permanent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Protocol

import requests
from pydantic import SecretStr

from hub.models import Delivery
from integrations.crm_http import DEFAULT_TIMEOUT_S, ApiClient, required

SERVICE = "webhook"


class WebhookSettings(Protocol):
    @property
    def webhook_url(self) -> str | None: ...
    @property
    def webhook_secret(self) -> SecretStr | None: ...
    @property
    def sink_timeout_s(self) -> float: ...


def signature(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value for ``body``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def envelope(delivery: Delivery) -> bytes:
    """The exact bytes POSTed for a delivery (the same bytes on every retry)."""
    document = {"key": delivery.key, "action": delivery.action.value, "payload": delivery.payload}
    return json.dumps(document, separators=(",", ":"), sort_keys=True,
                      ensure_ascii=False, default=str).encode()


class WebhookSink:
    """POSTs deliveries, signed, to one URL."""

    name = SERVICE

    def __init__(self, url: str, secret: str, *, session: requests.Session | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        if not secret:
            raise ValueError("a webhook needs a signing secret")
        self._http = ApiClient(SERVICE, url, session=session, timeout_s=timeout_s)
        self._secret = secret

    @classmethod
    def from_settings(cls, settings: WebhookSettings,
                      session: requests.Session | None = None) -> WebhookSink:
        secret = settings.webhook_secret
        return cls(required(settings.webhook_url, "CAHUB_WEBHOOK_URL"),
                   required(secret.get_secret_value() if secret else None,
                            "CAHUB_WEBHOOK_SECRET"),
                   session=session, timeout_s=settings.sink_timeout_s)

    def deliver(self, delivery: Delivery) -> None:
        body = envelope(delivery)
        self._http.send("POST", "", data=body, headers={
            "Content-Type": "application/json",
            "X-Hub-Signature-256": signature(self._secret, body),
            "Idempotency-Key": delivery.key,
        })

    def ping(self) -> None:
        """Nothing to call: a receiver has no side-effect-free endpoint we could rely on."""

    def close(self) -> None:
        self._http.close()
