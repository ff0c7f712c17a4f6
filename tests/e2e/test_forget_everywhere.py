"""``cahub forget`` forgets everywhere: files, memory, and what was still under way.

One scenario, run once per backend: the hub's state in ``hub.sqlite3`` with pops in
process, then in PostgreSQL (``CAHUB_DATABASE_URL``) with pops through Redis
(``CAHUB_REDIS_URL``). A server (in this process, its dispatcher and forget-applying
threads running) takes three calls from Ada. The first is answered and
its note and SMS are delivered; the second's note cannot be delivered yet (the CRM fails)
and its end is written back into her profile; the third waits on a slow remote provider.
Then ``cahub forget ada@example.com`` runs as a command does (its own app on the same data
directory). After it the slow lookup answers, the first call's status callback arrives
and Twilio retries the first call's webhook. The remote provider's answers are cached in
the server's memory and, on the second backend, in Redis too (where her remote profile
is when the forget comes). Each test then looks for Ada somewhere: in
every byte of every file of the data directory (the WAL too), in the server's memory, in
what it answers and delivers; on the second backend (where the profile store is in
PostgreSQL too) also in every row of every PostgreSQL table, the store's included, in the
row versions the forget left behind (vacuumed), and in every key of the hub's in Redis.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from click.testing import CliRunner
from flask import Flask, Response, request

from app import close_app, create_app, guarded, services
from cli.main import main
from hub.models import Identity, Profile
from hub.settings import Agent, HubConfig
from lookup.resilience import CachedProvider
from lookup.store import EmbeddedProfileStore
from tests.backends import dead_row_versions, fresh_database, fresh_prefix, row_versions_holding
from tests.fakes import InMemoryProfileProvider, wait_for
from tests.standins import StandIn
from tests.standins.twilio import TwilioStandIn
from tests.support import AGENT_NUMBER, AUTH_TOKEN, call_form, make_settings, signed_post

ACCOUNT_SID = "AC" + "7" * 32
FIRST, SECOND = "+14155550134", "+14155550135"
ADA_SPELLINGS = ("4155550134", "415) 555-0134", "415-555-0134", "415.555.0134", "555-0134",
                 "4155550135", "555-0135", "ada@example.com", "Lovelace", "Byron",
                 "Trail Shoe", "2× Trail", "003ADA", "remote-ada")
BOB_NAME = "Babbage"
# The profile store's tables on PostgreSQL that held Ada.
STORE_TABLES = tuple(f"profile_store.{table}" for table in ("persons", "identities",
                                                             "fragments", "events"))
CALL_A, CALL_B, CALL_C = ("CA" + c * 32 for c in "abc")
ADA_BEFORE = {  # an older version of her record: it must not survive in a free page
    "identityMap": {"Phone": [{"id": "(415) 555-0134", "primary": True}],
                    "Email": [{"id": "ada@example.com"}], "CRMID": [{"id": "003ADA"}]},
    "person": {"name": {"firstName": "Ada", "lastName": "Byron"}},
    "_repo": {"lastModifiedDate": "2026-01-01T00:00:00Z"},
}
ADA = {
    "identityMap": {"Phone": [{"id": "(415) 555-0134", "primary": True},
                              {"id": "415.555.0135"}],
                    "Email": [{"id": "ada@example.com"}], "CRMID": [{"id": "003ADA"}]},
    "person": {"name": {"firstName": "Ada", "lastName": "Lovelace"}},
    "personalEmail": {"address": "ada@example.com"}, "loyalty": {"tier": "gold"},
    "_repo": {"lastModifiedDate": "2026-06-01T00:00:00Z"},
}
ADA_PURCHASE = {
    "_id": "ada-order-1", "timestamp": "2026-11-20T10:00:00Z",
    "eventType": "commerce.purchases", "identityMap": {"Email": [{"id": "ada@example.com"}]},
    "commerce": {"purchases": {"value": 1}},
    "productListItems": [{"name": "Trail Shoe", "quantity": 2, "priceTotal": 240.0,
                          "currencyCode": "USD"}],
}
BOB = {"identityMap": {"Phone": [{"id": "+12025550199", "primary": True}]},
       "person": {"name": {"firstName": "Charles", "lastName": BOB_NAME}}}
REMOTE_ADA = Profile(source="remote", profile_id="remote-ada",
                     attributes={"person": {"name": {"fullName": "Ada Lovelace"}},
                                 "personalEmail": {"address": "ada@example.com"}},
                     identities=(Identity(namespace="Phone", id=SECOND),))


class CrmStandIn(StandIn):
    """A CRM that takes the hub's webhook deliveries (notes and call logs)."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[dict[str, Any]] = []
        self.app.add_url_rule("/hook", "hook", self._hook, methods=["POST"])

    def _hook(self) -> Response:
        self.bodies.append(json.loads(request.get_data()))
        return Response("{}", mimetype="application/json")


ADA_EMAIL = Identity(namespace="Email", id="ada@example.com")


class GatedRemote(InMemoryProfileProvider):
    """A remote provider that answers at once, except for ``held`` numbers until ``gate``."""

    def __init__(self) -> None:
        super().__init__({Identity(namespace="Phone_E.164", id=SECOND): REMOTE_ADA,
                          ADA_EMAIL: REMOTE_ADA}, "remote")
        self.gate = threading.Event()

    def lookup(self, identities: Sequence[Identity], deadline: float) -> Profile | None:
        if any(identity.id == SECOND for identity in identities):
            self.gate.wait(30)
        return super().lookup(identities, deadline)


@dataclass
class Backend:
    """Where the hub keeps its state and pops, as settings and as the CLI's environment."""

    kind: str
    settings: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    first_event_id: str = "0"  # an event id older than any pop

    @property
    def database_url(self) -> str:
        return str(self.settings["database_url"])

    @property
    def redis_prefix(self) -> str:
        return str(self.settings["redis_prefix"])


def backend(kind: str, request: pytest.FixtureRequest, stack: ExitStack) -> Backend:
    """The hub's own files only, or a database and a key prefix of the module's own."""
    if kind == "sqlite":
        return Backend(kind)
    database = stack.enter_context(fresh_database(request.getfixturevalue("postgres_server")))
    redis_url = request.getfixturevalue("redis_server")
    prefix = stack.enter_context(fresh_prefix(redis_url))
    return Backend(kind, {"database_url": database, "redis_url": redis_url,
                          "redis_prefix": prefix},
                   {"CAHUB_DATABASE_URL": database, "CAHUB_REDIS_URL": redis_url,
                    "CAHUB_REDIS_PREFIX": prefix}, "0-0")


@dataclass
class Scenario:
    backend: Backend
    app: Flask
    data_dir: Path
    remote: GatedRemote
    cache: CachedProvider
    crm: CrmStandIn
    twilio: TwilioStandIn
    forgotten: Any  # the CliRunner result of `cahub forget`
    right_after: dict[str, Any]  # what old row versions the hub's state held as it ended
    retried: Any  # the first call's webhook, retried after the forget
    asked_before: int  # lookups the remote had answered before the forget
    shared_before: dict[str, str]  # the remote's answers Redis held before the forget


def load(store: EmbeddedProfileStore, kind: str, *records: dict[str, Any]) -> None:
    report = store.ingest(kind, [json.dumps(record) for record in records])  # type: ignore[arg-type]
    assert () == tuple(report.rejected)


def hub_settings(data_dir: Path, crm: CrmStandIn, twilio: TwilioStandIn,
                 on: Backend) -> Any:
    grace = Agent(id="grace", name="Grace Hopper", client="grace", numbers=(AGENT_NUMBER,),
                  sms="+14155550199", token="grace-token")
    return make_settings(
        data_dir, hub=HubConfig(agents=(grace,)), crm="webhook",
        webhook_url=f"{crm.base_url}/hook", webhook_secret="hook-secret",
        sms_from="+18005550111", twilio_account_sid=ACCOUNT_SID,
        twilio_base_url=twilio.base_url, lookup_deadline_ms=300, late_lookup_ms=30_000,
        **on.settings)


def deliveries(app: Flask, call_sid: str) -> dict[str, str]:
    return {f"{d.sink}/{d.action.value}": d.status
            for d in services(app).outbox.list(limit=1000) if d.call_sid == call_sid}


def status_form(call_sid: str) -> dict[str, str]:
    return {"CallSid": call_sid, "AccountSid": ACCOUNT_SID, "CallStatus": "completed",
            "SequenceNumber": "3", "CallDuration": "61", "From": FIRST, "To": AGENT_NUMBER}


def before_the_forget(app: Flask, scenario_crm: CrmStandIn) -> None:
    client = app.test_client()
    signed_post(client, "/twilio/voice", call_form(CALL_A, FIRST))
    assert wait_for(lambda: deliveries(app, CALL_A) == {"webhook/note": "done",
                                                        "sms/sms": "done"}, timeout=10)
    scenario_crm.fail_next(10_000, status=503)  # the CRM is down from now on
    signed_post(client, "/twilio/voice", call_form(CALL_B, FIRST))
    signed_post(client, "/twilio/status", status_form(CALL_B))
    assert wait_for(lambda: deliveries(app, CALL_B).get("profile/call_log") == "done",
                    timeout=10)
    signed_post(client, "/twilio/voice", call_form(CALL_C, SECOND))  # the lookup waits


def after_the_forget(app: Flask, remote: GatedRemote) -> Any:
    client = app.test_client()
    asked = len(remote.asked)
    remote.gate.set()  # the third call's lookup answers, late
    signed_post(client, "/twilio/status", status_form(CALL_A))
    retried = signed_post(client, "/twilio/voice", call_form(CALL_A, FIRST))
    state = services(app).calls.state
    assert wait_for(lambda: len(remote.asked) > asked and state.unsaved() == 0, timeout=10)
    wait_for(lambda: False, timeout=0.5)  # a pop or a delivery it wrongly made would be done
    return retried


@pytest.fixture(scope="module", params=["sqlite", "postgres-redis"])
def scenario(request: pytest.FixtureRequest,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    data_dir = tmp_path_factory.mktemp("forget") / "instance"
    with ExitStack() as stack:
        on = backend(request.param, request, stack)
        crm = stack.enter_context(CrmStandIn())
        twilio = stack.enter_context(TwilioStandIn(ACCOUNT_SID, AUTH_TOKEN))
        settings = hub_settings(data_dir, crm, twilio, on)
        remote = GatedRemote()
        cache = guarded(remote, settings, lambda: b"the secret every server shares")
        stack.callback(cache.close)
        store_app = create_app(settings, start_background=False)
        stack.callback(close_app, store_app)
        store = services(store_app).store
        load(store, "profiles", ADA_BEFORE, BOB)
        load(store, "profiles", ADA)
        load(store, "events", ADA_PURCHASE)
        app = create_app(settings, providers=[cache, store])
        stack.callback(close_app, app)
        before_the_forget(app, crm)
        cache.lookup([ADA_EMAIL], time.monotonic() + 5)  # as `GET /api/v1/lookup` could
        shared_before = cached_in_redis(on)
        asked = len(remote.asked)
        forgotten = CliRunner().invoke(main, ["forget", "ada@example.com"],
                                       env={"CAHUB_DATA_DIR": str(data_dir), **on.env})
        right_after = old_versions(on, data_dir)
        retried = after_the_forget(app, remote)
        yield Scenario(on, app, data_dir, remote, cache, crm, twilio, forgotten, right_after,
                       retried, asked, shared_before)


def cached_in_redis(on: Backend) -> dict[str, str]:
    if on.kind == "sqlite":
        return {}
    return {key: value for key, value in redis_values(str(on.settings["redis_url"]),
                                                      on.redis_prefix).items()
            if key.startswith(f"{on.redis_prefix}cache:remote:")}


def old_versions(on: Backend, data_dir: Path) -> dict[str, Any]:
    """What may still hold a rewritten row's old version: SQLite's hub files (the person's
    spellings found in their bytes), PostgreSQL's dead row versions in the tables a forget
    rewrites, and its row versions, live or dead, holding her number as stored."""
    if on.kind == "sqlite":
        return {name: [text for text in ADA_SPELLINGS for spelling in spellings(text)
                       if spelling in (data_dir / name).read_bytes().lower()]
                for name in ("hub.sqlite3", "hub.sqlite3-wal")}
    url = on.database_url
    return {**{f"dead {table}": dead_row_versions(url, table)
               for table in ("calls", "deliveries", "forgets", *STORE_TABLES)},
            **{f"{table} holding the number": row_versions_holding(url, table, FIRST.encode())
               for table in ("calls", "deliveries", *STORE_TABLES)}}


def spellings(text: str) -> list[bytes]:
    """``text`` as SQLite or JSON may have stored it (UTF-8, escaped, UTF-16)."""
    escaped = json.dumps(text)[1:-1]
    return sorted({text.encode(), escaped.encode(), text.encode("utf-16-le"),
                   text.lower().encode()})


def test_forget_succeeds_and_reports_each_place_it_cleaned(scenario: Scenario) -> None:
    out = scenario.forgotten.output
    assert 0 == scenario.forgotten.exit_code, out
    database = "hub.sqlite3 keep no trace" if scenario.backend.kind == "sqlite" else "vacuumed"
    for place in ("Profile store:", "Call ledger: 3 call record(s) redacted",
                  "Outbox:", "cancelled", "Server ", "3 from screen-pop replay history",
                  "remote cache", database):
        assert place in out, out


def test_no_file_in_the_data_directory_holds_any_byte_of_the_person(scenario: Scenario) -> None:
    files = sorted(p for p in scenario.data_dir.rglob("*") if p.is_file())
    found = {(path.name, text) for path in files for text in ADA_SPELLINGS
             for spelling in spellings(text) if spelling in path.read_bytes().lower()}
    # On PostgreSQL the data directory holds neither the hub's state nor the profile store.
    expected = {"profiles.sqlite3", "hub.sqlite3"} if scenario.backend.kind == "sqlite" else set()
    assert expected <= {path.name for path in files}
    assert set() == found


def sqlite_rows(path: Path) -> str:
    """Every row of a SQLite file, as SQL."""
    connection = sqlite3.connect(path)
    try:
        return "\n".join(connection.iterdump())
    finally:
        connection.close()


def postgres_tables(url: str) -> list[str]:
    """Every table of the hub's (``public``) and of the profile store's schema."""
    with psycopg.connect(url) as conn:
        return [f"{schema}.{table}" for schema, table in conn.execute(
            "SELECT schemaname, tablename FROM pg_tables"
            " WHERE schemaname IN ('public', 'profile_store')")]


def postgres_rows(url: str) -> dict[str, str]:
    """Every live row of every table of the database, as text, by table."""
    with psycopg.connect(url) as conn:
        return {table: "\n".join(str(row[0]) for row in conn.execute(
            f"SELECT t::text FROM {table} AS t")) for table in postgres_tables(url)}  # noqa: S608 -- catalog names


def redis_values(url: str, prefix: str) -> dict[str, str]:
    """Every value the hub keeps in Redis under its prefix, by key (streams entry by entry)."""
    client = redis.Redis.from_url(url)
    try:
        return {key.decode(): repr(_value(client, key))
                for key in client.scan_iter(match=f"{prefix}*")}
    finally:
        client.close()


def _value(client: redis.Redis, key: bytes) -> object:
    """A key's value as Redis holds it: a string as it is (its DUMP may be compressed,
    hiding what it holds), a stream entry by entry, anything else as DUMP gives it."""
    kind = client.type(key)
    if kind == b"string":
        return client.get(key)
    return client.xrange(key) if kind == b"stream" else client.dump(key)


def stored_places(scenario: Scenario) -> dict[str, str]:
    """Where the hub keeps data for this backend, each place's content as text."""
    on = scenario.backend
    if on.kind == "sqlite":
        return {name: sqlite_rows(scenario.data_dir / name)
                for name in ("profiles.sqlite3", "hub.sqlite3")}
    places = {f"postgres:{t}": rows for t, rows in postgres_rows(on.database_url).items()}
    return places | {f"redis:{key}": value for key, value in redis_values(
        str(on.settings["redis_url"]), on.redis_prefix).items()}


def test_no_row_of_any_database_and_no_redis_key_names_the_person(scenario: Scenario) -> None:
    places = stored_places(scenario)
    found = [(place, text) for place, content in places.items() for text in ADA_SPELLINGS
             if text.lower() in content.lower()]
    assert [] == found
    store = ("profiles.sqlite3" if scenario.backend.kind == "sqlite"
             else "postgres:profile_store.fragments")
    assert BOB_NAME in places[store]  # the dump does hold what was not forgotten


def test_the_forget_left_no_old_version_of_a_rewritten_row(scenario: Scenario) -> None:
    """As ``cahub forget`` ended: SQLite had overwritten them (secure delete, WAL emptied);
    PostgreSQL had vacuumed the tables it rewrote, leaving no dead row version there."""
    if scenario.backend.kind == "sqlite":
        assert {"hub.sqlite3": [], "hub.sqlite3-wal": []} == scenario.right_after
    else:
        assert {"dead calls": 0, "dead deliveries": 0, "dead forgets": 0,
                "calls holding the number": 0, "deliveries holding the number": 0,
                **{f"dead {table}": 0 for table in STORE_TABLES},
                **{f"{table} holding the number": 0 for table in STORE_TABLES}} == (
            scenario.right_after)


def test_everyone_else_is_still_there(scenario: Scenario) -> None:
    bob = [Identity(namespace="Phone", id="+12025550199")]
    found = services(scenario.app).store.lookup(bob, time.monotonic() + 5)
    assert isinstance(found, Profile)
    assert BOB_NAME in json.dumps(found.attributes)
    if scenario.backend.kind == "sqlite":
        assert BOB_NAME.encode() in (scenario.data_dir / "profiles.sqlite3").read_bytes()


def test_a_console_opening_from_the_first_event_is_shown_nothing_of_the_person(
    scenario: Scenario,
) -> None:
    stream = services(scenario.app).broker.subscribe(
        "grace", last_event_id=scenario.backend.first_event_id)
    replayed = []
    while (pop := stream.next(timeout=0.05)) is not None:
        replayed.append(pop[1])
    stream.close()
    texts = [summary.model_dump_json().lower() for summary in replayed]
    assert [] == [(text, spelling) for text in texts for spelling in ADA_SPELLINGS
                  if spelling.lower() in text]


def test_the_retried_webhook_of_an_old_call_answers_without_the_person(
    scenario: Scenario,
) -> None:
    root = ET.fromstring(scenario.retried.data)
    params = {p.get("name"): p.get("value") for p in root.iterfind("Dial/Client/Parameter")}
    assert (200, None, "false") == (scenario.retried.status_code, params.get("name"),
                                    params.get("found"))


def test_the_remote_providers_cache_no_longer_answers_for_the_person(
    scenario: Scenario,
) -> None:
    asked = len(scenario.remote.asked)
    scenario.cache.lookup([Identity(namespace="Phone_E.164", id=FIRST)], float("inf"))
    assert asked + 1 == len(scenario.remote.asked)


def test_the_remote_providers_answers_were_shared_through_redis_before_the_forget(
    scenario: Scenario,
) -> None:
    if scenario.backend.kind == "sqlite":
        assert ({}, False) == (scenario.shared_before, "shared_cache" in scenario.cache.state())
    else:
        assert "remote-ada" in " ".join(scenario.shared_before.values())


def test_pending_deliveries_are_cancelled_and_finished_ones_emptied(scenario: Scenario) -> None:
    box = services(scenario.app).outbox
    rows = [d for d in box.list(limit=1000) if d.call_sid in (CALL_A, CALL_B, CALL_C)]
    assert {"webhook/note": "cancelled", "sms/sms": "done", "webhook/call_log": "cancelled",
            "profile/call_log": "done"} == deliveries(scenario.app, CALL_B)
    assert [] == [d.payload for d in rows if d.payload]


def test_cahub_outbox_list_says_why_a_delivery_was_cancelled(scenario: Scenario) -> None:
    listed = CliRunner().invoke(main, ["outbox", "list", "--status", "cancelled"],
                                env={"CAHUB_DATA_DIR": str(scenario.data_dir),
                                     **scenario.backend.env})
    cancelled = [line for line in listed.output.splitlines() if CALL_B in line]
    assert 2 == len(cancelled), listed.output
    assert all("the caller was forgotten" in line for line in cancelled)


def test_a_status_callback_after_the_forget_writes_nothing_back(scenario: Scenario) -> None:
    store = services(scenario.app).store
    assert None is store.lookup([Identity(namespace="Phone", id=FIRST)], float("inf"))
    assert {} == {k: v for k, v in deliveries(scenario.app, CALL_A).items()
                  if k.endswith("call_log")}


def test_the_late_lookup_after_the_forget_brings_nothing_back(scenario: Scenario) -> None:
    record = services(scenario.app).calls.state.known(CALL_C, time.perf_counter() + 5)
    assert record is not None
    assert (None, False, None) == (record.summary.call.from_, record.summary.found,
                                   record.summary.name)
    assert scenario.asked_before < len(scenario.remote.asked)  # it did answer, late


