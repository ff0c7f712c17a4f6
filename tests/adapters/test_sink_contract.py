"""The Sink contract, run against every sink over `responses` (one contract test per port).

Each sink talks to a stand-in of its service (``FarEnd``) that keeps what was written
and answers the way the real API is documented to. The contract:

- a delivery for a known caller makes exactly one write, of the expected shape;
- the same delivery twice is held once at the far end — the sink finds its earlier write
  (Salesforce SOQL, HubSpot associations, Zendesk external id + comments, Twilio's
  message list) or sends an ``Idempotency-Key`` the far end dedupes on (Zendesk ticket
  create, webhook);
- 429 is a ``TransientError`` carrying ``Retry-After``; 5xx, timeouts and refused
  connections are transient; 400, 401 and 403 are permanent;
- nothing but ``TransientError`` / ``PermanentError`` ever comes out.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, ClassVar
from urllib.parse import parse_qs

import pytest
import requests
import responses

from hub.models import Delivery, DeliveryAction
from hub.ports import HubError, PermanentError, TransientError
from integrations.hubspot import HubSpotNoteSink
from integrations.salesforce import SalesforceTaskSink
from integrations.salesforce_auth import ClientCredentials
from integrations.sms import TwilioSmsSink
from integrations.webhook import WebhookSink
from integrations.zendesk import ZendeskNoteSink

CALL_SID = "CA" + "0123456789abcdef" * 2
PHONE = "+14155550134"
CREATED = datetime(2026, 11, 23, 10, 4, 5, 123000, tzinfo=UTC)
NOTE = {"summary": {"name": "Ada Lovelace", "found": True}, "text": "Gold customer, LTV 1234.5",
        "phone": PHONE, "subject": "Inbound call: Ada Lovelace"}
ACCOUNT_SID = "AC" + "1" * 32
Answer = tuple[int, dict[str, str], str]


def make_delivery(sink: str, action: DeliveryAction = DeliveryAction.NOTE,
                  payload: dict[str, Any] | None = None) -> Delivery:
    return Delivery(id=1, call_sid=CALL_SID, sink=sink, action=action,
                    payload=NOTE if payload is None else payload,
                    created_at=CREATED, next_attempt_at=CREATED)


@dataclass
class FarEnd:
    """A service as its API documents it: what it holds, and a failure to answer with."""

    records: list[dict[str, Any]] = field(default_factory=list)
    write_requests: list[requests.PreparedRequest] = field(default_factory=list)
    keys: dict[str, int] = field(default_factory=dict)
    fail: Answer | Exception | None = None
    fail_everything: bool = False

    def read(self, answer: Callable[[], Any]) -> Callable[[Any], Answer]:
        def callback(request: Any) -> Answer:
            return self._failure() if self.fail_everything and self.fail else _json(200, answer())
        return callback

    def write(self, status: int, answer: Callable[[dict[str, Any]], Any],
              parse: Callable[[Any], dict[str, Any]] = lambda r: json.loads(r.body),
              ) -> Callable[[Any], Answer]:
        def callback(request: Any) -> Answer:
            if self.fail:
                return self._failure()
            self.write_requests.append(request)
            key = request.headers.get("Idempotency-Key")
            if key is None or key not in self.keys:  # a replayed key creates nothing
                self.records.append(parse(request))
                if key is not None:
                    self.keys[key] = len(self.records) - 1
            return _json(status, answer(self.records[-1]))
        return callback

    def _failure(self) -> Answer:
        if isinstance(self.fail, Exception):
            raise self.fail
        assert self.fail is not None
        return self.fail


def _json(status: int, body: Any) -> Answer:
    return status, {"Content-Type": "application/json"}, json.dumps(body)


def failure(status: int, **headers: str) -> Answer:
    body = {"status": status, "code": status, "message": "failure for +14155550134"}
    return status, {"Content-Type": "application/json", **headers}, json.dumps(body)


class Salesforce:
    base = "https://acme.my.salesforce.test"
    data = f"{base}/services/data/v62.0"

    def build(self) -> SalesforceTaskSink:
        return SalesforceTaskSink(self.base, ClientCredentials("client-id", "client-secret"))

    def install(self, rsps: responses.RequestsMock, far: FarEnd) -> None:
        rsps.add_callback("POST", f"{self.base}/services/oauth2/token", far.read(
            lambda: {"access_token": "00Dtoken", "instance_url": self.base}))
        rsps.add_callback("GET", f"{self.data}/query", far.read(
            lambda: {"totalSize": len(far.records), "done": True,
                     "records": [{"Id": "00T000000000001"}] if far.records else []}))
        rsps.add_callback("GET", f"{self.data}/search/", far.read(lambda: {"searchRecords": [
            {"attributes": {"type": "Contact"}, "Id": "003000000000001"}]}))
        rsps.add_callback("POST", f"{self.data}/sobjects/Task", far.write(
            201, lambda _: {"id": "00T000000000001", "success": True, "errors": []}))

    def check(self, record: dict[str, Any], request: Any) -> None:
        assert {"Subject": NOTE["subject"], "Description": NOTE["text"], "Status": "Completed",
                "TaskSubtype": "Call", "CallType": "Inbound", "CallObject": CALL_SID,
                "WhoId": "003000000000001", "ActivityDate": "2026-11-23"} == record


class HubSpot:
    base = "https://api.hubapi.test"

    def build(self) -> HubSpotNoteSink:
        return HubSpotNoteSink("pat-na1-token", base_url=self.base)

    def install(self, rsps: responses.RequestsMock, far: FarEnd) -> None:
        rsps.add_callback("POST", f"{self.base}/crm/v3/objects/contacts/search", far.read(
            lambda: {"total": 1, "results": [{"id": "501", "properties": {}}]}))
        rsps.add_callback(
            "GET", f"{self.base}/crm/v4/objects/contacts/501/associations/notes",
            far.read(lambda: {"results": [{"toObjectId": 9000 + i, "associationTypes": []}
                                          for i, _ in enumerate(far.records)]}))
        rsps.add_callback("POST", f"{self.base}/crm/v3/objects/notes/batch/read", far.read(
            lambda: {"status": "COMPLETE", "results": [
                {"id": str(9000 + i), "properties": {
                    "hs_timestamp": r["properties"]["hs_timestamp"].replace("Z", "+00:00")}}
                for i, r in enumerate(far.records)]}))
        rsps.add_callback("POST", f"{self.base}/crm/v3/objects/notes", far.write(
            201, lambda r: {"id": "9000", "properties": r["properties"]}))

    def check(self, record: dict[str, Any], request: Any) -> None:
        assert {"hs_timestamp": "2026-11-23T10:04:05.123Z",
                "hs_note_body": "Inbound call: Ada Lovelace<br><br>Gold customer, LTV 1234.5",
                } == record["properties"]
        assert [{"to": {"id": "501"}, "types": [
            {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}]}
                ] == record["associations"]
        assert "Bearer pat-na1-token" == request.headers["Authorization"]


class Zendesk:
    base = "https://acme.zendesk.test"

    def build(self) -> ZendeskNoteSink:
        return ZendeskNoteSink(self.base, "agent@example.com", "zd-token")

    def install(self, rsps: responses.RequestsMock, far: FarEnd) -> None:
        rsps.add_callback("GET", f"{self.base}/api/v2/search.json", far.read(
            lambda: {"results": [{"id": 42, "result_type": "user"}], "count": 1}))
        rsps.add_callback("GET", f"{self.base}/api/v2/tickets.json", far.read(lambda: {
            "tickets": [{"id": 7, "status": "new", "external_id": CALL_SID}] if far.records
            else []}))
        rsps.add_callback("GET", f"{self.base}/api/v2/tickets/7/comments.json", far.read(
            lambda: {"comments": [{"body": r["ticket"]["comment"]["body"]}
                                  for r in far.records]}))
        rsps.add_callback("POST", f"{self.base}/api/v2/tickets.json", far.write(
            201, lambda r: {"ticket": {"id": 7, **r["ticket"]}}))

    def check(self, record: dict[str, Any], request: Any) -> None:
        ticket = record["ticket"]
        assert (42, CALL_SID, False) == (ticket["requester_id"], ticket["external_id"],
                                         ticket["comment"]["public"])
        assert NOTE["text"] in ticket["comment"]["body"]
        assert f"{CALL_SID}:zendesk:note" == request.headers["Idempotency-Key"]


class Webhook:
    url = "https://hooks.example.test/cahub"

    def build(self) -> WebhookSink:
        return WebhookSink(self.url, "webhook-secret")

    def install(self, rsps: responses.RequestsMock, far: FarEnd) -> None:
        rsps.add_callback("POST", self.url, far.write(200, lambda _: {"ok": True}))

    def check(self, record: dict[str, Any], request: Any) -> None:
        digest = hmac.new(b"webhook-secret", request.body, hashlib.sha256).hexdigest()
        assert {"key": f"{CALL_SID}:webhook:note", "action": "note", "payload": NOTE} == record
        assert f"sha256={digest}" == request.headers["X-Hub-Signature-256"]
        assert f"{CALL_SID}:webhook:note" == request.headers["Idempotency-Key"]


class Sms:
    base = "http://twilio.test"
    url = f"{base}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    payload: ClassVar[dict[str, str]] = {"to": "+14155550199",
                                         "body": "Ada Lovelace (gold) is calling"}

    def build(self) -> TwilioSmsSink:
        return TwilioSmsSink(ACCOUNT_SID, "auth-token", "+18005550100", base_url=self.base)

    def install(self, rsps: responses.RequestsMock, far: FarEnd) -> None:
        rsps.add_callback("GET", self.url, far.read(lambda: {
            "messages": [_message(r) for r in far.records], "next_page_uri": None,
            "page": 0, "page_size": 20, "start": 0, "end": 0, "uri": "/", "first_page_uri": "/",
            "previous_page_uri": None}))
        rsps.add_callback("POST", self.url, far.write(
            201, _message, parse=lambda r: {k: v[0] for k, v in parse_qs(r.body).items()}))

    def check(self, record: dict[str, Any], request: Any) -> None:
        assert {"To": "+14155550199", "From": "+18005550100", "Body": self.payload["body"]
                } == record


def _message(record: dict[str, Any]) -> dict[str, Any]:
    return {"sid": "SM" + "2" * 32, "status": "queued", "to": record["To"],
            "from": record["From"], "body": record["Body"], "num_segments": "1",
            "date_created": format_datetime(CREATED + timedelta(seconds=2), usegmt=True)}


HARNESSES = {"salesforce": Salesforce, "hubspot": HubSpot, "zendesk": Zendesk,
             "webhook": Webhook, "sms": Sms}


@dataclass
class Case:
    harness: Any
    far: FarEnd
    sink: Any
    delivery: Delivery


@pytest.fixture(params=sorted(HARNESSES))
def case(request: pytest.FixtureRequest) -> Iterator[Case]:
    harness = HARNESSES[request.param]()
    far = FarEnd()
    if request.param == "sms":
        delivery = make_delivery("sms", DeliveryAction.SMS, Sms.payload)
    else:
        delivery = make_delivery(request.param)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        harness.install(rsps, far)
        sink = harness.build()
        yield Case(harness, far, sink, delivery)
        sink.close()


def test_a_delivery_makes_exactly_the_expected_write(case: Case) -> None:
    case.sink.deliver(case.delivery)

    assert 1 == len(case.far.write_requests) == len(case.far.records)
    case.harness.check(case.far.records[0], case.far.write_requests[0])


def test_the_same_delivery_twice_is_held_once_at_the_far_end(case: Case) -> None:
    case.sink.deliver(case.delivery)
    case.sink.deliver(case.delivery)

    assert 1 == len(case.far.records)
    keys = {r.headers.get("Idempotency-Key") for r in case.far.write_requests}
    assert len(case.far.write_requests) == 1 or keys == {case.delivery.key}


@pytest.mark.parametrize("everything", [False, True], ids=["write", "every-request"])
def test_429_is_transient_with_the_retry_after_the_service_sent(
        case: Case, everything: bool) -> None:
    case.far.fail, case.far.fail_everything = failure(429, **{"Retry-After": "7"}), everything

    with pytest.raises(TransientError) as raised:
        case.sink.deliver(case.delivery)

    assert 7.0 == raised.value.retry_after


@pytest.mark.parametrize("everything", [False, True], ids=["write", "every-request"])
@pytest.mark.parametrize("fail", [
    failure(500), failure(502), failure(503),
    requests.exceptions.ConnectTimeout("connect timeout"),
    requests.exceptions.ReadTimeout("read timeout"),
    requests.exceptions.ConnectionError("connection refused"),
], ids=["500", "502", "503", "connect-timeout", "read-timeout", "refused"])
def test_server_errors_and_timeouts_are_transient(
        case: Case, fail: Answer | Exception, everything: bool) -> None:
    case.far.fail, case.far.fail_everything = fail, everything

    with pytest.raises(TransientError):
        case.sink.deliver(case.delivery)


@pytest.mark.parametrize("everything", [False, True], ids=["write", "every-request"])
@pytest.mark.parametrize("status", [400, 401, 403])
def test_rejections_are_permanent(case: Case, status: int, everything: bool) -> None:
    case.far.fail, case.far.fail_everything = failure(status), everything

    with pytest.raises(PermanentError):
        case.sink.deliver(case.delivery)


@pytest.mark.parametrize("answer", [
    (200, {"Content-Type": "text/html"}, "<html>captive portal</html>"),
    (200, {"Content-Type": "application/json"}, "{}"),
    (201, {"Content-Type": "application/json"}, "[1, 2]"),
    (302, {"Location": "https://elsewhere.test/"}, ""),
    (418, {}, "teapot"),
], ids=["html", "empty-object", "list", "redirect", "teapot"])
def test_nothing_but_hub_errors_come_out(case: Case, answer: Answer) -> None:
    case.far.fail, case.far.fail_everything = answer, True

    with contextlib.suppress(HubError):  # anything else fails the test
        case.sink.deliver(case.delivery)


def test_error_messages_carry_no_phone_numbers(case: Case) -> None:
    case.far.fail, case.far.fail_everything = failure(400), True

    with pytest.raises(PermanentError) as raised:
        case.sink.deliver(case.delivery)

    assert not re.search(r"\d{7,}", str(raised.value))
