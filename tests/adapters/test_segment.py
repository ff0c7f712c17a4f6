"""The Segment adapter against the Profile API's documented shapes (``responses``)."""

from __future__ import annotations

import base64
import json
import logging
import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import responses

from hub.models import Identity, Profile
from hub.ports import PermanentError, TransientError
from hub.settings import Settings
from lookup.segment import SegmentProfileProvider

BASE = "https://profiles.test"
PROFILES = f"{BASE}/v1/spaces/spa_1/collections/users/profiles"
ADA_AT = "/phone:%2B14155550134"
TOKEN = "segment-access-token"
PHONE = "+14155550134"
ADA = Identity(namespace="Phone_E.164", id=PHONE)
ADA_LOCAL = Identity(namespace="Phone", id=PHONE)
ADA_EMAIL = Identity(namespace="Email", id="ada@example.com")
CRM = Identity(namespace="CRMID", id="C-1001")
TRAITS = {"traits": {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com",
                     "lifetime_value": 1234.5, "big_spender": True},
          "cursor": {"url": "/v1/spaces/spa_1/collections/users/profiles/use_Ada1/traits",
                     "has_more": False, "next": ""}}
NOT_FOUND = {"error": {"code": "not_found", "message": "Profile was not found."}}
Answers = dict[str, Any]  # path after .../profiles -> (status, body[, headers]) or an exception


def segment_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"segment_base_url": BASE, "segment_space_id": "spa_1",
                              "segment_token": TOKEN, "segment_timeout_ms": 500}
    return Settings(_env_file=None, **{**values, **overrides})


def soon() -> float:
    return time.monotonic() + 5


@pytest.fixture
def answers() -> Answers:
    """What the space answers, by path; any other person is not found."""
    return {}


@pytest.fixture
def rsps(answers: Answers) -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_callback(responses.GET, re.compile(rf"{re.escape(PROFILES)}/.*"),
                          callback=lambda request: answer(answers, request))
        yield mock


def answer(answers: Answers, request: Any) -> Any:
    path = urlsplit(request.url).path.removeprefix(urlsplit(PROFILES).path)
    spec = answers.get(path, (404, NOT_FOUND))
    if isinstance(spec, Exception):
        return spec
    status, body, *headers = spec
    return status, (headers[0] if headers else {}), json.dumps(body)


@pytest.fixture
def provider() -> Iterator[SegmentProfileProvider]:
    segment = SegmentProfileProvider.from_settings(segment_settings())
    yield segment
    segment.close()


def knows_ada(answers: Answers, person: str = ADA_AT) -> None:
    answers[f"{person}/traits"] = (200, TRAITS)
    answers[f"{person}/external_ids"] = (200, {"data": [
        {"type": "user_id", "id": "u-ada", "collection": "users", "encoding": "none"},
        {"type": "email", "id": "ada@example.com", "collection": "users"}]})
    answers[f"{person}/events"] = (200, {"data": [
        {"message_id": "m-1", "type": "track", "event": "Product Viewed",
         "timestamp": "2026-05-01T10:00:00Z", "properties": {"sku": "TS-1"}},
        {"message_id": "m-2", "type": "track", "event": "Order Completed",
         "timestamp": "2026-05-02T10:00:00Z", "properties": {"total": 240},
         "context": {"campaign": {"name": "Winter Sale"}}}]})


def timeout_of(call: Any) -> float:
    """The timeout the adapter gave ``requests`` (``responses`` keeps the call's kwargs)."""
    return float(call.request.req_kwargs["timeout"])


def paths(mock: responses.RequestsMock) -> list[str]:
    return [str(call.request.url).removeprefix(PROFILES) for call in mock.calls]


def test_a_known_phone_gives_the_profile(
    answers: Answers, rsps: responses.RequestsMock, provider: SegmentProfileProvider
) -> None:
    knows_ada(answers)

    profile = provider.lookup([ADA], soon())

    assert isinstance(profile, Profile)
    assert ("segment", "user_id:u-ada") == (profile.source, profile.profile_id)


def test_plain_traits_become_xdm_fields_and_the_rest_is_kept(
    answers: Answers, rsps: responses.RequestsMock, provider: SegmentProfileProvider
) -> None:
    knows_ada(answers)

    profile = provider.lookup([ADA], soon())

    assert isinstance(profile, Profile)
    assert {"person": {"name": {"firstName": "Ada", "lastName": "Lovelace"}},
            "personalEmail": {"address": "ada@example.com"},
            "segment": {"traits": {"lifetime_value": 1234.5, "big_spender": True}}
            } == profile.attributes


def test_external_ids_become_identities(
    answers: Answers, rsps: responses.RequestsMock, provider: SegmentProfileProvider
) -> None:
    knows_ada(answers)

    profile = provider.lookup([ADA], soon())

    assert isinstance(profile, Profile)
    assert (ADA, Identity(namespace="user_id", id="u-ada"), ADA_EMAIL) == profile.identities


def test_events_come_newest_first_with_their_campaign(
    answers: Answers, rsps: responses.RequestsMock, provider: SegmentProfileProvider
) -> None:
    knows_ada(answers)

    profile = provider.lookup([ADA], soon())

    assert isinstance(profile, Profile)
    assert ["Order Completed", "Product Viewed"] == [event.type for event in profile.events]
    assert {"total": 240, "marketing": {"campaignName": "Winter Sale"}} == profile.events[0].data


def test_the_phone_is_sent_with_its_plus_encoded(
    answers: Answers, rsps: responses.RequestsMock, provider: SegmentProfileProvider
) -> None:
    knows_ada(answers)

    provider.lookup([ADA], soon())

    assert ["/phone:%2B14155550134/traits?limit=200", "/phone:%2B14155550134/external_ids",
            "/phone:%2B14155550134/events?limit=10"] == paths(rsps)


def test_requests_carry_the_token_as_basic_user_name(
    answers: Answers, rsps: responses.RequestsMock, provider: SegmentProfileProvider
) -> None:
    knows_ada(answers)

    provider.lookup([ADA], soon())

    expected = "Basic " + base64.b64encode(f"{TOKEN}:".encode()).decode()
    assert {expected} == {call.request.headers["Authorization"] for call in rsps.calls}


def test_phone_namespaces_with_one_number_are_asked_once(
    rsps: responses.RequestsMock, provider: SegmentProfileProvider
) -> None:
    assert provider.lookup([ADA, ADA_LOCAL], soon()) is None
    assert ["/phone:%2B14155550134/traits?limit=200"] == paths(rsps)


def test_candidates_are_tried_in_order_until_one_is_known(
    answers: Answers, rsps: responses.RequestsMock, provider: SegmentProfileProvider
) -> None:
    knows_ada(answers, "/email:ada%40example.com")

    profile = provider.lookup([ADA, ADA_EMAIL], soon())

    assert isinstance(profile, Profile)
    assert ["/phone:%2B14155550134/traits?limit=200",
            "/email:ada%40example.com/traits?limit=200"] == paths(rsps)[:2]


def test_a_namespace_the_space_does_not_resolve_is_not_asked(
    rsps: responses.RequestsMock, provider: SegmentProfileProvider
) -> None:
    assert provider.lookup([CRM], soon()) is None
    assert [] == paths(rsps)


def test_a_namespace_can_be_mapped_to_an_identifier(rsps: responses.RequestsMock) -> None:
    segment = SegmentProfileProvider.from_settings(
        segment_settings(segment_identifiers="phone,CRMID=user_id"))

    segment.lookup([CRM], soon())
    segment.close()

    assert ["/user_id:C-1001/traits?limit=200"] == paths(rsps)


def test_an_unknown_caller_is_none(
    rsps: responses.RequestsMock, provider: SegmentProfileProvider
) -> None:
    assert provider.lookup([ADA, ADA_EMAIL], soon()) is None


def test_throttling_is_transient_with_retry_after(
    answers: Answers, rsps: responses.RequestsMock, provider: SegmentProfileProvider
) -> None:
    answers[f"{ADA_AT}/traits"] = (
        429, {"error": {"code": "rate_limit_error", "message": "slow down"}}, {"Retry-After": "2"})

    with pytest.raises(TransientError) as raised:
        provider.lookup([ADA], soon())
    assert 2.0 == raised.value.retry_after


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_transient(
    answers: Answers, rsps: responses.RequestsMock, provider: SegmentProfileProvider, status: int
) -> None:
    answers[f"{ADA_AT}/traits"] = (status, {})

    with pytest.raises(TransientError):
        provider.lookup([ADA], soon())


@pytest.mark.parametrize("status", [400, 401, 403])
def test_refusals_are_permanent(
    answers: Answers, rsps: responses.RequestsMock, provider: SegmentProfileProvider, status: int
) -> None:
    answers[f"{ADA_AT}/traits"] = (status, {"error": {"code": "authentication_error"}})

    with pytest.raises(PermanentError):
        provider.lookup([ADA], soon())


@pytest.mark.parametrize("failure", [requests.ConnectionError("refused"),
                                     requests.ReadTimeout("slow")])
def test_connection_failures_and_timeouts_are_transient(
    answers: Answers, rsps: responses.RequestsMock,
    provider: SegmentProfileProvider, failure: Exception
) -> None:
    answers[f"{ADA_AT}/traits"] = failure

    with pytest.raises(TransientError):
        provider.lookup([ADA], soon())


def test_past_the_deadline_nothing_is_sent(
    rsps: responses.RequestsMock, provider: SegmentProfileProvider
) -> None:
    with pytest.raises(TransientError, match="deadline"):
        provider.lookup([ADA], time.monotonic() - 0.01)
    assert [] == paths(rsps)


def test_each_request_waits_no_longer_than_the_timeout(
    answers: Answers, rsps: responses.RequestsMock, provider: SegmentProfileProvider
) -> None:
    knows_ada(answers)

    provider.lookup([ADA], time.monotonic() + 60)

    assert {0.5} == {timeout_of(call) for call in rsps.calls}


def test_a_profile_comes_without_the_extras_that_fail(
    answers: Answers, rsps: responses.RequestsMock, provider: SegmentProfileProvider
) -> None:
    answers.update({f"{ADA_AT}/traits": (200, TRAITS), f"{ADA_AT}/external_ids": (503, {}),
                    f"{ADA_AT}/events": requests.ReadTimeout("slow")})

    profile = provider.lookup([ADA], soon())

    assert isinstance(profile, Profile)
    assert ("use_Ada1", (ADA,), ()) == (profile.profile_id, profile.identities, profile.events)


def test_ping_takes_not_found_as_a_working_token(
    rsps: responses.RequestsMock, provider: SegmentProfileProvider
) -> None:
    provider.ping()

    assert ["/user_id:cahub-health-check/traits?limit=1"] == paths(rsps)


def test_ping_raises_when_the_token_is_refused(
    answers: Answers, rsps: responses.RequestsMock, provider: SegmentProfileProvider
) -> None:
    refusal = {"error": {"code": "authentication_error", "message": "no"}}
    answers["/user_id:cahub-health-check/traits"] = (401, refusal)

    with pytest.raises(PermanentError):
        provider.ping()


def test_missing_settings_are_named() -> None:
    with pytest.raises(ValueError, match="CAHUB_SEGMENT_TOKEN"):
        SegmentProfileProvider.from_settings(segment_settings(segment_token=None))


def test_no_token_or_number_reaches_the_log(
    answers: Answers, rsps: responses.RequestsMock,
    provider: SegmentProfileProvider, caplog: pytest.LogCaptureFixture
) -> None:
    answers.update({f"{ADA_AT}/traits": (200, TRAITS), f"{ADA_AT}/external_ids": (500, {})})
    caplog.set_level(logging.DEBUG, logger="lookup")

    provider.lookup([ADA], soon())

    assert "external_ids" in caplog.text
    assert not [s for s in (TOKEN, PHONE, "4155550134") if s in caplog.text]
