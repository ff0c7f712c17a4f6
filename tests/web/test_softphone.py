"""The console's softphone: access tokens, the Voice SDK the hub serves, the page's policy."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import close_app, create_app
from integrations.voice_sdk import VERSION, script_path, subresource_integrity
from tests.support import console_login, csrf_token, make_settings

ACCOUNT_SID = "AC" + "a1" * 16
KEY_SID = "SK" + "b2" * 16
KEY_SECRET = "api-key-secret-0123456789abcdef0123"  # 32 bytes or more, as Twilio makes them
APP_SID = "AP" + "c3" * 16
SOFTPHONE = {"twilio_account_sid": ACCOUNT_SID, "twilio_api_key_sid": KEY_SID,
             "twilio_api_key_secret": KEY_SECRET, "twilio_twiml_app_sid": APP_SID}
SDK_PATH = f"/console/static/vendor/twilio-voice-{VERSION}.min.js"


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[Any]:
    made: list[Flask] = []

    def build(**overrides: Any) -> FlaskClient:
        made.append(create_app(make_settings(tmp_path / "instance", **overrides),
                               start_background=False))
        return made[-1].test_client()

    yield build
    for app in made:
        close_app(app)


def logged_in(client: FlaskClient) -> FlaskClient:
    console_login(client, "grace-token")
    return client


def post_token(client: FlaskClient) -> Any:
    return client.post("/console/token", headers={"X-CSRFToken": csrf_token(client)})


def install_fake_sdk(tmp_path: Path) -> bytes:
    script = script_path(tmp_path / "instance")
    script.parent.mkdir(parents=True)
    script.write_bytes(b"window.Twilio = {};")
    return script.read_bytes()


# --- tokens -------------------------------------------------------------------------------


def test_a_token_is_signed_with_the_api_key_for_the_agents_identity(make_app):
    client = logged_in(make_app(**SOFTPHONE))

    body = post_token(client).get_json()
    claims = jwt.decode(body["token"], KEY_SECRET, algorithms=["HS256"])

    assert ("grace", "grace") == (body["identity"], claims["grants"]["identity"])
    assert (KEY_SID, ACCOUNT_SID) == (claims["iss"], claims["sub"])
    assert claims["jti"].startswith(f"{KEY_SID}-")


def test_the_tokens_voice_grant_allows_incoming_calls_and_outgoing_through_the_twiml_app(
        make_app):
    client = logged_in(make_app(**SOFTPHONE))

    token = post_token(client).get_json()["token"]
    voice = jwt.decode(token, KEY_SECRET, algorithms=["HS256"])["grants"]["voice"]

    assert {"incoming": {"allow": True}, "outgoing": {"application_sid": APP_SID}} == voice


def test_the_token_lives_as_long_as_the_setting_says(make_app):
    client = logged_in(make_app(**SOFTPHONE, voice_token_ttl_s=900))

    body = post_token(client).get_json()
    claims = jwt.decode(body["token"], KEY_SECRET, algorithms=["HS256"])

    assert 900 == body["ttl"]
    assert abs(claims["exp"] - (time.time() + 900)) <= 5


def test_the_token_carries_twilios_header(make_app):
    client = logged_in(make_app(**SOFTPHONE))

    header = jwt.get_unverified_header(post_token(client).get_json()["token"])

    assert {"typ": "JWT", "alg": "HS256", "cty": "twilio-fpa;v=1"} == header


def test_a_token_signed_with_another_secret_does_not_verify(make_app):
    client = logged_in(make_app(**SOFTPHONE))
    token = post_token(client).get_json()["token"]

    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, "not-the-key-secret-0123456789abcdef", algorithms=["HS256"])


def test_a_token_is_never_cached(make_app):
    client = logged_in(make_app(**SOFTPHONE))

    assert "no-store" == post_token(client).headers["Cache-Control"]


def test_without_a_session_there_is_no_token(make_app):
    client = make_app(**SOFTPHONE)

    assert 401 == post_token(client).status_code


def test_a_token_request_without_the_csrf_token_is_refused(make_app):
    client = logged_in(make_app(**SOFTPHONE))

    response = client.post("/console/token")

    assert (400, "csrf_failed") == (response.status_code, response.get_json()["error"]["code"])


def test_without_an_api_key_the_token_route_says_the_softphone_is_not_set_up(make_app):
    client = logged_in(make_app())

    response = post_token(client)

    assert 503 == response.status_code
    assert "softphone_unavailable" == response.get_json()["error"]["code"]
    assert "CAHUB_TWILIO_API_KEY_SID" in response.get_json()["error"]["message"]


# --- the page's phone ------------------------------------------------------------------------


def policy(response: Any) -> dict[str, str]:
    directives = [d.strip() for d in response.headers["Content-Security-Policy"].split(";")]
    return {d.split(" ", 1)[0]: d.split(" ", 1)[1] if " " in d else "" for d in directives}


def test_without_an_api_key_the_console_says_the_softphone_is_not_set_up(make_app):
    client = logged_in(make_app())

    page = client.get("/console")

    assert b'data-mode="unavailable"' in page.data
    assert b"The softphone is not set up" in page.data
    assert b'data-testid="voice-sdk"' not in page.data
    assert "twilio" not in page.headers["Content-Security-Policy"]


def test_without_the_sdk_installed_the_console_says_how_to_install_it(make_app):
    client = logged_in(make_app(**SOFTPHONE))

    page = client.get("/console")

    assert b"cahub voice-sdk" in page.data
    assert b'data-mode="unavailable"' in page.data


def test_the_installed_sdk_is_loaded_from_the_hub_with_its_integrity(make_app, tmp_path):
    script = install_fake_sdk(tmp_path)
    client = logged_in(make_app(**SOFTPHONE))

    page = client.get("/console").get_data(as_text=True)

    tag = re.search(r'<script src="([^"]+)" integrity="([^"]+)"', page)
    assert tag is not None
    assert (SDK_PATH, subresource_integrity(script)) == tag.groups()


def test_the_hub_serves_the_installed_sdk_cached_for_good(make_app, tmp_path):
    script = install_fake_sdk(tmp_path)
    client = make_app(**SOFTPHONE)

    response = client.get(SDK_PATH)

    assert (200, script) == (response.status_code, response.data)
    assert "immutable" in response.headers["Cache-Control"]
    assert "Set-Cookie" not in response.headers
    assert response.mimetype == "text/javascript"


def test_another_sdk_version_is_not_served(make_app, tmp_path):
    install_fake_sdk(tmp_path)
    client = make_app(**SOFTPHONE)

    assert 404 == client.get("/console/static/vendor/twilio-voice-1.0.0.min.js").status_code


def test_the_policy_lets_the_sdk_reach_exactly_twilios_documented_hosts(make_app, tmp_path):
    install_fake_sdk(tmp_path)
    client = logged_in(make_app(**SOFTPHONE))

    found = policy(client.get("/console"))

    assert "'self'" == found["script-src"]
    assert ("'self' https://eventgw.twilio.com https://media.twiliocdn.com "
            "https://sdk.twilio.com wss://voice-js.roaming.twilio.com") == found["connect-src"]
    assert ("'self' mediastream: https://media.twiliocdn.com https://sdk.twilio.com"
            == found["media-src"])
    assert "'none'" == found["frame-ancestors"]


def test_each_configured_edge_gets_its_signalling_host(make_app, tmp_path):
    install_fake_sdk(tmp_path)
    client = logged_in(make_app(**SOFTPHONE, voice_edges=["ashburn", "dublin"]))

    connect = policy(client.get("/console"))["connect-src"]

    assert "wss://voice-js.ashburn.twilio.com wss://voice-js.dublin.twilio.com" in connect
    assert "roaming" not in connect


def test_an_sdk_url_elsewhere_is_loaded_from_there_and_its_origin_allowed(make_app):
    url = "https://assets.example.com/twilio/2.18.5/twilio.min.js"
    client = logged_in(make_app(**SOFTPHONE, voice_sdk_url=url))

    page = client.get("/console")

    assert f'<script src="{url}" defer'.encode() in page.data
    assert "'self' https://assets.example.com" == policy(page)["script-src"]


def test_the_simulator_is_the_hubs_own_script_under_the_base_policy(make_app):
    client = logged_in(make_app(voice_simulator=True))

    page = client.get("/console")

    assert b'data-mode="simulator"' in page.data
    assert b"voice_simulator.js" in page.data
    assert "script-src" not in page.headers["Content-Security-Policy"]
