"""Writing a finished call back into the embedded store as an experience event.

The next agent's pop then shows "Called, 4 min, Refund issued" (the agent's outcome, or
Twilio's status of a call nobody wrapped up) among the caller's recent activity. The
event's ``_id`` is derived from the CallSid, so a retried delivery changes nothing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from hub.models import Delivery
from hub.ports import PermanentError
from lookup.store import ProfileStore
from lookup.store.validation import EARLIEST

WRITE_BACK_DATASET = "calls"
CLOCK_SKEW = timedelta(days=1)  # how far ahead of this host's clock a call may end


def call_event(delivery: Delivery, now: datetime) -> dict[str, Any]:
    """The XDM experience event of one finished call."""
    payload = delivery.payload
    return {
        "_id": f"call-{delivery.call_sid}",
        "timestamp": _ended_at(payload.get("ended_at"), now).isoformat().replace("+00:00", "Z"),
        "eventType": "call.completed",
        "identityMap": {"Phone": [{"id": payload["phone"], "primary": True}]},
        "_cah": {"call": {"callSid": delivery.call_sid,
                          "direction": payload.get("direction") or "inbound",
                          "durationSeconds": payload.get("duration_s") or 0,
                          "outcome": payload.get("outcome"),
                          "outcomeId": payload.get("outcome_id")}},
    }


def _ended_at(value: object, now: datetime) -> datetime:
    """Twilio's RFC 2822 ``Timestamp`` when it parses into a moment the store takes and
    at most ``CLOCK_SKEW`` ahead of now, else now: the call is recorded either way.

    A delivery retried days later (``cahub outbox retry``) keeps the time the call ended;
    a time at the calendar's edges (which cannot even be moved to UTC) or in the future
    is no call's end, and must not become an event that sorts after every other.
    """
    if isinstance(value, str):
        try:
            ended = parsedate_to_datetime(value).astimezone(UTC)
        except (TypeError, ValueError, OverflowError):
            return now
        return ended if EARLIEST <= ended <= now + CLOCK_SKEW else now
    return now


class ProfileWriteBackSink:
    """``hub.ports.Sink`` that records finished calls in the embedded store."""

    name = "profile"

    def __init__(self, store: ProfileStore) -> None:
        self._store = store

    def deliver(self, delivery: Delivery) -> None:
        event = call_event(delivery, datetime.now(UTC))
        report = self._store.ingest("events", [json.dumps(event)], dataset=WRITE_BACK_DATASET)
        if report.rejected:
            raise PermanentError(f"the store refused the call event: {report.rejected[0].reason}")

    def ping(self) -> None:
        self._store.ping()
