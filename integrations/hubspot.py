"""HubSpot sink: the call note as a note, the call log as a call engagement, on the contact.

Auth is a private-app (or static) bearer token. The caller is found with one CRM search
whose OR-ed filter groups try ``phone`` and ``mobilephone`` against the E.164 number and
HubSpot's calculated searchable numbers against the national digits. Paths are the
``/crm/v3`` (and ``/crm/v4`` association) ones HubSpot serves until September 2027.

Idempotency: HubSpot takes no idempotency key, so each write carries a marker — a call
its CallSid in ``hs_call_external_id``, a note its ``hs_timestamp`` (when the delivery
was made, to the millisecond). Before creating, the sink lists the contact's notes or
calls through the associations API and reads their markers: unlike CRM search, which
lags writes by seconds, those reads see a write at once, so a retry after a lost answer
finds the record instead of writing it again. The listing is followed page by page to
its end, as the record a retry could repeat need not be on the first page; a contact
with more than ``ASSOCIATION_PAGES`` pages of them is not written to at all (a
``TransientError``: the outbox retries, then dead-letters it for an operator) rather
than risk a duplicate the scan could not rule out.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import requests
from pydantic import SecretStr

from hub.desk import DEFAULT_OUTCOMES, Outcome
from hub.models import Delivery, DeliveryAction
from hub.ports import HubError, TransientError
from hub.settings import HubConfig
from integrations.crm_http import (
    DEFAULT_TIMEOUT_S,
    ApiClient,
    BearerAuth,
    SinkSettings,
    check_on_missing,
    field,
    parse_retry_after,
    required,
)
from integrations.crm_records import (
    Activity,
    PhoneKeys,
    RecordCache,
    activity_of,
    activity_time,
    phone_keys,
    split_name,
)

SERVICE = "hubspot"
DEFAULT_BASE_URL = "https://api.hubapi.com"
NOTE_TO_CONTACT = 202
CALL_TO_CONTACT = 194
MARKER_SCAN_LIMIT = 100  # newest associated records read back; one batch read
ASSOCIATION_PAGE = 500  # the most one v4 associations page holds
ASSOCIATION_PAGES = 20  # pages read before giving up: 10,000 notes or calls on one contact
Marker = tuple[str, Callable[[Any], bool]]
CALL_STATUS = {"completed": "COMPLETED", "busy": "BUSY", "no-answer": "NO_ANSWER",
               "failed": "FAILED", "canceled": "CANCELED"}
# HubSpot's own call outcomes (the Calls API guide), by name: an outcome code whose label is
# one of these is logged as it, unless the TOML names another GUID (``hubspot = "…"``).
HUBSPOT_OUTCOMES = {
    "busy": "9d9162e7-6cf3-4944-bf63-4dff82258764",
    "connected": "f240bbac-87c9-4f6e-bf70-924b57d47db7",
    "left live message": "a4c4c377-d246-4b32-a13b-75a56a4cd0ff",
    "left voicemail": "b2cf5968-551e-4856-9783-52b3da59a7d0",
    "no answer": "73a0d17f-1163-4015-bdd5-ec830791da20",
    "wrong number": "17b47fee-58de-441e-a44c-c6300d46f273",
}


def dispositions(outcomes: Iterable[Outcome]) -> dict[str, str]:
    """Outcome code -> HubSpot call outcome GUID, for the codes HubSpot has one for."""
    mapped = {o.id: o.hubspot or HUBSPOT_OUTCOMES.get(o.label.casefold()) for o in outcomes}
    return {outcome: guid for outcome, guid in mapped.items() if guid}


class HubSpotSettings(SinkSettings, Protocol):
    @property
    def hubspot_base_url(self) -> str: ...
    @property
    def hubspot_token(self) -> SecretStr | None: ...
    @property
    def hub(self) -> HubConfig: ...


def _rate_limit(response: requests.Response) -> HubError | None:
    """429s without ``Retry-After``: wait out HubSpot's window (ten seconds, or the day)."""
    if response.status_code != 429:
        return None
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if retry_after is None:
        daily = "DAILY" in response.text.upper()
        retry_after = 3600.0 if daily else 10.0
    return TransientError("hubspot: HTTP 429 RATE_LIMIT", retry_after)


class HubSpotNoteSink:
    """Writes NOTE deliveries as notes and CALL_LOG deliveries as calls."""

    name = SERVICE

    def __init__(self, token: str, *, base_url: str = DEFAULT_BASE_URL,
                 on_missing: str = "create", session: requests.Session | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S,
                 outcomes: Mapping[str, str] | None = None) -> None:
        self._http = ApiClient(SERVICE, base_url.rstrip("/"), session=session, timeout_s=timeout_s,
                               auth=BearerAuth(token), classify=_rate_limit)
        self._on_missing = check_on_missing(on_missing)
        self._contacts = RecordCache()
        self._outcomes = dict(outcomes) if outcomes is not None else dispositions(DEFAULT_OUTCOMES)

    @classmethod
    def from_settings(cls, settings: HubSpotSettings,
                      session: requests.Session | None = None) -> HubSpotNoteSink:
        token = settings.hubspot_token
        return cls(required(token.get_secret_value() if token else None, "CAHUB_HUBSPOT_TOKEN"),
                   base_url=settings.hubspot_base_url, on_missing=settings.crm_on_missing,
                   session=session, timeout_s=settings.sink_timeout_s,
                   outcomes=dispositions(settings.hub.wrapup.outcomes))

    def deliver(self, delivery: Delivery) -> None:
        activity = activity_of(delivery)
        if activity.phone is None:
            return
        contact = self._find_or_create_contact(phone_keys(activity.phone), activity)
        if contact is None:
            return
        kind, properties, association = _engagement(delivery, activity, self._outcomes)
        marker = _marker(kind, properties)
        if not self._already_written(contact, kind, marker):
            self._http.send("POST", f"/crm/v3/objects/{kind}", json={
                "properties": properties, "associations": [_to(contact, association)]})

    def ping(self) -> None:
        self._http.send("GET", "/crm/v3/objects/contacts", params={"limit": 1})

    def close(self) -> None:
        self._http.close()

    def _find_or_create_contact(self, keys: PhoneKeys, activity: Activity) -> str | None:
        contact = self._contacts.get(keys.e164) or self._search(keys)
        if contact is None and self._on_missing == "create":
            contact = self._create_contact(keys, activity)
        if contact is not None:
            self._contacts.put(keys.e164, contact)
        return contact

    def _search(self, keys: PhoneKeys) -> str | None:
        groups = [_equals("phone", keys.e164), _equals("mobilephone", keys.e164),
                  _equals("hs_searchable_calculated_phone_number", keys.national_digits),
                  _equals("hs_searchable_calculated_mobile_number", keys.national_digits)]
        body = self._http.json("POST", "/crm/v3/objects/contacts/search", json={
            "filterGroups": groups, "properties": ["hs_object_id"], "limit": 1,
            "sorts": [{"propertyName": "lastmodifieddate", "direction": "DESCENDING"}]})
        results = field(SERVICE, body, "results")
        return str(field(SERVICE, results, 0, "id")) if results else None

    def _create_contact(self, keys: PhoneKeys, activity: Activity) -> str:
        first, last = split_name(activity.caller_name)
        properties = {"phone": keys.e164, "lastname": last}
        if first:
            properties["firstname"] = first
        body = self._http.json("POST", "/crm/v3/objects/contacts", json={"properties": properties})
        return str(field(SERVICE, body, "id"))

    def _already_written(self, contact: str, kind: str, marker: Marker) -> bool:
        """Whether one of the contact's newest notes / calls carries this delivery's marker."""
        ids = sorted(self._associated(contact, kind), reverse=True)
        if not ids:
            return False
        prop, matches = marker
        read = self._http.json("POST", f"/crm/v3/objects/{kind}/batch/read", json={
            "properties": [prop], "inputs": [{"id": str(i)} for i in ids[:MARKER_SCAN_LIMIT]]})
        return any(matches(field(SERVICE, row, "properties").get(prop))
                   for row in field(SERVICE, read, "results"))

    def _associated(self, contact: str, kind: str) -> set[int]:
        """The ids of all the contact's notes / calls, read page after page to the end."""
        path = f"/crm/v4/objects/contacts/{contact}/associations/{kind}"
        ids: set[int] = set()
        params: dict[str, Any] = {"limit": ASSOCIATION_PAGE}
        for _ in range(ASSOCIATION_PAGES):
            page = self._http.json("GET", path, params=params)
            ids.update(int(field(SERVICE, row, "toObjectId"))
                       for row in field(SERVICE, page, "results"))
            params["after"] = _next_after(page)
            if params["after"] is None:
                return ids
        raise TransientError(f"hubspot: more than {ASSOCIATION_PAGES} pages of {kind} on the"
                             " contact; not written, a duplicate could not be ruled out")


def _next_after(page: Any) -> str | None:
    """The cursor of the page after ``page`` of a v4 listing; None on the last page."""
    try:
        after = page["paging"]["next"]["after"]
    except (KeyError, TypeError):
        return None
    return str(after) if after else None


def _marker(kind: str, properties: dict[str, str]) -> Marker:
    """The property that identifies this delivery's record, and how to recognise it."""
    if kind == "calls":
        sid = properties["hs_call_external_id"]
        return "hs_call_external_id", lambda value: value == sid
    moment = _instant(properties["hs_timestamp"])
    return "hs_timestamp", lambda value: _instant(value) == moment


def _instant(value: Any) -> datetime | None:
    """A HubSpot datetime (ISO 8601 or epoch milliseconds) in UTC, to the millisecond."""
    try:
        if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
            return datetime.fromtimestamp(int(value) / 1000, UTC)
        moment = datetime.fromisoformat(str(value))
    except (TypeError, ValueError, OverflowError):
        return None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _equals(prop: str, value: str) -> dict[str, Any]:
    return {"filters": [{"propertyName": prop, "operator": "EQ", "value": value}]}


def _to(contact: str, association_type: int) -> dict[str, Any]:
    return {"to": {"id": contact}, "types": [
        {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": association_type}]}


def _html(text: str) -> str:
    return html.escape(text).replace("\n", "<br>")


def _timestamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _engagement(delivery: Delivery, activity: Activity,
                outcomes: Mapping[str, str]) -> tuple[str, dict[str, str], int]:
    """``(object type, properties, association type)`` for the delivery."""
    when = _timestamp(activity_time(activity, delivery))
    if delivery.action is DeliveryAction.NOTE:
        body = _html(f"{activity.subject}\n\n{activity.text}".strip())
        return "notes", {"hs_timestamp": when, "hs_note_body": body}, NOTE_TO_CONTACT
    status = activity.call_status or activity.outcome or "completed"
    properties = {
        "hs_timestamp": when, "hs_call_title": activity.subject,
        "hs_call_body": _html(_with_outcome(activity)),
        "hs_call_direction": activity.direction.upper(),
        "hs_call_duration": str((activity.duration_s or 0) * 1000),
        "hs_call_status": CALL_STATUS.get(status, "COMPLETED"),
        "hs_call_external_id": delivery.call_sid, "hs_call_from_number": activity.phone or "",
    }
    disposition = outcomes.get(activity.outcome_id or "")
    if disposition:
        properties["hs_call_disposition"] = disposition
    return "calls", properties, CALL_TO_CONTACT


def _with_outcome(activity: Activity) -> str:
    """The call's body: the agent's outcome (HubSpot shows its own outcomes only, so a code it
    has none for is named here), the notes, then what the pop showed."""
    if not activity.outcome_id or not activity.outcome:
        return activity.log_text
    return f"Outcome: {activity.outcome}\n\n{activity.log_text}"
