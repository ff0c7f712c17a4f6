"""CAHUB_REDIS_URL: two hub apps on one Redis share their pops and call states, and /healthz
reports Redis."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import close_app, create_app, services
from state.pops.memory import InProcessScreenPopBroker
from state.pops.redis import RedisScreenPopBroker
from tests.backends import free_port
from tests.support import (
    call_form,
    console_login,
    csrf_token,
    leg_form,
    make_settings,
    signed_post,
)

MakeApp = Callable[..., Flask]
SID, LEG = "CA" + "1" * 32, "CA" + "9" * 32


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[MakeApp]:
    apps: list[Flask] = []

    def make(**overrides: Any) -> Flask:
        app = create_app(make_settings(tmp_path / f"server-{len(apps)}", **overrides))
        app.testing = True
        app.config["CAHUB_SSE_KEEPALIVE"] = 0.05
        apps.append(app)
        return app

    yield make
    for app in apps:
        close_app(app)


@pytest.fixture
def servers(make_app: MakeApp, redis_server: str, redis_prefix: str) -> tuple[Flask, Flask]:
    """Two hub apps on the shared Redis, as two servers would be."""
    return (make_app(redis_url=redis_server, redis_prefix=redis_prefix),
            make_app(redis_url=redis_server, redis_prefix=redis_prefix))


def console(app: Flask) -> FlaskClient:
    client = app.test_client()
    console_login(client, "grace-token")
    return client


def screen_pops(response: Any, count: int, limit: int = 400,
                event: str = "screenpop") -> list[dict[str, Any]]:
    """The first ``count`` events named ``event`` of an SSE response: id and data."""
    pops, buffer = [], ""
    for chunk in response.response:
        buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
        while "\n\n" in buffer and len(pops) < count:
            block, buffer = buffer.split("\n\n", 1)
            fields = dict(line.partition(": ")[::2] for line in block.split("\n"))
            if fields.get("event") == event:
                pops.append({"id": fields["id"], **json.loads(fields["data"])})
        limit -= 1
        if len(pops) == count or limit == 0:
            break
    response.close()
    assert count == len(pops)
    return pops


def test_without_a_redis_url_pops_stay_in_the_process(make_app):
    app = make_app()

    body = app.test_client().get("/healthz").get_json()

    assert isinstance(services(app).broker, InProcessScreenPopBroker)
    assert "redis" not in body


def test_a_call_answered_by_one_server_pops_on_a_console_of_the_other(servers):
    first, second = servers
    stream = console(second).get("/console/events")
    next(iter(stream.response))  # the stream is open (its retry line)

    signed_post(first.test_client(), "/twilio/voice", call_form("CA" + "1" * 32))

    assert ["CA" + "1" * 32] == [pop["call"]["sid"] for pop in screen_pops(stream, 1)]


def test_a_console_reconnecting_to_the_other_server_gets_what_it_missed(servers):
    first, second = servers
    stream = console(first).get("/console/events")
    next(iter(stream.response))
    signed_post(first.test_client(), "/twilio/voice", call_form("CA" + "1" * 32))
    last_event_id = screen_pops(stream, 1)[0]["id"]
    signed_post(first.test_client(), "/twilio/voice", call_form("CA" + "2" * 32))

    again = console(second).get("/console/events", headers={"Last-Event-ID": last_event_id})

    assert ["CA" + "2" * 32] == [pop["call"]["sid"] for pop in screen_pops(again, 1)]


def test_a_call_state_reported_to_one_server_reaches_a_console_of_the_other(servers):
    first, second = servers
    stream = console(second).get("/console/events")
    next(iter(stream.response))
    signed_post(first.test_client(), "/twilio/voice", call_form(SID))

    signed_post(first.test_client(), "/twilio/leg-status", leg_form(SID, LEG, "in-progress"))

    [state] = screen_pops(stream, 1, event="callstate")
    assert (SID, "connected") == (state["call_sid"], state["phase"])


def test_a_call_on_two_servers_sharing_redis_and_postgresql_is_worked_on_both(
        postgres_url, redis_server, redis_prefix, make_app):
    # postgres_url first: its database is dropped after the apps on it are closed.
    shared = {"redis_url": redis_server, "redis_prefix": redis_prefix,
              "database_url": postgres_url}
    first, second = make_app(**shared), make_app(**shared)
    signed_post(first.test_client(), "/twilio/voice", call_form(SID))
    signed_post(second.test_client(), "/twilio/leg-status", leg_form(SID, LEG, "completed",
                                                                    duration=60))
    on_first, on_second = console(first), console(second)

    on_first.put(f"/console/calls/{SID}/notes", json={"notes": "Typed on one server"},
                 headers={"X-CSRFToken": csrf_token(on_first)})
    listed = on_second.get("/console/calls").get_json()["calls"]
    wrapped = on_second.post(f"/console/calls/{SID}/wrapup", json={"outcome": "resolved"},
                             headers={"X-CSRFToken": csrf_token(on_second)})

    assert ["Typed on one server"] == [call["notes"] for call in listed]
    assert (200, "wrapped_up") == (wrapped.status_code, wrapped.get_json()["state"]["phase"])


def test_healthz_reports_redis(servers):
    first, _ = servers

    body = first.test_client().get("/healthz").get_json()

    assert isinstance(services(first).broker, RedisScreenPopBroker)
    assert (True, 0) == (body["redis"]["ok"], body["redis"]["pops_held"])


def test_redis_out_of_reach_makes_the_hub_degraded_not_failing(make_app):
    app = make_app(redis_url=f"redis://127.0.0.1:{free_port()}/0")

    response = app.test_client().get("/healthz")

    assert (200, "degraded", False) == (response.status_code, response.get_json()["status"],
                                        response.get_json()["redis"]["ok"])


def test_a_redis_url_of_another_scheme_is_refused(tmp_path):
    with pytest.raises(ValueError, match="redis://"):
        make_settings(tmp_path, redis_url="http://127.0.0.1:6379")
