"""Personal data never reaches the logs."""

from __future__ import annotations

import logging

import pytest

from hub.privacy import MaskingFilter, mask_text


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("call from +14155550134 routed", "call from …34 routed"),
        ("caller (415) 555-0134", "caller …34"),
        ("uk +44 20 7946 0958", "uk …58"),
        ("mail ada@example.com", "mail …@example.com"),
        ("call CAdddddddddddddddddddddddddddddddd", "call CAdddddddddddddddddddddddddddddddd"),
        ("took 12.5 ms", "took 12.5 ms"),
        ("Running on http://127.0.0.1:5055", "Running on http://127.0.0.1:5055"),
        ("at 2026-11-20 10:00", "at 2026-11-20 10:00"),
    ],
)
def test_mask_text(text: str, masked: str) -> None:
    assert masked == mask_text(text)


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ('"GET /console?token=agent-Zq8x HTTP/1.1" 303', '"GET /console?token=… HTTP/1.1" 303'),
        ("/x?api_key=k1&x=1&agent_token=t2", "/x?api_key=…&x=1&agent_token=…"),
        ("GET /api/v1/lookup?phone=%2B14155550134 HTTP/1.1",
         "GET /api/v1/lookup?phone=…34 HTTP/1.1"),
        ("?phone=%2b1%20415%20555%200134&x=1", "?phone=…34&x=1"),
        ("?phone=(415)%20555-0134", "?phone=…34"),
        ("?phone=%252B14155550134", "?phone=…34"),
        ("?email=ada%40example.com", "?email=…@example.com"),
        ("?email=ada%2540example.com", "?email=…@example.com"),
        ("/next?to=%2Fconsole%3Ftoken%3Dabc", "/next?to=/console?token=…"),
        ("Authorization: Bearer eyJ0.eyJz.c2ln", "Authorization: …"),
        ("headers {'Authorization': 'Basic dXNlcjpw', 'Accept': '*/*'}",
         "headers {'Authorization': '…', 'Accept': '*/*'}"),
        ('{"client_secret": "s3cr3t", "grant_type": "client_credentials"}',
         '{"client_secret": "…", "grant_type": "client_credentials"}'),
        ("sent with Bearer abc.def-ghi", "sent with Bearer …"),
        ("X-Twilio-Signature: 0LmPkX4dA5yMc8o=", "X-Twilio-Signature: …"),
        ("GET /healthz?probe=%20ok", "GET /healthz?probe=%20ok"),
        ("refused /twilio/voice: signature missing", "refused /twilio/voice: signature missing"),
        ("CAHUB_SECRET_KEY is not set: logins end", "CAHUB_SECRET_KEY is not set: logins end"),
    ],
)
def test_mask_text_hides_secrets_and_encoded_personal_data(text: str, masked: str) -> None:
    assert masked == mask_text(text)


def test_a_decoded_line_break_does_not_split_the_log_line() -> None:
    masked = mask_text("/x?phone=%2B14155550134%0Aforged line")

    assert "\n" not in masked
    assert "4155550134" not in masked


def test_filter_masks_arguments_of_a_log_call() -> None:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "caller %s", ("+14155550134",), None)
    MaskingFilter().filter(record)
    assert "caller …34" == record.getMessage()


def test_filter_masks_tracebacks() -> None:
    try:
        raise ValueError("bad number +14155550134")
    except ValueError:
        import sys

        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    MaskingFilter().filter(record)
    assert "+14155550134" not in (record.exc_text or "")
    assert "…34" in (record.exc_text or "")
