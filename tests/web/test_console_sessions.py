"""Console sessions that end: a logout holds for every copy of the cookie and on every server,
an open stream of an ended session stops, sessions expire when idle and after a shift, and
the cookie is HttpOnly, SameSite, scoped to the console and Secure on an https hub."""

from __future__ import annotations

import time
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.http import parse_date

from app import create_app, services
from hub.revocations import MAX_AGE_S, RevocationSnapshot
from hub.settings import Agent, HubConfig
from tests.fakes import RecordingRevocations, UnreachableRevocations
from tests.support import console_login, console_logout, make_settings
from web.sessions import CLOCK_SKEW_S, COOKIE_NAME, SESSION_ID, SESSION_SINCE

ADA = Agent(id="ada", name="Ada Agent", client="ada", token="ada-token-123")
BOB = Agent(id="bob", name="Bob Agent", client="bob", token="bob-token-456")
KEEPALIVE = 0.05


def make_app(data_dir: Path, **overrides: Any) -> Flask:
    """A hub server on ``data_dir``; two on one directory share their state, like two hosts
    sharing a database (and ``CAHUB_SECRET_KEY``, which ``make_settings`` fixes)."""
    settings = make_settings(data_dir, hub=HubConfig(agents=(ADA, BOB)), **overrides)
    app = create_app(settings, start_background=False)
    app.config["CAHUB_SSE_KEEPALIVE"] = KEEPALIVE
    return app


@pytest.fixture
def server(apps: list[Flask], tmp_path: Path) -> Flask:
    apps.append(make_app(tmp_path / "hub"))
    return apps[0]


@pytest.fixture
def other_server(apps: list[Flask], server: Flask, tmp_path: Path) -> Flask:
    apps.append(make_app(tmp_path / "hub"))
    return apps[1]


@pytest.fixture
def ada(server: Flask) -> FlaskClient:
    client = server.test_client()
    assert 303 == console_login(client, ADA.token.get_secret_value()).status_code
    return client


def cookie_of(client: FlaskClient, app: Flask) -> str:
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"], path="/console")
    assert cookie is not None, "no console cookie"
    return cookie.value


def carrying(app: Flask, cookie: str) -> FlaskClient:
    """Another browser (or a copy of the cookie) presenting ``cookie`` to ``app``."""
    client = app.test_client()
    client.set_cookie(app.config["SESSION_COOKIE_NAME"], cookie, path="/console")
    return client


def opens_stream(client: FlaskClient) -> bool:
    response = client.get("/console/events")
    response.close()
    return 200 == response.status_code


def events_until_end(response: Any, limit: float = 5.0) -> list[str]:
    """The event names (and comments) the stream sends until it ends, at most ``limit`` s."""
    seen: list[str] = []
    started = time.monotonic()
    for chunk in response.response:
        text = chunk.decode() if isinstance(chunk, bytes) else chunk
        seen += [line.partition(":")[2].strip() or line for line in text.split("\n")
                 if line.startswith(("event:", ":"))]
        assert time.monotonic() - started < limit, f"the stream is still open: {seen[-5:]}"
    return seen


def set_cookie(response: Any, name: str = COOKIE_NAME) -> Any:
    """The cookie ``name`` the response sets, with its attributes."""
    parsed: SimpleCookie = SimpleCookie()
    for header in response.headers.getlist("Set-Cookie"):
        parsed.load(header)
    assert name in parsed, response.headers.getlist("Set-Cookie")
    return parsed[name]


# --- logout ends the session for the server -----------------------------------------------


def test_a_cookie_saved_before_logout_no_longer_opens_the_stream(server, ada):
    saved = cookie_of(ada, server)

    console_logout(ada)

    assert 401 == carrying(server, saved).get("/console/events").status_code


def test_a_cookie_saved_before_logout_no_longer_opens_the_console(server, ada):
    saved = cookie_of(ada, server)

    console_logout(ada)

    assert b'name="token"' in carrying(server, saved).get("/console").data


def test_logging_out_one_browser_leaves_the_agents_other_browsers_signed_in(server, ada):
    desk = server.test_client()
    console_login(desk, ADA.token.get_secret_value())

    console_logout(ada)

    assert opens_stream(desk)


def test_each_login_is_a_new_session(server, ada):
    with ada.session_transaction("/console") as session:
        first = session[SESSION_ID]
    console_login(ada, ADA.token.get_secret_value())
    with ada.session_transaction("/console") as session:
        second = session[SESSION_ID]

    assert first != second


def test_an_open_stream_of_a_logged_out_session_ends_at_its_next_keepalive(server, ada):
    stream = carrying(server, cookie_of(ada, server)).get("/console/events")
    next(iter(stream.response))

    console_logout(ada)
    started = time.monotonic()
    seen = events_until_end(stream)

    assert "signedout" == seen[-1]
    assert time.monotonic() - started < 1.0  # the keep-alive is 0.05 s here, 15 s by default


def test_an_open_stream_ends_when_its_agents_token_is_rotated(server, ada):
    stream = ada.get("/console/events")
    next(iter(stream.response))
    rotated = Agent(id="ada", name="Ada Agent", client="ada", token="a-new-token")
    hub = services(server)

    hub.settings = hub.settings.model_copy(update={"hub": HubConfig(agents=(rotated, BOB))})

    assert "signedout" == events_until_end(stream)[-1]


def test_the_revocation_lasts_as_long_as_the_session_could_be_used(server, ada):
    revocations = RecordingRevocations()
    services(server).sessions = RevocationSnapshot(revocations)
    with ada.session_transaction("/console") as session:
        session_id, since = session[SESSION_ID], session[SESSION_SINCE]

    console_logout(ada)

    remaining = since + services(server).settings.console_session_max_s - time.time()
    assert remaining + CLOCK_SKEW_S == pytest.approx(revocations.ttls[session_id], abs=5)


def test_a_session_store_that_cannot_be_reached_signs_no_agent_out(server, ada):
    services(server).sessions = RevocationSnapshot(UnreachableRevocations())

    assert opens_stream(ada)
    assert 303 == console_logout(ada).status_code
    assert not opens_stream(ada)  # the browser's own cookie is gone all the same


# --- several servers --------------------------------------------------------------------


def test_a_console_logged_in_through_one_server_works_through_another(server, other_server, ada):
    assert opens_stream(carrying(other_server, cookie_of(ada, server)))


def test_a_logout_through_one_server_holds_on_another(server, other_server, ada):
    saved = cookie_of(ada, server)

    console_logout(ada)

    assert not opens_stream(carrying(other_server, saved))


def test_an_open_stream_on_another_server_ends_within_a_second_of_the_logout(
        server, other_server, ada):
    stream = carrying(other_server, cookie_of(ada, server)).get("/console/events")
    next(iter(stream.response))
    time.sleep(MAX_AGE_S)  # the other server has listed the logouts since the stream opened

    console_logout(ada)
    started = time.monotonic()
    seen = events_until_end(stream)

    assert "signedout" == seen[-1]
    assert time.monotonic() - started < MAX_AGE_S + 1.0  # its list, then a keep-alive


# --- lifetimes ----------------------------------------------------------------------------


def test_a_session_older_than_a_shift_is_refused(server, ada):
    shift = services(server).settings.console_session_max_s
    with ada.session_transaction("/console") as session:
        session[SESSION_SINCE] = time.time() - shift - 1

    assert 401 == ada.get("/console/events").status_code


def test_an_open_stream_ends_when_its_session_reaches_the_end_of_the_shift(server, ada):
    shift = services(server).settings.console_session_max_s
    with ada.session_transaction("/console") as session:
        session[SESSION_SINCE] = time.time() - shift + 0.2

    assert "signedout" == events_until_end(ada.get("/console/events"))[-1]


def test_a_session_left_idle_past_its_limit_is_refused(apps, tmp_path):
    apps.append(make_app(tmp_path, console_session_idle_s=1))
    client = apps[0].test_client()
    console_login(client, ADA.token.get_secret_value())

    time.sleep(2.1)  # the cookie's signature carries whole seconds

    assert 401 == client.get("/console/events").status_code


def test_the_open_console_renews_its_session(server, ada):
    reply = ada.get("/console/session")

    idle = services(server).settings.console_session_idle_s
    expires = parse_date(set_cookie(reply)["expires"])
    assert (200, "ada") == (reply.status_code, reply.json["agent"])
    assert expires is not None
    assert time.time() + idle == pytest.approx(expires.timestamp(), abs=5)


def test_the_session_check_of_a_signed_out_console_is_a_json_401(server):
    reply = server.test_client().get("/console/session")

    assert (401, "unauthorized") == (reply.status_code, reply.json["error"]["code"])


# --- the cookie -------------------------------------------------------------------------


def test_the_session_cookie_is_httponly_samesite_lax_and_for_the_console_only(server):
    cookie = set_cookie(console_login(server.test_client(), ADA.token.get_secret_value()))

    assert (True, "Lax", "/console") == (cookie["httponly"], cookie["samesite"], cookie["path"])


def test_the_session_cookie_is_secure_when_the_public_url_is_https(apps, tmp_path):
    apps.append(make_app(tmp_path, public_base_url="https://hub.example.com"))

    cookie = set_cookie(console_login(apps[0].test_client(), ADA.token.get_secret_value()))

    assert cookie["secure"] is True


def test_the_session_cookie_works_over_plain_http_for_a_local_hub(server):
    cookie = set_cookie(console_login(server.test_client(), ADA.token.get_secret_value()))

    assert "" == cookie["secure"]
