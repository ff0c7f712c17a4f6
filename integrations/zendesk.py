"""Zendesk sink: the call note and the call log as internal notes on a ticket of the caller.

Auth is an API token (HTTP Basic ``{email}/token`` : ``{api_token}``). The caller is found
with Zendesk's caller-lookup recipe, ``type:user role:end-user phone:*<national digits>``
(digits only; the leading ``*`` matches any stored formatting). An unknown caller, with
``on_missing = "create"``, becomes an end user through ``create_or_update`` keyed by an
external id derived from the number, so a retry updates that user instead of adding one.

Which ticket (``CAHUB_ZENDESK_TICKET``): ``"new"`` (default, as Zendesk Talk does) — one
ticket per call, found again by ``external_id`` = CallSid, so the call log joins the
note; ``"open"`` — the caller's most recently updated unsolved ticket, or a new one.

Idempotency: a ticket is created with ``Idempotency-Key`` = the delivery key, which
Zendesk honours (a retried create answers the first ticket). Adding a note to an existing
ticket is an update, which the key does not cover: each note ends with a reference line
holding the key, and the sink reads the ticket's newest comments before adding it.
"""

from __future__ import annotations

from typing import Protocol

import requests
from pydantic import SecretStr

from hub.models import Delivery, DeliveryAction
from integrations.crm_http import (
    DEFAULT_TIMEOUT_S,
    TRANSIENT_STATUSES,
    ApiClient,
    SinkSettings,
    check_on_missing,
    field,
    required,
)
from integrations.crm_records import Activity, PhoneKeys, RecordCache, activity_of, phone_keys

SERVICE = "zendesk"
TICKET_MODES = ("new", "open")
UNSOLVED = frozenset({"new", "open", "pending", "hold"})


class ZendeskSettings(SinkSettings, Protocol):
    @property
    def zendesk_base_url(self) -> str | None: ...
    @property
    def zendesk_email(self) -> str | None: ...
    @property
    def zendesk_api_token(self) -> SecretStr | None: ...
    @property
    def zendesk_ticket(self) -> str: ...


def reference(delivery: Delivery) -> str:
    """The line that marks a note as this delivery's (agents see it as a reference)."""
    return f"[cahub {delivery.key}]"


class ZendeskNoteSink:
    """Writes NOTE and CALL_LOG deliveries as internal notes on the caller's ticket."""

    name = SERVICE

    def __init__(self, base_url: str, email: str, api_token: str, *, ticket: str = "new",
                 on_missing: str = "create", session: requests.Session | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        if ticket not in TICKET_MODES:
            raise ValueError(f"ticket must be one of {TICKET_MODES}, not {ticket!r}")
        # 409: Zendesk's answer to two updates of one ticket at once; the next try works.
        self._http = ApiClient(SERVICE, base_url.rstrip("/"), session=session, timeout_s=timeout_s,
                               auth=(f"{email}/token", api_token),
                               transient=TRANSIENT_STATUSES | {409})
        self._ticket_mode = ticket
        self._on_missing = check_on_missing(on_missing)
        self._users = RecordCache()

    @classmethod
    def from_settings(cls, settings: ZendeskSettings,
                      session: requests.Session | None = None) -> ZendeskNoteSink:
        token = settings.zendesk_api_token
        return cls(
            required(settings.zendesk_base_url, "CAHUB_ZENDESK_BASE_URL"),
            required(settings.zendesk_email, "CAHUB_ZENDESK_EMAIL"),
            required(token.get_secret_value() if token else None, "CAHUB_ZENDESK_API_TOKEN"),
            ticket=settings.zendesk_ticket, on_missing=settings.crm_on_missing,
            session=session, timeout_s=settings.sink_timeout_s)

    def deliver(self, delivery: Delivery) -> None:
        activity = activity_of(delivery)
        if activity.phone is None:
            return
        user = self._find_or_create_user(phone_keys(activity.phone), activity)
        if user is None:
            return
        body = _note(delivery, activity)
        ticket = self._target_ticket(user, delivery.call_sid)
        if ticket is None:
            self._create_ticket(delivery, activity, user, body)
        elif not self._has_note(ticket, reference(delivery)):
            self._http.send("PUT", f"/api/v2/tickets/{ticket}.json",
                            headers={"Idempotency-Key": delivery.key},
                            json={"ticket": {"comment": {"body": body, "public": False}}})

    def ping(self) -> None:
        self._http.send("GET", "/api/v2/users/me.json")

    def close(self) -> None:
        self._http.close()

    def _find_or_create_user(self, keys: PhoneKeys, activity: Activity) -> str | None:
        user = self._users.get(keys.e164) or self._search_user(keys)
        if user is None and self._on_missing == "create":
            user = self._create_user(keys, activity)
        if user is not None:
            self._users.put(keys.e164, user)
        return user

    def _search_user(self, keys: PhoneKeys) -> str | None:
        query = f"type:user role:end-user phone:*{keys.national_digits}"
        body = self._http.json("GET", "/api/v2/search.json", params={"query": query})
        users = [row for row in field(SERVICE, body, "results")
                 if isinstance(row, dict) and row.get("result_type", "user") == "user"]
        return str(field(SERVICE, users, 0, "id")) if users else None

    def _create_user(self, keys: PhoneKeys, activity: Activity) -> str:
        user = {"name": activity.caller_name or f"Caller {keys.e164}", "phone": keys.e164,
                "role": "end-user", "external_id": f"cahub-phone:{keys.e164}"}
        body = self._http.json("POST", "/api/v2/users/create_or_update.json", json={"user": user})
        return str(field(SERVICE, body, "user", "id"))

    def _target_ticket(self, user: str, call_sid: str) -> str | None:
        if self._ticket_mode == "open":
            path = f"/api/v2/users/{user}/tickets/requested.json"
            params = {"sort_by": "updated_at", "sort_order": "desc"}
        else:
            path, params = "/api/v2/tickets.json", {"external_id": call_sid}
        tickets = field(SERVICE, self._http.json("GET", path, params=params), "tickets")
        # A closed ticket takes no more comments; "open" mode wants one still being worked.
        wanted = UNSOLVED if self._ticket_mode == "open" else UNSOLVED | {"solved"}
        usable = [t for t in tickets if isinstance(t, dict) and t.get("status") in wanted]
        return str(field(SERVICE, usable, 0, "id")) if usable else None

    def _create_ticket(self, delivery: Delivery, activity: Activity, user: str,
                       body: str) -> None:
        requester = int(user) if user.isdigit() else user
        ticket = {"subject": activity.subject, "requester_id": requester,
                  "external_id": delivery.call_sid, "tags": ["cahub", "inbound_call"],
                  "comment": {"body": body, "public": False}}
        self._http.send("POST", "/api/v2/tickets.json", json={"ticket": ticket},
                        headers={"Idempotency-Key": delivery.key})

    def _has_note(self, ticket: str, marker: str) -> bool:
        body = self._http.json("GET", f"/api/v2/tickets/{ticket}/comments.json",
                               params={"sort_order": "desc"})
        return any(marker in str(comment.get("body", ""))
                   for comment in field(SERVICE, body, "comments") if isinstance(comment, dict))


def _note(delivery: Delivery, activity: Activity) -> str:
    """The internal note's text, ending with the delivery's reference line."""
    lines = [activity.subject, "", activity.text]
    if delivery.action is DeliveryAction.CALL_LOG:
        lines = [activity.subject, "", activity.log_text, "",
                 f"Duration: {activity.duration_s} s. Outcome: {activity.outcome or '-'}."]
    return "\n".join([*lines, "", reference(delivery)]).strip()
