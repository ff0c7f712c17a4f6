"""The AEP adapter against the documented request and answer shapes (``responses``)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from responses import matchers

from hub.models import AmbiguousMatch, AudienceMembership, Identity, Profile
from hub.ports import PermanentError, TransientError
from hub.settings import Settings
from lookup.aep import AepProfileProvider

BASE = "https://platform.test"
IMS = "https://ims.test"
TOKEN_URL = f"{IMS}/ims/token/v3"
ENTITIES = f"{BASE}/data/core/ups/access/entities"
AUDIENCES = f"{BASE}/data/core/ups/audiences/"
SECRET = "client-secret-value"
PHONE = "+14155550134"
ADA = Identity(namespace="Phone_E.164", id=PHONE)
ADA_LOCAL = Identity(namespace="Phone", id=PHONE)
ADA_ENTITY: dict[str, Any] = {
    "identityMap": {"Phone_E.164": [{"id": PHONE, "primary": True}],
                    "CRMID": [{"id": "C-1001"}]},
    "person": {"name": {"firstName": "Ada", "lastName": "Lovelace"}},
    "_cah": {"ComputedAttributes": {"purchases30d": 3}, "scores": {"churnPropensity": 0.8}},
    "segmentMembership": {"ups": {"aud-1": {"status": "realized"},
                                  "aud-2": {"xdm:status": "exited"}}},
}


def aep_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "aep_base_url": BASE, "aep_ims_base_url": IMS, "aep_client_id": "client-id",
        "aep_client_secret": SECRET, "aep_org_id": "ORG@AdobeOrg", "aep_sandbox": "Prod",
        "aep_events": False, "aep_timeout_ms": 800,
    }
    return Settings(_env_file=None, **{**values, **overrides})


def answer(xid: str = "XID-ADA", entity: dict[str, Any] | None = None) -> dict[str, Any]:
    return {xid: {"entityId": xid, "sources": ["ds-crm"], "lastModifiedAt": "2026-05-01T10:00:00Z",
                  "entity": ADA_ENTITY if entity is None else entity}}


def soon() -> float:
    return time.monotonic() + 5


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(TOKEN_URL, json={"access_token": "tok-1", "token_type": "bearer",
                                   "expires_in": 86399})
        mock.get(f"{AUDIENCES}aud-1", json={"id": "aud-1", "name": "High value"})
        mock.get(f"{AUDIENCES}aud-2", json={"id": "aud-2", "name": "Lapsed"})
        yield mock


@pytest.fixture
def provider() -> Iterator[AepProfileProvider]:
    aep = AepProfileProvider.from_settings(aep_settings())
    yield aep
    aep.close()


def namespace(code: str) -> Any:
    return matchers.query_param_matcher({"entityIdNS": code}, strict_match=False)


def calls_to(mock: responses.RequestsMock, url: str) -> list[Any]:
    return [call for call in mock.calls if str(call.request.url).split("?")[0] == url]


def timeout_of(call: Any) -> float:
    """The timeout the adapter gave ``requests`` (``responses`` keeps the call's kwargs)."""
    return float(call.request.req_kwargs["timeout"])


def query_of(call: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(call.request.url).query)


def test_a_known_phone_gives_the_merged_profile(rsps: responses.RequestsMock,
                                                provider: AepProfileProvider) -> None:
    rsps.get(ENTITIES, json=answer())

    profile = provider.lookup([ADA], soon())

    assert isinstance(profile, Profile)
    assert ("aep", "XID-ADA") == (profile.source, profile.profile_id)
    assert (ADA, Identity(namespace="CRMID", id="C-1001")) == profile.identities
    assert {"person", "_cah", "_aep"} == set(profile.attributes)
    assert 3 == profile.attributes["_cah"]["ComputedAttributes"]["purchases30d"]
    assert ["ds-crm"] == profile.attributes["_aep"]["sources"]


def test_audiences_carry_their_status_and_name(rsps: responses.RequestsMock,
                                               provider: AepProfileProvider) -> None:
    rsps.get(ENTITIES, json=answer())

    profile = provider.lookup([ADA], soon())

    assert isinstance(profile, Profile)
    assert (AudienceMembership(id="aud-1", name="High value", status="realized"),
            AudienceMembership(id="aud-2", name="Lapsed", status="exited")) == profile.audiences


def test_the_lookup_sends_the_four_platform_headers(rsps: responses.RequestsMock,
                                                    provider: AepProfileProvider) -> None:
    rsps.get(ENTITIES, json=answer())

    provider.lookup([ADA], soon())

    headers = calls_to(rsps, ENTITIES)[0].request.headers
    assert "Bearer tok-1" == headers["Authorization"]
    assert "client-id" == headers["x-api-key"]
    assert "ORG@AdobeOrg" == headers["x-gw-ims-org-id"]
    assert "prod" == headers["x-sandbox-name"]
    assert "Content-Type" not in headers


def test_the_lookup_asks_for_the_profile_by_identity_and_namespace(
        rsps: responses.RequestsMock) -> None:
    rsps.get(ENTITIES, json=answer())
    aep = AepProfileProvider.from_settings(aep_settings(aep_merge_policy_id="mp-1",
                                                       aep_fields="person.name,_cah"))
    aep.lookup([ADA], soon())
    aep.close()

    call = calls_to(rsps, ENTITIES)[0]
    assert "entityId=%2B14155550134" in call.request.url
    assert {"schema.name": ["_xdm.context.profile"], "entityId": [PHONE],
            "entityIdNS": ["Phone_E.164"], "mergePolicyId": ["mp-1"],
            "fields": ["person.name,_cah,identityMap,segmentMembership"]} == query_of(call)


def test_the_token_comes_from_ims_with_client_credentials(rsps: responses.RequestsMock,
                                                          provider: AepProfileProvider) -> None:
    rsps.get(ENTITIES, json=answer())

    provider.lookup([ADA], soon())

    form = parse_qs(str(calls_to(rsps, TOKEN_URL)[0].request.body))
    assert {"grant_type": ["client_credentials"], "client_id": ["client-id"],
            "client_secret": [SECRET],
            "scope": [aep_settings().aep_scopes]} == form


def test_one_token_serves_many_lookups(rsps: responses.RequestsMock,
                                       provider: AepProfileProvider) -> None:
    rsps.get(ENTITIES, json=answer())

    for _ in range(25):
        provider.lookup([ADA], soon())

    assert 1 == len(calls_to(rsps, TOKEN_URL))
    assert 25 == len(calls_to(rsps, ENTITIES))


def test_concurrent_lookups_share_one_token_fetch(rsps: responses.RequestsMock,
                                                  provider: AepProfileProvider) -> None:
    def slow_token(request: Any) -> tuple[int, dict[str, str], str]:
        time.sleep(0.1)
        return 200, {}, '{"access_token": "tok-slow", "expires_in": 86399}'

    rsps.remove(responses.POST, TOKEN_URL)
    rsps.add_callback(responses.POST, TOKEN_URL, callback=slow_token)
    rsps.get(ENTITIES, json=answer())
    threads = [threading.Thread(target=provider.lookup, args=([ADA], soon())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert 1 == len(calls_to(rsps, TOKEN_URL))
    assert 8 == len(calls_to(rsps, ENTITIES))


def test_a_token_is_renewed_shortly_before_it_expires(rsps: responses.RequestsMock,
                                                      provider: AepProfileProvider) -> None:
    rsps.replace(responses.POST, TOKEN_URL, json={"access_token": "tok-short", "expires_in": 0.2})
    rsps.get(ENTITIES, json=answer())

    provider.lookup([ADA], soon())
    time.sleep(0.19)  # within the lifetime, but inside the renewal margin
    provider.lookup([ADA], soon())

    assert 2 == len(calls_to(rsps, TOKEN_URL))


def test_a_refused_token_is_renewed_once(rsps: responses.RequestsMock,
                                         provider: AepProfileProvider) -> None:
    rsps.replace(responses.POST, TOKEN_URL, json={"access_token": "tok-old", "expires_in": 86399})
    rsps.get(ENTITIES, status=401, json={"error_code": "401013"})
    rsps.post(TOKEN_URL, json={"access_token": "tok-new", "expires_in": 86399})
    rsps.get(ENTITIES, json=answer())

    profile = provider.lookup([ADA], soon())

    assert isinstance(profile, Profile)
    assert ["Bearer tok-old", "Bearer tok-new"] == [
        c.request.headers["Authorization"] for c in calls_to(rsps, ENTITIES)]


def test_a_token_refused_twice_is_a_permanent_error(rsps: responses.RequestsMock,
                                                    provider: AepProfileProvider) -> None:
    rsps.get(ENTITIES, status=401, json={"error_code": "401013"})

    with pytest.raises(PermanentError):
        provider.lookup([ADA], soon())
    assert 2 == len(calls_to(rsps, TOKEN_URL))


def test_candidates_are_tried_in_order_until_one_is_known(rsps: responses.RequestsMock,
                                                          provider: AepProfileProvider) -> None:
    rsps.get(ENTITIES, status=404, json={"statusCode": "404"}, match=[namespace("Phone_E.164")])
    rsps.get(ENTITIES, json=answer(), match=[namespace("Phone")])

    profile = provider.lookup([ADA, ADA_LOCAL], soon())

    assert isinstance(profile, Profile)
    assert [["Phone_E.164"], ["Phone"]] == [
        query_of(c)["entityIdNS"] for c in calls_to(rsps, ENTITIES)]


def test_an_unknown_caller_is_none(rsps: responses.RequestsMock,
                                   provider: AepProfileProvider) -> None:
    rsps.get(ENTITIES, status=404, json={"statusCode": "404"})

    assert provider.lookup([ADA, ADA_LOCAL], soon()) is None
    assert 2 == len(calls_to(rsps, ENTITIES))


def test_an_empty_placeholder_entry_is_not_a_profile(rsps: responses.RequestsMock,
                                                     provider: AepProfileProvider) -> None:
    rsps.get(ENTITIES, json={"XID-0": {"entityId": "XID-0", "sources": [""], "entity": {},
                                       "lastModifiedAt": "1970-01-01T00:00:00Z"}})

    assert provider.lookup([ADA], soon()) is None


def test_too_many_related_identities_is_a_shared_number(rsps: responses.RequestsMock,
                                                        provider: AepProfileProvider) -> None:
    rsps.get(ENTITIES, status=422, json={"message": "Too many related identities",
                                         "statusCode": "422"})

    assert AmbiguousMatch(source="aep", identity=ADA, count=None) == provider.lookup([ADA], soon())


def test_a_missing_merge_policy_is_a_permanent_error(rsps: responses.RequestsMock,
                                                     provider: AepProfileProvider) -> None:
    rsps.get(ENTITIES, status=422, json={"message": "No default merge policy for the schema"})

    with pytest.raises(PermanentError):
        provider.lookup([ADA], soon())


def test_several_profiles_in_one_answer_are_ambiguous(rsps: responses.RequestsMock,
                                                      provider: AepProfileProvider) -> None:
    rsps.get(ENTITIES, json={**answer("XID-ADA"), **answer("XID-BYRON")})

    match = provider.lookup([ADA], soon())

    assert isinstance(match, AmbiguousMatch)
    assert (2, ["XID-ADA", "XID-BYRON"]) == (match.count,
                                             [p.profile_id for p in match.candidates])


def test_throttling_is_transient_with_aeps_retry_after(rsps: responses.RequestsMock,
                                                       provider: AepProfileProvider) -> None:
    rsps.get(ENTITIES, status=429, json=[{"message": "Too many requests", "statusCode": "429",
                                          "retryAfterMs": "1500"}])

    with pytest.raises(TransientError) as raised:
        provider.lookup([ADA], soon())
    assert 1.5 == raised.value.retry_after


def test_throttling_without_retry_after_ms_uses_the_header(rsps: responses.RequestsMock,
                                                          provider: AepProfileProvider) -> None:
    rsps.get(ENTITIES, status=429, body="", headers={"Retry-After": "3"})

    with pytest.raises(TransientError) as raised:
        provider.lookup([ADA], soon())
    assert 3.0 == raised.value.retry_after


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_transient(rsps: responses.RequestsMock,
                                     provider: AepProfileProvider, status: int) -> None:
    rsps.get(ENTITIES, status=status, json={"message": "internal"})

    with pytest.raises(TransientError):
        provider.lookup([ADA], soon())


@pytest.mark.parametrize("status", [400, 403])
def test_bad_requests_and_refusals_are_permanent(rsps: responses.RequestsMock,
                                                 provider: AepProfileProvider, status: int) -> None:
    rsps.get(ENTITIES, status=status, json={"message": "UPS-ACC-1000004"})

    with pytest.raises(PermanentError):
        provider.lookup([ADA], soon())


@pytest.mark.parametrize("failure", [requests.ConnectionError("refused"),
                                     requests.ReadTimeout("slow")])
def test_connection_failures_and_timeouts_are_transient(
        rsps: responses.RequestsMock, provider: AepProfileProvider, failure: Exception) -> None:
    rsps.get(ENTITIES, body=failure)

    with pytest.raises(TransientError):
        provider.lookup([ADA], soon())


def test_an_answer_that_is_not_json_is_transient(rsps: responses.RequestsMock,
                                                 provider: AepProfileProvider) -> None:
    rsps.get(ENTITIES, body="<html>gateway</html>")

    with pytest.raises(TransientError):
        provider.lookup([ADA], soon())


def test_past_the_deadline_nothing_is_sent(rsps: responses.RequestsMock,
                                           provider: AepProfileProvider) -> None:
    with pytest.raises(TransientError, match="deadline"):
        provider.lookup([ADA], time.monotonic() - 0.01)
    assert [] == list(rsps.calls)


def test_each_request_waits_no_longer_than_the_deadline_allows(
        rsps: responses.RequestsMock, provider: AepProfileProvider) -> None:
    rsps.get(ENTITIES, json=answer())

    provider.lookup([ADA], time.monotonic() + 0.3)

    timeouts = [timeout_of(call) for call in rsps.calls]
    assert all(0 < timeout <= 0.3 for timeout in timeouts), timeouts


def test_each_request_waits_no_longer_than_the_timeout(rsps: responses.RequestsMock,
                                                       provider: AepProfileProvider) -> None:
    rsps.get(ENTITIES, json=answer())

    provider.lookup([ADA], time.monotonic() + 60)

    assert {0.8} == {timeout_of(call) for call in rsps.calls}


def test_audience_names_are_fetched_once(rsps: responses.RequestsMock,
                                         provider: AepProfileProvider) -> None:
    rsps.get(ENTITIES, json=answer())

    for _ in range(3):
        provider.lookup([ADA], soon())

    assert 1 == len(calls_to(rsps, f"{AUDIENCES}aud-1"))
    assert 1 == len(calls_to(rsps, f"{AUDIENCES}aud-2"))


def test_an_audience_name_that_fails_is_unknown_and_asked_again(
        rsps: responses.RequestsMock, provider: AepProfileProvider) -> None:
    rsps.get(ENTITIES, json=answer())
    rsps.replace(responses.GET, f"{AUDIENCES}aud-1", status=503)

    first = provider.lookup([ADA], soon())
    rsps.replace(responses.GET, f"{AUDIENCES}aud-1", json={"name": "High value"})
    second = provider.lookup([ADA], soon())

    assert isinstance(first, Profile)
    assert isinstance(second, Profile)
    assert (None, "High value") == (first.audiences[0].name, second.audiences[0].name)


def test_recent_events_are_asked_for_newest_first(rsps: responses.RequestsMock) -> None:
    rsps.get(ENTITIES, json=answer(), match=[matchers.query_param_matcher(
        {"schema.name": "_xdm.context.profile"}, strict_match=False)])
    rsps.get(ENTITIES, json={"children": [
        {"entityId": "e-1", "timestamp": 1777629600000, "entity": {"eventType": "web.visit"}},
        {"entityId": "e-2", "entity": {"eventType": "commerce.purchases",
                                       "timestamp": "2026-06-01T10:00:00Z"}}]},
        match=[matchers.query_param_matcher({"schema.name": "_xdm.context.experienceevent"},
                                            strict_match=False)])
    aep = AepProfileProvider.from_settings(aep_settings(aep_events=True))

    profile = aep.lookup([ADA], soon())
    aep.close()

    assert isinstance(profile, Profile)
    assert ["e-2", "e-1"] == [event.id for event in profile.events]
    assert {"schema.name": ["_xdm.context.experienceevent"],
            "relatedSchema.name": ["_xdm.context.profile"], "relatedEntityId": [PHONE],
            "relatedEntityIdNS": ["Phone_E.164"], "orderby": ["-timestamp"],
            "limit": ["10"]} == query_of(calls_to(rsps, ENTITIES)[1])


def test_events_that_fail_leave_the_profile_without_them(rsps: responses.RequestsMock) -> None:
    rsps.get(ENTITIES, json=answer())
    rsps.get(ENTITIES, status=403, json={"message": "not entitled to event lookup"})
    aep = AepProfileProvider.from_settings(aep_settings(aep_events=True))

    profile = aep.lookup([ADA], soon())
    aep.close()

    assert isinstance(profile, Profile)
    assert () == profile.events


def test_events_are_not_asked_for_when_turned_off(rsps: responses.RequestsMock,
                                                  provider: AepProfileProvider) -> None:
    rsps.get(ENTITIES, json=answer())

    provider.lookup([ADA], soon())

    assert 1 == len(calls_to(rsps, ENTITIES))


def test_credentials_ims_refuses_are_a_permanent_error(rsps: responses.RequestsMock,
                                                       provider: AepProfileProvider) -> None:
    rsps.replace(responses.POST, TOKEN_URL, status=400, json={"error": "invalid_client"})

    with pytest.raises(PermanentError, match="invalid_client"):
        provider.lookup([ADA], soon())


def test_ims_unavailable_is_transient(rsps: responses.RequestsMock,
                                      provider: AepProfileProvider) -> None:
    rsps.replace(responses.POST, TOKEN_URL, status=503)

    with pytest.raises(TransientError):
        provider.ping()


def test_ping_fetches_a_token_once(rsps: responses.RequestsMock,
                                   provider: AepProfileProvider) -> None:
    provider.ping()
    provider.ping()

    assert 1 == len(calls_to(rsps, TOKEN_URL))


def test_missing_credentials_are_named() -> None:
    with pytest.raises(ValueError, match="CAHUB_AEP_CLIENT_SECRET"):
        AepProfileProvider.from_settings(aep_settings(aep_client_secret=None))


def test_no_secret_token_or_number_reaches_the_log(
        rsps: responses.RequestsMock, provider: AepProfileProvider,
        caplog: pytest.LogCaptureFixture) -> None:
    rsps.get(ENTITIES, json=answer())
    rsps.replace(responses.GET, f"{AUDIENCES}aud-1", status=403)
    caplog.set_level(logging.DEBUG, logger="lookup")

    provider.lookup([ADA], soon())
    rsps.replace(responses.GET, ENTITIES, status=500)
    with pytest.raises(TransientError) as raised:
        provider.lookup([ADA], soon())

    text = caplog.text + str(raised.value)
    assert "refused" in caplog.text
    assert not [s for s in (SECRET, "tok-1", PHONE, "4155550134") if s in text]
