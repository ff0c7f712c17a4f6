"""The agent console: token login, the session, and the screen-pop event stream."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import close_app, create_app, services
from hub.models import CallerKind, CallInfo, Summary
from hub.settings import Agent, HubConfig
from state.pops.memory import InProcessScreenPopBroker
from tests.support import console_login, console_logout, make_settings
from web.console import end_streams

ADA = Agent(id="ada", name="Ada Agent", client="ada", token="ada-token-123")
BOB = Agent(id="bob", name="Bob Agent", client="bob", token="bob-token-456")


def with_agents(app: Flask, *agents: Agent) -> None:
    """Reconfigure the running app's agents (a token rotated, an agent removed)."""
    hub = services(app)
    hub.settings = hub.settings.model_copy(update={"hub": HubConfig(agents=agents)})


def summary(sid_number: int = 1, name: str | None = "Grace Hopper") -> Summary:
    call = CallInfo(sid=f"CA{sid_number:032x}", from_="+14155550134", to="+18005550100",
                    caller_kind=CallerKind.NUMBER)
    return Summary(call=call, identity=None, found=True, name=name, lifetime_value=1234.5)


@pytest.fixture
def console_app(tmp_path: Path) -> Iterator[Flask]:
    app = create_app(make_settings(tmp_path, hub=HubConfig(agents=(ADA, BOB))),
                     start_background=False)
    app.config["CAHUB_SSE_KEEPALIVE"] = 0.02
    yield app
    close_app(app)


@pytest.fixture
def broker(console_app: Flask) -> InProcessScreenPopBroker:
    return services(console_app).broker  # type: ignore[return-value]


@pytest.fixture
def console(console_app: Flask) -> FlaskClient:
    return console_app.test_client()


@pytest.fixture
def ada(console: FlaskClient) -> FlaskClient:
    console_login(console, ADA.token.get_secret_value())
    return console


def sse_events(response: Any) -> Iterator[dict[str, str]]:
    """Parse the stream into events: each a dict of its fields (a comment is ``{":": …}``)."""
    buffer = ""
    for chunk in response.response:
        buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            yield dict(_sse_field(line) for line in block.split("\n"))


def _sse_field(line: str) -> tuple[str, str]:
    name, _, value = line.partition(":")
    return (name or ":"), value.removeprefix(" ")


def first_pop(response: Any, limit: int = 200) -> dict[str, str]:
    for number, event in enumerate(sse_events(response)):
        if event.get("event") == "screenpop" or number >= limit:
            return event
    raise AssertionError("the stream ended")


# --- login ------------------------------------------------------------------------------


def test_the_console_without_a_session_shows_the_login_form(console):
    response = console.get("/console")

    assert response.status_code == 200
    assert b'name="token"' in response.data


def test_a_good_token_logs_in_and_redirects_to_the_console(console):
    response = console_login(console, "ada-token-123")

    assert response.status_code == 303
    assert response.headers["Location"] == "/console"
    with console.session_transaction("/console") as session:
        assert session["console_agent"] == "ada"


def test_a_token_in_the_query_string_does_not_log_in(console):
    response = console.get("/console?token=ada-token-123")

    assert response.status_code == 200
    assert b'name="token"' in response.data
    assert b"#token=" in response.data
    assert console.get("/console/events").status_code == 401


def test_the_logged_in_console_names_the_agent(ada):
    response = ada.get("/console")

    assert response.status_code == 200
    assert b"Ada Agent" in response.data
    assert b'name="token"' not in response.data


def test_the_login_form_posts_the_token(console):
    response = console_login(console, "bob-token-456")

    assert response.status_code == 303
    assert b"Bob Agent" in console.get("/console").data


@pytest.mark.parametrize("token", ["wrong", "", "ada-token-12", "ada-token-1234", "ädä"])
def test_a_wrong_token_gets_the_form_again_with_a_message_and_403(console, token):
    response = console_login(console, token)

    assert response.status_code == 403
    assert b"not valid" in response.data
    with console.session_transaction("/console") as session:
        assert "console_agent" not in session


def test_the_console_page_forbids_framing_and_caching(ada):
    response = ada.get("/console")

    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"


def test_logout_forgets_the_agent(ada):
    response = console_logout(ada)

    assert response.status_code == 303
    assert ada.get("/console/events").status_code == 401


def test_rotating_an_agents_token_logs_out_its_consoles(console_app, ada):
    rotated = Agent(id="ada", name="Ada Agent", client="ada", token="a-new-token")
    with_agents(console_app, rotated, BOB)

    assert ada.get("/console/events").status_code == 401


def test_a_session_for_an_agent_no_longer_configured_is_not_honoured(console_app, ada):
    with_agents(console_app, BOB)

    assert b'name="token"' in ada.get("/console").data


# --- the event stream -------------------------------------------------------------------


def test_events_without_a_session_are_401_json(console):
    response = console.get("/console/events")

    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"
    assert response.json["error"]["message"]


def test_the_stream_is_unbuffered_event_stream_starting_with_retry(ada):
    response = ada.get("/console/events")

    assert response.mimetype == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Accel-Buffering"] == "no"
    assert next(sse_events(response)) == {"retry": "2000"}
    response.close()


def test_a_published_pop_arrives_as_a_screenpop_event_with_the_summary_json(ada, broker):
    response = ada.get("/console/events")

    event_id = broker.publish("ada", summary())
    event = first_pop(response)
    response.close()

    assert event["id"] == event_id
    assert json.loads(event["data"]) == summary().to_json_dict()


def test_another_agents_pop_never_reaches_the_console(ada, broker):
    response = ada.get("/console/events")

    broker.publish("bob", summary(1, name="For Bob"))
    broker.publish("ada", summary(2, name="For Ada"))
    event = first_pop(response)
    response.close()

    assert json.loads(event["data"])["name"] == "For Ada"


def test_an_idle_stream_sends_keep_alive_comments(ada):
    response = ada.get("/console/events")

    events = sse_events(response)
    next(events)
    comment = next(events)
    response.close()

    assert comment == {":": "keep-alive"}


def test_a_reconnect_with_last_event_id_replays_the_missed_pops(ada, broker):
    seen = broker.publish("ada", summary(1))
    missed = broker.publish("ada", summary(2, name="Missed"))

    response = ada.get("/console/events", headers={"Last-Event-ID": seen})
    event = first_pop(response)
    response.close()

    assert (event["id"], json.loads(event["data"])["name"]) == (missed, "Missed")


def test_the_last_event_id_may_come_as_a_query_parameter(ada, broker):
    seen = broker.publish("ada", summary(1))
    missed = broker.publish("ada", summary(2))

    response = ada.get(f"/console/events?lastEventId={seen}")
    event = first_pop(response)
    response.close()

    assert event["id"] == missed


def test_closing_the_stream_ends_the_subscription(ada, broker):
    response = ada.get("/console/events")
    next(sse_events(response))

    response.close()

    assert broker.listening("ada") == 0


def test_a_stream_closed_before_it_started_ends_the_subscription_too(ada, broker):
    ada.get("/console/events").close()

    assert broker.listening("ada") == 0


def test_a_stopping_server_ends_the_open_streams_and_their_subscriptions(
        console_app, ada, broker):
    response = ada.get("/console/events")
    events = sse_events(response)
    next(events)

    ended = end_streams(console_app)

    assert 1 == ended
    assert [] == list(events)  # the response ends (the browser reconnects), no signedout
    response.close()
    assert broker.listening("ada") == 0


def test_a_stopping_server_refuses_a_new_stream_with_503_and_keeps_no_subscription(
        console_app, ada, broker):
    end_streams(console_app)

    response = ada.get("/console/events")

    assert 503 == response.status_code
    assert "1" == response.headers["Retry-After"]
    assert "stopping" == response.json["error"]["code"]
    assert broker.listening("ada") == 0


def test_ending_the_streams_of_an_app_that_is_not_the_hubs_ends_none():
    assert 0 == end_streams(Flask("other"))
    assert 0 == end_streams(object())


@pytest.mark.parametrize("asset", ["console.js", "console_login.js", "console.css"])
def test_the_console_assets_are_served_from_the_blueprint(console, asset):
    response = console.get(f"/console/static/{asset}")
    response.close()

    assert response.status_code == 200


def test_the_console_assets_are_served_without_the_session_cookie(ada):
    response = ada.get("/console/static/console.js")
    response.close()

    assert [] == response.headers.getlist("Set-Cookie")



def test_only_console_routes_read_the_session_cookie(console_app: Flask, ada: FlaskClient) -> None:
    """A webhook or API request that carries an agent's cookie gets an empty session."""
    from web.sessions import SESSION_AGENT

    name = console_app.config["SESSION_COOKIE_NAME"]
    cookie = ada.get_cookie(name, path="/console")
    assert cookie is not None
    headers = {"Cookie": f"{name}={cookie.value}"}
    for path in ("/console", "/console/events"):
        assert _opened(console_app, path, headers).get(SESSION_AGENT) == "ada"
    for path in ("/twilio/voice", "/api/v1/lookup", "/consoles"):
        opened = _opened(console_app, path, headers)
        assert dict(opened) == {}
        assert not opened.modified


def _opened(app: Flask, path: str, headers: dict[str, str]) -> Any:
    from flask import request

    with app.test_request_context(path, headers=headers):
        return app.session_interface.open_session(app, request._get_current_object())  # type: ignore[attr-defined]
