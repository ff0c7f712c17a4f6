"""CSRF protection of the console (PRODUCT.md §6): every console form and every console
POST or PUT carries the token the page holds; Twilio's webhooks and the API need none."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import close_app, create_app
from tests.support import (
    AUTH_TOKEN,
    call_form,
    console_login,
    csrf_token,
    make_settings,
    signed_post,
)

DRAFT = "/console/calls/CA0/notes"


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    application = create_app(make_settings(tmp_path), start_background=False)
    # A console PUT like the softphone's note drafts, to show how any console route is guarded.
    application.add_url_rule("/console/calls/<sid>/notes", "draft", lambda sid: ("", 204),
                             methods=["PUT"])
    yield application
    close_app(application)


@pytest.fixture
def grace(client: FlaskClient) -> FlaskClient:
    console_login(client, "grace-token")
    return client


def signed_in_as(client: FlaskClient) -> str | None:
    with client.session_transaction("/console") as session:
        return session.get("console_agent")


# --- login ------------------------------------------------------------------------------


def test_the_login_page_holds_a_csrf_token(client):
    assert csrf_token(client)


def test_a_login_without_the_csrf_token_is_refused_with_the_login_form(client):
    reply = client.post("/console", data={"token": "grace-token"})

    assert (400, None) == (reply.status_code, signed_in_as(client))
    assert b'name="token"' in reply.data
    assert b"expired" in reply.data


def test_a_login_with_another_browsers_csrf_token_is_refused(app, client):
    attackers_token = csrf_token(app.test_client())
    client.get("/console")

    reply = client.post("/console", data={"token": "grace-token", "csrf_token": attackers_token})

    assert (400, None) == (reply.status_code, signed_in_as(client))


def test_the_csrf_token_changes_at_login(client):
    before = csrf_token(client)

    console_login(client, "grace-token")

    assert before != csrf_token(client)


# --- the logged-in console ----------------------------------------------------------------


def test_the_console_page_holds_the_csrf_token_in_a_meta_tag(grace):
    assert csrf_token(grace)


def test_logout_without_the_csrf_token_does_not_log_out(grace):
    reply = grace.post("/console/logout")

    assert (303, "grace") == (reply.status_code, signed_in_as(grace))


def test_a_console_put_without_the_csrf_header_is_a_json_400(grace):
    reply = grace.put(DRAFT, json={"notes": "hello"})

    assert 400 == reply.status_code
    assert "csrf_failed" == reply.json["error"]["code"]
    assert "CSRF token is missing" in reply.json["error"]["message"]


def test_a_console_put_with_a_wrong_csrf_header_is_a_json_400(grace):
    reply = grace.put(DRAFT, json={"notes": "hello"}, headers={"X-CSRFToken": "forged"})

    assert (400, "csrf_failed") == (reply.status_code, reply.json["error"]["code"])


def test_a_console_put_with_the_pages_csrf_header_is_accepted(grace):
    reply = grace.put(DRAFT, json={"notes": "hello"}, headers={"X-CSRFToken": csrf_token(grace)})

    assert 204 == reply.status_code


def test_the_csrf_token_lasts_as_long_as_the_session(app, grace):
    assert app.config["WTF_CSRF_TIME_LIMIT"] is None


def test_a_console_post_over_https_needs_a_same_origin_referrer(grace):
    headers = {"X-CSRFToken": csrf_token(grace), "Referer": "https://evil.example/"}

    reply = grace.put(DRAFT, base_url="https://localhost", headers=headers)

    assert (400, "csrf_failed") == (reply.status_code, reply.json["error"]["code"])


def test_a_console_post_over_https_from_the_console_itself_is_accepted(grace):
    headers = {"X-CSRFToken": csrf_token(grace), "Referer": "https://localhost/console"}

    reply = grace.put(DRAFT, base_url="https://localhost", headers=headers)

    assert 204 == reply.status_code


def test_the_console_sends_its_referrer_to_itself_only(grace):
    assert "same-origin" == grace.get("/console").headers["Referrer-Policy"]


# --- exempt: routes with their own authentication -----------------------------------------


def test_twilio_webhooks_need_no_csrf_token(client):
    assert 200 == signed_post(client, "/twilio/voice", call_form("CA" + "1" * 32)).status_code


def test_the_api_needs_no_csrf_token(client):
    reply = client.get("/api/v1/lookup?phone=%2B14155550134",
                       headers={"Authorization": "Bearer test-api-key"})

    assert 200 == reply.status_code


def test_the_twilio_auth_token_is_not_a_console_token(client):
    assert 403 == console_login(client, AUTH_TOKEN).status_code
