"""Click-to-dial: POST /twilio/outbound (the TwiML App's Voice URL) and the call it places;
each test on SQLite, then on PostgreSQL."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import close_app, services
from hub.models import Summary
from hub.settings import Agent, HubConfig
from tests.support import (
    ADA_PHONE,
    AGENT_NUMBER,
    console_login,
    csrf_token,
    leg_form,
    outbound_form,
    signed_post,
    status_form,
)
from tests.web.test_desk import desk_app, desk_settings

SID = "CA" + "0b" * 16
LEG = "CA" + "1c" * 16


@pytest.fixture
def app(tmp_path: Path, hub_database: dict[str, Any]) -> Iterator[Flask]:
    application = desk_app(desk_settings(tmp_path, **hub_database))
    yield application
    close_app(application)


@pytest.fixture
def twilio(app: Flask) -> FlaskClient:
    return app.test_client()


def pops(app: Flask, agent_id: str) -> list[Summary]:
    stream = services(app).broker.subscribe(agent_id, last_event_id="0")
    found = []
    while (event := stream.next(timeout=0.05)) is not None:
        if isinstance(event[1], Summary):
            found.append(event[1])
    stream.close()
    return found


def place(twilio: FlaskClient, to: str = "(415) 555-0134", client: str = "grace") -> ET.Element:
    reply = signed_post(twilio, "/twilio/outbound", outbound_form(SID, to, client))
    return ET.fromstring(reply.data)


def test_a_call_out_dials_the_number_with_the_agents_caller_id(twilio):
    root = place(twilio)

    dial = root.find("Dial")
    assert (AGENT_NUMBER, ADA_PHONE) == (dial.get("callerId"), root.findtext("Dial/Number"))
    assert "http://localhost/twilio/leg-status" == root.find("Dial/Number").get("statusCallback")
    assert "http://localhost/twilio/dial-done?then=hangup" == dial.get("action")


def test_the_person_dialled_pops_on_the_agents_card(app, twilio):
    place(twilio)

    [pop] = pops(app, "grace")
    assert ("Ada Lovelace", "outbound", ADA_PHONE, AGENT_NUMBER) == (
        pop.name, pop.call.direction, pop.call.to, pop.call.from_)


def test_a_retried_request_dials_the_same_and_pops_once(app, twilio):
    first = ET.tostring(place(twilio))

    assert first == ET.tostring(place(twilio))
    assert 1 == len(pops(app, "grace"))


def test_a_phone_that_is_no_agents_is_told_so_and_nothing_is_dialled(app, twilio):
    root = place(twilio, client="intruder")

    assert ["Say", "Hangup"] == [child.tag for child in root]
    assert [] == pops(app, "grace")


def test_an_agent_without_a_caller_id_is_told_to_ask_for_one(tmp_path):
    agent = Agent(id="ada", name="Ada", client="ada", token="ada-token")
    app = desk_app(desk_settings(tmp_path, hub=HubConfig(agents=(agent,))))
    try:
        root = ET.fromstring(signed_post(app.test_client(), "/twilio/outbound",
                                         outbound_form(SID, ADA_PHONE, "ada")).data)
        assert "caller ID" in root.findtext("Say")
    finally:
        close_app(app)


@pytest.mark.parametrize("to", ["", "client:alan", "not a number", "+1"])
def test_what_is_not_a_number_is_not_dialled(twilio, to):
    root = place(twilio, to=to)

    assert ["Say", "Hangup"] == [child.tag for child in root]


def test_the_outbound_request_must_be_signed(twilio):
    assert 403 == twilio.post("/twilio/outbound", data=outbound_form(SID, ADA_PHONE)).status_code


def test_an_unanswered_call_out_ends_instead_of_queueing_the_agent(twilio):
    form = {**outbound_form(SID, ADA_PHONE), "DialCallStatus": "no-answer"}

    reply = signed_post(twilio, "/twilio/dial-done?then=hangup", form)

    assert ["Hangup"] == [child.tag for child in ET.fromstring(reply.data)]


def test_a_call_out_is_logged_as_outbound_against_the_number_dialled(app, twilio):
    place(twilio)
    for seq, status in enumerate(["ringing", "in-progress"]):
        signed_post(twilio, "/twilio/leg-status", leg_form(SID, LEG, status, ADA_PHONE, None, seq))
    signed_post(twilio, "/twilio/leg-status", leg_form(SID, LEG, "completed", ADA_PHONE, 61, 2))
    signed_post(twilio, "/twilio/status", status_form(SID, duration=64))
    grace = app.test_client()
    console_login(grace, "grace-token")

    grace.post(f"/console/calls/{SID}/wrapup", json={"outcome": "left_voicemail", "notes": "VM"},
               headers={"X-CSRFToken": csrf_token(grace)})

    logs = {d.sink: d.payload for d in services(app).outbox.list() if d.action.value == "call_log"}
    assert ("outbound", ADA_PHONE, "Left voicemail") == (
        logs["webhook"]["direction"], logs["webhook"]["phone"], logs["webhook"]["outcome"])
    assert logs["webhook"]["subject"].startswith("Outbound call: Ada Lovelace")
    assert (ADA_PHONE, "outbound") == (logs["profile"]["phone"], logs["profile"]["direction"])


def test_a_call_out_nobody_answers_is_logged_at_once_with_how_it_ended(app, twilio):
    place(twilio)
    signed_post(twilio, "/twilio/leg-status", leg_form(SID, LEG, "ringing", ADA_PHONE))
    signed_post(twilio, "/twilio/leg-status", leg_form(SID, LEG, "no-answer", ADA_PHONE, None, 1))

    signed_post(twilio, "/twilio/status", status_form(SID, duration=20))

    [log] = [d.payload for d in services(app).outbox.list() if d.sink == "webhook"
             and d.action.value == "call_log"]
    assert ("no-answer", "no-answer") == (log["outcome"], log["call_status"])
