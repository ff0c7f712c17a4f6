"""``cahub forget``: what it reports, a number only the hub's own state knows, refusals."""

from __future__ import annotations

import json
import time
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from app import HUB_FILE, close_app, create_app, services
from cli.main import main
from hub.models import Identity, Profile
from state.cache.redis import RedisProfileCache
from state.forgets.sqlite import SCHEMA as FORGETS_SCHEMA
from state.forgets.sqlite import SqliteForgetLog
from state.sqlite import ThreadLocalDatabase
from tests.backends import free_port, row_versions_holding
from tests.support import call_form, make_settings, signed_post

STRANGER = "+12025550111"
ADA = {"identityMap": {"Phone": [{"id": "(415) 555-0134", "primary": True}],
                       "Email": [{"id": "ada@example.com"}]},
       "person": {"name": {"firstName": "Ada", "lastName": "Lovelace"}}}
FAMILY = [{"identityMap": {"CRMID": [{"id": crm}], "Phone": [{"id": "+12125550199"}]},
           "person": {"name": {"firstName": name}}} for crm, name in (("M1", "María"),
                                                                      ("T2", "Tomás"))]


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CAHUB_DATA_DIR", str(tmp_path / "instance"))
    return tmp_path / "instance"


def served(data_dir: Path, *calls: tuple[str, str]) -> None:
    """A server that took ``calls`` ((CallSid, From)) and has stopped."""
    app = create_app(make_settings(data_dir), start_background=False)
    try:
        for sid, number in calls:
            signed_post(app.test_client(), "/twilio/voice", call_form(sid, number))
    finally:
        close_app(app)


def ingested(data_dir: Path, *records: dict[str, object]) -> None:
    app = create_app(make_settings(data_dir), start_background=False)
    try:
        services(app).store.ingest("profiles", [json.dumps(r) for r in records])
    finally:
        close_app(app)


def test_a_found_person_is_reported_place_by_place(data_dir: Path) -> None:
    ingested(data_dir, ADA)
    served(data_dir, ("CA" + "1" * 32, "+14155550134"))

    result = CliRunner().invoke(main, ["forget", "ada@example.com"])

    assert 0 == result.exit_code, result.output
    assert ["Profile store: removed 1 person(s): 1 profile fragment(s), 0 event(s), "
            "2 identity link(s).", "Call ledger: 1 call record(s) redacted."] == (
        result.output.splitlines()[:2])


def test_a_number_only_the_hubs_own_state_knows_is_forgotten_there(data_dir: Path) -> None:
    served(data_dir, ("CA" + "1" * 32, STRANGER))

    result = CliRunner().invoke(main, ["forget", "(202) 555-0111"])

    assert 0 == result.exit_code, result.output
    assert "nothing is stored for that identity" in result.output
    assert "Call ledger: 1 call record(s) redacted." in result.output
    assert b"2025550111" not in (data_dir / HUB_FILE).read_bytes()


def test_a_shared_number_is_refused_without_all_shared(data_dir: Path) -> None:
    ingested(data_dir, *FAMILY)

    result = CliRunner().invoke(main, ["forget", "+12125550199"])

    assert 1 == result.exit_code
    assert "pass --all-shared" in result.output


def test_a_running_server_that_does_not_confirm_is_named(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    served(data_dir)
    db = ThreadLocalDatabase(data_dir / HUB_FILE, FORGETS_SCHEMA)
    SqliteForgetLog(db).confirm("web-7:4242", 0, {})  # alive, but it stopped polling
    db.close()
    monkeypatch.setenv("CAHUB_FORGET_WAIT_S", "0.3")

    started = time.monotonic()
    result = CliRunner().invoke(main, ["forget", STRANGER])

    assert 1 == result.exit_code
    assert "did not confirm within the wait: web-7:4242" in result.output
    assert time.monotonic() - started < 5


SEGMENT = {"CAHUB_PROFILE_PROVIDERS": "embedded,segment", "CAHUB_SEGMENT_SPACE_ID": "spa_1",
           "CAHUB_SEGMENT_TOKEN": "segment-token"}


def cached_remotely(redis_url: str, prefix: str) -> RedisProfileCache:
    """A server's shared cache of Segment's answers, holding Ada's."""
    cache = RedisProfileCache(redis_url, provider="segment", secret=b"the hub's", hit_ttl=300,
                              miss_ttl=30, prefix=prefix, timeout_s=1.0, connect_timeout_s=1.0)
    ada = [Identity(namespace="Phone_E.164", id="+14155550134")]
    cache.write(ada, Profile(source="segment", profile_id="ada"), cache.read(ada).generation)
    return cache


def test_with_no_server_running_the_command_empties_the_shared_cache_itself(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, redis_server: str, redis_prefix: str,
) -> None:
    ingested(data_dir, ADA)
    cache = cached_remotely(redis_server, redis_prefix)
    for name, value in {**SEGMENT, "CAHUB_REDIS_URL": redis_server,
                        "CAHUB_REDIS_PREFIX": redis_prefix}.items():
        monkeypatch.setenv(name, value)

    result = CliRunner().invoke(main, ["forget", "ada@example.com"])

    left = cache.read([Identity(namespace="Phone_E.164", id="+14155550134")]).cached
    cache.close()
    assert 0 == result.exit_code, result.output
    assert "Shared cache: 1 remote provider answer(s) dropped from Redis." in result.output
    assert None is left


def test_a_shared_cache_that_cannot_be_emptied_fails_the_command(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    ingested(data_dir, ADA)
    for name, value in {**SEGMENT, "CAHUB_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}.items():
        monkeypatch.setenv(name, value)

    result = CliRunner().invoke(main, ["forget", "ada@example.com"])

    assert 1 == result.exit_code
    assert "Profile store: removed 1 person(s)" in result.output  # the rest was done
    assert "Redis could not be reached" in result.output


def test_on_postgresql_forget_leaves_no_row_version_holding_the_person(
        data_dir: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAHUB_DATABASE_URL", postgres_url)
    app = create_app(make_settings(data_dir, database_url=postgres_url), start_background=False)
    try:
        services(app).store.ingest("profiles", [json.dumps(ADA)])
        signed_post(app.test_client(), "/twilio/voice", call_form("CA" + "1" * 32,
                                                                  "+14155550134"))
    finally:
        close_app(app)
    with psycopg.connect(postgres_url) as connection:
        tables = [f"{schema}.{name}" for schema, name in connection.execute(
            "SELECT schemaname, tablename FROM pg_tables"
            " WHERE schemaname IN ('public', 'profile_store')").fetchall()]
    holding = {needle: [t for t in tables if row_versions_holding(postgres_url, t, needle)]
               for needle in (b"Lovelace", b"ada@example.com", b"4155550134")}
    assert "profile_store.fragments" in holding[b"Lovelace"]  # the check finds what is there
    assert "profile_store.identities" in holding[b"ada@example.com"]

    result = CliRunner().invoke(main, ["forget", "ada@example.com"])

    assert 0 == result.exit_code, result.output
    assert "Profile store: removed 1 person(s)" in result.output
    assert "PostgreSQL: the profile store's tables" in result.output
    for needle in (b"Lovelace", b"ada@example.com", b"4155550134"):
        assert [] == [t for t in tables if row_versions_holding(postgres_url, t, needle)], needle
