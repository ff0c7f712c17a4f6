"""POST /twilio/voice: signature checks that fail closed, TwiML routing, CallSid retries."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import close_app, create_app, services
from hub.models import Identity, Profile
from tests.fakes import InMemoryProfileProvider
from tests.support import ADA_PHONE, AUTH_TOKEN, OTHER_NUMBER, call_form, make_settings, signed_post
from tests.support import sign as sign_form

SID = "CA" + "d" * 32
ADA = Profile(source="memory", profile_id="ada",
              attributes={"person": {"name": {"firstName": "Ada", "lastName": "Lovelace"}}})


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    provider = InMemoryProfileProvider({Identity(namespace="Phone_E.164", id=ADA_PHONE): ADA})
    application = create_app(make_settings(tmp_path), providers=[provider])
    yield application
    close_app(application)


def pops_for(app: Flask, agent_id: str) -> list[str | None]:
    stream = services(app).broker.subscribe(agent_id, last_event_id="0")
    names = []
    while (pop := stream.next(timeout=0.05)) is not None:
        names.append(pop[1].name)
    stream.close()
    return names


def test_signed_call_is_routed_to_the_agent_as_twiml(client: FlaskClient) -> None:
    reply = signed_post(client, "/twilio/voice", call_form(SID))
    root = ET.fromstring(reply.data)
    params = {p.get("name"): p.get("value") for p in root.iterfind("Dial/Client/Parameter")}
    assert (200, "text/xml", "grace", "Ada Lovelace") == (
        reply.status_code, reply.mimetype, root.findtext("Dial/Client/Identity"), params["name"])


def test_signed_call_pops_only_on_the_routed_agents_console(app: Flask,
                                                           client: FlaskClient) -> None:
    signed_post(client, "/twilio/voice", call_form(SID))
    assert (["Ada Lovelace"], []) == (pops_for(app, "grace"), pops_for(app, "alan"))


def test_call_to_another_number_goes_to_that_agent(app: Flask, client: FlaskClient) -> None:
    signed_post(client, "/twilio/voice", call_form(SID, to=OTHER_NUMBER))
    assert ([], ["Ada Lovelace"]) == (pops_for(app, "grace"), pops_for(app, "alan"))


def test_unsigned_request_is_refused(client: FlaskClient) -> None:
    reply = client.post("/twilio/voice", data=call_form(SID))
    assert 403 == reply.status_code


def test_wrongly_signed_request_is_refused(client: FlaskClient) -> None:
    reply = signed_post(client, "/twilio/voice", call_form(SID), token="not-the-token")
    assert 403 == reply.status_code


def test_tampered_form_is_refused(client: FlaskClient) -> None:
    form = call_form(SID)
    signature = sign_form(AUTH_TOKEN, "http://localhost/twilio/voice", form)
    reply = client.post("/twilio/voice", data={**form, "From": "+15555550100"},
                        headers={"X-Twilio-Signature": signature})
    assert 403 == reply.status_code


def test_without_a_configured_token_every_request_is_refused(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, twilio_auth_token=None))
    try:
        reply = signed_post(app.test_client(), "/twilio/voice", call_form(SID))
    finally:
        close_app(app)
    assert 403 == reply.status_code


def test_signature_is_checked_against_the_public_base_url(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, public_base_url="https://hub.example.ngrok.app/"))
    form = call_form(SID)
    public = sign_form(AUTH_TOKEN, "https://hub.example.ngrok.app/twilio/voice", form)
    local = sign_form(AUTH_TOKEN, "http://localhost/twilio/voice", form)
    try:
        codes = [app.test_client().post("/twilio/voice", data=form,
                                        headers={"X-Twilio-Signature": sig}).status_code
                 for sig in (public, local)]
    finally:
        close_app(app)
    assert [200, 403] == codes


def test_retried_webhook_gets_the_same_twiml_and_no_second_pop(app: Flask,
                                                              client: FlaskClient) -> None:
    first = signed_post(client, "/twilio/voice", call_form(SID))
    second = signed_post(client, "/twilio/voice", call_form(SID))
    assert (first.data, ["Ada Lovelace"]) == (second.data, pops_for(app, "grace"))


def test_withheld_caller_pops_an_unknown_card(app: Flask, client: FlaskClient) -> None:
    reply = signed_post(client, "/twilio/voice", call_form(SID, from_="Restricted"))
    params = {p.get("name"): p.get("value")
              for p in ET.fromstring(reply.data).iterfind("Dial/Client/Parameter")}
    assert ("false", [None]) == (params["found"], pops_for(app, "grace"))


def test_form_without_from_is_a_bad_request(client: FlaskClient) -> None:
    form = call_form(SID)
    del form["From"]
    assert 400 == signed_post(client, "/twilio/voice", form).status_code


def test_a_broken_pipeline_still_sends_the_call_to_the_queue(app: Flask,
                                                            client: FlaskClient) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("ledger disk full")

    services(app).calls.handle = broken  # type: ignore[method-assign]
    root = ET.fromstring(signed_post(client, "/twilio/voice", call_form(SID)).data)
    assert ["Say", "Enqueue"] == [child.tag for child in root]


def status_form(status: str, sequence: int, duration: int | None = None) -> dict[str, str]:
    form = {"CallSid": SID, "AccountSid": "AC" + "1" * 32, "CallStatus": status,
            "SequenceNumber": str(sequence), "CallbackSource": "call-progress-events"}
    return form | ({"CallDuration": str(duration)} if duration is not None else {})


def ended_calls(app: Flask) -> str:
    text = services(app).metrics.exposition().decode()
    ended = [line for line in text.splitlines() if line.startswith("cahub_calls_ended_total")]
    return "\n".join(ended)


def test_status_callback_must_be_signed(client: FlaskClient) -> None:
    assert 403 == client.post("/twilio/status", data=status_form("completed", 3)).status_code


def test_a_completed_call_is_ended_once_however_often_twilio_says_so(app: Flask,
                                                                    client: FlaskClient) -> None:
    for form in (status_form("ringing", 1), status_form("completed", 3, 240),
                 status_form("completed", 3, 240), status_form("in-progress", 2)):
        reply = signed_post(client, "/twilio/status", form)
        assert (200, "<Response/>") == (reply.status_code, reply.get_data(as_text=True))
    assert 'cahub_calls_ended_total{status="completed"} 1.0' == ended_calls(app)


def test_status_callback_without_a_status_is_a_bad_request(client: FlaskClient) -> None:
    form = status_form("completed", 1)
    del form["CallStatus"]
    assert 400 == signed_post(client, "/twilio/status", form).status_code
