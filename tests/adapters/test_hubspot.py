"""HubSpot sink against `responses`: phone search, notes and calls, marker-based dedupe."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import pytest
import responses
from pydantic import SecretStr
from responses.matchers import query_param_matcher

from hub.desk import Outcome, WrapUpRules
from hub.models import Delivery, DeliveryAction
from hub.ports import TransientError
from hub.settings import HubConfig
from integrations.hubspot import HubSpotNoteSink, dispositions

BASE = "https://api.hubapi.test"
CALL_SID = "CA" + "cd" * 16
CREATED = datetime(2026, 11, 23, 10, 4, 5, 123456, tzinfo=UTC)
NOTE = {"summary": {"name": "Ada Lovelace"}, "text": "Gold <VIP>\nLTV 1234.5",
        "phone": "+14155550134", "subject": "Inbound call"}
CALL_LOG = {**NOTE, "duration_s": 143, "outcome": "no-answer", "direction": "inbound",
            "started_at": "2026-11-23T10:04:00Z", "subject": "Call from Ada"}
Mock = responses.RequestsMock


def delivery(action: DeliveryAction = DeliveryAction.NOTE, payload: Any = None) -> Delivery:
    payload = payload if payload is not None else (
        NOTE if action is DeliveryAction.NOTE else CALL_LOG)
    return Delivery(id=1, call_sid=CALL_SID, sink="hubspot", action=action, payload=payload,
                    created_at=CREATED, next_attempt_at=CREATED)


@pytest.fixture
def rsps() -> Iterator[Mock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(f"{BASE}/crm/v3/objects/contacts/search",
                  json={"total": 1, "results": [{"id": "501", "properties": {}}]})
        for kind in ("notes", "calls"):
            mock.get(f"{BASE}/crm/v4/objects/contacts/501/associations/{kind}",
                     json={"results": []})
            mock.post(f"{BASE}/crm/v3/objects/{kind}", status=201, json={"id": "9000"})
        yield mock


@pytest.fixture
def sink() -> Iterator[HubSpotNoteSink]:
    sink = HubSpotNoteSink("pat-na1-token", base_url=BASE)
    yield sink
    sink.close()


def bodies(rsps: Mock, method: str, path: str) -> list[Any]:
    return [json.loads(c.request.body) for c in rsps.calls
            if c.request.method == method and urlsplit(c.request.url).path == path]


def associated(rsps: Mock, kind: str, properties: dict[str, str]) -> None:
    rsps.replace("GET", f"{BASE}/crm/v4/objects/contacts/501/associations/{kind}",
                 json={"results": [{"toObjectId": 7, "associationTypes": []},
                                   {"toObjectId": 8, "associationTypes": []}]})
    rsps.post(f"{BASE}/crm/v3/objects/{kind}/batch/read", json={"status": "COMPLETE", "results": [
        {"id": "7", "properties": {"hs_call_external_id": "CAother", "hs_timestamp": "0"}},
        {"id": "8", "properties": properties}]})


def paged(rsps: Mock, kind: str, pages: list[list[int]]) -> None:
    """The contact's ``kind`` associations as pages of ids, each naming the next one's cursor."""
    url = f"{BASE}/crm/v4/objects/contacts/501/associations/{kind}"
    rsps.remove("GET", url)
    for number, ids in enumerate(pages):
        query = {"limit": "500"} | ({"after": f"cursor-{number}"} if number else {})
        more = {"paging": {"next": {"after": f"cursor-{number + 1}"}}}
        rsps.get(url, match=[query_param_matcher(query)], json={
            "results": [{"toObjectId": i, "associationTypes": []} for i in ids],
            **(more if number + 1 < len(pages) else {})})


def stored(rsps: Mock, kind: str, records: dict[int, dict[str, str]]) -> None:
    """A batch read that answers with the asked-for ones of ``records`` (id -> properties)."""
    def read(request: Any) -> tuple[int, dict[str, str], str]:
        asked = [int(row["id"]) for row in json.loads(request.body)["inputs"]]
        return 200, {}, json.dumps({"status": "COMPLETE", "results": [
            {"id": str(i), "properties": records[i]} for i in asked if i in records]})

    rsps.add_callback("POST", f"{BASE}/crm/v3/objects/{kind}/batch/read", callback=read,
                      content_type="application/json")


def test_the_contact_is_searched_by_e164_and_national_digits(rsps: Mock, sink: HubSpotNoteSink,
                                                             ) -> None:
    sink.deliver(delivery())

    [search] = bodies(rsps, "POST", "/crm/v3/objects/contacts/search")
    filters = [group["filters"][0] for group in search["filterGroups"]]
    assert [("phone", "+14155550134"), ("mobilephone", "+14155550134"),
            ("hs_searchable_calculated_phone_number", "4155550134"),
            ("hs_searchable_calculated_mobile_number", "4155550134")] == [
        (f["propertyName"], f["value"]) for f in filters]
    assert {"EQ"} == {f["operator"] for f in filters}


def test_a_note_is_escaped_html_timed_when_the_delivery_was_made(rsps: Mock,
                                                                 sink: HubSpotNoteSink) -> None:
    sink.deliver(delivery())

    [note] = bodies(rsps, "POST", "/crm/v3/objects/notes")
    assert {"hs_timestamp": "2026-11-23T10:04:05.123Z",
            "hs_note_body": "Inbound call<br><br>Gold &lt;VIP&gt;<br>LTV 1234.5"
            } == note["properties"]


def test_a_call_log_is_a_call_engagement_on_the_contact(rsps: Mock, sink: HubSpotNoteSink) -> None:
    sink.deliver(delivery(DeliveryAction.CALL_LOG))

    [call] = bodies(rsps, "POST", "/crm/v3/objects/calls")
    assert {"hs_timestamp": "2026-11-23T10:04:00.000Z", "hs_call_title": "Call from Ada",
            "hs_call_body": "Gold &lt;VIP&gt;<br>LTV 1234.5", "hs_call_direction": "INBOUND",
            "hs_call_duration": "143000", "hs_call_status": "NO_ANSWER",
            "hs_call_external_id": CALL_SID, "hs_call_from_number": "+14155550134",
            } == call["properties"]
    assert [{"to": {"id": "501"}, "types": [
        {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 194}]}
            ] == call["associations"]


def test_a_call_already_logged_for_this_call_sid_is_not_logged_again(rsps: Mock,
                                                                     sink: HubSpotNoteSink) -> None:
    associated(rsps, "calls", {"hs_call_external_id": CALL_SID})

    sink.deliver(delivery(DeliveryAction.CALL_LOG))

    assert [] == bodies(rsps, "POST", "/crm/v3/objects/calls")
    [read] = bodies(rsps, "POST", "/crm/v3/objects/calls/batch/read")
    assert {"properties": ["hs_call_external_id"], "inputs": [{"id": "8"}, {"id": "7"}]} == read


def test_a_call_logged_on_the_second_page_of_associations_is_not_logged_again(
        rsps: Mock, sink: HubSpotNoteSink) -> None:
    paged(rsps, "calls", [list(range(1000, 1500)), [1500]])
    stored(rsps, "calls", {1500: {"hs_call_external_id": CALL_SID}})

    sink.deliver(delivery(DeliveryAction.CALL_LOG))

    assert [] == bodies(rsps, "POST", "/crm/v3/objects/calls")


def test_the_newest_associated_calls_are_the_ones_read_back(rsps: Mock,
                                                            sink: HubSpotNoteSink) -> None:
    paged(rsps, "calls", [list(range(1000, 1500)), [1500]])
    stored(rsps, "calls", {})

    sink.deliver(delivery(DeliveryAction.CALL_LOG))

    [read] = bodies(rsps, "POST", "/crm/v3/objects/calls/batch/read")
    assert [{"id": str(i)} for i in range(1500, 1400, -1)] == read["inputs"]


def test_a_contact_with_too_many_pages_of_calls_is_not_written_to(rsps: Mock,
                                                                 sink: HubSpotNoteSink) -> None:
    paged(rsps, "calls", [[page] for page in range(1, 22)])  # 21 pages; 20 are read

    with pytest.raises(TransientError, match="more than 20 pages"):
        sink.deliver(delivery(DeliveryAction.CALL_LOG))

    assert [] == bodies(rsps, "POST", "/crm/v3/objects/calls")


def test_a_note_with_this_deliverys_timestamp_is_not_written_again(rsps: Mock,
                                                                   sink: HubSpotNoteSink) -> None:
    associated(rsps, "notes", {"hs_timestamp": "2026-11-23T10:04:05.123Z"})

    sink.deliver(delivery())

    assert [] == bodies(rsps, "POST", "/crm/v3/objects/notes")


def test_a_note_from_another_moment_does_not_stop_the_write(rsps: Mock,
                                                            sink: HubSpotNoteSink) -> None:
    associated(rsps, "notes", {"hs_timestamp": "2026-11-23T10:04:05.124Z"})

    sink.deliver(delivery())

    assert 1 == len(bodies(rsps, "POST", "/crm/v3/objects/notes"))


def test_an_unknown_caller_becomes_a_contact_once(rsps: Mock, sink: HubSpotNoteSink) -> None:
    rsps.replace("POST", f"{BASE}/crm/v3/objects/contacts/search", json={"total": 0, "results": []})
    rsps.post(f"{BASE}/crm/v3/objects/contacts", status=201, json={"id": "501"})

    sink.deliver(delivery())
    sink.deliver(delivery(DeliveryAction.CALL_LOG))

    assert [{"properties": {"phone": "+14155550134", "firstname": "Ada", "lastname": "Lovelace"}}
            ] == bodies(rsps, "POST", "/crm/v3/objects/contacts")
    assert 1 == len(bodies(rsps, "POST", "/crm/v3/objects/contacts/search"))


def test_an_unknown_caller_is_skipped_when_configured(rsps: Mock) -> None:
    rsps.replace("POST", f"{BASE}/crm/v3/objects/contacts/search", json={"total": 0, "results": []})
    sink = HubSpotNoteSink("token", base_url=BASE, on_missing="skip")

    sink.deliver(delivery())
    sink.close()

    assert [] == bodies(rsps, "POST", "/crm/v3/objects/notes")


def test_a_429_without_retry_after_waits_out_the_ten_second_window(rsps: Mock,
                                                                   sink: HubSpotNoteSink) -> None:
    rsps.replace("POST", f"{BASE}/crm/v3/objects/contacts/search", status=429, json={
        "status": "error", "message": "You have reached your ten_secondly_rolling limit.",
        "errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING"})

    with pytest.raises(TransientError) as raised:
        sink.deliver(delivery())

    assert 10.0 == raised.value.retry_after


def test_the_token_is_a_bearer_token_and_never_in_errors(rsps: Mock, sink: HubSpotNoteSink) -> None:
    rsps.replace("POST", f"{BASE}/crm/v3/objects/contacts/search", status=503)

    with pytest.raises(TransientError) as raised:
        sink.deliver(delivery())

    assert "Bearer pat-na1-token" == rsps.calls[0].request.headers["Authorization"]
    assert "pat-na1" not in str(raised.value)


def test_settings_need_the_token() -> None:
    settings = SimpleNamespace(hubspot_base_url=BASE, hubspot_token=None,
                               crm_on_missing="create", sink_timeout_s=5.0)

    with pytest.raises(ValueError, match="CAHUB_HUBSPOT_TOKEN"):
        HubSpotNoteSink.from_settings(settings)


def test_settings_build_a_working_sink(rsps: Mock) -> None:
    settings = SimpleNamespace(hubspot_base_url=BASE, hubspot_token=SecretStr("from-settings"),
                               crm_on_missing="skip", sink_timeout_s=5.0, hub=HubConfig())
    sink = HubSpotNoteSink.from_settings(settings)

    sink.deliver(delivery())
    sink.close()

    assert "Bearer from-settings" == rsps.calls[0].request.headers["Authorization"]


def test_a_call_log_as_the_core_renders_it_starts_at_its_end_less_its_duration(
        rsps: Mock, sink: HubSpotNoteSink) -> None:
    payload = {key: value for key, value in CALL_LOG.items() if key != "started_at"}
    payload["ended_at"] = "Mon, 23 Nov 2026 10:06:23 +0000"  # Twilio's Timestamp

    sink.deliver(delivery(DeliveryAction.CALL_LOG, payload))

    [call] = bodies(rsps, "POST", "/crm/v3/objects/calls")
    assert "2026-11-23T10:04:00.000Z" == call["properties"]["hs_timestamp"]


def test_an_unreadable_time_falls_back_to_when_the_delivery_was_made(
        rsps: Mock, sink: HubSpotNoteSink) -> None:
    payload = {**CALL_LOG, "started_at": "yesterday-ish"}

    sink.deliver(delivery(DeliveryAction.CALL_LOG, payload))

    [call] = bodies(rsps, "POST", "/crm/v3/objects/calls")
    assert "2026-11-23T10:04:05.123Z" == call["properties"]["hs_timestamp"]


WRAPPED = {**CALL_LOG, "outcome": "Left voicemail", "outcome_id": "left_voicemail",
           "call_status": "completed", "notes": "Asked her to call back <today>."}


def logged_call(rsps: Mock) -> dict[str, str]:
    return bodies(rsps, "POST", "/crm/v3/objects/calls")[0]["properties"]


def test_a_wrapped_up_call_carries_hubspots_own_outcome_and_the_notes(rsps: Mock,
                                                                      sink: HubSpotNoteSink):
    sink.deliver(delivery(DeliveryAction.CALL_LOG, WRAPPED))

    call = logged_call(rsps)
    assert "b2cf5968-551e-4856-9783-52b3da59a7d0" == call["hs_call_disposition"]
    assert ("Outcome: Left voicemail<br><br>Asked her to call back &lt;today&gt;.<br><br>"
            "Gold &lt;VIP&gt;<br>LTV 1234.5") == call["hs_call_body"]
    assert "COMPLETED" == call["hs_call_status"]


def test_an_outcome_hubspot_has_none_for_is_named_in_the_body_only(rsps: Mock,
                                                                   sink: HubSpotNoteSink):
    payload = {**WRAPPED, "outcome": "Refund issued", "outcome_id": "refund_issued"}

    sink.deliver(delivery(DeliveryAction.CALL_LOG, payload))

    call = logged_call(rsps)
    assert "hs_call_disposition" not in call
    assert call["hs_call_body"].startswith("Outcome: Refund issued<br><br>")


def test_the_toml_can_map_an_outcome_to_a_custom_hubspot_outcome() -> None:
    custom = "5f1c1e2b-0000-4000-8000-00000000abcd"
    rules = WrapUpRules(outcomes=(Outcome(id="refund", label="Refund issued", hubspot=custom),
                                  Outcome(id="na", label="No Answer"),
                                  Outcome(id="other", label="Something else")))

    assert {"refund": custom, "na": "73a0d17f-1163-4015-bdd5-ec830791da20"} == dispositions(
        rules.outcomes)
