"""No lost work (PRODUCT.md §9): a ``kill -9`` mid-delivery loses nothing and doubles nothing.

The hub runs as a real process (``cahub serve``, and the production command: gunicorn with
its gevent worker) with HubSpot as its CRM and SMS to the
rep on, both pointed at local stand-ins that throttle (429 with ``Retry-After``) and hold
the answer to a write they have already made, so the hub is killed with a delivery in
flight whose far-end effect has happened but was never acknowledged. Restarted on the
same data directory, the hub takes the in-flight rows back once their lease
(``CAHUB_OUTBOX_LEASE_S``) runs out and the sinks find their earlier writes: the rep gets
one SMS, the contact one note and one call. A refusal no retry can fix is dead-lettered
where ``cahub outbox list --status dead`` shows it.
"""

from __future__ import annotations

import re
import sqlite3
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Collection, Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import pytest

from integrations.simulate import inbound_call_form, new_call_sid, post_signed
from tests.e2e.gunicorn_process import GunicornProcess
from tests.e2e.hub_process import HubProcess, free_port, hub_environment, run_cahub, wait_for
from tests.standins.hubspot import HubSpotStandIn
from tests.standins.twilio import TwilioStandIn

pytestmark = pytest.mark.slow

AUTH_TOKEN = "crash-test-auth-token-0123456789"
ACCOUNT_SID = "AC" + "5e" * 16
HUBSPOT_TOKEN = "pat-na1-crash-test"
AGENT_NUMBER = "+18005550100"
SMS_FROM = "+18005550123"
REP = "+14155550199"
CALLER = "+14155550134"
EMAIL = "ada.lovelace@example.com"
LEASE_S = 3  # how long a killed worker's delivery waits before it is taken back
HOLD_S = 30  # how long a held write keeps its answer (the hub is killed long before)
SETTLE_S = 30  # bound on every wait for the hub or the stand-ins
ALL_DELIVERIES = {"hubspot/note", "sms/sms", "hubspot/call_log", "profile/call_log"}
HUBSPOT_WORK = ("contacts_search", "notes_associations", "notes_read", "notes_create",
                "calls_associations", "calls_read", "calls_create")
TWILIO_WORK = ("messages_list", "messages_create")
CONFIG = f"""
[[agents]]
id = "grace"
name = "Grace Hopper"
client = "grace"
numbers = ["{AGENT_NUMBER}"]
sms = "{REP}"
token = "grace-console-token"
"""
PROFILE = ('{"identityMap": {"Phone": [{"id": "(415) 555-0134", "primary": true}], '
           f'"Email": [{{"id": "{EMAIL}"}}]}}, '
           '"person": {"name": {"firstName": "Ada", "lastName": "Lovelace"}}, '
           f'"personalEmail": {{"address": "{EMAIL}"}}, "loyalty": {{"tier": "gold"}}, '
           '"_cah": {"scores": {"lifetimeValue": 1234.5, "churnPropensity": 0.82}}}\n')


@dataclass
class Scene:
    hub: HubProcess
    twilio: TwilioStandIn
    hubspot: HubSpotStandIn
    contact: str
    env: dict[str, str]
    workdir: Path

    def outbox(self) -> Counter[tuple[str, str]]:
        """``(sink/action, status)`` of every delivery, read from the hub's database."""
        path = self.workdir / "data" / "hub.sqlite3"
        if not path.exists():
            return Counter()
        with closing(sqlite3.connect(path, timeout=5)) as conn:
            return Counter(conn.execute("SELECT sink || '/' || action, status FROM deliveries"))

    def explain(self) -> str:
        return (f"outbox: {dict(self.outbox())}\ntwilio: {self.twilio.messages}\n"
                f"hubspot: {self.hubspot.objects}\n{self.hub.logs()}")


@pytest.fixture(params=["cahub serve", "gunicorn"])
def scene(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Scene]:
    with TwilioStandIn(ACCOUNT_SID, AUTH_TOKEN) as twilio, HubSpotStandIn(HUBSPOT_TOKEN) as hubspot:
        contact = hubspot.add_contact(firstname="Ada", lastname="Lovelace", email=EMAIL,
                                      phone="(415) 555-0134")
        (tmp_path / "hub.toml").write_text(CONFIG)
        env = hub_environment({
            "CAHUB_DATA_DIR": str(tmp_path / "data"), "CAHUB_CONFIG": str(tmp_path / "hub.toml"),
            "CAHUB_SECRET_KEY": "crash-test-secret", "CAHUB_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "CAHUB_TWILIO_ACCOUNT_SID": ACCOUNT_SID, "CAHUB_TWILIO_BASE_URL": twilio.base_url,
            "CAHUB_SMS_FROM": SMS_FROM, "CAHUB_CRM": "hubspot",
            "CAHUB_HUBSPOT_BASE_URL": hubspot.base_url, "CAHUB_HUBSPOT_TOKEN": HUBSPOT_TOKEN,
            "CAHUB_OUTBOX_LEASE_S": str(LEASE_S), "CAHUB_SINK_TIMEOUT_S": "2",
        })
        (tmp_path / "profiles.jsonl").write_text(PROFILE)
        loaded = run_cahub(["ingest", "profiles", "profiles.jsonl"], env, tmp_path)
        assert "profiles.jsonl: 1 loaded, 0 rejected" in loaded.stdout
        hub = (HubProcess(env, tmp_path) if request.param == "cahub serve"
               else GunicornProcess(env, tmp_path, f"127.0.0.1:{free_port()}"))
        try:
            hub.start()
            yield Scene(hub, twilio, hubspot, contact, env, tmp_path)
        finally:
            hub.stop()


def answer_call(scene: Scene, call_sid: str) -> None:
    """Twilio's "a call comes in" webhook; the call must be dialled to the agent."""
    form = inbound_call_form(call_sid, CALLER, AGENT_NUMBER, ACCOUNT_SID)
    reply = post_signed(scene.hub.url("/twilio/voice"), form, AUTH_TOKEN)
    assert 200 == reply.status_code, reply.text
    assert "grace" == ET.fromstring(reply.text).findtext("Dial/Client/Identity")


def end_call(scene: Scene, call_sid: str) -> None:
    """Twilio's status callback for a call that ended after 240 s."""
    form = {**inbound_call_form(call_sid, CALLER, AGENT_NUMBER, ACCOUNT_SID),
            "CallStatus": "completed", "CallDuration": "240", "SequenceNumber": "3",
            "Timestamp": format_datetime(datetime.now(UTC)),
            "CallbackSource": "call-progress-events"}
    reply = post_signed(scene.hub.url("/twilio/status"), form, AUTH_TOKEN)
    assert 200 == reply.status_code, reply.text


def held_writes(scene: Scene) -> tuple[int, int]:
    return scene.hubspot.holds_started, scene.twilio.holds_started


def crash_on_every_held_write(scene: Scene, holds: int) -> int:
    """``kill -9`` the hub whenever a stand-in holds the answer to a write; restart it."""
    crashes, seen = 0, (0, 0)
    while sum(seen) < holds:
        wait_for(lambda before=seen: held_writes(scene) != before, SETTLE_S,
                 "a write whose answer a stand-in holds", scene.explain)
        note, sms = (now > before for now, before in zip(held_writes(scene), seen, strict=True))
        outbox = scene.outbox()
        assert not note or outbox["hubspot/note", "in_flight"], scene.explain()
        assert not sms or outbox["sms/sms", "in_flight"], scene.explain()
        scene.hub.kill()
        crashes, seen = crashes + 1, held_writes(scene)
        scene.hub.start()
    return crashes


def all_done(scene: Scene, done: Collection[str], dead: Collection[str] = ()) -> bool:
    expected = Counter({(d, "done"): 1 for d in done} | {(d, "dead"): 1 for d in dead})
    return scene.outbox() == expected


def test_a_kill_9_mid_delivery_loses_nothing_and_duplicates_nothing(scene: Scene) -> None:
    scene.twilio.fail_next(2, status=429, retry_after_ms=1000, kinds=TWILIO_WORK)
    scene.hubspot.fail_next(2, status=429, retry_after_ms=1000, kinds=HUBSPOT_WORK)
    scene.hubspot.hold_next(1, HOLD_S, kind="notes_create")
    scene.twilio.hold_next(1, HOLD_S)
    call_sid = new_call_sid()

    answer_call(scene, call_sid)
    end_call(scene, call_sid)
    crashes = crash_on_every_held_write(scene, holds=2)
    answer_call(scene, call_sid)  # Twilio retrying the webhook to the restarted hub
    wait_for(lambda: all_done(scene, ALL_DELIVERIES), SETTLE_S,
             "every delivery to be done", scene.explain)

    assert crashes >= 1
    assert (2, 2) == (scene.twilio.throttled, scene.hubspot.throttled)
    assert 1 == len(scene.twilio.messages), scene.twilio.messages
    [sms] = scene.twilio.messages
    assert (REP, SMS_FROM, "1") == (sms["to"], sms["from"], sms["num_segments"])
    body = sms["body"]
    assert "Ada Lovelace" in body
    assert len(body) <= 320
    assert EMAIL not in body
    assert "example.com" not in body
    assert CALLER.removeprefix("+1") not in re.sub(r"\D", "", body)
    held = {kind: len(records) for kind, records in scene.hubspot.objects.items()}
    assert {"contacts": 1, "notes": 1, "calls": 1} == held, scene.hubspot.objects
    [note] = scene.hubspot.engagements("notes", scene.contact)
    assert "Ada Lovelace" in note.properties["hs_note_body"]
    [call] = scene.hubspot.engagements("calls", scene.contact)
    assert (call_sid, "240000", "COMPLETED", "INBOUND") == (
        call.properties["hs_call_external_id"], call.properties["hs_call_duration"],
        call.properties["hs_call_status"], call.properties["hs_call_direction"])
    listing = run_cahub(["outbox", "list"], scene.env, scene.workdir).stdout.splitlines()
    assert "pending=0  in_flight=0  done=4  dead=0  cancelled=0" == listing[0]
    assert {("done", d, call_sid) for d in ALL_DELIVERIES} == {
        tuple(line.split()[1:4]) for line in listing[1:]}


def test_a_permanent_refusal_is_dead_lettered_in_sight_and_the_rest_is_done(
        scene: Scene) -> None:
    scene.twilio.refuse(REP, 21610)  # the rep replied STOP
    call_sid = new_call_sid()

    answer_call(scene, call_sid)
    end_call(scene, call_sid)
    wait_for(lambda: all_done(scene, ALL_DELIVERIES - {"sms/sms"}, {"sms/sms"}), SETTLE_S,
             "the SMS to be dead and the rest done", scene.explain)

    dead = run_cahub(["outbox", "list", "--status", "dead"], scene.env, scene.workdir).stdout
    counts, line = dead.splitlines()
    assert "pending=0  in_flight=0  done=3  dead=1  cancelled=0" == counts
    assert ["dead", "sms/sms", call_sid] == line.split()[1:4]
    assert "21610" in line
    assert REP.removeprefix("+1") not in dead
    assert ([], 1) == (scene.twilio.messages, scene.twilio.counts["messages_create"])
    assert 1 == len(scene.hubspot.engagements("notes", scene.contact))
    assert 1 == len(scene.hubspot.engagements("calls", scene.contact))
