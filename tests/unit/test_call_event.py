"""The write-back of a finished call into the profile store: its event and its time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hub.models import Delivery, DeliveryAction
from lookup.writeback import call_event

NOW = datetime(2026, 11, 23, 10, 5, 0, tzinfo=UTC)


def ended(timestamp: object) -> str:
    delivery = Delivery(id=1, call_sid="CA" + "1" * 32, sink="profile",
                        action=DeliveryAction.CALL_LOG, created_at=NOW, next_attempt_at=NOW,
                        payload={"phone": "+14155550134", "duration_s": 61,
                                 "outcome": "completed", "ended_at": timestamp})
    return str(call_event(delivery, NOW)["timestamp"])


def test_the_event_is_timed_by_twilios_timestamp() -> None:
    assert "2026-11-23T10:04:59Z" == ended("Mon, 23 Nov 2026 10:04:59 +0000")


def test_a_delivery_made_days_after_the_call_keeps_the_time_it_ended() -> None:
    assert "2026-11-16T09:00:00Z" == ended("Mon, 16 Nov 2026 09:00:00 +0000")


@pytest.mark.parametrize("timestamp", [
    "Fri, 31 Dec 9999 23:59:59 -1400",  # cannot even be moved to UTC
    "Tue, 01 Jan 2030 00:00:00 +0000",  # parses, but no call has ended in the future
    "yesterday", None, 42,
])
def test_a_timestamp_that_cannot_be_the_calls_end_is_replaced_by_now(timestamp: object) -> None:
    assert "2026-11-23T10:05:00Z" == ended(timestamp)
