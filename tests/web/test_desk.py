"""The agent's desk: the call's state from status callbacks, draft notes, wrap-up, and the call
log that waits for it (or for its deadline, with the draft). Each test runs with the hub's
state in SQLite, then in PostgreSQL."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import close_app, create_app, services
from hub.desk import MAX_NOTES, CallState, DeskCall
from hub.models import Identity, Profile
from hub.settings import Settings
from tests.fakes import InMemoryProfileProvider
from tests.support import (
    ADA_PHONE,
    call_form,
    console_login,
    csrf_token,
    leg_form,
    make_settings,
    signed_post,
    status_form,
)

SID = "CA" + "d" * 32
LEG = "CA" + "e" * 32
ADA = Profile(source="memory", profile_id="ada",
              attributes={"person": {"name": {"firstName": "Ada", "lastName": "Lovelace"}}})


def desk_settings(tmp_path: Path, **overrides: Any) -> Settings:
    return make_settings(tmp_path / "instance", crm="webhook", webhook_url="http://127.0.0.1:9/",
                         webhook_secret="webhook-secret", **overrides)


def desk_app(settings: Settings) -> Flask:
    provider = InMemoryProfileProvider({Identity(namespace="Phone_E.164", id=ADA_PHONE): ADA})
    app = create_app(settings, providers=[provider], start_background=False)
    app.config["CAHUB_SSE_KEEPALIVE"] = 0.02
    return app


@pytest.fixture
def settings(tmp_path: Path, hub_database: dict[str, Any]) -> Settings:
    return desk_settings(tmp_path, **hub_database)


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    application = desk_app(settings)
    yield application
    close_app(application)


@pytest.fixture
def twilio(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def grace(app: Flask) -> FlaskClient:
    client = app.test_client()
    console_login(client, "grace-token")
    return client


def states_for(app: Flask, agent_id: str) -> list[CallState]:
    return [e for _, e in _published(app, agent_id) if isinstance(e, CallState)]


def answered_call(twilio: FlaskClient, talk_s: int = 42) -> None:
    """A call routed to Grace, answered, and her leg over after ``talk_s``."""
    signed_post(twilio, "/twilio/voice", call_form(SID))
    signed_post(twilio, "/twilio/leg-status", leg_form(SID, LEG, "ringing"))
    signed_post(twilio, "/twilio/leg-status", leg_form(SID, LEG, "in-progress", sequence=1))
    signed_post(twilio, "/twilio/leg-status",
                leg_form(SID, LEG, "completed", duration=talk_s, sequence=2))


def deliveries(app: Flask) -> dict[str, dict[str, Any]]:
    """``sink/action`` -> payload of every delivery of the call."""
    return {f"{d.sink}/{d.action.value}": d.payload for d in services(app).outbox.list()
            if d.call_sid == SID}


def put_notes(client: FlaskClient, notes: str, sid: str = SID) -> Any:
    return client.put(f"/console/calls/{sid}/notes", json={"notes": notes},
                      headers={"X-CSRFToken": csrf_token(client)})


def post_wrapup(client: FlaskClient, outcome: str, notes: str = "", sid: str = SID) -> Any:
    return client.post(f"/console/calls/{sid}/wrapup", json={"outcome": outcome, "notes": notes},
                       headers={"X-CSRFToken": csrf_token(client)})


def make_deadline_due(app: Flask) -> None:
    """Bring the wrap-up deadlines forward to now, on either backend."""
    past = "'2000-01-01Z'" if services(app).settings.database_url else "0"
    with services(app).hub_db.transaction() as conn:
        conn.execute(f"UPDATE deliveries SET next_attempt_at = {past} WHERE sink = 'wrapup'")  # noqa: S608 -- a constant


def desk_call(app: Flask) -> DeskCall:
    stored = services(app).desk.store.get(SID)
    assert stored is not None
    return stored


# --- the call's state from status callbacks --------------------------------------------------


def test_the_agents_leg_rings_connects_and_ends_on_the_card(app, twilio):
    answered_call(twilio, talk_s=42)

    states = states_for(app, "grace")

    assert ["ringing", "connected", "ended"] == [s.phase for s in states]
    assert states[1].answered_at is not None
    assert 42 == states[2].talk_s


def test_a_callback_that_comes_again_changes_nothing_and_says_nothing(app, twilio):
    signed_post(twilio, "/twilio/voice", call_form(SID))
    for _ in range(2):
        signed_post(twilio, "/twilio/leg-status", leg_form(SID, LEG, "in-progress", sequence=1))

    assert ["connected"] == [s.phase for s in states_for(app, "grace")]


def test_a_late_answered_callback_never_takes_an_ended_call_back(app, twilio):
    signed_post(twilio, "/twilio/voice", call_form(SID))
    signed_post(twilio, "/twilio/leg-status", leg_form(SID, LEG, "completed", duration=30))
    signed_post(twilio, "/twilio/leg-status", leg_form(SID, LEG, "in-progress"))

    assert ("ended", 30) == (desk_call(app).phase, desk_call(app).talk_s)


def test_a_leg_nobody_answers_is_a_missed_call(app, twilio):
    signed_post(twilio, "/twilio/voice", call_form(SID))
    signed_post(twilio, "/twilio/leg-status", leg_form(SID, LEG, "ringing"))
    signed_post(twilio, "/twilio/leg-status", leg_form(SID, LEG, "no-answer", sequence=1))

    assert "missed" == states_for(app, "grace")[-1].phase


def test_a_leg_status_callback_must_be_signed(twilio):
    response = twilio.post("/twilio/leg-status", data=leg_form(SID, LEG, "ringing"))

    assert 403 == response.status_code


def test_a_leg_of_a_call_the_hub_never_routed_is_ignored(app, twilio):
    response = signed_post(twilio, "/twilio/leg-status", leg_form(SID, LEG, "ringing"))

    assert (200, None) == (response.status_code, services(app).desk.store.get(SID))


def test_the_call_state_reaches_the_agents_console_stream(app, twilio, grace):
    answered_call(twilio)
    stream = grace.get("/console/events", headers={"Last-Event-ID": "0"})

    body = b""
    for chunk in stream.response:
        body += chunk
        if body.count(b"event: callstate") >= 3:
            break
    stream.close()

    assert b'"phase":"connected"' in body


@pytest.mark.parametrize(("status", "verbs"), [("completed", ["Hangup"]),
                                               ("no-answer", ["Say", "Enqueue"])])
def test_once_the_dial_is_over_the_hub_says_what_next(twilio, status, verbs):
    form = {**call_form(SID), "DialCallStatus": status, "DialCallSid": LEG}

    reply = signed_post(twilio, "/twilio/dial-done", form)

    assert verbs == [child.tag for child in ET.fromstring(reply.data)]


# --- the call log waits for the wrap-up ------------------------------------------------------


def test_an_answered_call_that_ends_waits_for_its_wrapup(app, twilio):
    answered_call(twilio)

    signed_post(twilio, "/twilio/status", status_form(SID))

    assert ["webhook/note", "wrapup/wrapup_due"] == sorted(deliveries(app))
    assert desk_call(app).log_due_at is not None


def test_the_wrapup_logs_the_call_with_its_outcome_and_notes(app, twilio, grace):
    answered_call(twilio)
    signed_post(twilio, "/twilio/status", status_form(SID, duration=95))

    response = post_wrapup(grace, "refund_issued", "Refunded order 1042.")

    logged = deliveries(app)
    assert ("wrapped_up", "Refund issued") == (response.get_json()["state"]["phase"],
                                              response.get_json()["state"]["outcome_label"])
    assert {"outcome": "Refund issued", "outcome_id": "refund_issued",
            "notes": "Refunded order 1042.", "duration_s": 95, "call_status": "completed",
            "direction": "inbound"}.items() <= logged["webhook/call_log"].items()
    assert "Refund issued" == logged["profile/call_log"]["outcome"]


def test_a_wrapup_before_the_call_has_ended_is_logged_when_it_ends(app, twilio, grace):
    answered_call(twilio)
    post_wrapup(grace, "resolved", "All good.")
    assert "webhook/call_log" not in deliveries(app)

    signed_post(twilio, "/twilio/status", status_form(SID))

    assert ("Resolved", "All good.") == (deliveries(app)["webhook/call_log"]["outcome"],
                                         deliveries(app)["webhook/call_log"]["notes"])
    assert "wrapup/wrapup_due" not in deliveries(app)


def test_a_second_wrapup_is_refused(twilio, grace):
    answered_call(twilio)
    post_wrapup(grace, "resolved")

    response = post_wrapup(grace, "follow_up")

    assert (409, "wrapup_closed") == (response.status_code,
                                      response.get_json()["error"]["code"])


def test_a_call_never_wrapped_up_is_logged_with_its_draft_when_its_time_runs_out(
        app, twilio, grace):
    answered_call(twilio)
    signed_post(twilio, "/twilio/status", status_form(SID))
    put_notes(grace, "Wants a callback on Monday.")

    make_deadline_due(app)
    services(app).dispatcher.drain_once()

    logged = deliveries(app)["webhook/call_log"]
    assert ("Wants a callback on Monday.", "completed", None) == (
        logged["notes"], logged["outcome"], logged["outcome_id"])
    assert "logged" == desk_call(app).phase


def test_the_wrapup_deadline_holds_across_a_restart(settings, twilio, app, grace):
    answered_call(twilio)
    signed_post(twilio, "/twilio/status", status_form(SID))
    put_notes(grace, "Draft before the restart.")
    close_app(app)

    restarted = desk_app(settings)
    try:
        make_deadline_due(restarted)
        services(restarted).dispatcher.drain_once()
        assert "Draft before the restart." == deliveries(restarted)["webhook/call_log"]["notes"]
    finally:
        close_app(restarted)


def test_a_wrapup_after_the_deadline_is_refused_and_says_why(app, twilio, grace):
    answered_call(twilio)
    signed_post(twilio, "/twilio/status", status_form(SID))
    make_deadline_due(app)
    services(app).dispatcher.drain_once()

    response = post_wrapup(grace, "resolved")

    assert 409 == response.status_code
    assert "logged with your draft notes" in response.get_json()["error"]["message"]


def test_a_deadline_after_the_wrapup_changes_nothing(app, twilio, grace):
    answered_call(twilio)
    signed_post(twilio, "/twilio/status", status_form(SID))
    post_wrapup(grace, "resolved", "Done.")

    make_deadline_due(app)
    services(app).dispatcher.drain_once()

    assert ("wrapped_up", "Resolved") == (desk_call(app).phase,
                                          deliveries(app)["webhook/call_log"]["outcome"])


def test_a_call_nobody_answered_is_logged_at_once(app, twilio):
    signed_post(twilio, "/twilio/voice", call_form(SID))
    signed_post(twilio, "/twilio/leg-status", leg_form(SID, LEG, "no-answer"))

    signed_post(twilio, "/twilio/status", status_form(SID))

    assert "wrapup/wrapup_due" not in deliveries(app)
    assert (None, "") == (deliveries(app)["webhook/call_log"]["outcome_id"],
                          deliveries(app)["webhook/call_log"]["notes"])
    assert "missed" == desk_call(app).phase


# --- drafts --------------------------------------------------------------------------------


def test_draft_notes_are_kept_and_listed_with_the_open_call(twilio, grace):
    answered_call(twilio)

    put_notes(grace, "Order 1042 arrived damaged")
    listed = grace.get("/console/calls").get_json()["calls"]

    assert 1 == len(listed)
    assert ("Order 1042 arrived damaged", "ended", SID) == (
        listed[0]["notes"], listed[0]["state"]["phase"], listed[0]["summary"]["call"]["sid"])
    assert "Ada Lovelace" == listed[0]["summary"]["name"]


def test_a_wrapped_up_call_is_no_longer_open(twilio, grace):
    answered_call(twilio)
    post_wrapup(grace, "resolved")

    assert [] == grace.get("/console/calls").get_json()["calls"]


def test_notes_typed_before_any_leg_reported_still_wait_for_the_wrapup(app, twilio, grace):
    signed_post(twilio, "/twilio/voice", call_form(SID))
    put_notes(grace, "Typed while it rang")

    signed_post(twilio, "/twilio/status", status_form(SID))

    assert "wrapup/wrapup_due" in deliveries(app)


def test_another_agent_cannot_write_on_the_call(app, twilio):
    answered_call(twilio)
    alan = app.test_client()
    console_login(alan, "alan-token")

    response = put_notes(alan, "not mine")

    assert (403, "not_your_call") == (response.status_code, response.get_json()["error"]["code"])


def test_notes_on_a_call_the_hub_never_routed_are_refused(grace):
    response = put_notes(grace, "?", sid="CA" + "0" * 32)

    assert 404 == response.status_code


def test_an_unknown_outcome_is_refused(twilio, grace):
    answered_call(twilio)

    response = post_wrapup(grace, "made-up")

    assert (400, "unknown_outcome") == (response.status_code,
                                        response.get_json()["error"]["code"])


@pytest.mark.parametrize("ensure_ascii", [False, True], ids=["utf-8", "escaped"])
def test_notes_at_their_longest_are_kept_however_their_json_is_written(app, twilio, grace,
                                                                       ensure_ascii):
    answered_call(twilio)
    longest = "😀" * MAX_NOTES  # 4 bytes in UTF-8, 12 escaped

    response = grace.put(f"/console/calls/{SID}/notes",
                         data=json.dumps({"notes": longest}, ensure_ascii=ensure_ascii),
                         headers={"X-CSRFToken": csrf_token(grace),
                                  "Content-Type": "application/json"})

    assert (200, MAX_NOTES) == (response.status_code, len(desk_call(app).notes))


def test_notes_over_the_longest_are_refused_as_too_long(twilio, grace):
    answered_call(twilio)

    response = put_notes(grace, "x" * (MAX_NOTES + 1))

    assert (400, "notes_too_long") == (response.status_code,
                                       response.get_json()["error"]["code"])


def test_notes_must_be_text(twilio, grace):
    answered_call(twilio)

    response = grace.put(f"/console/calls/{SID}/notes", json={"notes": 42},
                         headers={"X-CSRFToken": csrf_token(grace)})

    assert 400 == response.status_code


def test_notes_without_the_csrf_token_are_refused(twilio, grace):
    answered_call(twilio)

    response = grace.put(f"/console/calls/{SID}/notes", json={"notes": "x"})

    assert (400, "csrf_failed") == (response.status_code, response.get_json()["error"]["code"])


def test_the_desk_needs_a_session(twilio, app):
    assert 401 == app.test_client().get("/console/calls").status_code


def test_the_next_pop_shows_the_outcome_of_the_last_call(tmp_path):
    app = create_app(make_settings(tmp_path / "store"), start_background=False)
    try:
        services(app).store.ingest("profiles", [
            '{"identityMap": {"Phone": [{"id": "(415) 555-0134", "primary": true}]},'
            ' "person": {"name": {"firstName": "Ada", "lastName": "Lovelace"}}}'])
        twilio, grace = app.test_client(), app.test_client()
        console_login(grace, "grace-token")
        answered_call(twilio)
        signed_post(twilio, "/twilio/status", status_form(SID, duration=250))
        post_wrapup(grace, "refund_issued", "Refunded.")
        services(app).dispatcher.drain_once()

        signed_post(twilio, "/twilio/voice", call_form("CA" + "f" * 32))

        pops = [e for _, e in _published(app, "grace") if not isinstance(e, CallState)]
        assert "Called, 4 min, Refund issued" == pops[-1].recent_events[0].title
    finally:
        close_app(app)


def _published(app: Flask, agent_id: str) -> list[tuple[str, Any]]:
    stream = services(app).broker.subscribe(agent_id, last_event_id="0")
    events = []
    while (event := stream.next(timeout=0.05)) is not None:
        events.append(event)
    stream.close()
    return events
