"""Generic webhook sink (and the shared HTTP error mapping it is a thin layer over)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from types import SimpleNamespace

import pytest
import responses
from pydantic import SecretStr

from hub.models import Delivery, DeliveryAction
from hub.ports import PermanentError, TransientError
from integrations.crm_http import parse_retry_after
from integrations.crm_records import phone_keys
from integrations.webhook import WebhookSink

URL = "https://hooks.example.test/cahub?tenant=acme"
CREATED = datetime(2026, 11, 23, 10, 4, 5, tzinfo=UTC)
CALL_SID = "CA" + "12" * 16


def delivery() -> Delivery:
    return Delivery(id=1, call_sid=CALL_SID, sink="webhook", action=DeliveryAction.CALL_LOG,
                    payload={"duration_s": 143, "outcome": "completed", "text": "Zoë ✓"},
                    created_at=CREATED, next_attempt_at=CREATED)


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock() as mock:
        yield mock


@pytest.fixture
def sink() -> Iterator[WebhookSink]:
    sink = WebhookSink(URL, "s3cret")
    yield sink
    sink.close()


def test_the_body_is_signed_with_hmac_sha256_of_the_exact_bytes(
        rsps: responses.RequestsMock, sink: WebhookSink) -> None:
    rsps.post(URL, status=204)

    sink.deliver(delivery())

    request = rsps.calls[0].request
    expected = hmac.new(b"s3cret", request.body, hashlib.sha256).hexdigest()
    assert f"sha256={expected}" == request.headers["X-Hub-Signature-256"]
    assert "application/json" == request.headers["Content-Type"]
    assert {"key": f"{CALL_SID}:webhook:call_log", "action": "call_log",
            "payload": {"duration_s": 143, "outcome": "completed", "text": "Zoë ✓"},
            } == json.loads(request.body)


def test_a_retry_sends_the_same_key_and_the_same_bytes(
        rsps: responses.RequestsMock, sink: WebhookSink) -> None:
    rsps.post(URL, status=503)
    rsps.post(URL, status=200)

    with pytest.raises(TransientError):
        sink.deliver(delivery())
    sink.deliver(delivery())

    first, second = (call.request for call in rsps.calls)
    assert first.body == second.body
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]


@pytest.mark.parametrize("status", [408, 425, 429, 500, 504])
def test_these_statuses_are_retried(
        rsps: responses.RequestsMock, sink: WebhookSink, status: int) -> None:
    rsps.post(URL, status=status)

    with pytest.raises(TransientError):
        sink.deliver(delivery())


@pytest.mark.parametrize("status", [301, 404, 410, 413, 422])
def test_redirects_and_other_client_errors_are_permanent(
        rsps: responses.RequestsMock, sink: WebhookSink, status: int) -> None:
    rsps.post(URL, status=status, headers={"Location": "https://elsewhere.test/"})

    with pytest.raises(PermanentError, match=str(status)):
        sink.deliver(delivery())

    assert 1 == len(rsps.calls)


def test_a_webhook_must_have_a_secret() -> None:
    settings = SimpleNamespace(webhook_url=URL, webhook_secret=None, sink_timeout_s=5.0)

    with pytest.raises(ValueError, match="CAHUB_WEBHOOK_SECRET"):
        WebhookSink.from_settings(settings)


def test_settings_build_a_signing_sink(rsps: responses.RequestsMock) -> None:
    settings = SimpleNamespace(webhook_url=URL, webhook_secret=SecretStr("from-env"),
                               sink_timeout_s=2.5)
    rsps.post(URL, status=200)
    sink = WebhookSink.from_settings(settings)

    sink.deliver(delivery())
    sink.close()

    request = rsps.calls[0].request
    expected = hmac.new(b"from-env", request.body, hashlib.sha256).hexdigest()
    assert f"sha256={expected}" == request.headers["X-Hub-Signature-256"]
    assert (2.5, 2.5) == request.req_kwargs["timeout"]


@pytest.mark.parametrize(("header", "expected"), [
    ("7", 7.0), ("1.5", 1.5), ("-3", 0.0), ("", None), ("soon", None), (None, None),
    ("999999999", 86_400.0),
])
def test_retry_after_in_seconds(header: str | None, expected: float | None) -> None:
    assert expected == parse_retry_after(header)


def test_retry_after_as_an_http_date() -> None:
    later = datetime(2026, 11, 23, 10, 5, 0, tzinfo=UTC)

    assert 30.0 == parse_retry_after(format_datetime(later, usegmt=True),
                                     now=later.timestamp() - 30)


def test_phone_keys_for_a_uk_number_include_the_trunk_prefix() -> None:
    keys = phone_keys("+442079460958")

    assert ("442079460958", "02079460958", "2079460958") == keys.variants


def test_a_number_that_is_not_e164_is_permanent() -> None:
    with pytest.raises(PermanentError):
        phone_keys("415 555 0134")
