"""A stand-in for HubSpot's CRM API: exactly what the hub's HubSpot sink calls.

It speaks the shapes of ``reference/crm-cdp.md`` §3 on the legacy ``/crm/v3`` paths,
with a private-app bearer token: ``GET /crm/v3/objects/contacts`` (the health ping),
``POST /crm/v3/objects/contacts/search`` (OR-ed ``filterGroups`` of AND-ed filters, at
most 5 groups and 25 filters; ``EQ``, ``NEQ``, ``HAS_PROPERTY``, ``NOT_HAS_PROPERTY``;
the calculated ``hs_searchable_calculated_phone_number`` / ``…_mobile_number`` hold a
number's national digits, whatever its stored formatting), ``POST
/crm/v3/objects/contacts``, ``POST /crm/v3/objects/{notes|calls}`` (``hs_timestamp``
required, ISO 8601 or epoch ms, answered as ISO with milliseconds; the association to a
contact must be HUBSPOT_DEFINED 202 for a note, 194 for a call; ``hs_call_duration`` in
whole milliseconds), ``POST /crm/v3/objects/{notes|calls}/batch/read`` (at most 100
inputs; 207 naming the ids it could not find) and ``GET
/crm/v4/objects/contacts/{id}/associations/{notes|calls}``. Errors are HubSpot's
``{status: "error", message, correlationId, category}``; a 429 from ``fail_next`` is the
``RATE_LIMIT`` body, with ``Retry-After`` in seconds when ``retry_after_ms`` is given.

Request kinds: ``contacts_list``, ``contacts_search``, ``contacts_create``, and
``{notes|calls}_{create|read|associations}``. ``hold_next()`` makes the next creates of
a kind keep the record, then hold their answer, as when HubSpot wrote it but the answer
was lost.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import phonenumbers
from flask import Response, jsonify, request

from tests.standins import StandIn

V3 = "/crm/v3/objects"
TO_CONTACT = {"notes": 202, "calls": 194}  # HUBSPOT_DEFINED association types
OPERATORS = ("EQ", "NEQ", "HAS_PROPERTY", "NOT_HAS_PROPERTY")
CALCULATED = {"phone": "hs_searchable_calculated_phone_number",
              "mobilephone": "hs_searchable_calculated_mobile_number"}
DEFAULTS = {"contacts": ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate",
                         "lastname"),
            "notes": ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
            "calls": ("hs_createdate", "hs_lastmodifieddate", "hs_object_id")}


@dataclass
class CrmObject:
    """A contact, note or call as HubSpot holds it (``associations``: contact id, type)."""

    id: str
    properties: dict[str, str]
    created_at: str
    associations: list[tuple[str, int]] = field(default_factory=list)

    def view(self, kind: str, wanted: list[str] | None = None) -> dict[str, Any]:
        names = [*DEFAULTS[kind], *(wanted or [])] if wanted is not None else self.properties
        return {"id": self.id, "properties": {n: self.properties.get(n) for n in names},
                "createdAt": self.created_at, "updatedAt": self.created_at, "archived": False}


class HubSpotStandIn(StandIn):
    """One HubSpot portal: its contacts, and the notes and calls written on them."""

    HELD_KIND = "notes_create"

    def __init__(self, token: str = "pat-na1-standin") -> None:  # noqa: S107 - a test credential
        super().__init__()
        self.token = token
        self.objects: dict[str, dict[str, CrmObject]] = {"contacts": {}, "notes": {}, "calls": {}}
        self._ids = itertools.count(10_001)
        self._routes()

    def add_contact(self, **properties: str) -> str:
        """A contact already in the CRM; its id."""
        return self._store("contacts", properties).id

    def engagements(self, kind: str, contact: str) -> list[CrmObject]:
        """The ``notes`` or ``calls`` associated with ``contact``."""
        return [o for o in self.objects[kind].values()
                if any(to == contact for to, _ in o.associations)]

    def error_response(self, status: int, retry_after_ms: int | None) -> Response:
        if status != 429:
            return _error("INTERNAL_ERROR", "internal error", status)
        return self.throttle(_json({"status": "error", "errorType": "RATE_LIMIT",
                                    "message": "You have reached your ten_secondly_rolling limit.",
                                    "correlationId": str(uuid.uuid4()),
                                    "policyName": "TEN_SECONDLY_ROLLING"}, 429), retry_after_ms)

    def _routes(self) -> None:
        self.app.before_request(self._authenticate)
        add = self.app.add_url_rule
        add(f"{V3}/contacts", "contacts_list", self._list)
        add(f"{V3}/contacts", "contacts_create", self._create_contact, methods=["POST"])
        add(f"{V3}/contacts/search", "contacts_search", self._search, methods=["POST"])
        for kind in TO_CONTACT:
            add(f"{V3}/{kind}", f"{kind}_create", self._create_engagement, methods=["POST"],
                defaults={"kind": kind})
            add(f"{V3}/{kind}/batch/read", f"{kind}_read", self._batch_read, methods=["POST"],
                defaults={"kind": kind})
            add(f"/crm/v4/objects/contacts/<contact>/associations/{kind}",
                f"{kind}_associations", self._associations, defaults={"kind": kind})

    def _authenticate(self) -> Response | None:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return _error("INVALID_AUTHENTICATION", "Authentication credentials not found.", 401)
        return None

    def _list(self) -> Response:
        limit = int(request.args.get("limit", "10"))
        contacts = list(self.objects["contacts"].values())[:limit]
        return _json({"results": [c.view("contacts", []) for c in contacts]})

    def _create_contact(self) -> Response:
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
            return _invalid("properties are required")
        return _json(self._store("contacts", body["properties"]).view("contacts"), 201)

    def _search(self) -> Response:
        body = request.get_json(silent=True)
        groups = body.get("filterGroups", []) if isinstance(body, dict) else None
        if not isinstance(groups, list) or not all(_is_group(g) for g in groups):
            return _invalid("filterGroups must be a list of {filters: [...]}")
        if len(groups) > 5 or sum(len(g["filters"]) for g in groups) > 25:
            return _invalid("too many filterGroups or filters")
        if any(f.get("operator") not in OPERATORS for g in groups for f in g["filters"]):
            return _invalid("unsupported operator")
        with self._lock:
            found = [c for c in self.objects["contacts"].values()
                     if not groups or any(all(_matches(f, c) for f in g["filters"])
                                          for g in groups)]
        for sort in reversed(body.get("sorts", [])):
            found.sort(key=lambda c, s=sort: c.properties.get(s["propertyName"]) or "",
                       reverse=sort.get("direction") == "DESCENDING")
        limit = min(int(body.get("limit", 10)), 200)
        wanted = list(body.get("properties", []))
        return _json({"total": len(found), "results": [c.view("contacts", wanted)
                                                       for c in found[:limit]]})

    def _create_engagement(self, kind: str) -> Response:
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
            return _invalid("properties are required")
        problem = self._engagement_problem(kind, body["properties"], body.get("associations", []))
        if problem is not None:
            return _invalid(problem)
        associations = [(str(a["to"]["id"]), TO_CONTACT[kind]) for a in body["associations"]]
        record = self._store(kind, body["properties"], associations)
        self.hold(f"{kind}_create")
        return _json(record.view(kind), 201)

    def _engagement_problem(self, kind: str, properties: dict[str, Any],
                            associations: Any) -> str | None:
        if _instant(properties.get("hs_timestamp")) is None:
            return "hs_timestamp is required: ISO 8601 or epoch milliseconds"
        if kind == "calls" and not str(properties.get("hs_call_duration", "0")).isdigit():
            return "hs_call_duration must be whole milliseconds"
        expected = [{"associationCategory": "HUBSPOT_DEFINED",
                     "associationTypeId": TO_CONTACT[kind]}]
        if not isinstance(associations, list) or not all(
                isinstance(a, dict) and a.get("types") == expected
                and str(a.get("to", {}).get("id")) in self.objects["contacts"]
                for a in associations):
            return f"associations must be to existing contacts, type {TO_CONTACT[kind]}"
        return None

    def _batch_read(self, kind: str) -> Response:
        body = request.get_json(silent=True)
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list) or len(inputs) > 100:
            return _invalid("inputs must be a list of at most 100 {id}")
        ids = [str(item.get("id")) for item in inputs]
        wanted = list(body.get("properties", []))
        with self._lock:
            found = [self.objects[kind][i].view(kind, wanted) for i in ids
                     if i in self.objects[kind]]
        now = _iso(datetime.now(UTC))
        answer: dict[str, Any] = {"status": "COMPLETE", "results": found,
                                  "startedAt": now, "completedAt": now}
        missing = [i for i in ids if i not in self.objects[kind]]
        if missing:
            answer |= {"numErrors": 1, "errors": [{
                "status": "error", "category": "OBJECT_NOT_FOUND", "context": {"ids": missing},
                "message": "Could not get some objects, they may be deleted or not exist."}]}
        return _json(answer, 207 if missing else 200)

    def _associations(self, contact: str, kind: str) -> Response:
        """Ascending ids, one page of ``limit`` (at most 500) from the ``after`` cursor."""
        limit, after = int(request.args.get("limit", "500")), int(request.args.get("after", "0"))
        if not 1 <= limit <= 500:
            return _invalid("limit must be between 1 and 500")
        with self._lock:
            linked = sorted(int(o.id) for o in self.engagements(kind, contact))
        page = linked[after:after + limit]
        answer: dict[str, Any] = {"results": [{"toObjectId": i, "associationTypes": [
            {"category": "HUBSPOT_DEFINED", "typeId": TO_CONTACT[kind], "label": None}]}
            for i in page]}
        if after + limit < len(linked):
            answer["paging"] = {"next": {"after": str(after + limit)}}
        return _json(answer)

    def _store(self, kind: str, properties: dict[str, Any],
               associations: list[tuple[str, int]] | None = None) -> CrmObject:
        now = _iso(datetime.now(UTC))
        with self._lock:
            record = CrmObject(str(next(self._ids)), {k: str(v) for k, v in properties.items()},
                               now, associations or [])
            record.properties |= _calculated(kind, record, now)
            self.objects[kind][record.id] = record
        return record


def _calculated(kind: str, record: CrmObject, now: str) -> dict[str, str]:
    """The properties HubSpot fills in itself."""
    if kind != "contacts":
        moment = _instant(record.properties["hs_timestamp"])
        assert moment is not None
        return {"hs_object_id": record.id, "hs_createdate": now, "hs_lastmodifieddate": now,
                "hs_timestamp": _iso(moment)}
    found = {CALCULATED[name]: _national_digits(record.properties[name])
             for name in CALCULATED if record.properties.get(name)}
    return {"hs_object_id": record.id, "createdate": now, "lastmodifieddate": now, **found}


def _national_digits(number: str) -> str:
    try:
        return str(phonenumbers.parse(number, "US").national_number)
    except phonenumbers.NumberParseException:
        return "".join(ch for ch in number if ch.isdigit())


def _is_group(group: Any) -> bool:
    return isinstance(group, dict) and isinstance(group.get("filters"), list) and all(
        isinstance(f, dict) and isinstance(f.get("propertyName"), str) for f in group["filters"])


def _matches(rule: dict[str, Any], contact: CrmObject) -> bool:
    value = contact.properties.get(rule["propertyName"])
    operator = rule["operator"]
    if operator in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
        return (value is not None) == (operator == "HAS_PROPERTY")
    same = value is not None and value.lower() == str(rule.get("value", "")).lower()
    return same if operator == "EQ" else not same


def _instant(value: Any) -> datetime | None:
    text = str(value or "")
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, UTC)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else None


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _invalid(message: str) -> Response:
    return _error("VALIDATION_ERROR", message, 400)


def _error(category: str, message: str, status: int) -> Response:
    return _json({"status": "error", "message": message, "correlationId": str(uuid.uuid4()),
                  "category": category}, status)


def _json(body: Any, status: int = 200) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response
