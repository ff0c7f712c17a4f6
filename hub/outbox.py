"""What every outbox adapter shares: the delivery statuses, the clock, and how a failure's
text is cleaned before it is stored (the port itself is ``hub.ports.Outbox``)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from hub.privacy import mask_phone, mask_text

STATUSES = ("pending", "in_flight", "done", "dead", "cancelled")
PURGEABLE = frozenset({"done", "dead", "cancelled"})
FORGOTTEN = "cancelled: the caller was forgotten on request (cahub forget)"
MAX_ERROR_CHARS = 500
DEFAULT_LEASE = timedelta(seconds=60)
# mask_text leaves runs shorter than a full number; a bare local number is personal data too.
DIGIT_RUN = re.compile(r"\d{7,}")


def utc_now() -> datetime:
    return datetime.now(UTC)


def clean_error(error: str) -> str:
    """``error`` fit to store: phone numbers, emails and long digit runs masked, then cut short."""
    masked = DIGIT_RUN.sub(lambda m: mask_phone(m.group(0)), mask_text(error[:10_000]))
    return masked if len(masked) <= MAX_ERROR_CHARS else masked[: MAX_ERROR_CHARS - 1] + "…"
