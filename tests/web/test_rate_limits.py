"""Rate limits on guessing: console logins and API keys (Flask-Limiter).

Only refused tries count (a wrong token, a wrong key), per client address; once the limit is
reached every try from there is refused, the right one too, so the answer never tells a
guesser which guess was right. A browser that signed in before counts apart from its
address, so one attacker behind a shared NAT does not lock out the agents behind it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from tests.support import console_login, console_logout, make_settings
from web.limits import KNOWN_BROWSER_COOKIE

LOOKUP = "/api/v1/lookup?phone=%2B14155550134"


@pytest.fixture
def make_app(apps: list[Flask], tmp_path: Path) -> Any:
    def make(**overrides: Any) -> Flask:
        values = {"console_login_limit": "3 per minute", "api_auth_limit": "3 per minute",
                  **overrides}
        apps.append(create_app(make_settings(tmp_path / f"hub{len(apps)}", **values),
                               start_background=False))
        return apps[-1]
    return make


def browser(app: Flask, address: str = "198.51.100.7", **headers: str) -> FlaskClient:
    """A client at ``address`` (the socket's peer), sending ``headers`` with each request."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    client.environ_base.update({f"HTTP_{k.upper()}": v for k, v in headers.items()})
    return client


def wrong_logins(client: FlaskClient, count: int) -> list[int]:
    return [console_login(client, f"wrong-{n}").status_code for n in range(count)]


def lookup(client: FlaskClient, key: str) -> Any:
    return client.get(LOOKUP, headers={"Authorization": f"Bearer {key}"})


def retry_after(reply: Any) -> int:
    return int(reply.headers["Retry-After"])


# --- console logins -----------------------------------------------------------------------


def test_wrong_console_tokens_from_one_address_are_refused_after_the_limit(make_app):
    assert [403, 403, 403, 429] == wrong_logins(browser(make_app()), 4)


def test_once_the_login_limit_is_reached_the_right_token_is_refused_too(make_app):
    client = browser(make_app())
    wrong_logins(client, 3)

    assert 429 == console_login(client, "grace-token").status_code


def test_a_login_refused_by_the_limit_shows_the_form_with_retry_after(make_app):
    client = browser(make_app())
    wrong_logins(client, 3)

    reply = console_login(client, "wrong")

    assert 0 < retry_after(reply) <= 60
    assert b'name="token"' in reply.data
    assert b"Too many" in reply.data


def test_successful_logins_do_not_count_toward_the_limit(make_app):
    client = browser(make_app())

    assert [303] * 6 == [console_login(client, "grace-token").status_code for _ in range(6)]


def test_the_login_limit_of_one_address_leaves_other_addresses_alone(make_app):
    app = make_app()
    wrong_logins(browser(app, "198.51.100.7"), 3)

    assert 303 == console_login(browser(app, "198.51.100.8"), "grace-token").status_code


def test_an_agents_own_browser_is_not_locked_out_by_an_attacker_at_its_address(make_app):
    app = make_app()
    desk = browser(app)
    console_login(desk, "grace-token")
    console_logout(desk)

    wrong_logins(browser(app), 10)

    assert 303 == console_login(desk, "grace-token").status_code


def test_a_browser_that_signed_in_before_has_a_limit_of_its_own(make_app):
    desk = browser(make_app())
    console_login(desk, "grace-token")
    console_logout(desk)

    assert [403, 403, 403, 429] == wrong_logins(desk, 4)


def test_a_forged_known_browser_cookie_counts_as_its_address(make_app):
    app = make_app()
    forger = browser(app)
    forger.set_cookie(KNOWN_BROWSER_COOKIE, "grace", path="/console")

    assert [403, 403, 403, 429] == wrong_logins(forger, 4)


# --- the lookup API -----------------------------------------------------------------------


def test_wrong_api_keys_from_one_address_are_refused_after_the_limit(make_app):
    client = browser(make_app())

    assert [401, 401, 401, 429] == [lookup(client, f"wrong-{n}").status_code for n in range(4)]


def test_a_refused_api_client_gets_the_json_error_and_retry_after(make_app):
    client = browser(make_app())
    for n in range(3):
        lookup(client, f"wrong-{n}")

    reply = lookup(client, "wrong")

    assert "too_many_requests" == reply.json["error"]["code"]
    assert reply.json["error"]["message"]
    assert 0 < retry_after(reply) <= 60


def test_once_the_key_limit_is_reached_the_right_key_is_refused_too(make_app):
    client = browser(make_app())
    for n in range(3):
        lookup(client, f"wrong-{n}")

    assert 429 == lookup(client, "test-api-key").status_code


def test_the_right_key_from_another_address_is_served(make_app):
    app = make_app()
    for n in range(3):
        lookup(browser(app, "198.51.100.7"), f"wrong-{n}")

    assert 200 == lookup(browser(app, "198.51.100.8"), "test-api-key").status_code


def test_unusable_numbers_do_not_count_as_wrong_keys(make_app):
    client = browser(make_app())
    for _ in range(5):
        client.get("/api/v1/lookup?phone=12", headers={"Authorization": "Bearer test-api-key"})

    assert 200 == lookup(client, "test-api-key").status_code


def test_lookups_are_limited_per_api_key(make_app):
    client = browser(make_app(api_keys=["key-one", "key-two"], api_lookup_limit="2 per minute"))

    assert [200, 200, 429, 200] == [lookup(client, key).status_code
                                    for key in ("key-one", "key-one", "key-one", "key-two")]


# --- which address -------------------------------------------------------------------------


def test_behind_a_proxy_each_client_is_limited_by_its_forwarded_address(make_app):
    app = make_app(proxy_hops=1)
    attacker = browser(app, "10.0.0.2", x_forwarded_for="203.0.113.9")
    wrong_logins(attacker, 3)

    agent = browser(app, "10.0.0.2", x_forwarded_for="203.0.113.10")

    assert (429, 303) == (console_login(attacker, "grace-token").status_code,
                          console_login(agent, "grace-token").status_code)


def test_without_a_proxy_a_forged_forwarded_address_does_not_escape_the_limit(make_app):
    app = make_app()
    wrong_logins(browser(app, x_forwarded_for="203.0.113.1"), 3)

    assert 429 == console_login(browser(app, x_forwarded_for="203.0.113.2"), "x").status_code


def test_addresses_of_one_ipv6_network_share_a_limit(make_app):
    app = make_app()
    wrong_logins(browser(app, "2001:db8:1:2::1"), 3)

    assert 429 == console_login(browser(app, "2001:db8:1:2:ffff::9"), "x").status_code


# --- storage ------------------------------------------------------------------------------


def test_with_redis_the_limits_hold_across_servers(make_app, redis_server, redis_prefix):
    import redis

    one, two = (make_app(redis_url=redis_server, redis_prefix=redis_prefix) for _ in range(2))
    wrong_logins(browser(one), 3)

    assert 429 == console_login(browser(two), "grace-token").status_code
    assert redis.Redis.from_url(redis_server).keys(f"{redis_prefix}*")


def test_an_unreachable_redis_leaves_each_server_limiting_on_its_own(make_app):
    client = browser(make_app(redis_url="redis://127.0.0.1:9/0"))

    assert [403, 403, 403, 429] == wrong_logins(client, 4)
    assert 303 == console_login(browser(client.application, "198.51.100.8"),
                                "grace-token").status_code
