"""A stand-in for Adobe: IMS tokens, the AEP Entities API and Segmentation audiences.

It speaks the shapes of ``reference/aep-profile-api.md``: ``POST /ims/token/v3``
(form-encoded client credentials → ``access_token``, ``expires_in`` in seconds);
``GET /data/core/ups/access/entities`` with the four Platform headers, answering a
profile lookup keyed by XID (404 when unknown, 422 for an identity marked shared,
several XIDs for one marked as in several profiles) and an experience-event lookup
(``children``, newest first); ``GET /data/core/ups/audiences/{id}``. Request kinds
(for latencies and failures): ``token``, ``entities``, ``audience``; the counts also
split ``entities`` into ``lookup`` (profiles, after the header checks) and ``events``.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

from flask import Response, jsonify, request

from tests.standins import StandIn

PROFILE = "_xdm.context.profile"
EVENT = "_xdm.context.experienceevent"


class AdobeStandIn(StandIn):
    """IMS + Platform, holding the profiles, events and audiences a test gives it."""

    def __init__(
        self, *, client_id: str = "cahub-client",
        client_secret: str = "s3cret",  # noqa: S107 - the stand-in's test credential
        org_id: str = "ORG@AdobeOrg", sandbox: str = "prod", expires_in: float = 86399,
    ) -> None:
        super().__init__()
        self.client_id, self.client_secret = client_id, client_secret
        self.org_id, self.sandbox, self.expires_in = org_id, sandbox, expires_in
        self.profiles: dict[str, dict[str, Any]] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.audiences: dict[str, str] = {}
        self.shared: set[tuple[str, str]] = set()
        self.latencies["token"] = 0.0  # ``latency`` slows the Platform, not IMS
        self._tokens: set[str] = set()
        self._serial = itertools.count(1)
        self._token_lock = threading.Lock()
        self._routes()

    def add_profile(self, xid: str, entity: dict[str, Any],
                    events: list[dict[str, Any]] | None = None) -> None:
        """A merged profile; ``events`` are XDM experience events of that person."""
        self.profiles[xid] = entity
        self.events[xid] = list(events or [])

    def revoke_tokens(self) -> None:
        """Every token issued so far is refused from now on (as after a rotation)."""
        with self._token_lock:
            self._tokens.clear()

    def error_response(self, status: int, retry_after_ms: int | None) -> Response:
        if status == 429:
            body: Any = [{"message": "Too many requests", "statusCode": "429",
                          "cause": '{"Errors":["Request rate is large"]}',
                          "retryAfterMs": str(retry_after_ms or 500)}]
        else:
            body = {"message": "stand-in failure", "statusCode": str(status)}
        return _json(body, status)

    def _routes(self) -> None:
        self.app.add_url_rule("/ims/token/v3", "token", self._token, methods=["POST"])
        self.app.add_url_rule("/data/core/ups/access/entities", "entities", self._entities)
        self.app.add_url_rule("/data/core/ups/audiences/<audience>", "audience", self._audience)

    def _token(self) -> Response:
        form = request.form
        if (form.get("grant_type") != "client_credentials"
                or form.get("client_id") != self.client_id
                or form.get("client_secret") != self.client_secret or not form.get("scope")):
            return _json({"error": "invalid_client", "error_description": "bad credentials"}, 400)
        token = f"token-{next(self._serial)}"
        with self._token_lock:
            self._tokens.add(token)
        return _json({"access_token": token, "token_type": "bearer",
                      "expires_in": self.expires_in})

    def _entities(self) -> Response:
        refused = self._refused()
        if refused is not None:
            return refused
        if request.args.get("schema.name") == EVENT:
            self.count("events")
            return self._event_lookup()
        if request.args.get("schema.name") != PROFILE:
            return _json({"message": "unsupported schema.name", "statusCode": "400"}, 400)
        self.count("lookup")
        return self._profile_lookup()

    def _profile_lookup(self) -> Response:
        identity = (request.args.get("entityIdNS", ""), request.args.get("entityId", ""))
        if not all(identity):
            return _json({"message": "entityId and entityIdNS are required"}, 400)
        if identity in self.shared:
            return _json({"message": "Too many related identities", "statusCode": "422"}, 422)
        xids = self._xids_of(*identity)
        if not xids:
            return _json({"statusCode": "404"}, 404)
        fields = [f for f in request.args.get("fields", "").split(",") if f]
        return _json({xid: {"entityId": xid, "sources": ["crm-dataset"],
                            "entity": _only(self.profiles[xid], fields),
                            "lastModifiedAt": "2026-05-01T10:00:00Z"} for xid in xids})

    def _event_lookup(self) -> Response:
        xids = self._xids_of(request.args.get("relatedEntityIdNS", ""),
                             request.args.get("relatedEntityId", ""))
        if request.args.get("relatedSchema.name") != PROFILE or not xids:
            return _json({"statusCode": "404"}, 404)
        newest = sorted(self.events[xids[0]], key=lambda e: str(e.get("timestamp")),
                        reverse=True)[: int(request.args.get("limit", "1000"))]
        children = [{"relatedEntityId": xids[0], "entityId": event.get("_id"), "entity": event,
                     "lastModifiedAt": "2026-05-01T10:00:00Z"} for event in newest]
        return _json({"_page": {"orderby": "-timestamp", "count": len(children), "next": ""},
                      "children": children, "_links": {"next": {"href": ""}}})

    def _audience(self, audience: str) -> Response:
        refused = self._refused()
        if refused is not None:
            return refused
        if audience not in self.audiences:
            return _json({"status": 404, "title": "The audience entity is not found."}, 404)
        return _json({"id": audience, "audienceId": audience, "name": self.audiences[audience],
                      "namespace": "AEPSegments"})

    def _refused(self) -> Response | None:
        """The gateway's checks of the Platform headers."""
        headers = request.headers
        bearer = headers.get("Authorization", "").removeprefix("Bearer ")
        with self._token_lock:
            known = bearer in self._tokens
        if not known:
            return _json({"error_code": "401013", "message": "Oauth token is not valid"}, 401)
        if headers.get("x-api-key") != self.client_id:
            return _json({"error_code": "403003", "message": "Api Key is invalid"}, 403)
        if (headers.get("x-gw-ims-org-id") != self.org_id
                or headers.get("x-sandbox-name") != self.sandbox):
            return _json({"error_code": "400003", "message": "Missing header"}, 400)
        return None

    def _xids_of(self, namespace: str, value: str) -> list[str]:
        return [xid for xid, entity in self.profiles.items()
                if any(item.get("id") == value
                       for item in entity.get("identityMap", {}).get(namespace, []))]


def _only(entity: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    """The parts of ``entity`` named by dotted ``fields`` (all of it without fields)."""
    if not fields:
        return entity
    kept: dict[str, Any] = {}
    for path in fields:
        source, target = entity, kept
        steps = path.split(".")
        for step in steps[:-1]:
            if not isinstance(source.get(step), dict):
                break
            source, target = source[step], target.setdefault(step, {})
        else:
            if steps[-1] in source:
                target[steps[-1]] = source[steps[-1]]
    return kept


def _json(body: Any, status: int = 200) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response
