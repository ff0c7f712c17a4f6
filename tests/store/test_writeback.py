"""A completed call written back into the store: whatever Twilio's Timestamp says, the
call is recorded (at the time it ended, or now when that cannot be read)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from hub.models import Delivery, DeliveryAction, Identity
from lookup.writeback import ProfileWriteBackSink


def ended(timestamp: str | None) -> Delivery:
    now = datetime.now(UTC)
    return Delivery(id=1, call_sid="CA" + "0" * 32, sink="profile",
                    action=DeliveryAction.CALL_LOG, created_at=now, next_attempt_at=now,
                    payload={"phone": "+14155550134", "duration_s": 240,
                             "outcome": "completed", "ended_at": timestamp})


def written_back(store, timestamp: str | None) -> datetime:
    ProfileWriteBackSink(store).deliver(ended(timestamp))
    found = store.lookup([Identity(namespace="Phone", id="+14155550134")], time.monotonic() + 5)
    (event,) = found.events
    return event.timestamp


def test_a_call_is_written_back_at_the_time_it_ended(store):
    assert datetime(2026, 11, 20, 10, 4, 5, tzinfo=UTC) == written_back(
        store, "Fri, 20 Nov 2026 10:04:05 +0000")


@pytest.mark.parametrize("timestamp", [None, "yesterday", "Fri, 31 Dec 9999 23:59:59 -1400",
                                       "Fri, 31 Dec 9999 23:59:59 +0000"])
def test_a_call_whose_end_cannot_be_read_is_written_back_at_once(store, timestamp):
    before = datetime.now(UTC)

    assert before <= written_back(store, timestamp) <= datetime.now(UTC)
