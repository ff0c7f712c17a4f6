"""Zendesk sink against `responses`: caller lookup, internal notes, Idempotency-Key."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from pydantic import SecretStr

from hub.models import Delivery, DeliveryAction
from hub.ports import TransientError
from integrations.zendesk import ZendeskNoteSink

BASE = "https://acme.zendesk.test"
CALL_SID = "CA" + "ef" * 16
CREATED = datetime(2026, 11, 23, 10, 4, 5, tzinfo=UTC)
NOTE = {"summary": {"name": "Ada Lovelace"}, "text": "Gold customer",
        "phone": "+14155550134", "subject": "Inbound call: Ada Lovelace"}
CALL_LOG = {**NOTE, "duration_s": 143, "outcome": "completed", "direction": "inbound",
            "started_at": "2026-11-23T10:04:00Z", "subject": "Call ended"}
CALL_TICKET = {"id": 7, "status": "open", "external_id": CALL_SID}
Mock = responses.RequestsMock


def delivery(action: DeliveryAction = DeliveryAction.NOTE, payload: Any = None) -> Delivery:
    payload = payload if payload is not None else (
        NOTE if action is DeliveryAction.NOTE else CALL_LOG)
    return Delivery(id=1, call_sid=CALL_SID, sink="zendesk", action=action, payload=payload,
                    created_at=CREATED, next_attempt_at=CREATED)


@pytest.fixture
def rsps() -> Iterator[Mock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(f"{BASE}/api/v2/search.json",
                 json={"results": [{"id": 42, "result_type": "user"}], "count": 1})
        mock.get(f"{BASE}/api/v2/tickets.json", json={"tickets": []})
        mock.post(f"{BASE}/api/v2/tickets.json", status=201, json={"ticket": {"id": 7}})
        mock.get(f"{BASE}/api/v2/tickets/7/comments.json", json={"comments": [
            {"body": f"Inbound call\n\n[cahub {CALL_SID}:zendesk:note]"}]})
        mock.put(f"{BASE}/api/v2/tickets/7.json", json={"ticket": CALL_TICKET})
        yield mock


@pytest.fixture
def sink() -> Iterator[ZendeskNoteSink]:
    sink = ZendeskNoteSink(BASE, "agent@example.com", "zd-token")
    yield sink
    sink.close()


def requests_to(rsps: Mock, method: str, path: str) -> list[Any]:
    return [c.request for c in rsps.calls
            if c.request.method == method and urlsplit(c.request.url).path == path]


def test_the_caller_is_found_with_the_caller_lookup_recipe(rsps: Mock,
                                                           sink: ZendeskNoteSink) -> None:
    sink.deliver(delivery())

    [search] = requests_to(rsps, "GET", "/api/v2/search.json")
    assert ["type:user role:end-user phone:*4155550134"] == parse_qs(
        urlsplit(search.url).query)["query"]
    token = base64.b64encode(b"agent@example.com/token:zd-token").decode()
    assert f"Basic {token}" == search.headers["Authorization"]


def test_a_note_opens_a_ticket_for_the_call_with_an_idempotency_key(rsps: Mock,
                                                                    sink: ZendeskNoteSink) -> None:
    sink.deliver(delivery())

    [create] = requests_to(rsps, "POST", "/api/v2/tickets.json")
    assert {"ticket": {
        "subject": "Inbound call: Ada Lovelace", "requester_id": 42, "external_id": CALL_SID,
        "tags": ["cahub", "inbound_call"], "comment": {
            "body": "Inbound call: Ada Lovelace\n\nGold customer\n\n"
                    f"[cahub {CALL_SID}:zendesk:note]",
            "public": False}}} == json.loads(create.body)
    assert f"{CALL_SID}:zendesk:note" == create.headers["Idempotency-Key"]


def test_the_call_log_joins_the_calls_ticket_as_an_internal_note(rsps: Mock,
                                                                 sink: ZendeskNoteSink) -> None:
    rsps.replace("GET", f"{BASE}/api/v2/tickets.json", json={"tickets": [CALL_TICKET]})

    sink.deliver(delivery(DeliveryAction.CALL_LOG))

    [lookup] = requests_to(rsps, "GET", "/api/v2/tickets.json")
    assert {"external_id": [CALL_SID]} == parse_qs(urlsplit(lookup.url).query)
    [update] = requests_to(rsps, "PUT", "/api/v2/tickets/7.json")
    comment = json.loads(update.body)["ticket"]["comment"]
    assert comment["public"] is False
    assert comment["body"].endswith(
        f"Duration: 143 s. Outcome: completed.\n\n[cahub {CALL_SID}:zendesk:call_log]")


def test_a_note_already_on_the_ticket_is_not_added_again(rsps: Mock, sink: ZendeskNoteSink) -> None:
    rsps.replace("GET", f"{BASE}/api/v2/tickets.json", json={"tickets": [CALL_TICKET]})

    sink.deliver(delivery())

    assert [] == requests_to(rsps, "PUT", "/api/v2/tickets/7.json")
    assert [] == requests_to(rsps, "POST", "/api/v2/tickets.json")


def test_open_mode_notes_the_callers_newest_unsolved_ticket(rsps: Mock) -> None:
    rsps.get(f"{BASE}/api/v2/users/42/tickets/requested.json", json={"tickets": [
        {"id": 3, "status": "solved"}, {"id": 7, "status": "pending"},
        {"id": 1, "status": "open"}]})
    sink = ZendeskNoteSink(BASE, "agent@example.com", "zd-token", ticket="open")

    sink.deliver(delivery(DeliveryAction.CALL_LOG))
    sink.close()

    assert 1 == len(requests_to(rsps, "PUT", "/api/v2/tickets/7.json"))


def test_an_unknown_caller_becomes_an_end_user_keyed_by_the_number(rsps: Mock,
                                                                   sink: ZendeskNoteSink) -> None:
    rsps.replace("GET", f"{BASE}/api/v2/search.json", json={"results": [], "count": 0})
    rsps.post(f"{BASE}/api/v2/users/create_or_update.json", json={"user": {"id": 43}})

    sink.deliver(delivery())

    [user] = requests_to(rsps, "POST", "/api/v2/users/create_or_update.json")
    assert {"user": {"name": "Ada Lovelace", "phone": "+14155550134", "role": "end-user",
                     "external_id": "cahub-phone:+14155550134"}} == json.loads(user.body)
    [create] = requests_to(rsps, "POST", "/api/v2/tickets.json")
    assert 43 == json.loads(create.body)["ticket"]["requester_id"]


def test_an_unknown_caller_is_skipped_when_configured(rsps: Mock) -> None:
    rsps.replace("GET", f"{BASE}/api/v2/search.json", json={"results": [], "count": 0})
    sink = ZendeskNoteSink(BASE, "agent@example.com", "zd-token", on_missing="skip")

    sink.deliver(delivery())
    sink.close()

    assert 1 == len(rsps.calls)


def test_a_concurrent_update_conflict_is_transient(rsps: Mock, sink: ZendeskNoteSink) -> None:
    rsps.replace("GET", f"{BASE}/api/v2/tickets.json", json={"tickets": [CALL_TICKET]})
    rsps.replace("PUT", f"{BASE}/api/v2/tickets/7.json", status=409,
                 json={"error": "UpdateConflict"})

    with pytest.raises(TransientError, match="409 UpdateConflict"):
        sink.deliver(delivery(DeliveryAction.CALL_LOG))


def test_settings_choose_the_ticket_mode(rsps: Mock) -> None:
    settings = SimpleNamespace(
        zendesk_base_url=BASE, zendesk_email="agent@example.com",
        zendesk_api_token=SecretStr("zd-token"), zendesk_ticket="sometimes",
        crm_on_missing="create", sink_timeout_s=5.0)

    with pytest.raises(ValueError, match="ticket must be one of"):
        ZendeskNoteSink.from_settings(settings)


def test_a_wrapped_up_call_log_note_carries_the_notes_and_the_outcome(
        rsps: Mock, sink: ZendeskNoteSink) -> None:
    rsps.replace("GET", f"{BASE}/api/v2/tickets.json", json={"tickets": [CALL_TICKET]})
    payload = {**CALL_LOG, "outcome": "Refund issued", "outcome_id": "refund_issued",
               "notes": "Refunded order 1042."}

    sink.deliver(delivery(DeliveryAction.CALL_LOG, payload))

    [update] = requests_to(rsps, "PUT", "/api/v2/tickets/7.json")
    body = json.loads(update.body)["ticket"]["comment"]["body"]
    assert "Refunded order 1042." in body
    assert "Outcome: Refund issued." in body
