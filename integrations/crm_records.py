"""What the CRM sinks share about the records they write: the checked NOTE / CALL_LOG
payload (``Activity``), the keys a caller's number may be filed under, names for a new
record, and a cache of the records found or created lately."""

from __future__ import annotations

import email.utils
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import phonenumbers
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from hub.models import Delivery, DeliveryAction
from hub.ports import PermanentError


@dataclass(frozen=True)
class PhoneKeys:
    """How CRMs may have stored a caller's number: E.164 and digit-only variants."""

    e164: str
    international_digits: str
    national_digits: str
    dialled_digits: str

    @property
    def variants(self) -> tuple[str, ...]:
        """Distinct digit strings, most specific first (for full-text phone searches)."""
        found = (self.international_digits, self.dialled_digits, self.national_digits)
        return tuple(dict.fromkeys(found))


def phone_keys(e164: str) -> PhoneKeys:
    """Search keys for an E.164 number; ``PermanentError`` when it is not one."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException as exc:
        raise PermanentError("payload phone is not an E.164 number") from exc
    national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    return PhoneKeys(
        e164=phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
        international_digits=f"{number.country_code}{number.national_number}",
        national_digits=str(number.national_number),
        dialled_digits="".join(ch for ch in national if ch.isdigit()),
    )


class Activity(BaseModel):
    """A NOTE or CALL_LOG payload as the core renders it; what a CRM sink writes."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    summary: dict[str, Any] = {}
    text: str = ""
    phone: str | None = None
    subject: str = "Inbound call"
    duration_s: int | None = None
    outcome: str | None = None
    outcome_id: str | None = None
    call_status: str | None = None
    notes: str = ""
    started_at: datetime | None = None
    ended_at: datetime | None = None
    direction: str = "inbound"

    @field_validator("started_at", "ended_at", mode="before")
    @classmethod
    def _lenient_time(cls, value: Any) -> datetime | None:
        """ISO 8601 or Twilio's RFC 2822 ``Timestamp``; a time it cannot read is dropped."""
        if isinstance(value, datetime) or value is None:
            return value
        text = str(value)
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            try:
                return email.utils.parsedate_to_datetime(text)
            except (TypeError, ValueError, IndexError):
                return None

    @property
    def log_text(self) -> str:
        """A call log's text: the agent's notes first, then what the pop showed."""
        notes = self.notes.strip()
        return f"{notes}\n\n{self.text}".strip() if notes else self.text

    @property
    def caller_name(self) -> str | None:
        name = self.summary.get("name")
        return (name.strip() or None) if isinstance(name, str) else None


def activity_of(delivery: Delivery) -> Activity:
    """The delivery's checked payload; ``PermanentError`` for a payload no retry can fix."""
    if delivery.action not in (DeliveryAction.NOTE, DeliveryAction.CALL_LOG):
        raise PermanentError(f"a CRM sink cannot deliver {delivery.action.value!r}")
    try:
        activity = Activity.model_validate(delivery.payload)
    except ValidationError as exc:
        fields = sorted({str(err["loc"][0]) for err in exc.errors() if err["loc"]})
        # Not chained: the validation error quotes the input, which may hold a phone number.
        raise PermanentError(f"invalid {delivery.action.value} payload: {fields}") from None
    if delivery.action is DeliveryAction.CALL_LOG and activity.duration_s is None:
        raise PermanentError("invalid call_log payload: ['duration_s']")
    return activity


def activity_time(activity: Activity, delivery: Delivery) -> datetime:
    """When the call started (given, or its end less its duration), else when the delivery
    was made; in UTC."""
    ended = activity.ended_at and activity.ended_at - timedelta(seconds=activity.duration_s or 0)
    moment = activity.started_at or ended or delivery.created_at
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def split_name(name: str | None) -> tuple[str | None, str]:
    """``(first, last)`` for a new CRM record; CRMs insist on a last name."""
    if not name:
        return None, "Unknown caller"
    first, _, last = name.rpartition(" ")
    return (first or None), last


class RecordCache:
    """Phone number -> CRM record id, for records this process found or created lately.

    CRM search indexes lag writes by seconds, so a retry right after creating a
    record could miss it and create a second one; this remembers it instead.
    """

    def __init__(self, max_entries: int = 1024, ttl_s: float = 900.0) -> None:
        self._entries: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()
        self._max_entries = max_entries
        self._ttl_s = ttl_s

    def get(self, phone: str) -> str | None:
        with self._lock:
            entry = self._entries.get(phone)
            if entry is None or entry[0] < time.monotonic():
                self._entries.pop(phone, None)
                return None
            return entry[1]

    def put(self, phone: str, record_id: str) -> None:
        with self._lock:
            self._entries[phone] = (time.monotonic() + self._ttl_s, record_id)
            self._entries.move_to_end(phone)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
