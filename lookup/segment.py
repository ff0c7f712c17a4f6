"""``SegmentProfileProvider``: people from Twilio Segment's Profile API (Unify).

A lookup, within the caller's deadline: for each identity candidate the space can
resolve (see ``lookup/segment_profiles.py`` for the namespace mapping), in order,
``GET {base}/v1/spaces/{space}/collections/users/profiles/{type}:{value}/traits
?limit=200`` until one is found; then the person's ``/external_ids`` and
``/events?limit=10``, which are extras: if they fail or the deadline comes first,
the profile is returned without them. The value is percent-encoded in the path
(``phone:%2B14155550134``): Segment matches it literally and answers 500 to a raw
``+``. Authentication is HTTP Basic, the access token as user name, no password.

Errors: 404 → unknown (the next candidate); 429 → ``TransientError`` with
``Retry-After``; 5xx, connection failures, timeouts, the deadline → ``TransientError``;
400, 401, 403 → ``PermanentError``. Identity values and the token are never logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests
from pydantic import SecretStr

from hub.models import Identity, Profile
from hub.ports import HubError
from hub.settings import Settings
from lookup.remote import check_status, json_body, pooled_session, send
from lookup.segment_profiles import (
    IdentifierMap,
    attributes_of,
    events_of,
    identities_of,
    profile_id_of,
)

log = logging.getLogger(__name__)

SOURCE = "segment"
TRAITS_LIMIT = 200
EVENT_LIMIT = 10
PING_IDENTIFIER = "user_id:cahub-health-check"


@dataclass(frozen=True)
class SegmentConfig:
    """Where the space is, how to sign in, which identifiers it resolves."""

    base_url: str
    space_id: str
    token: SecretStr = field(repr=False)
    identifiers: tuple[str, ...] = ("phone", "email", "user_id")
    timeout: float = 0.5


class SegmentProfileProvider:
    """A ``ProfileProvider`` over the Segment Profile API; safe to share between threads."""

    name = SOURCE

    def __init__(
        self, config: SegmentConfig, session: requests.Session, *, owns_session: bool = False
    ) -> None:
        self._config = config
        self._session = session
        self._owns_session = owns_session
        self._identifiers = IdentifierMap(config.identifiers)

    @classmethod
    def from_settings(
        cls, settings: Settings, session: requests.Session | None = None
    ) -> SegmentProfileProvider:
        """Build the provider from ``CAHUB_SEGMENT_*``; ValueError names what is missing."""
        token = settings.segment_token
        if not settings.segment_space_id or token is None or not token.get_secret_value():
            raise ValueError("the segment provider needs CAHUB_SEGMENT_SPACE_ID and "
                             "CAHUB_SEGMENT_TOKEN")
        config = SegmentConfig(
            base_url=settings.segment_base_url, space_id=settings.segment_space_id,
            token=token, identifiers=tuple(settings.segment_identifiers),
            timeout=settings.segment_timeout_ms / 1000,
        )
        http = session if session is not None else pooled_session()
        return cls(config, http, owns_session=session is None)

    def lookup(self, identities: Sequence[Identity], deadline: float) -> Profile | None:
        """The person of the first candidate Segment knows, tried in order, or None."""
        for identity, identifier in self._asked(identities):
            traits = self._get(identifier, "traits", {"limit": str(TRAITS_LIMIT)}, deadline)
            if traits is not None:
                return self._profile(identity, identifier, traits, deadline)
        return None

    def ping(self) -> None:
        """Raise ``HubError`` unless the space answers with this token.

        The API has no health route, so a person nobody is called is asked for:
        "not found" proves the token and the space are good.
        """
        deadline = time.monotonic() + self._config.timeout
        self._get(PING_IDENTIFIER, "traits", {"limit": "1"}, deadline)

    def close(self) -> None:
        """Close the HTTP session, when the provider made it."""
        if self._owns_session:
            self._session.close()

    def _asked(self, identities: Sequence[Identity]) -> list[tuple[Identity, str]]:
        """Candidates as Segment identifiers (``phone:%2B1…``), each asked once, in order."""
        asked: dict[str, Identity] = {}
        for identity in identities:
            kind = self._identifiers.type_of(identity.namespace)
            if kind and identity.id.strip():
                asked.setdefault(f"{quote(kind, safe='')}:{quote(identity.id, safe='')}",
                                 identity)
        return [(identity, identifier) for identifier, identity in asked.items()]

    def _profile(
        self, identity: Identity, identifier: str, traits: Any, deadline: float
    ) -> Profile:
        external_ids = self._extra(identifier, "external_ids", {}, deadline)
        events = self._extra(identifier, "events", {"limit": str(EVENT_LIMIT)}, deadline)
        known = [identity, *identities_of(external_ids, self._identifiers)]
        return Profile(
            source=SOURCE,
            profile_id=profile_id_of(external_ids, traits, identifier),
            attributes=attributes_of(traits),
            identities=tuple(dict.fromkeys(known)),
            events=events_of(events)[:EVENT_LIMIT],
        )

    def _extra(self, identifier: str, resource: str, query: dict[str, str],
               deadline: float) -> Any:
        """A part the profile can go without: None when it is missing or failed."""
        try:
            return self._get(identifier, resource, query, deadline)
        except HubError as exc:
            log.info("segment profile returned without %s: %s", resource, exc)
            return None

    def _get(self, identifier: str, resource: str, query: dict[str, str],
             deadline: float) -> Any:
        """One Profile API resource of a person; None when Segment does not know them."""
        what = f"segment {resource}"
        response = send(
            self._session, "GET", self._url(identifier, resource),
            deadline=deadline, timeout=self._config.timeout, what=what, params=query,
            auth=(self._config.token.get_secret_value(), ""),
            headers={"Accept": "application/json"},
        )
        if response.status_code == 404:
            return None
        check_status(response, what)
        return json_body(response, what)

    def _url(self, identifier: str, resource: str) -> str:
        space = quote(self._config.space_id, safe="")
        return (f"{self._config.base_url.rstrip('/')}/v1/spaces/{space}"
                f"/collections/users/profiles/{identifier}/{resource}")
