"""Warm transfer: POST /console/calls/<CallSid>/transfer, Twilio's REST stand-in, the way back;
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
from hub.desk import CallState
from hub.models import Summary
from tests.standins.twilio import TwilioStandIn
from tests.support import (
    AUTH_TOKEN,
    call_form,
    console_login,
    csrf_token,
    leg_form,
    signed_post,
    status_form,
)
from tests.web.test_desk import desk_app, desk_settings

SID = "CA" + "d" * 32
GRACE_LEG, ALAN_LEG = "CA" + "e" * 32, "CA" + "f" * 32
ACCOUNT = "AC" + "1" * 32


@pytest.fixture
def rest() -> Iterator[TwilioStandIn]:
    with TwilioStandIn(ACCOUNT, AUTH_TOKEN) as standin:
        standin.live_calls.add(SID)
        yield standin


@pytest.fixture
def app(tmp_path: Path, rest: TwilioStandIn, hub_database: dict[str, Any]) -> Iterator[Flask]:
    application = desk_app(desk_settings(tmp_path, twilio_account_sid=ACCOUNT,
                                         twilio_base_url=rest.base_url, **hub_database))
    yield application
    close_app(application)


@pytest.fixture
def twilio(app: Flask) -> FlaskClient:
    return app.test_client()


def agent(app: Flask, name: str) -> FlaskClient:
    client = app.test_client()
    console_login(client, f"{name}-token")
    return client


def connected(twilio: FlaskClient, grace: FlaskClient, notes: str = "") -> None:
    signed_post(twilio, "/twilio/voice", call_form(SID))
    signed_post(twilio, "/twilio/leg-status", leg_form(SID, GRACE_LEG, "in-progress"))
    if notes:
        grace.put(f"/console/calls/{SID}/notes", json={"notes": notes},
                  headers={"X-CSRFToken": csrf_token(grace)})


def transfer(client: FlaskClient, to: str = "alan") -> Any:
    return client.post(f"/console/calls/{SID}/transfer", json={"agent": to},
                       headers={"X-CSRFToken": csrf_token(client)})


def events(app: Flask, agent_id: str) -> list[Any]:
    stream = services(app).broker.subscribe(agent_id, last_event_id="0")
    found = []
    while (event := stream.next(timeout=0.05)) is not None:
        found.append(event[1])
    stream.close()
    return found


def states(app: Flask, agent_id: str) -> list[CallState]:
    return [e for e in events(app, agent_id) if isinstance(e, CallState)]


def test_a_transfer_rings_the_colleague_with_the_summary_and_the_notes(app, twilio, rest):
    grace = agent(app, "grace")
    connected(twilio, grace, "Wants to upgrade to the annual plan.")

    response = transfer(grace)

    assert "transferring" == response.get_json()["state"]["phase"]
    [pop] = [e for e in events(app, "alan") if isinstance(e, Summary)]
    [ringing] = states(app, "alan")
    assert (SID, "ringing") == (pop.call.sid, ringing.phase)
    assert [("Grace Hopper", "Wants to upgrade to the annual plan.")] == [
        (h.agent_name, h.notes) for h in ringing.handoffs]
    assert "alan" == ET.fromstring(rest.call_updates[0]["Twiml"]).findtext("Dial/Client/Identity")


def test_the_colleague_who_answers_holds_the_call_and_the_first_agent_sees_it_handed_on(
        app, twilio):
    grace = agent(app, "grace")
    connected(twilio, grace, "Upgrade.")
    transfer(grace)

    signed_post(twilio, "/twilio/leg-status", leg_form(SID, GRACE_LEG, "completed", duration=30,
                                                       sequence=5))
    signed_post(twilio, "/twilio/leg-status", leg_form(SID, ALAN_LEG, "in-progress",
                                                       to="client:alan", sequence=6))

    assert ("transferred", "Alan Turing") == (states(app, "grace")[-1].phase,
                                              states(app, "grace")[-1].transfer_to_name)
    alan_now = states(app, "alan")[-1]
    assert ("connected", ["Upgrade."]) == (alan_now.phase, [h.notes for h in alan_now.handoffs])


def test_a_transfer_nobody_answers_brings_the_caller_back_to_the_first_agent(app, twilio):
    grace = agent(app, "grace")
    connected(twilio, grace)
    transfer(grace)
    signed_post(twilio, "/twilio/leg-status", leg_form(SID, ALAN_LEG, "no-answer",
                                                       to="client:alan", sequence=6))

    form = {**call_form(SID), "DialCallStatus": "no-answer", "DialCallSid": ALAN_LEG}
    reply = signed_post(twilio, "/twilio/dial-done?back_to=grace", form)

    assert "grace" == ET.fromstring(reply.data).findtext("Dial/Client/Identity")
    assert ("ringing", "Alan Turing") == (states(app, "grace")[-1].phase,
                                          states(app, "grace")[-1].transfer_failed)
    assert "missed" == states(app, "alan")[-1].phase


def test_after_a_transfer_the_call_log_carries_both_agents_notes(app, twilio):
    grace, alan = agent(app, "grace"), agent(app, "alan")
    connected(twilio, grace, "Upgrade to annual.")
    transfer(grace)
    signed_post(twilio, "/twilio/leg-status", leg_form(SID, ALAN_LEG, "in-progress",
                                                       to="client:alan", sequence=6))
    signed_post(twilio, "/twilio/status", status_form(SID))

    alan.post(f"/console/calls/{SID}/wrapup", json={"outcome": "resolved", "notes": "Done."},
              headers={"X-CSRFToken": csrf_token(alan)})

    [log] = [d.payload for d in services(app).outbox.list() if d.sink == "webhook"
             and d.action.value == "call_log"]
    assert "Grace Hopper: Upgrade to annual.\n\nAlan Turing: Done." == log["notes"]


def test_a_call_twilio_says_has_ended_cannot_be_transferred_and_stays_with_the_agent(
        app, twilio, rest):
    grace = agent(app, "grace")
    connected(twilio, grace)
    rest.ended_calls.add(SID)

    response = transfer(grace)

    assert (409, "transfer_refused") == (response.status_code,
                                         response.get_json()["error"]["code"])
    assert ("connected", None) == (services(app).desk.store.get(SID).phase,
                                   services(app).desk.store.get(SID).transfer_to)


def test_when_twilio_cannot_be_reached_the_caller_stays_and_the_agent_may_try_again(
        app, twilio, rest):
    grace = agent(app, "grace")
    connected(twilio, grace)
    rest.fail_next(1, status=503)

    assert 502 == transfer(grace).status_code
    assert 200 == transfer(grace).status_code


@pytest.mark.parametrize("to", ["grace", "nobody"])
def test_a_transfer_needs_a_colleague(app, twilio, to):
    grace = agent(app, "grace")
    connected(twilio, grace)

    assert 400 == transfer(grace, to).status_code


def test_only_a_call_the_agent_is_on_can_be_transferred(app, twilio):
    grace = agent(app, "grace")
    signed_post(twilio, "/twilio/voice", call_form(SID))
    signed_post(twilio, "/twilio/leg-status", leg_form(SID, GRACE_LEG, "ringing"))

    response = transfer(grace)

    assert (409, "cannot_transfer") == (response.status_code,
                                        response.get_json()["error"]["code"])


def test_another_agents_call_cannot_be_transferred(app, twilio):
    connected(twilio, agent(app, "grace"))

    assert 403 == transfer(agent(app, "alan"), "grace").status_code


def test_without_twilios_account_there_are_no_transfers(tmp_path):
    bare = desk_app(desk_settings(tmp_path))
    try:
        twilio, grace = bare.test_client(), agent(bare, "grace")
        connected(twilio, grace)
        response = transfer(grace)
        assert (503, "transfers_unavailable") == (response.status_code,
                                                  response.get_json()["error"]["code"])
    finally:
        close_app(bare)
