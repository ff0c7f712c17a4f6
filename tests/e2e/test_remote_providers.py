"""The AEP and Segment adapters end to end, over HTTP, against local stand-ins.

Nothing here leaves 127.0.0.1: ``tests/standins`` serve Adobe's IMS, Entities and
Segmentation APIs and Segment's Profile API, with the latency and failures a test
asks for.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from hub.metrics import HubMetrics
from hub.models import AmbiguousMatch, Identity, Profile
from hub.ports import PermanentError, TransientError
from hub.settings import Settings
from lookup.aep import AepProfileProvider
from lookup.chain import ProviderChain
from lookup.segment import SegmentProfileProvider
from tests.standins.adobe import AdobeStandIn
from tests.standins.segment import SegmentPerson, SegmentStandIn

PHONE = "+14155550134"
ADA = Identity(namespace="Phone_E.164", id=PHONE)
ADA_ENTITY = {"identityMap": {"Phone_E.164": [{"id": PHONE}], "CRMID": [{"id": "C-1"}]},
              "person": {"name": {"firstName": "Ada", "lastName": "Lovelace"}}}
ADA_EVENTS = [
    {"_id": "e-1", "timestamp": "2026-05-01T10:00:00Z", "eventType": "web.visit"},
    {"_id": "e-2", "timestamp": "2026-05-02T10:00:00Z", "eventType": "commerce.purchases"},
]

MakeAep = Callable[..., AepProfileProvider]


@pytest.fixture
def adobe() -> Iterator[AdobeStandIn]:
    with AdobeStandIn() as standin:
        standin.add_profile("XID-ADA", ADA_ENTITY, ADA_EVENTS)
        yield standin


@pytest.fixture
def make_aep(adobe: AdobeStandIn) -> Iterator[MakeAep]:
    """``make_aep(**settings)``: an AEP provider pointed at the stand-in."""
    made: list[AepProfileProvider] = []

    def make(**overrides: Any) -> AepProfileProvider:
        values: dict[str, Any] = {
            "aep_base_url": adobe.base_url, "aep_ims_base_url": adobe.base_url,
            "aep_client_id": adobe.client_id, "aep_client_secret": adobe.client_secret,
            "aep_org_id": adobe.org_id, "aep_events": False, "aep_timeout_ms": 1000,
        }
        made.append(AepProfileProvider.from_settings(
            Settings(_env_file=None, **{**values, **overrides})))
        return made[-1]

    yield make
    for provider in made:
        provider.close()


@pytest.fixture
def segment() -> Iterator[SegmentStandIn]:
    with SegmentStandIn() as standin:
        standin.add_person(SegmentPerson("use_ada", [("phone", PHONE), ("user_id", "u-ada")],
                                         {"first_name": "Ada", "plan": "gold"}))
        yield standin


@pytest.fixture
def segment_provider(segment: SegmentStandIn) -> Iterator[SegmentProfileProvider]:
    provider = SegmentProfileProvider.from_settings(Settings(
        _env_file=None, segment_base_url=segment.base_url, segment_space_id=segment.space_id,
        segment_token=segment.token, segment_timeout_ms=1000))
    yield provider
    provider.close()


def test_a_500ms_answer_comes_back_within_a_1000ms_deadline(adobe: AdobeStandIn,
                                                            make_aep: MakeAep) -> None:
    adobe.latency = 0.5
    started = time.monotonic()

    profile = make_aep().lookup([ADA], started + 1.0)

    assert isinstance(profile, Profile)
    assert time.monotonic() - started < 1.0


def test_a_500ms_answer_misses_a_200ms_deadline_promptly(adobe: AdobeStandIn,
                                                         make_aep: MakeAep) -> None:
    adobe.latency = 0.5
    started = time.monotonic()

    with pytest.raises(TransientError, match="deadline"):
        make_aep().lookup([ADA], started + 0.2)
    assert time.monotonic() - started < 0.25


def test_extras_that_would_miss_the_deadline_are_left_out(adobe: AdobeStandIn,
                                                          make_aep: MakeAep) -> None:
    adobe.latency = 0.6
    started = time.monotonic()

    profile = make_aep(aep_events=True).lookup([ADA], started + 1.0)

    assert isinstance(profile, Profile)
    assert () == profile.events
    assert time.monotonic() - started < 1.1


def test_one_token_serves_many_lookups(adobe: AdobeStandIn, make_aep: MakeAep) -> None:
    provider = make_aep()

    with ThreadPoolExecutor(max_workers=6) as pool:
        found = list(pool.map(lambda _: provider.lookup([ADA], time.monotonic() + 5), range(30)))

    assert all(isinstance(profile, Profile) for profile in found)
    assert (1, 30) == (adobe.counts["token"], adobe.counts["lookup"])


def test_a_token_is_renewed_before_it_expires(adobe: AdobeStandIn, make_aep: MakeAep) -> None:
    adobe.expires_in = 0.3
    provider = make_aep()

    provider.lookup([ADA], time.monotonic() + 5)
    time.sleep(0.3)
    provider.lookup([ADA], time.monotonic() + 5)

    assert 2 == adobe.counts["token"]


def test_a_revoked_token_is_replaced_and_the_lookup_succeeds(adobe: AdobeStandIn,
                                                             make_aep: MakeAep) -> None:
    provider = make_aep()
    provider.lookup([ADA], time.monotonic() + 5)
    adobe.revoke_tokens()

    profile = provider.lookup([ADA], time.monotonic() + 5)

    assert isinstance(profile, Profile)
    assert 2 == adobe.counts["token"]


def test_throttling_says_when_to_retry(adobe: AdobeStandIn, make_aep: MakeAep) -> None:
    provider = make_aep()
    adobe.fail_next(status=429, retry_after_ms=700, kinds=("entities",))

    with pytest.raises(TransientError) as raised:
        provider.lookup([ADA], time.monotonic() + 5)

    assert 0.7 == raised.value.retry_after
    assert isinstance(provider.lookup([ADA], time.monotonic() + 5), Profile)


def test_a_server_error_is_transient(adobe: AdobeStandIn, make_aep: MakeAep) -> None:
    adobe.fail_next(status=503, kinds=("entities",))

    with pytest.raises(TransientError):
        make_aep().lookup([ADA], time.monotonic() + 5)


def test_a_hung_request_times_out(adobe: AdobeStandIn, make_aep: MakeAep) -> None:
    adobe.fail_next(hang=True, kinds=("entities",))
    started = time.monotonic()

    with pytest.raises(TransientError):
        make_aep(aep_timeout_ms=300).lookup([ADA], started + 5)
    assert time.monotonic() - started < 0.5


def test_an_unknown_caller_is_none(make_aep: MakeAep) -> None:
    stranger = Identity(namespace="Phone_E.164", id="+14155550199")

    assert make_aep().lookup([stranger], time.monotonic() + 5) is None


def test_a_shared_number_is_ambiguous(adobe: AdobeStandIn, make_aep: MakeAep) -> None:
    adobe.shared.add((ADA.namespace, ADA.id))

    match = make_aep().lookup([ADA], time.monotonic() + 5)

    assert AmbiguousMatch(source="aep", identity=ADA, count=None) == match


def test_a_number_on_two_profiles_names_both(adobe: AdobeStandIn, make_aep: MakeAep) -> None:
    adobe.add_profile("XID-BYRON", {"identityMap": {"Phone_E.164": [{"id": PHONE}]},
                                    "person": {"name": {"firstName": "Byron"}}})

    match = make_aep().lookup([ADA], time.monotonic() + 5)

    assert isinstance(match, AmbiguousMatch)
    assert ["XID-ADA", "XID-BYRON"] == sorted(p.profile_id for p in match.candidates)


def test_audience_names_are_fetched_once(adobe: AdobeStandIn, make_aep: MakeAep) -> None:
    adobe.add_profile("XID-ADA", {**ADA_ENTITY,
                                  "segmentMembership": {"ups": {"aud-1": {"status": "realized"}}}})
    adobe.audiences["aud-1"] = "High value"
    provider = make_aep()

    found = [provider.lookup([ADA], time.monotonic() + 5) for _ in range(3)]

    assert {"High value"} == {p.audiences[0].name for p in found if isinstance(p, Profile)}
    assert 1 == adobe.counts["audience"]


def test_recent_events_come_newest_first(make_aep: MakeAep) -> None:
    profile = make_aep(aep_events=True).lookup([ADA], time.monotonic() + 5)

    assert isinstance(profile, Profile)
    assert ["e-2", "e-1"] == [event.id for event in profile.events]


def test_a_wrong_secret_is_a_permanent_error(make_aep: MakeAep) -> None:
    with pytest.raises(PermanentError):
        make_aep(aep_client_secret="wrong").ping()


def test_an_unreachable_platform_is_transient(make_aep: MakeAep) -> None:
    with AdobeStandIn() as gone:
        address = gone.base_url

    with pytest.raises(TransientError):
        make_aep(aep_base_url=address, aep_ims_base_url=address).lookup([ADA],
                                                                        time.monotonic() + 5)


def test_segment_finds_a_caller_by_phone(segment: SegmentStandIn,
                                         segment_provider: SegmentProfileProvider) -> None:
    profile = segment_provider.lookup([ADA], time.monotonic() + 5)

    assert isinstance(profile, Profile)
    assert ("segment", "user_id:u-ada") == (profile.source, profile.profile_id)
    assert {"plan": "gold"} == profile.attributes["segment"]["traits"]
    assert "/phone:%2B14155550134/traits" in segment.requests[0].raw_path


def test_segment_does_not_know_a_stranger(segment_provider: SegmentProfileProvider) -> None:
    stranger = Identity(namespace="Phone_E.164", id="+14155550199")

    assert segment_provider.lookup([stranger], time.monotonic() + 5) is None


def test_segment_misses_a_short_deadline_promptly(
        segment: SegmentStandIn, segment_provider: SegmentProfileProvider) -> None:
    segment.latency = 0.5
    started = time.monotonic()

    with pytest.raises(TransientError, match="deadline"):
        segment_provider.lookup([ADA], started + 0.2)
    assert time.monotonic() - started < 0.25


def test_segment_throttling_says_when_to_retry(
        segment: SegmentStandIn, segment_provider: SegmentProfileProvider) -> None:
    segment.fail_next(status=429, retry_after_ms=1500)

    with pytest.raises(TransientError) as raised:
        segment_provider.lookup([ADA], time.monotonic() + 5)
    assert 1.5 == raised.value.retry_after


def test_segment_ping_checks_the_token(segment: SegmentStandIn,
                                       segment_provider: SegmentProfileProvider) -> None:
    segment_provider.ping()
    segment.token = "rotated"

    with pytest.raises(PermanentError):
        segment_provider.ping()


def test_the_chain_falls_through_a_failing_aep_to_segment(
        adobe: AdobeStandIn, make_aep: MakeAep,
        segment_provider: SegmentProfileProvider) -> None:
    adobe.fail_next(status=503, kinds=("entities",))
    chain = ProviderChain([make_aep(), segment_provider], HubMetrics())

    result = chain.lookup([ADA], time.monotonic() + 2)

    assert isinstance(result.profile, Profile)
    assert "segment" == result.profile.source
