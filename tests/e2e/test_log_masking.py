"""End to end: no log line of a real server carries a token, a key, a number or an email.

The same requests go to gunicorn with the shipped configuration and to ``cahub serve`` (the
development server): a console login by ``?token=``, a wrong token, API lookups with the
number plain, URL-encoded and in national format, an email in a query, a token in a
``Referer``, a number in a webhook's query. Then every line each server wrote, access log
included, is searched for them.
"""

from __future__ import annotations

from pathlib import Path

import requests

from tests.e2e.gunicorn_process import GunicornProcess
from tests.e2e.hub_process import HubProcess, free_port, hub_environment

AGENT_TOKEN = "agent-token-Zq8xK2vW"
WRONG_TOKEN = "wrong-token-Tt4nB7"
API_KEY = "api-key-Lm3Pq9rS"
TOML = f"""
[[agents]]
id = "grace"
name = "Grace Hopper"
client = "grace"
numbers = ["+18005550100"]
token = "{AGENT_TOKEN}"
"""
# What must not appear in any form: secrets, and the caller's number and email as sent.
REVEALING = [AGENT_TOKEN, WRONG_TOKEN, API_KEY, "4155550134", "5550134", "555-0134",
             "%2B1415", "ada@example", "ada%40example", "ada%2540example"]


def environment(tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "hub.toml"
    config.write_text(TOML)
    return hub_environment({"CAHUB_DATA_DIR": str(tmp_path / "instance"),
                            "CAHUB_CONFIG": str(config), "CAHUB_API_KEYS": API_KEY,
                            "CAHUB_TWILIO_AUTH_TOKEN": "auth-token-for-the-test",
                            "CAHUB_SECRET_KEY": "secret-key-for-the-test"})


def send_revealing_requests(base: str) -> None:
    """Requests whose URLs and headers carry secrets and personal data, as clients send them."""
    bearer = {"Authorization": f"Bearer {API_KEY}"}
    with requests.Session() as session:
        session.get(f"{base}/console?token={AGENT_TOKEN}", allow_redirects=False, timeout=5)
        session.get(f"{base}/console?token={WRONG_TOKEN}", timeout=5)
        for phone in ("%2B14155550134", "+14155550134", "(415)%20555-0134", "ada%40example.com"):
            session.get(f"{base}/api/v1/lookup?phone={phone}", headers=bearer, timeout=5)
        session.get(f"{base}/api/v1/lookup?email=ada%2540example.com", timeout=5)
        session.get(f"{base}/healthz", headers={"Referer": f"{base}/console?token={AGENT_TOKEN}"},
                    timeout=5)
        session.post(f"{base}/twilio/voice?From=%2B14155550134", data={"From": "+14155550134"},
                     timeout=5)


def revealed(text: str) -> list[str]:
    return [line for line in text.splitlines() if any(secret in line for secret in REVEALING)]


def test_gunicorn_logs_no_token_key_number_or_email(tmp_path: Path) -> None:
    gunicorn = GunicornProcess(environment(tmp_path), tmp_path, f"127.0.0.1:{free_port()}")
    gunicorn.start()
    try:
        send_revealing_requests(gunicorn.base_url)
    finally:
        gunicorn.stop()

    access, errors = gunicorn.access_log.read_text(), gunicorn.error_log.read_text()
    assert 9 <= access.count("/api/v1/lookup?") + access.count("/console?") + access.count(
        "/healthz"), access  # the lines are there, masked
    assert "refused /twilio/voice: signature missing" in errors
    assert [] == revealed(access) + revealed(errors)


def test_the_development_server_logs_no_token_key_number_or_email(tmp_path: Path) -> None:
    hub = HubProcess(environment(tmp_path), tmp_path)
    hub.start()
    try:
        send_revealing_requests(hub.base_url)
    finally:
        hub.stop()

    output = hub.logs()
    assert 6 <= output.count("GET /api/v1/lookup?") + output.count("GET /console?"), output
    assert [] == revealed(output)


def test_gunicorn_at_debug_logs_no_token_either(tmp_path: Path) -> None:
    gunicorn = GunicornProcess(environment(tmp_path), tmp_path, f"127.0.0.1:{free_port()}",
                               "--log-level", "debug")
    gunicorn.start()
    try:
        send_revealing_requests(gunicorn.base_url)
    finally:
        gunicorn.stop()

    assert [] == revealed(gunicorn.logs())

