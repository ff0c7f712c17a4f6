"""The Salesforce sink's JWT bearer flow against `responses`: the signed assertion, a new
one per token, and settings that say what is missing or wrong."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs

import jwt
import pytest
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import SecretStr

from hub.models import DeliveryAction
from hub.ports import PermanentError
from integrations.salesforce import SalesforceTaskSink
from integrations.salesforce_auth import (
    JWT_BEARER_GRANT,
    JWT_LIFETIME_S,
    ClientCredentials,
    JwtBearer,
)
from tests.adapters.test_salesforce import BASE, DATA, delivery, known_caller, sent

USER = "integration@acme.example"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                        serialization.NoEncryption())


def settings(key_file: Path | None, username: str | None = USER, **more: Any) -> Any:
    values = {
        "salesforce_base_url": BASE, "salesforce_client_id": "consumer-key",
        "salesforce_client_secret": None, "salesforce_api_version": "v62.0",
        "salesforce_task_key_field": None, "crm_on_missing": "create", "sink_timeout_s": 5.0,
        "salesforce_username": username, "salesforce_private_key_file": key_file,
        "salesforce_audience": "https://test.salesforce.com", **more}
    return SimpleNamespace(**values)


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "salesforce.key"
    path.write_bytes(PEM)
    return path


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(f"{BASE}/services/oauth2/token",
                  json={"access_token": "tok-1", "instance_url": BASE})
        yield mock


@pytest.fixture
def sink(key_file: Path) -> Iterator[SalesforceTaskSink]:
    sink = SalesforceTaskSink.from_settings(settings(key_file))
    yield sink
    sink.close()


def claims_of(request: Any) -> dict[str, Any]:
    form = parse_qs(request.body)
    assert [JWT_BEARER_GRANT] == form["grant_type"]
    assertion = form["assertion"][0]
    assert {"alg": "RS256", "typ": "JWT"} == jwt.get_unverified_header(assertion)
    return jwt.decode(assertion, KEY.public_key(), algorithms=["RS256"],
                      audience="https://test.salesforce.com")


def test_the_token_comes_from_a_jwt_signed_with_the_app_key(rsps, sink) -> None:
    known_caller(rsps)
    before = int(time.time())

    sink.deliver(delivery())

    [token_request] = sent(rsps, "POST", "/oauth2/token")
    claims = claims_of(token_request)
    assert {"iss": "consumer-key", "sub": USER, "aud": "https://test.salesforce.com"} == {
        name: claims[name] for name in ("iss", "sub", "aud")}
    assert before + JWT_LIFETIME_S <= claims["exp"] <= int(time.time()) + JWT_LIFETIME_S
    assert "Authorization" not in token_request.headers  # no secret travels
    [task] = sent(rsps, "POST", "/sobjects/Task")
    assert "Bearer tok-1" == task.headers["Authorization"]


def test_an_expired_session_gets_a_newly_signed_jwt(rsps, sink, monkeypatch) -> None:
    known_caller(rsps)
    sink.deliver(delivery())
    rsps.replace(responses.GET, f"{DATA}/query", status=401,
                 json=[{"errorCode": "INVALID_SESSION_ID", "message": "Session expired"}])
    rsps.add(responses.GET, f"{DATA}/query", json={"records": []})
    later = time.time() + 3600
    monkeypatch.setattr(time, "time", lambda: later)

    sink.deliver(delivery(DeliveryAction.CALL_LOG))

    first, second = (claims_of(r) for r in sent(rsps, "POST", "/oauth2/token"))
    assert second["exp"] - first["exp"] >= 3600


def test_an_unapproved_user_is_a_permanent_failure(rsps, sink) -> None:
    rsps.replace(responses.POST, f"{BASE}/services/oauth2/token", status=400,
                 json={"error": "invalid_grant",
                       "error_description": "user hasn't approved this consumer"})

    with pytest.raises(PermanentError, match="invalid_grant"):
        sink.deliver(delivery())


def test_the_jwt_flow_needs_no_client_secret_but_a_user_and_a_key(key_file, tmp_path) -> None:
    assert isinstance(SalesforceTaskSink.from_settings(settings(key_file))._grant, JwtBearer)
    with pytest.raises(ValueError, match="CAHUB_SALESFORCE_USERNAME"):
        SalesforceTaskSink.from_settings(settings(key_file, username=None))
    with pytest.raises(ValueError, match="CAHUB_SALESFORCE_PRIVATE_KEY_FILE is not set"):
        SalesforceTaskSink.from_settings(settings(None))
    with pytest.raises(ValueError, match="CAHUB_SALESFORCE_CLIENT_SECRET"):
        SalesforceTaskSink.from_settings(settings(None, username=None))
    secret = settings(None, username=None, salesforce_client_secret=SecretStr("s"))
    assert not isinstance(SalesforceTaskSink.from_settings(secret)._grant, JwtBearer)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "cannot read"),
        (b"-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n",
         "holds no usable private key"),
        (KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                       serialization.PublicFormat.SubjectPublicKeyInfo),
         "holds no usable private key"),
        (ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()), "not an RSA private key"),
        (KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                           serialization.BestAvailableEncryption(b"pass")),
         "holds no usable private key"),
    ],
)
def test_a_key_file_that_cannot_sign_is_refused_at_start(tmp_path, content, reason) -> None:
    path = tmp_path / "salesforce.key"
    if content is not None:
        path.write_bytes(content)

    with pytest.raises(ValueError, match=f"CAHUB_SALESFORCE_PRIVATE_KEY_FILE: .*{reason}") as err:
        SalesforceTaskSink.from_settings(settings(path))
    if content is not None:  # never the key's content
        assert content.decode().splitlines()[1] not in str(err.value)


def test_client_credentials_never_show_their_secret() -> None:
    assert "s3cret" not in repr(ClientCredentials("consumer-key", "s3cret"))
