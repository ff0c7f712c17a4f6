"""Salesforce sink against `responses`: client-credentials token, SOSL lookup, call Tasks."""

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
from hub.ports import PermanentError, TransientError
from integrations.salesforce import SalesforceTaskSink, soql_quote
from integrations.salesforce_auth import ClientCredentials

BASE = "https://acme.my.salesforce.test"
DATA = f"{BASE}/services/data/v62.0"
CALL_SID = "CA" + "ab" * 16
CREATED = datetime(2026, 11, 23, 10, 4, 5, tzinfo=UTC)
NOTE = {"summary": {"name": "Ada Lovelace"}, "text": "Gold customer",
        "phone": "+14155550134", "subject": "Inbound call: Ada's line"}
CALL_LOG = {**NOTE, "duration_s": 143, "outcome": "completed", "direction": "inbound",
            "started_at": "2026-11-22T23:59:00+00:00", "subject": "Call ended"}
CONTACT = {"attributes": {"type": "Contact"}, "Id": "003000000000001"}
Mock = responses.RequestsMock
Sink = SalesforceTaskSink
LEAD = {"attributes": {"type": "Lead"}, "Id": "00Q000000000001"}


def delivery(action: DeliveryAction = DeliveryAction.NOTE, payload: Any = None) -> Delivery:
    payload = payload if payload is not None else (
        NOTE if action is DeliveryAction.NOTE else CALL_LOG)
    return Delivery(id=1, call_sid=CALL_SID, sink="salesforce", action=action, payload=payload,
                    created_at=CREATED, next_attempt_at=CREATED)


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(f"{BASE}/services/oauth2/token", json={"access_token": "tok-1"})
        yield mock


@pytest.fixture
def sink() -> Iterator[SalesforceTaskSink]:
    sink = SalesforceTaskSink(BASE, ClientCredentials("client-id", "client-secret"))
    yield sink
    sink.close()


def known_caller(rsps: responses.RequestsMock, *records: dict[str, Any]) -> None:
    rsps.get(f"{DATA}/query", json={"records": []})
    rsps.get(f"{DATA}/search/", json={"searchRecords": list(records or [CONTACT])})
    rsps.post(f"{DATA}/sobjects/Task", status=201, json={"id": "00T1", "success": True})


def sent(rsps: responses.RequestsMock, method: str, path: str) -> list[Any]:
    return [c.request for c in rsps.calls
            if c.request.method == method and urlsplit(c.request.url).path.endswith(path)]


def query_of(request: Any) -> str:
    return parse_qs(urlsplit(request.url).query)["q"][0]


def test_the_token_comes_from_client_credentials_once(rsps: Mock, sink: Sink) -> None:
    known_caller(rsps)

    sink.deliver(delivery())
    sink.deliver(delivery(DeliveryAction.CALL_LOG))

    [token_request] = sent(rsps, "POST", "/oauth2/token")
    credentials = base64.b64encode(b"client-id:client-secret").decode()
    assert f"Basic {credentials}" == token_request.headers["Authorization"]
    assert {"grant_type": ["client_credentials"]} == parse_qs(token_request.body)
    assert all(r.headers["Authorization"] == "Bearer tok-1" for r in sent(rsps, "GET", "/query"))


def test_an_expired_token_is_replaced_and_the_request_repeated(rsps: Mock, sink: Sink) -> None:
    known_caller(rsps)
    rsps.replace("POST", f"{BASE}/services/oauth2/token", json={"access_token": "tok-2"})
    rsps.upsert("GET", f"{DATA}/query", status=401,
                json=[{"errorCode": "INVALID_SESSION_ID", "message": "expired"}])
    rsps.add("GET", f"{DATA}/query", json={"records": []})

    sink.deliver(delivery())

    assert 2 == len(sent(rsps, "POST", "/oauth2/token"))
    assert 1 == len(sent(rsps, "POST", "/sobjects/Task"))


def test_the_caller_is_found_by_sosl_over_phone_fields_with_digits_only(
        rsps: Mock, sink: Sink) -> None:
    known_caller(rsps)

    sink.deliver(delivery())

    sosl = query_of(sent(rsps, "GET", "/search/")[0])
    assert sosl.startswith("FIND {14155550134 OR 4155550134} IN PHONE FIELDS RETURNING Contact(Id)")
    assert "+" not in sosl


def test_a_contact_wins_over_a_lead(rsps: Mock, sink: Sink) -> None:
    known_caller(rsps, LEAD, CONTACT)

    sink.deliver(delivery())

    task = json.loads(sent(rsps, "POST", "/sobjects/Task")[0].body)
    assert CONTACT["Id"] == task["WhoId"]


def test_a_call_log_is_a_completed_inbound_call_task_with_its_duration(
        rsps: Mock, sink: Sink) -> None:
    known_caller(rsps)

    sink.deliver(delivery(DeliveryAction.CALL_LOG))

    task = json.loads(sent(rsps, "POST", "/sobjects/Task")[0].body)
    assert {"Subject": "Call ended", "Description": "Gold customer", "Status": "Completed",
            "TaskSubtype": "Call", "CallType": "Inbound", "CallObject": CALL_SID,
            "WhoId": CONTACT["Id"], "ActivityDate": "2026-11-22", "CallDurationInSeconds": 143,
            "CallDisposition": "completed"} == task


def test_the_task_check_is_soql_on_the_call_sid_subject_and_kind(rsps: Mock, sink: Sink) -> None:
    known_caller(rsps)

    sink.deliver(delivery())

    soql = query_of(sent(rsps, "GET", "/query")[0])
    # The SOQL the sink is expected to send, not a query built here.
    assert (f"SELECT Id FROM Task WHERE CallObject = '{CALL_SID}' AND Subject = "  # noqa: S608
            "'Inbound call: Ada\\'s line' AND CallDisposition = null LIMIT 1") == soql


def test_an_existing_task_for_the_call_means_done(rsps: Mock, sink: Sink) -> None:
    known_caller(rsps)
    rsps.replace("GET", f"{DATA}/query", json={"records": [{"Id": "00T1"}]})

    sink.deliver(delivery())

    assert [] == sent(rsps, "POST", "/sobjects/Task")


def test_soql_literals_escape_quotes_and_backslashes() -> None:
    assert "'it\\'s a \\\\ \\n'" == soql_quote("it's a \\ \n")


def test_an_unknown_caller_becomes_a_lead_once(rsps: Mock, sink: Sink) -> None:
    known_caller(rsps)
    rsps.replace("GET", f"{DATA}/search/", json={"searchRecords": []})
    rsps.post(f"{DATA}/sobjects/Lead", status=201, json={"id": "00Q9", "success": True})

    sink.deliver(delivery())
    sink.deliver(delivery(DeliveryAction.CALL_LOG))

    [lead] = [json.loads(r.body) for r in sent(rsps, "POST", "/sobjects/Lead")]
    assert {"FirstName": "Ada", "LastName": "Lovelace", "Company": "Unknown",
            "Phone": "+14155550134"} == lead
    assert {"00Q9"} == {json.loads(r.body)["WhoId"] for r in sent(rsps, "POST", "/sobjects/Task")}


def test_a_lead_this_hub_made_is_found_by_soql_before_the_search_index_sees_it(
        rsps: Mock, sink: Sink) -> None:
    known_caller(rsps)  # the first SOQL query, for the Task, finds none
    rsps.replace("GET", f"{DATA}/search/", json={"searchRecords": []})
    rsps.add("GET", f"{DATA}/query", json={"records": [{"Id": "00Q7"}]})  # the Lead query

    sink.deliver(delivery())

    assert [] == sent(rsps, "POST", "/sobjects/Lead")
    assert "00Q7" == json.loads(sent(rsps, "POST", "/sobjects/Task")[0].body)["WhoId"]
    assert "FROM Lead WHERE Phone = '+14155550134'" in query_of(sent(rsps, "GET", "/query")[1])


def test_an_unknown_caller_is_skipped_when_configured(rsps: Mock) -> None:
    known_caller(rsps)
    rsps.replace("GET", f"{DATA}/search/", json={"searchRecords": []})
    sink = SalesforceTaskSink(BASE, ClientCredentials("client-id", "client-secret"),
                              on_missing="skip")

    sink.deliver(delivery())
    sink.close()

    assert [] == sent(rsps, "POST", "/sobjects/Task") + sent(rsps, "POST", "/sobjects/Lead")


def test_with_an_external_id_field_salesforce_refuses_the_duplicate(rsps: Mock) -> None:
    known_caller(rsps)
    rsps.replace("POST", f"{DATA}/sobjects/Task", status=400, json=[
        {"errorCode": "DUPLICATE_VALUE", "message": "duplicate value found", "fields": []}])
    sink = SalesforceTaskSink(BASE, ClientCredentials("id", "secret"),
                              task_key_field="Cahub_Key__c")

    sink.deliver(delivery())
    sink.close()

    task = json.loads(sent(rsps, "POST", "/sobjects/Task")[0].body)
    assert f"{CALL_SID}:salesforce:note" == task["Cahub_Key__c"]
    assert [] == sent(rsps, "GET", "/query")


def test_the_org_api_limit_is_transient_with_a_long_wait(rsps: Mock, sink: Sink) -> None:
    known_caller(rsps)
    rsps.replace("GET", f"{DATA}/search/", status=403, json=[
        {"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests Limit exceeded."}])

    with pytest.raises(TransientError) as raised:
        sink.deliver(delivery())

    assert 300.0 == raised.value.retry_after


def test_a_bad_client_secret_is_permanent(rsps: Mock, sink: Sink) -> None:
    rsps.replace("POST", f"{BASE}/services/oauth2/token", status=400,
                 json={"error": "invalid_client", "error_description": "invalid client"})
    known_caller(rsps)

    with pytest.raises(PermanentError, match="invalid_client"):
        sink.deliver(delivery())


def test_a_withheld_caller_writes_nothing(rsps: Mock, sink: Sink) -> None:
    sink.deliver(delivery(payload={**NOTE, "phone": None}))

    assert 0 == len(rsps.calls)


def test_a_payload_no_retry_can_fix_is_permanent(sink: Sink) -> None:
    with pytest.raises(PermanentError, match="text"):
        sink.deliver(delivery(payload={**NOTE, "text": ["not", "text"]}))


def test_settings_name_what_is_missing() -> None:
    settings = SimpleNamespace(
        salesforce_base_url=BASE, salesforce_client_id=None,
        salesforce_client_secret=SecretStr("s"), salesforce_api_version="v62.0",
        salesforce_task_key_field=None, crm_on_missing="create", sink_timeout_s=5.0,
        salesforce_username=None, salesforce_private_key_file=None,
        salesforce_audience="https://login.salesforce.com")

    with pytest.raises(ValueError, match="CAHUB_SALESFORCE_CLIENT_ID"):
        SalesforceTaskSink.from_settings(settings)


def test_a_wrapped_up_call_log_carries_the_outcome_and_the_notes(rsps: Mock, sink: Sink) -> None:
    known_caller(rsps)
    payload = {**CALL_LOG, "outcome": "Refund issued", "outcome_id": "refund_issued",
               "call_status": "completed", "notes": "Refunded order 1042."}

    sink.deliver(delivery(DeliveryAction.CALL_LOG, payload))

    task = json.loads(sent(rsps, "POST", "/sobjects/Task")[0].body)
    assert ("Refund issued", "Refunded order 1042.\n\nGold customer") == (
        task["CallDisposition"], task["Description"])
