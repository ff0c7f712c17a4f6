"""A stand-in for Segment's Profile API: traits, external ids and events of a space's people.

It speaks the shapes of ``reference/crm-cdp.md`` §5 and Segment's Profile API page:
``GET /v1/spaces/{space}/collections/users/profiles/{type}:{value}/{traits|
external_ids|events}``, HTTP Basic with the access token as user name and an empty
password, 404 ``not_found`` for an unknown person, 429 with ``Retry-After``. Like
Segment, it answers 500 to an identifier whose ``+`` was sent raw instead of ``%2B``.
Request kinds: ``traits``, ``external_ids``, ``events``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import Response, jsonify, request

from tests.standins import StandIn

PROFILES = "/v1/spaces/<space>/collections/users/profiles/<identifier>/"


@dataclass
class SegmentPerson:
    """One Segment profile: its id (``use_…``), external ids, traits and events."""

    segment_id: str
    external_ids: list[tuple[str, str]]
    traits: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)


class SegmentStandIn(StandIn):
    """Segment's Profile API for one space, holding the people a test gives it."""

    def __init__(self, *, space_id: str = "spa_test", token: str = "segment-token") -> None:  # noqa: S107 - a test credential
        super().__init__()
        self.space_id, self.token = space_id, token
        self.people: list[SegmentPerson] = []
        for kind in ("traits", "external_ids", "events"):
            self.app.add_url_rule(PROFILES + kind, kind, self._answer, defaults={"kind": kind})

    def add_person(self, person: SegmentPerson) -> None:
        self.people.append(person)

    def error_response(self, status: int, retry_after_ms: int | None) -> Response:
        code = "rate_limit_error" if status == 429 else "server_error"
        response = _json({"error": {"code": code, "message": "stand-in failure"}}, status)
        if status == 429:
            response.headers["Retry-After"] = str((retry_after_ms or 1000) / 1000)
        return response

    def _answer(self, space: str, identifier: str, kind: str) -> Response:
        auth = request.authorization
        if auth is None or auth.username != self.token or auth.password:
            return _error("authentication_error", "Access token is not valid", 401)
        if "+" in request.environ.get("RAW_URI", request.path).split("?")[0]:
            return _error("validation_error", "invalid character(s) in the identifier", 500)
        person = self._person(identifier) if space == self.space_id else None
        if person is None:
            return _error("not_found", "Profile was not found.", 404)
        limit = int(request.args.get("limit", "10"))
        return _json(self._body(person, kind, limit))

    def _body(self, person: SegmentPerson, kind: str, limit: int) -> dict[str, Any]:
        cursor = {"url": f"/v1/spaces/{self.space_id}/collections/users/profiles/"
                         f"{person.segment_id}/{kind}", "has_more": False, "next": ""}
        if kind == "traits":
            return {"traits": dict(list(person.traits.items())[:limit]), "cursor": cursor}
        if kind == "external_ids":
            data: list[dict[str, Any]] = [
                {"type": t, "id": v, "collection": "users", "source_id": "src_1",
                 "created_at": "2026-01-01T00:00:00Z", "encoding": "none"}
                for t, v in person.external_ids]
        else:
            data = sorted(person.events, key=lambda e: str(e.get("timestamp")),
                          reverse=True)[:limit]
        return {"data": data, "cursor": cursor}

    def _person(self, identifier: str) -> SegmentPerson | None:
        kind, _, value = identifier.partition(":")
        return next((p for p in self.people if (kind, value) in p.external_ids), None)


def _error(code: str, message: str, status: int) -> Response:
    return _json({"error": {"code": code, "message": message}}, status)


def _json(body: Any, status: int = 200) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response
