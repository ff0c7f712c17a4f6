"""``AepProfileProvider``: people from Adobe Experience Platform's Profile access API.

A lookup, within the caller's deadline:

1. a bearer token from IMS (``lookup/aep_ims.py``), cached for its lifetime;
2. ``GET /data/core/ups/access/entities?schema.name=_xdm.context.profile&entityId=…
   &entityIdNS=…`` per identity candidate, in order, until one is found. GETs, not
   a POST batch: a GET's 404 or 422 says which candidate failed and why, and the
   first candidate usually hits. (So no request carries a Content-Type.);
3. the names of the person's audiences (Segmentation API ``GET /audiences/{id}``),
   each fetched once, then cached;
4. with ``aep_events``, the 10 newest experience events (a lookup Adobe deprecates
   in favour of computed attributes, which come with the profile's fields).

Steps 3 and 4 are extras: if they fail or the deadline comes first, the profile is
returned without them. Outcomes: 404 or an empty answer → the next candidate;
several XIDs → ``AmbiguousMatch`` of them; 422 (too many related identities: a
shared number) → ``AmbiguousMatch``, count unknown, unless it is about a missing
merge policy (``PermanentError``); 401 → the token is renewed once, then
``PermanentError``; 400, 403 → ``PermanentError``; 429, 5xx, connection failures,
timeouts, the deadline → ``TransientError``. Identity values, tokens and the secret
are never logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from hub.models import AmbiguousMatch, AudienceMembership, ExperienceEvent, Identity, Profile
from hub.ports import HubError, PermanentError
from hub.settings import Settings
from lookup.aep_entities import (
    SOURCE,
    AudienceNames,
    attributes_of,
    audience_name,
    events_of,
    identities_of,
    memberships_of,
    profile_entries,
)
from lookup.aep_ims import ImsCredentials, ImsTokenSource
from lookup.remote import check_status, json_body, pooled_session, send

log = logging.getLogger(__name__)

ENTITIES_PATH = "/data/core/ups/access/entities"
AUDIENCE_PATH = "/data/core/ups/audiences/"
PROFILE_SCHEMA = "_xdm.context.profile"
EVENT_SCHEMA = "_xdm.context.experienceevent"
EVENT_LIMIT = 10
# Asked for even when CAHUB_AEP_FIELDS narrows the answer: identities and audiences.
REQUIRED_FIELDS = ("identityMap", "segmentMembership")


@dataclass(frozen=True)
class AepConfig:
    """Where the Platform is and what to ask it (the non-secret AEP settings)."""

    base_url: str
    client_id: str
    org_id: str
    sandbox: str = "prod"
    merge_policy_id: str | None = None
    fields: tuple[str, ...] = ()
    events: bool = True
    timeout: float = 0.8


class AepProfileProvider:
    """A ``ProfileProvider`` over the AEP Entities API; safe to share between threads."""

    name = SOURCE

    def __init__(
        self, config: AepConfig, tokens: ImsTokenSource, session: requests.Session,
        *, owns_session: bool = False,
    ) -> None:
        self._config = config
        self._tokens = tokens
        self._session = session
        self._owns_session = owns_session
        self._names = AudienceNames(self._fetch_audience_name)

    @classmethod
    def from_settings(
        cls, settings: Settings, session: requests.Session | None = None
    ) -> AepProfileProvider:
        """Build the provider from ``CAHUB_AEP_*``; ValueError names what is missing."""
        config, credentials = _config(settings), _credentials(settings)
        http = session if session is not None else pooled_session()
        tokens = ImsTokenSource(credentials, http, config.timeout)
        return cls(config, tokens, http, owns_session=session is None)

    def lookup(
        self, identities: Sequence[Identity], deadline: float
    ) -> Profile | AmbiguousMatch | None:
        """The person of the first candidate AEP knows, tried in order, or None."""
        for identity in identities:
            found = self._lookup_one(identity, deadline)
            if found is not None:
                return found
        return None

    def ping(self) -> None:
        """Raise ``HubError`` unless IMS issues (or has issued) a token."""
        self._tokens.token(time.monotonic() + self._config.timeout)

    def close(self) -> None:
        """Close the HTTP session, when the provider made it."""
        if self._owns_session:
            self._session.close()

    def _lookup_one(self, identity: Identity, deadline: float) -> Profile | AmbiguousMatch | None:
        what = f"AEP profile lookup ({identity.namespace})"
        response = self._get(ENTITIES_PATH, self._profile_query(identity), deadline, what)
        if response.status_code == 404:
            return None
        if response.status_code == 422:
            return _unprocessable(response, identity, what)
        check_status(response, what)
        entries = profile_entries(json_body(response, what))
        if len(entries) > 1:
            people = tuple(self._profile(xid, entry, ()) for xid, entry in entries.items())
            return AmbiguousMatch(source=SOURCE, identity=identity, count=len(people),
                                  candidates=people)
        for xid, entry in entries.items():
            return self._profile(xid, entry, self._events(identity, deadline), deadline)
        return None

    def _profile(
        self, xid: str, entry: Mapping[str, Any], events: tuple[ExperienceEvent, ...],
        deadline: float | None = None,
    ) -> Profile:
        """The profile of one answer entry; names are fetched only with a ``deadline``."""
        memberships = memberships_of(entry)
        names = {audience: self._names.get(audience, deadline) for audience in memberships}
        return Profile(
            source=SOURCE, profile_id=xid, attributes=attributes_of(entry),
            identities=identities_of(entry), events=events,
            audiences=tuple(AudienceMembership(id=audience, name=names[audience], status=status)
                            for audience, status in memberships.items()),
        )

    def _fetch_audience_name(self, audience: str, deadline: float) -> str | None:
        what = "AEP audience name"
        response = self._get(AUDIENCE_PATH + quote(audience, safe=""), {}, deadline, what)
        if response.status_code == 404:
            return None
        check_status(response, what)
        return audience_name(json_body(response, what))

    def _events(self, identity: Identity, deadline: float) -> tuple[ExperienceEvent, ...]:
        """The newest experience events, or none when they are off or unavailable."""
        if not self._config.events:
            return ()
        what = "AEP experience events"
        try:
            response = self._get(ENTITIES_PATH, self._event_query(identity), deadline, what)
            if response.status_code == 404:
                return ()
            check_status(response, what)
            return events_of(json_body(response, what))[:EVENT_LIMIT]
        except HubError as exc:
            log.info("profile returned without events: %s", exc)
            return ()

    def _get(
        self, path: str, query: dict[str, str], deadline: float, what: str
    ) -> requests.Response:
        """GET with the Platform's headers; a 401 renews the token and tries once more."""
        token = self._tokens.token(deadline)
        response = self._send(path, query, token, deadline, what)
        if response.status_code != 401:
            return response
        self._tokens.invalidate(token)
        return self._send(path, query, self._tokens.token(deadline), deadline, what)

    def _send(
        self, path: str, query: dict[str, str], token: str, deadline: float, what: str
    ) -> requests.Response:
        return send(
            self._session, "GET", self._config.base_url.rstrip("/") + path,
            deadline=deadline, timeout=self._config.timeout, what=what,
            params=query, headers=self._headers(token),
        )

    def _headers(self, token: str) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {token}",
            "x-api-key": self._config.client_id,
            "x-gw-ims-org-id": self._config.org_id,
            "x-sandbox-name": self._config.sandbox,
            "Accept": "application/json",
        }

    def _profile_query(self, identity: Identity) -> dict[str, str]:
        query = {"schema.name": PROFILE_SCHEMA, "entityId": identity.id,
                 "entityIdNS": identity.namespace}
        if self._config.fields:
            wanted = [*self._config.fields,
                      *(f for f in REQUIRED_FIELDS if f not in self._config.fields)]
            query["fields"] = ",".join(wanted)
        return self._with_merge_policy(query)

    def _event_query(self, identity: Identity) -> dict[str, str]:
        query = {"schema.name": EVENT_SCHEMA, "relatedSchema.name": PROFILE_SCHEMA,
                 "relatedEntityId": identity.id, "relatedEntityIdNS": identity.namespace,
                 "orderby": "-timestamp", "limit": str(EVENT_LIMIT)}
        return self._with_merge_policy(query)

    def _with_merge_policy(self, query: dict[str, str]) -> dict[str, str]:
        if self._config.merge_policy_id:
            query["mergePolicyId"] = self._config.merge_policy_id
        return query


def _unprocessable(
    response: requests.Response, identity: Identity, what: str
) -> AmbiguousMatch:
    """A 422: a shared identity (too many related identities), or no merge policy."""
    if "merge polic" in response.text.lower():
        raise PermanentError(f"{what}: HTTP 422, no usable merge policy (check "
                             "CAHUB_AEP_MERGE_POLICY_ID)")
    return AmbiguousMatch(source=SOURCE, identity=identity, count=None)


def _config(settings: Settings) -> AepConfig:
    if not settings.aep_client_id or not settings.aep_org_id:
        raise ValueError("the aep provider needs CAHUB_AEP_CLIENT_ID and CAHUB_AEP_ORG_ID")
    return AepConfig(
        base_url=settings.aep_base_url, client_id=settings.aep_client_id,
        org_id=settings.aep_org_id, sandbox=settings.aep_sandbox.lower(),
        merge_policy_id=settings.aep_merge_policy_id or None,
        fields=tuple(settings.aep_fields), events=settings.aep_events,
        timeout=settings.aep_timeout_ms / 1000,
    )


def _credentials(settings: Settings) -> ImsCredentials:
    secret = settings.aep_client_secret
    if secret is None or not secret.get_secret_value() or not settings.aep_client_id:
        raise ValueError("the aep provider needs CAHUB_AEP_CLIENT_ID and CAHUB_AEP_CLIENT_SECRET")
    return ImsCredentials(base_url=settings.aep_ims_base_url, client_id=settings.aep_client_id,
                          client_secret=secret, scopes=settings.aep_scopes)
