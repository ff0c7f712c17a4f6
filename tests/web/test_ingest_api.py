"""The real-time ingest API: POST /api/v1/ingest/profiles, /events and /audiences.

The records ``cahub ingest`` takes, one JSON object or JSON Lines; the answer is the store's
report (loaded, each rejected line with its reason) and its status code says what happened:
200 all loaded, 207 some, 422 none; 400 for a body that is no request at all.
"""

from __future__ import annotations

import io
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import STORE_FILE, create_app, services
from hub.ports import TransientError
from hub.settings import HubConfig, MergePolicy
from tests.support import call_form, make_settings, signed_post
from web.ingest import TURN_WAIT_S, TURNS_KEY, WAITING

AUTH = {"Authorization": "Bearer test-api-key"}
NDJSON = "application/x-ndjson"
ADA = {"identityMap": {"Phone": [{"id": "(415) 555-0134", "primary": True}]},
       "person": {"name": {"fullName": "Ada Lovelace"}}}
GRACE = {"identityMap": {"Phone": [{"id": "+1 202 555 0199", "primary": True}]},
         "person": {"name": {"fullName": "Grace Hopper"}}}
PURCHASE = {"_id": "order-1", "timestamp": "2026-11-20T10:00:00Z",
            "eventType": "commerce.purchases",
            "identityMap": {"Phone": [{"id": "+14155550134", "primary": True}]},
            "productListItems": [{"name": "Trail Shoe", "quantity": 2, "priceTotal": 240.0,
                                  "currencyCode": "USD"}]}


@pytest.fixture
def make_app(apps: list[Flask], tmp_path: Path) -> Any:
    """An app on ``tmp_path/instance`` (each call another server on the same data dir)."""
    def make(**overrides: Any) -> Flask:
        settings = make_settings(tmp_path / "instance", ingest_workers=0, **overrides)
        apps.append(create_app(settings, start_background=False))
        return apps[-1]
    return make


@pytest.fixture
def client(make_app: Any) -> FlaskClient:
    return make_app().test_client()


def post(client: FlaskClient, kind: str, body: bytes | str, content_type: str = NDJSON,
         headers: dict[str, str] = AUTH, query: str = "") -> Any:
    return client.post(f"/api/v1/ingest/{kind}{query}", data=body,
                       headers={**headers, "Content-Type": content_type})


def json_lines(*records: dict[str, Any] | str) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)


def looked_up(client: FlaskClient, phone: str) -> Any:
    return client.get("/api/v1/lookup", query_string={"phone": phone}, headers=AUTH).get_json()


def test_one_record_is_loaded_with_a_200_and_its_report(client: FlaskClient) -> None:
    reply = client.post("/api/v1/ingest/profiles", json=ADA, headers=AUTH)

    assert (200, {"kind": "profiles", "dataset": "default", "loaded": 1, "rejected": [],
                  "warnings": []}) == (reply.status_code, reply.get_json())


def test_a_posted_profile_is_found_by_the_next_lookup(client: FlaskClient) -> None:
    client.post("/api/v1/ingest/profiles", json=ADA, headers=AUTH)

    assert "Ada Lovelace" == looked_up(client, "+14155550134")["name"]


def test_a_json_object_over_several_lines_is_one_record(client: FlaskClient) -> None:
    reply = post(client, "profiles", json.dumps(ADA, indent=2), "application/json")

    assert (200, 1) == (reply.status_code, reply.get_json()["loaded"])


def test_a_bad_line_in_the_middle_is_rejected_and_its_neighbours_load(client: FlaskClient):
    reply = post(client, "profiles", json_lines(ADA, '{"identityMap": ', GRACE))

    body = reply.get_json()
    assert (207, 2, [2]) == (reply.status_code, body["loaded"],
                             [r["line"] for r in body["rejected"]])
    assert body["rejected"][0]["reason"].startswith("not JSON")
    assert ["Ada Lovelace", "Grace Hopper"] == [
        looked_up(client, phone)["name"] for phone in ("+14155550134", "+12025550199")]


def test_only_bad_lines_are_a_422_listing_each(client: FlaskClient) -> None:
    reply = post(client, "profiles", json_lines({"person": {}}, "[1, 2]"))

    body = reply.get_json()
    assert (422, "all_rejected", 0) == (reply.status_code, body["error"]["code"], body["loaded"])
    assert [{"line": 1, "reason": "no identityMap"},
            {"line": 2, "reason": "not a JSON object (a list)"}] == body["rejected"]


def test_one_bad_record_is_a_422_with_its_reason(client: FlaskClient) -> None:
    reply = client.post("/api/v1/ingest/events", json={**PURCHASE, "timestamp": "yesterday"},
                        headers=AUTH)

    assert (422, 1) == (reply.status_code, reply.get_json()["rejected"][0]["line"])
    assert "timestamp" in reply.get_json()["rejected"][0]["reason"]


def test_a_replayed_request_changes_nothing(client: FlaskClient) -> None:
    body = json_lines(ADA, GRACE)
    first = post(client, "profiles", body).get_json()
    post(client, "events", json_lines(PURCHASE))
    counts = services(client.application).store.counts()

    again = post(client, "profiles", body).get_json()
    post(client, "events", json_lines(PURCHASE))

    assert (first, counts) == (again, services(client.application).store.counts())
    assert 1 == len(looked_up(client, "+14155550134")["recent_events"])


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic test-api-key", "Bearer "])
def test_a_wrong_key_is_401(client: FlaskClient, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    reply = post(client, "profiles", json_lines(ADA), headers=headers)

    assert (401, "unauthorized") == (reply.status_code, reply.get_json()["error"]["code"])
    assert 0 == services(client.application).store.counts()["persons"]


class CountedBody(io.BytesIO):
    """A request body that counts the reads made of it."""

    reads = 0

    def read(self, size: int | None = -1) -> bytes:
        self.reads += 1
        return super().read(size)

    def readinto(self, buffer: Any) -> int:
        self.reads += 1
        return super().readinto(buffer)

    def readline(self, size: int | None = -1) -> bytes:
        self.reads += 1
        return super().readline(size)


def test_a_body_over_the_limit_is_413_before_it_is_read(make_app: Any) -> None:
    client = make_app(ingest_max_body_bytes=4096).test_client()
    body = CountedBody(b"x" * 4097)

    reply = client.post("/api/v1/ingest/profiles", input_stream=body,
                        headers={**AUTH, "Content-Type": NDJSON, "Content-Length": "4097"})

    assert (413, "body_too_large", 0) == (reply.status_code, reply.get_json()["error"]["code"],
                                          body.reads)


def test_a_body_without_a_length_is_cut_at_the_limit(make_app: Any) -> None:
    client = make_app(ingest_max_body_bytes=4096).test_client()
    lines = json_lines(*[ADA] * 100).encode()

    reply = client.post("/api/v1/ingest/profiles", input_stream=io.BytesIO(lines),
                        headers={**AUTH, "Content-Type": NDJSON, "Transfer-Encoding": "chunked"},
                        environ_overrides={"wsgi.input_terminated": True})  # as gunicorn's

    assert (413, "body_too_large") == (reply.status_code, reply.get_json()["error"]["code"])


def test_a_json_body_that_is_not_utf8_is_a_clear_400(client: FlaskClient) -> None:
    reply = post(client, "profiles", '{"name": "Zoë"}'.encode("latin-1"), "application/json")

    assert (400, {"code": "invalid_encoding",
                  "message": "the body is not UTF-8: byte 0xeb at offset 12"}) == (
        reply.status_code, reply.get_json()["error"])


def test_a_json_lines_line_that_is_not_utf8_is_rejected_alone(client: FlaskClient) -> None:
    body = json_lines(ADA).encode() + b'{"x": "\xff"}\n' + json_lines(GRACE).encode()

    reply = post(client, "profiles", body)

    assert (207, 2, [{"line": 2, "reason": "not UTF-8: byte 0xff at column 8"}]) == (
        reply.status_code, reply.get_json()["loaded"], reply.get_json()["rejected"])


@pytest.mark.parametrize(("body", "code"), [
    ('{"identityMap": ', "invalid_json"),
    ("[]", "not_an_object"),
    ('"Ada"', "not_an_object"),
    ("", "empty_body"),
])
def test_a_json_body_that_is_no_record_is_a_clear_400(client: FlaskClient, body: str, code: str):
    reply = post(client, "profiles", body, "application/json")

    assert (400, code) == (reply.status_code, reply.get_json()["error"]["code"])


def test_json_lines_without_a_record_are_a_400(client: FlaskClient) -> None:
    reply = post(client, "profiles", "\n  \n\n")

    assert (400, "empty_body") == (reply.status_code, reply.get_json()["error"]["code"])


def test_another_content_type_is_415(client: FlaskClient) -> None:
    reply = post(client, "profiles", json_lines(ADA), "text/plain")

    assert (415, "unsupported_media_type") == (reply.status_code,
                                               reply.get_json()["error"]["code"])


def test_events_then_a_lookup_shows_them_with_titles(client: FlaskClient) -> None:
    post(client, "profiles", json_lines(ADA))
    view = {**PURCHASE, "_id": "view-1", "timestamp": "2026-11-20T09:00:00Z",
            "eventType": "commerce.productViews"}

    reply = post(client, "events", json_lines(PURCHASE, view))

    assert 200 == reply.status_code
    assert ["Purchased 2× Trail Shoe (USD 240.00)", "Viewed 2× Trail Shoe"] == [
        event["title"] for event in looked_up(client, "+14155550134")["recent_events"]]


def test_audiences_are_loaded_and_named_in_the_lookup(client: FlaskClient) -> None:
    post(client, "audiences", json_lines({"id": "vip", "name": "VIP"}))
    member = {**ADA, "segmentMembership": {"ups": {"vip": {"status": "realized"}}}}

    post(client, "profiles", json_lines(member))

    assert [{"id": "vip", "name": "VIP", "status": "realized"}] == looked_up(
        client, "+14155550134")["audiences"]


def test_a_profile_posted_on_one_server_is_found_by_another(make_app: Any) -> None:
    one, other = make_app().test_client(), make_app().test_client()
    assert not looked_up(other, "+14155550134")["found"]

    post(one, "profiles", json_lines(ADA))

    assert "Ada Lovelace" == looked_up(other, "+14155550134")["name"]


def test_a_profile_posted_on_one_server_pops_on_a_call_taken_by_another(make_app: Any) -> None:
    one, other = make_app(), make_app()
    stream = services(other).broker.subscribe("grace")
    post(one.test_client(), "profiles", json_lines(ADA))

    signed_post(other.test_client(), "/twilio/voice", call_form("CA" + "1" * 32))

    pop = stream.next(5)
    stream.close()
    assert "Ada Lovelace" == (pop[1].name if pop else None)


def test_the_dataset_parameter_names_the_records_dataset(make_app: Any) -> None:
    precedence = HubConfig(merge=MergePolicy(policy="dataset_precedence", order=("crm",)))
    client = make_app(hub=precedence).test_client()
    post(client, "profiles", json_lines(ADA), query="?dataset=crm")

    later = {**ADA, "person": {"name": {"fullName": "Augusta King"}}}
    reply = post(client, "profiles", json_lines(later), query="?dataset=web")

    assert ("web", "Ada Lovelace") == (reply.get_json()["dataset"],
                                       looked_up(client, "+14155550134")["name"])


@pytest.mark.parametrize("dataset", ["", "a b", "x" * 65, "crm/../etc"])
def test_a_bad_dataset_name_is_400(client: FlaskClient, dataset: str) -> None:
    reply = client.post("/api/v1/ingest/profiles", json=ADA, headers=AUTH,
                        query_string={"dataset": dataset})

    assert (400, "invalid_dataset") == (reply.status_code, reply.get_json()["error"]["code"])


@pytest.fixture
def store_writer(make_app: Any) -> Iterator[tuple[FlaskClient, sqlite3.Connection]]:
    """A client, and another connection to its store, as a bulk load in another process."""
    client = make_app().test_client()
    services(client.application).store.ping()  # the store file exists
    other = sqlite3.connect(Path(services(client.application).settings.data_dir) / STORE_FILE,
                            isolation_level=None)
    yield client, other
    other.close()


def test_a_store_held_by_another_writer_answers_503_with_retry_after(store_writer) -> None:
    client, other = store_writer
    other.execute("BEGIN IMMEDIATE")  # what each transaction of a bulk load takes

    reply = post(client, "profiles", json_lines(ADA))

    other.execute("ROLLBACK")
    assert (503, "store_busy", "2") == (reply.status_code, reply.get_json()["error"]["code"],
                                        reply.headers["Retry-After"])


class HeldStore:
    """A store whose ingest waits until the test lets it go on."""

    def __init__(self) -> None:
        self.entered, self.go_on = threading.Event(), threading.Event()

    def ingest(self, kind: str, lines: Any, *, dataset: str = "default",
               whole_loads: bool = True) -> Any:
        from lookup.store import IngestReport

        self.entered.set()
        self.go_on.wait(10)
        return IngestReport(kind=kind, loaded=1)

    def close(self) -> None:
        """Nothing to close."""


@pytest.fixture
def held(make_app: Any) -> Iterator[tuple[Flask, HeldStore]]:
    """An app whose store holds the first ingest until the test lets it go on."""
    app = make_app()
    store = services(app).store = HeldStore()  # type: ignore[assignment]
    first = threading.Thread(target=post, args=(app.test_client(), "profiles", json_lines(ADA)))
    first.start()
    store.entered.wait(5)
    yield app, store
    store.go_on.set()
    first.join(5)


def test_a_request_waits_for_its_turn_to_write_at_most_turn_wait_s(held) -> None:
    app, _ = held
    started = time.monotonic()

    reply = post(app.test_client(), "profiles", json_lines(GRACE))

    assert (503, "2") == (reply.status_code, reply.headers["Retry-After"])
    assert TURN_WAIT_S <= time.monotonic() - started < TURN_WAIT_S + 2


def test_past_the_requests_that_may_wait_the_next_is_refused_at_once(held) -> None:
    app, _ = held
    waiting = [threading.Thread(target=post, args=(app.test_client(), "profiles",
                                                   json_lines(GRACE)))
               for _ in range(WAITING)]
    for thread in waiting:
        thread.start()
    turns = app.extensions[TURNS_KEY]
    give_up = time.monotonic() + 10
    while turns.admitted <= WAITING:  # until they are all waiting
        assert time.monotonic() < give_up, f"{turns.admitted} of {WAITING + 1} admitted"
        time.sleep(0.01)
    started = time.monotonic()

    reply = post(app.test_client(), "profiles", json_lines(GRACE))

    assert (503, True) == (reply.status_code, time.monotonic() - started < 0.5)
    held[1].go_on.set()
    for thread in waiting:
        thread.join(5)


class BusyStore:
    """A store whose writer is always held by someone else."""

    tries = 0

    def ingest(self, kind: str, lines: Any, *, dataset: str = "default",
               whole_loads: bool = True) -> Any:
        self.tries += 1
        raise TransientError("embedded store ingest: database is locked")

    def close(self) -> None:
        """Nothing to close."""


def test_once_the_store_was_found_busy_requests_are_refused_without_trying_it(make_app):
    app = make_app()
    store = services(app).store = BusyStore()  # type: ignore[assignment]
    post(app.test_client(), "profiles", json_lines(ADA))

    reply = post(app.test_client(), "profiles", json_lines(GRACE))

    assert (503, "2", 1) == (reply.status_code, reply.headers["Retry-After"], store.tries)


def test_ingests_per_key_are_rate_limited(make_app: Any) -> None:
    client = make_app(api_ingest_limit="2 per minute").test_client()

    statuses = [post(client, "profiles", json_lines(ADA)).status_code for _ in range(3)]

    assert [200, 200, 429] == statuses


def test_wrong_keys_on_the_lookup_and_ingest_share_one_allowance(make_app: Any) -> None:
    client = make_app(api_auth_limit="3 per minute").test_client()
    wrong = {"Authorization": "Bearer wrong"}
    client.get("/api/v1/lookup?phone=%2B14155550134", headers=wrong)
    client.get("/api/v1/lookup?phone=%2B14155550134", headers=wrong)
    post(client, "profiles", json_lines(ADA), headers=wrong)

    reply = post(client, "profiles", json_lines(ADA), headers=AUTH)

    assert (429, "too_many_requests") == (reply.status_code, reply.get_json()["error"]["code"])


def test_a_score_out_of_range_loads_the_record_with_a_warning(client: FlaskClient) -> None:
    record = {**ADA, "_cah": {"scores": {"churnPropensity": 7}}}

    reply = client.post("/api/v1/ingest/profiles", json=record, headers=AUTH)

    assert (200, 1, [1]) == (reply.status_code, reply.get_json()["loaded"],
                             [warning["line"] for warning in reply.get_json()["warnings"]])
