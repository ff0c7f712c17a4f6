"""A sink's HTTP requests, logged at DEBUG, carry no number: urllib3 logs each request's URL,
and the SMS sink's check for an earlier send puts the rep's number in the query.

The hub's own logging set-up (``configure_logging``, what every ``cahub`` command uses) is
installed at DEBUG, the SMS sink sends through a real HTTP server (the Twilio stand-in:
``responses`` would answer before urllib3 logs anything), and all that was logged is read.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from hub.models import Delivery, DeliveryAction
from hub.privacy import configure_logging
from integrations.sms import TwilioSmsSink
from tests.standins.twilio import TwilioStandIn

ACCOUNT_SID = "AC" + "7" * 32
AUTH_TOKEN = "stand-in-auth-token"
REP = "+14155550199"


@pytest.fixture
def logged(capsys: pytest.CaptureFixture[str]) -> Iterator[pytest.CaptureFixture[str]]:
    """The hub's logging set-up at DEBUG, writing to the captured stderr; undone afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging("DEBUG")
    yield capsys
    root.handlers[:] = handlers
    root.setLevel(level)


def test_an_sms_sent_at_debug_logs_no_number(logged: pytest.CaptureFixture[str]) -> None:
    now = datetime.now(UTC)
    delivery = Delivery(id=1, call_sid="CA" + "1" * 32, sink="sms", action=DeliveryAction.SMS,
                        payload={"to": REP, "body": "Ada Lovelace (gold) calling"},
                        created_at=now, next_attempt_at=now)
    with TwilioStandIn(ACCOUNT_SID, AUTH_TOKEN) as twilio:
        sink = TwilioSmsSink(ACCOUNT_SID, AUTH_TOKEN, "+18005550100", base_url=twilio.base_url,
                             timeout_s=5)
        try:
            sink.deliver(delivery)
        finally:
            sink.close()

    output = logged.readouterr().err
    assert "Messages.json?" in output  # urllib3 logged the listing's URL, masked
    assert [] == [line for line in output.splitlines() if "5550199" in line]
