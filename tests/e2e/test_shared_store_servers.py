"""Two servers of one hub on two hosts (data directories of their own), sharing the profile
store in PostgreSQL (``CAHUB_DATABASE_URL``): what one learns, the other pops."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask

from app import STORE_FILE, close_app, create_app, services
from lookup.store.postgres import connections
from lookup.store.postgres.store import PostgresProfileStore
from tests.support import call_form, make_settings, signed_post

API = {"Authorization": "Bearer test-api-key"}
ADA = {"identityMap": {"Phone": [{"id": "(415) 555-0134", "primary": True}]},
       "person": {"name": {"fullName": "Ada Lovelace"}}}
VISIT = {"_id": "visit-1", "timestamp": "2026-11-20T10:00:00Z",
         "eventType": "web.webpagedetails.pageViews",
         "identityMap": {"Phone": [{"id": "+14155550134"}]},
         "web": {"webPageDetails": {"name": "Trail shoes"}}}


@pytest.fixture
def servers(tmp_path: Path, postgres_url: str) -> Iterator[tuple[Flask, Flask]]:
    apps = tuple(create_app(make_settings(tmp_path / name, database_url=postgres_url,
                                          ingest_workers=0), start_background=False)
                 for name in ("one", "two"))
    yield apps  # type: ignore[misc]
    for app in apps:
        close_app(app)


def post(app: Flask, kind: str, *records: dict[str, Any]) -> Any:
    body = "".join(json.dumps(r) + "\n" for r in records)
    return app.test_client().post(f"/api/v1/ingest/{kind}", data=body,
                                  headers={**API, "Content-Type": "application/x-ndjson"})


def test_a_profile_posted_to_one_server_pops_on_a_call_taken_by_another(
        servers: tuple[Flask, Flask], tmp_path: Path) -> None:
    one, other = servers
    stream = services(other).broker.subscribe("grace")
    assert (200, 200) == (post(one, "profiles", ADA).status_code,
                          post(one, "events", VISIT).status_code)

    signed_post(other.test_client(), "/twilio/voice", call_form("CA" + "1" * 32))

    pop = stream.next(5)
    stream.close()
    assert pop is not None
    assert "Ada Lovelace" == pop[1].name
    assert ["Viewed page Trail shoes"] == [e.title for e in pop[1].recent_events]
    # Each server's store is the database's: neither wrote a store file of its own.
    assert isinstance(services(other).store, PostgresProfileStore)
    assert [] == list(tmp_path.glob(f"*/{STORE_FILE}*"))


def test_a_post_while_another_host_holds_the_writer_lock_is_503_within_the_bound(
        servers: tuple[Flask, Flask], postgres_url: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    one, _ = servers
    monkeypatch.setattr(connections, "WRITER_WAIT_MS", 300)
    assert 200 == post(one, "profiles", ADA).status_code  # the store exists
    with psycopg.connect(postgres_url) as other:  # a bulk load on another host, mid-transaction
        key = other.execute("SELECT 'profile_store'::regnamespace::oid::bigint").fetchone()
        assert key is not None
        other.execute("SELECT pg_advisory_xact_lock(%s, %s)",
                      (connections.WRITER_CLASS, key[0] & 0x7FFFFFFF))
        started = time.monotonic()
        busy = post(one, "profiles", ADA)
        waited = time.monotonic() - started

    assert (503, "store_busy") == (busy.status_code, busy.json["error"]["code"])
    assert busy.headers["Retry-After"]
    assert waited < 3
