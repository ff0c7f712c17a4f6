"""One contract for every ``ProfileProvider``: the embedded store, AEP and Segment.

Each provider is given the same person (Ada, known by her E.164 number) and the same
questions; a broken backend (a store that cannot be opened, an API that answers 503
or cannot be reached) must fail with the hub's own errors and nothing else.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from hub.models import Identity, Profile
from hub.ports import HubError, PermanentError, ProfileProvider, TransientError
from hub.settings import Settings
from lookup.aep import AepProfileProvider
from lookup.segment import SegmentProfileProvider
from lookup.store import EmbeddedProfileStore

PHONE = "+14155550134"
ADA = Identity(namespace="Phone_E.164", id=PHONE)
STRANGER = Identity(namespace="Phone_E.164", id="+14155550199")
AEP, BROKEN_AEP = "https://platform.test", "https://platform-broken.test"
SEGMENT, BROKEN_SEGMENT = "https://profiles.test", "https://profiles-broken.test"
ADA_RECORD = {"identityMap": {"Phone_E.164": [{"id": PHONE, "primary": True}]},
              "person": {"name": {"firstName": "Ada", "lastName": "Lovelace"}}}


@dataclass
class Backend:
    """A provider that knows Ada, and one whose backend is broken."""

    provider: ProfileProvider
    broken: ProfileProvider


def embedded(tmp_path: Path, mock: responses.RequestsMock) -> list[Any]:
    store = EmbeddedProfileStore(tmp_path / "store.db")
    store.ingest("profiles", [json.dumps(ADA_RECORD)])
    return [store, EmbeddedProfileStore(tmp_path)]  # a directory cannot be opened


def aep(tmp_path: Path, mock: responses.RequestsMock) -> list[Any]:
    mock.post(f"{AEP}/ims/token/v3", json={"access_token": "tok", "expires_in": 86399})
    mock.add_callback(responses.GET, f"{AEP}/data/core/ups/access/entities", callback=_platform)
    mock.get(re.compile(rf"{re.escape(BROKEN_AEP)}/.*"), status=503)
    mock.post(re.compile(rf"{re.escape(BROKEN_AEP)}/.*"), status=503)
    return [AepProfileProvider.from_settings(_aep_settings(AEP)),
            AepProfileProvider.from_settings(_aep_settings(BROKEN_AEP))]


def segment(tmp_path: Path, mock: responses.RequestsMock) -> list[Any]:
    mock.add_callback(responses.GET, re.compile(rf"{re.escape(SEGMENT)}/.*"), callback=_space)
    mock.get(re.compile(rf"{re.escape(BROKEN_SEGMENT)}/.*"),
             body=requests.ConnectionError("connection refused"))
    return [SegmentProfileProvider.from_settings(_segment_settings(SEGMENT)),
            SegmentProfileProvider.from_settings(_segment_settings(BROKEN_SEGMENT))]


BACKENDS: dict[str, Callable[[Path, responses.RequestsMock], list[Any]]] = {
    "embedded": embedded, "aep": aep, "segment": segment,
}


@pytest.fixture(params=list(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        provider, broken = BACKENDS[request.param](tmp_path, mock)
        yield Backend(provider, broken)
        provider.close()
        broken.close()


def soon() -> float:
    return time.monotonic() + 5


def test_a_known_identity_gives_a_profile_from_the_provider(backend: Backend) -> None:
    profile = backend.provider.lookup([ADA], soon())

    assert isinstance(profile, Profile)
    assert backend.provider.name == profile.source
    assert profile.profile_id


def test_the_profile_carries_the_identity_it_was_found_by(backend: Backend) -> None:
    profile = backend.provider.lookup([ADA], soon())

    assert isinstance(profile, Profile)
    assert ADA in profile.identities


def test_the_profile_carries_the_persons_attributes(backend: Backend) -> None:
    profile = backend.provider.lookup([ADA], soon())

    assert isinstance(profile, Profile)
    assert "Ada" == profile.attributes["person"]["name"]["firstName"]


def test_an_unknown_identity_gives_none(backend: Backend) -> None:
    assert backend.provider.lookup([STRANGER], soon()) is None


def test_no_candidates_give_none(backend: Backend) -> None:
    assert backend.provider.lookup([], soon()) is None


def test_candidates_are_tried_until_one_is_known(backend: Backend) -> None:
    profile = backend.provider.lookup([STRANGER, ADA], soon())

    assert isinstance(profile, Profile)


def test_past_the_deadline_the_lookup_fails_transiently(backend: Backend) -> None:
    with pytest.raises(TransientError):
        backend.provider.lookup([ADA], time.monotonic() - 0.01)


def test_a_broken_backend_fails_with_the_hubs_errors_only(backend: Backend) -> None:
    with pytest.raises(HubError) as raised:
        backend.broken.lookup([ADA], soon())

    assert isinstance(raised.value, TransientError | PermanentError)


def test_ping_passes_on_a_working_backend(backend: Backend) -> None:
    backend.provider.ping()


def test_ping_fails_with_the_hubs_errors_on_a_broken_backend(backend: Backend) -> None:
    with pytest.raises(HubError) as raised:
        backend.broken.ping()

    assert isinstance(raised.value, TransientError | PermanentError)


def _platform(request: Any) -> tuple[int, dict[str, str], str]:
    """AEP's Entities API knowing Ada by her E.164 number."""
    query = {key: values[0] for key, values in parse_qs(urlsplit(request.url).query).items()}
    if (query.get("entityIdNS"), query.get("entityId")) != (ADA.namespace, ADA.id):
        return 404, {}, json.dumps({"statusCode": "404"})
    return 200, {}, json.dumps({"XID-ADA": {"entityId": "XID-ADA", "entity": ADA_RECORD,
                                            "lastModifiedAt": "2026-05-01T10:00:00Z"}})


def _space(request: Any) -> tuple[int, dict[str, str], str]:
    """Segment's Profile API knowing Ada by ``phone``."""
    path = urlsplit(request.url).path
    if "/profiles/phone:%2B14155550134/" not in path:
        return 404, {}, json.dumps({"error": {"code": "not_found", "message": "no"}})
    if path.endswith("/traits"):
        return 200, {}, json.dumps({"traits": {"first_name": "Ada", "last_name": "Lovelace"}})
    return 200, {}, json.dumps({"data": [{"type": "user_id", "id": "u-ada"}]})


def _aep_settings(base_url: str) -> Settings:
    return Settings(_env_file=None, aep_base_url=base_url, aep_ims_base_url=base_url,
                    aep_client_id="client-id", aep_client_secret="secret",
                    aep_org_id="ORG@AdobeOrg", aep_events=False)


def _segment_settings(base_url: str) -> Settings:
    return Settings(_env_file=None, segment_base_url=base_url, segment_space_id="spa_1",
                    segment_token="token")
