"""The hub on PostgreSQL (``CAHUB_DATABASE_URL``): calls decided once across servers sharing
the database, their deliveries queued there, and ``/healthz`` reporting it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from flask import Flask

from app import close_app, create_app, services
from tests.backends import POSTGRES_URL
from tests.support import call_form, make_settings, signed_post

SID = "CA" + "e" * 32


@pytest.fixture
def servers(tmp_path: Path, postgres_url: str) -> Iterator[list[Flask]]:
    """Two servers, as on two hosts: data directories of their own, one database."""
    apps = [create_app(make_settings(tmp_path / name, database_url=postgres_url, crm="webhook",
                                     webhook_url="http://127.0.0.1:9/hook",
                                     webhook_secret="s3cret"), start_background=False)
            for name in ("one", "two")]
    yield apps
    for app in apps:
        close_app(app)


def pops(app: Flask, agent_id: str = "grace") -> int:
    stream = services(app).broker.subscribe(agent_id, last_event_id="0")
    count = 0
    while stream.next(timeout=0.05) is not None:
        count += 1
    stream.close()
    return count


def test_a_webhook_retried_on_another_server_gets_the_same_answer_and_no_pop(
    servers: list[Flask],
) -> None:
    first, second = (signed_post(app.test_client(), "/twilio/voice", call_form(SID))
                     for app in servers)
    assert (200, first.data, [1, 0]) == (second.status_code, second.data,
                                         [pops(app) for app in servers])


def test_a_calls_deliveries_are_queued_where_every_server_sees_them(
    servers: list[Flask],
) -> None:
    signed_post(servers[0].test_client(), "/twilio/voice", call_form(SID))
    [queued] = services(servers[1]).outbox.list()
    assert (SID, "webhook", "pending") == (queued.call_sid, queued.sink, queued.status)


def test_healthz_reports_the_database(servers: list[Flask]) -> None:
    reply = servers[0].test_client().get("/healthz")
    assert (200, True) == (reply.status_code, reply.get_json()["state"]["ok"])


def test_healthz_fails_fast_when_the_database_is_gone(servers: list[Flask],
                                                      postgres_url: str) -> None:
    from psycopg.conninfo import conninfo_to_dict

    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{conninfo_to_dict(postgres_url)["dbname"]}" WITH (FORCE)')
    started = time.perf_counter()
    reply = servers[0].test_client().get("/healthz")
    assert (503, False) == (reply.status_code, reply.get_json()["state"]["ok"])
    assert time.perf_counter() - started < 5.0
