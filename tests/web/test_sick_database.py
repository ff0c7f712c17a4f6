"""A sick hub database never holds a call, and it shows: SQLite locked by another process,
and PostgreSQL gone (a stopped server, as the hub sees it: a proxy between them is cut).

The voice webhook answers within its deadline with the routing TwiML and the pop, and
saves the call and its deliveries once the database answers again; the status callback
answers 503 so that Twilio retries it; ``/healthz`` says the database is failing.

PostgreSQL is cut off by a TCP proxy the test controls rather than by stopping a server of
the test's own: it takes no second server's start-up (seconds, each time), runs wherever
the shared server does, and to the hub it is the same as a stopped server: every open
connection lost, every new one refused at once.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import HUB_FILE, close_app, create_app, services
from hub.models import Identity, Profile
from tests.backends import cut_off, locked_by_another_process
from tests.fakes import InMemoryProfileProvider, wait_for
from tests.support import (
    ADA_PHONE,
    AGENT_NUMBER,
    call_form,
    make_settings,
    outbound_form,
    signed_post,
)

DEADLINE_S = 0.5
SLACK_S = 0.25  # what a loaded two-core machine may add to the answer
BACK_S = 15.0  # how long the hub may take to save what waited, once the database is back
SID = "CA" + "5" * 32
ADA = Profile(source="memory", profile_id="ada",
              attributes={"person": {"name": {"fullName": "Ada Lovelace"}}})
@dataclass
class Sickness:
    """One backend, and how it falls sick: ``outage()`` keeps it so until the block ends."""

    outage: Callable[[], AbstractContextManager[None]]
    says: str  # a word of the error /healthz gives meanwhile
    settings: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(params=["sqlite", "postgres"])
def sickness(request: pytest.FixtureRequest, tmp_path: Path) -> Sickness:
    if request.param == "sqlite":
        return Sickness(lambda: locked_by_another_process(tmp_path / HUB_FILE), "locked")
    proxy, url = request.getfixturevalue("postgres_proxy")
    return Sickness(lambda: cut_off(proxy), "database", {"database_url": url})


@pytest.fixture
def app(tmp_path: Path, sickness: Sickness) -> Iterator[Flask]:
    provider = InMemoryProfileProvider({Identity(namespace="Phone_E.164", id=ADA_PHONE): ADA})
    settings = make_settings(tmp_path, lookup_deadline_ms=int(DEADLINE_S * 1000), crm="webhook",
                             webhook_url="http://127.0.0.1:9/notes", webhook_secret="s",
                             **sickness.settings)
    application = create_app(settings, providers=[provider], start_background=False)
    signed_post(application.test_client(), "/twilio/voice", call_form("CA" + "0" * 32))
    yield application
    close_app(application)


def timed(action: object) -> tuple[object, float]:
    started = time.perf_counter()
    result = action()  # type: ignore[operator]
    return result, time.perf_counter() - started


def dialled_name(reply: object) -> str | None:
    root = ET.fromstring(reply.data)  # type: ignore[attr-defined]
    params = {p.get("name"): p.get("value") for p in root.iterfind("Dial/Client/Parameter")}
    return params.get("name")


def test_the_voice_webhook_routes_the_call_within_its_deadline_while_the_database_is_locked(
    app: Flask, client: FlaskClient, sickness: Sickness,
) -> None:
    with sickness.outage():
        reply, took = timed(lambda: signed_post(client, "/twilio/voice", call_form(SID)))

    assert (200, "Ada Lovelace") == (reply.status_code, dialled_name(reply))  # type: ignore[attr-defined]
    assert took < DEADLINE_S + SLACK_S


def test_the_call_pops_on_the_console_while_the_database_is_locked(
    app: Flask, client: FlaskClient, sickness: Sickness,
) -> None:
    stream = services(app).broker.subscribe("grace")
    with sickness.outage():
        signed_post(client, "/twilio/voice", call_form(SID))
        pop = stream.next(timeout=DEADLINE_S)
    stream.close()

    assert "Ada Lovelace" == (pop[1].name if pop else None)


def test_a_call_answered_while_the_database_was_locked_is_saved_with_its_note_afterwards(
    app: Flask, client: FlaskClient, sickness: Sickness,
) -> None:
    hub = services(app)
    with sickness.outage():
        signed_post(client, "/twilio/voice", call_form(SID))

    def notes() -> list[tuple[str, object]]:
        return [(d.call_sid, d.payload["summary"]["name"])
                for d in hub.outbox.list(status="pending") if d.call_sid == SID]

    assert wait_for(lambda: notes() != [], timeout=BACK_S)
    assert [(SID, "Ada Lovelace")] == notes()


def test_a_retried_webhook_while_the_database_is_locked_gets_the_same_answer_and_no_second_pop(
    app: Flask, client: FlaskClient, sickness: Sickness,
) -> None:
    stream = services(app).broker.subscribe("grace")
    with sickness.outage():
        first = signed_post(client, "/twilio/voice", call_form(SID))
        second = signed_post(client, "/twilio/voice", call_form(SID))
    pops = [stream.next(timeout=0.2), stream.next(timeout=0.2)]
    stream.close()

    assert first.data == second.data
    assert 1 == sum(pop is not None for pop in pops)


def status_form(status: str = "completed", sequence: int = 3) -> dict[str, str]:
    return {"CallSid": SID, "AccountSid": "AC" + "1" * 32, "CallStatus": status,
            "SequenceNumber": str(sequence), "CallDuration": "42"}


def test_the_status_callback_answers_503_within_its_deadline_while_the_database_is_locked(
    app: Flask, client: FlaskClient, sickness: Sickness,
) -> None:
    signed_post(client, "/twilio/voice", call_form(SID))
    with sickness.outage():
        reply, took = timed(lambda: signed_post(client, "/twilio/status", status_form()))

    assert (503, "<Response/>") == (reply.status_code, reply.get_data(as_text=True))  # type: ignore[attr-defined]
    assert took < DEADLINE_S + SLACK_S


def test_a_status_callback_refused_while_locked_is_recorded_once_twilio_retries_it(
    app: Flask, client: FlaskClient, sickness: Sickness,
) -> None:
    signed_post(client, "/twilio/voice", call_form(SID))
    with sickness.outage():
        signed_post(client, "/twilio/status", status_form())
    assert wait_for(lambda: client.get("/healthz").status_code == 200, timeout=BACK_S)
    retried = signed_post(client, "/twilio/status", status_form())  # Twilio's retry, later

    logs = [d for d in services(app).outbox.list(status="pending")
            if d.call_sid == SID and d.action.value == "call_log"]
    assert (200, 2) == (retried.status_code, len(logs))  # the CRM's log and the write-back


def test_healthz_is_503_and_names_the_database_while_it_is_locked(
    app: Flask, client: FlaskClient, sickness: Sickness,
) -> None:
    with sickness.outage():
        reply, took = timed(lambda: client.get("/healthz"))

    body = reply.get_json()  # type: ignore[attr-defined]
    assert (503, "failing", False) == (reply.status_code, body["status"], body["state"]["ok"])  # type: ignore[attr-defined]
    assert sickness.says in body["state"]["error"]
    assert took < 2.0


def test_a_call_an_agent_places_is_dialled_within_its_deadline_and_pops_while_the_database_is_sick(
    app: Flask, client: FlaskClient, sickness: Sickness,
) -> None:
    stream = services(app).broker.subscribe("grace")
    with sickness.outage():
        reply, took = timed(lambda: signed_post(client, "/twilio/outbound",
                                                outbound_form(SID, ADA_PHONE)))
        pop = stream.next(timeout=DEADLINE_S)
    stream.close()

    root = ET.fromstring(reply.data)  # type: ignore[attr-defined]
    assert (AGENT_NUMBER, ADA_PHONE) == (root.find("Dial").get("callerId"),  # type: ignore[union-attr]
                                         root.findtext("Dial/Number"))
    assert took < DEADLINE_S + SLACK_S
    assert ("Ada Lovelace", "outbound") == ((pop[1].name, pop[1].call.direction) if pop else None)


def test_a_call_placed_while_the_database_was_sick_is_on_the_ledger_and_the_desk_afterwards(
    app: Flask, client: FlaskClient, sickness: Sickness,
) -> None:
    hub = services(app)
    with sickness.outage():
        signed_post(client, "/twilio/outbound", outbound_form(SID, ADA_PHONE))
        retried = signed_post(client, "/twilio/outbound", outbound_form(SID, ADA_PHONE))

    def saved() -> tuple[str | None, str | None] | None:
        desk_call = hub.desk.store.get(SID)  # saved in one transaction with the ledger's record
        if desk_call is None or hub.calls.state.unsaved():
            return None
        record = hub.calls.state.known(SID, time.perf_counter() + 1.0)  # now from the ledger
        return (record.summary.name if record else None), desk_call.direction

    assert wait_for(lambda: saved() is not None, timeout=BACK_S)
    assert ("Ada Lovelace", "outbound") == saved()
    assert ADA_PHONE == ET.fromstring(retried.data).findtext("Dial/Number")  # type: ignore[attr-defined]
