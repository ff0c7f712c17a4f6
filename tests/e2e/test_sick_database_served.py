"""End to end: a sick hub database holds no call under the production command (gunicorn's
gevent worker, where a wait on the database must not stall the other greenlets): SQLite
locked by another process, and PostgreSQL cut off (a proxy between them is cut).

Meanwhile the voice webhook answers within its deadline with the routing TwiML and pops on
an open console, the status callback answers 503 within its deadline (Twilio retries it),
``/healthz`` says the database is failing, and a console and ``/healthz`` keep answering;
once the database is back, the call is saved. ``tests/web/test_sick_database.py`` holds
the same behaviours in detail, in process.
"""

from __future__ import annotations

import sqlite3
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from app import HUB_FILE
from integrations.simulate import inbound_call_form, new_call_sid, post_signed
from lookup.demo import DEMO_CALLER, load_demo
from lookup.store.postgres.store import PostgresProfileStore
from tests.backends import cut_off, locked_by_another_process
from tests.e2e.consoles import TO, Consoles, console_cookie, demo_hub
from tests.e2e.gunicorn_process import GunicornProcess
from tests.e2e.hub_process import free_port, hub_environment, wait_for

pytestmark = pytest.mark.slow

AUTH_TOKEN = "sick-database-auth-token"
DEADLINE_S = 0.5
SLACK_S = 0.5  # what a loaded two-core machine, and a real connection, may add
BACK_S = 15.0
ACCOUNT = "AC" + "0" * 32


@dataclass
class Sick:
    """A hub served on a database that falls sick while ``outage()``'s block runs."""

    server: GunicornProcess
    outage: Callable[[], AbstractContextManager[None]]
    says: str  # a word of the error /healthz gives meanwhile
    saved: Callable[[str], bool]  # whether the ledger holds the call
    name: str | None  # the caller's name the call is answered with meanwhile


@pytest.fixture(params=["sqlite", "postgres"])
def sick(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Sick]:
    settings = demo_hub(tmp_path, AUTH_TOKEN) | {
        "CAHUB_LOOKUP_DEADLINE_MS": str(int(DEADLINE_S * 1000))}
    if request.param == "sqlite":
        hub_file = tmp_path / "instance" / HUB_FILE

        def saved(sid: str) -> bool:
            with sqlite3.connect(hub_file) as db:
                return db.execute("SELECT 1 FROM calls WHERE call_sid = ?", (sid,)).fetchone() \
                    is not None

        def outage() -> AbstractContextManager[None]:
            return locked_by_another_process(hub_file)

        says, name = "locked", "Ada Lovelace"
    else:
        import psycopg

        proxy, url = request.getfixturevalue("postgres_proxy")
        direct = request.getfixturevalue("postgres_url")
        settings["CAHUB_DATABASE_URL"] = url

        def saved(sid: str) -> bool:
            with psycopg.connect(direct) as db:
                return db.execute("SELECT 1 FROM calls WHERE call_sid = %s",
                                  (sid,)).fetchone() is not None

        def outage() -> AbstractContextManager[None]:
            return cut_off(proxy)

        # The profile store is in the database too (with the demo customers): while the
        # database is away, the call is answered in time without the caller's profile.
        store = PostgresProfileStore(direct)
        load_demo(store)
        store.close()
        says, name = "database", None
    server = GunicornProcess(hub_environment(settings), tmp_path, f"127.0.0.1:{free_port()}")
    server.start()
    yield Sick(server, outage, says, saved, name)
    server.stop()


def timed_post(url: str, form: dict[str, str]) -> tuple[requests.Response, float]:
    started = time.monotonic()
    reply = post_signed(url, form, AUTH_TOKEN, timeout=10)
    return reply, time.monotonic() - started


def dialled_name(twiml: str) -> str | None:
    params = ET.fromstring(twiml).iterfind("Dial/Client/Parameter")
    return {p.get("name"): p.get("value") for p in params}.get("name")


def test_a_sick_database_holds_no_call_under_the_production_worker(sick: Sick) -> None:
    base = sick.server.base_url
    consoles = Consoles(base, console_cookie(base), 1)
    sid = new_call_sid()
    try:
        wait_for(lambda: consoles.read_for(0.05) or consoles.open() == 1, 5,
                 "the console to open", sick.server.logs)
        well, _ = timed_post(f"{base}/twilio/voice",
                             inbound_call_form(new_call_sid(), DEMO_CALLER, TO, ACCOUNT))
        with sick.outage():
            voice, voice_took = timed_post(f"{base}/twilio/voice",
                                           inbound_call_form(sid, DEMO_CALLER, TO, ACCOUNT))
            wait_for(lambda: consoles.read_for(0.05) or consoles.that_got(sid) == 1, 5,
                     "the call to pop on the console", sick.server.logs)
            status, status_took = timed_post(f"{base}/twilio/status", {
                "CallSid": sid, "AccountSid": ACCOUNT, "CallStatus": "completed",
                "SequenceNumber": "3", "CallDuration": "42"})
            started = time.monotonic()
            health = requests.get(f"{base}/healthz", timeout=10)
            health_took = time.monotonic() - started
            saved_meanwhile = sick.saved(sid)
        wait_for(lambda: sick.saved(sid), BACK_S, "the call to be saved", sick.server.logs)
    finally:
        consoles.close()

    assert "Ada Lovelace" == dialled_name(well.text)  # the store answers while all is well
    dialled = ET.fromstring(voice.text).find("Dial/Client")
    assert dialled is not None, voice.text
    params = {p.get("name"): p.get("value") for p in dialled.iterfind("Parameter")}
    assert (200, "grace", sick.name) == (
        voice.status_code, dialled.findtext("Identity"), params.get("name"))
    assert voice_took < DEADLINE_S + SLACK_S
    assert (503, "<Response/>") == (status.status_code, status.text)
    assert status_took < DEADLINE_S + SLACK_S
    body = health.json()
    assert (503, False) == (health.status_code, body["state"]["ok"])
    assert sick.says in body["state"]["error"]
    assert health_took < 2.0
    assert not saved_meanwhile  # then saved, once the database was back
