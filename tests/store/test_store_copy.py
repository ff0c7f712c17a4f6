"""``cahub store copy``: a SQLite store copied into PostgreSQL answers every lookup as the
source did, and the PostgreSQL store goes on from there. Against the real PostgreSQL."""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from cli.main import main
from lookup.store import EmbeddedProfileStore
from lookup.store.copy import CopyError, copy_store, source_counts
from lookup.store.postgres.store import PostgresProfileStore
from tests.backends import free_port
from tests.store.pg_answers import answers
from tests.store.test_postgres_bulk import EVERY_IDENTITY, line

AUDIENCES = [{"id": "gold", "name": "Gold customers"}, {"id": "churn", "name": "At risk"}]


def source_store(path: Path) -> EmbeddedProfileStore:
    """A store with merges, shared numbers, detached CRM ids, events and audiences."""
    rng = random.Random(7)  # noqa: S311 - test data, not secrets
    namespaces = list({ns for ns, _ in EVERY_IDENTITY})
    batch = []
    for _ in range(60):
        chosen = rng.sample(namespaces, rng.randint(1, 3))
        identities = [(ns, rng.choice([v for n, v in EVERY_IDENTITY if n == ns]))
                      for ns in chosen]
        batch.append((rng.choice(["profiles", "events"]), identities,
                      rng.choice([None, "2026-01-01T00:00:00Z"]), rng.randint(0, 3)))
    store = EmbeddedProfileStore(path)
    store.ingest("audiences", [json.dumps(a) for a in AUDIENCES])
    for kind in ("profiles", "events"):
        lines = [line(k, n, ids, modified, colour)
                 for n, (k, ids, modified, colour) in enumerate(batch) if k == kind]
        store.ingest(kind, lines)
    store.ingest("profiles", [json.dumps({
        "identityMap": {"Email": [{"id": "gold@example.com"}]},
        "segmentMembership": {"ups": {"gold": {"status": "realized"}}}})])
    return store


def test_a_copied_store_answers_every_lookup_as_its_source(tmp_path, postgres_url):
    path = tmp_path / "profiles.sqlite3"
    source = source_store(path)
    identities = [*EVERY_IDENTITY, ("Email", "gold@example.com")]
    try:
        expected = answers(source, identities, with_id=True)
        counts = source.counts()
        with sqlite3.connect(path) as connection:
            uids = [uid for (uid,) in connection.execute(
                "SELECT uid FROM persons WHERE shared = 0")]
        connection.close()
        every_person = {uid: source.get_profile(uid) for uid in uids}
    finally:
        source.close()
    seen: list[int] = []

    report = copy_store(path, postgres_url, progress=seen.append)

    assert sum(seen) == sum(report.counts.values()) == sum(source_counts(path).values())
    target = PostgresProfileStore(postgres_url)
    try:
        assert target.counts() == counts
        assert answers(target, identities, with_id=True) == expected
        assert {uid: target.get_profile(uid) for uid in uids} == every_person
        assert len(every_person) == counts["persons"]
        assert None not in every_person.values()
        assert any(isinstance(a, tuple) and a[0] == "shared" for a in expected.values())
        assert expected[("Email", "gold@example.com")][3] == (
            ("gold", "Gold customers", "realized"),)
        # The copy goes on as a store of its own: new persons and events numbered after.
        target.ingest("profiles", [json.dumps({"identityMap": {"Email": [{"id": "new@x.org"}]}})])
        target.ingest("events", [json.dumps({
            "_id": "after-copy", "timestamp": "2026-11-21T00:00:00Z", "eventType": "t",
            "identityMap": {"Email": [{"id": "new@x.org"}]}})])
        assert target.counts()["persons"] == counts["persons"] + 1
        assert answers(target, identities, with_id=True) == expected
    finally:
        target.close()


def test_a_target_holding_a_store_is_refused_unless_replaced(tmp_path, postgres_url):
    path = tmp_path / "profiles.sqlite3"
    source_store(path).close()
    copy_store(path, postgres_url)
    with psycopg.connect(postgres_url) as conn:
        conn.execute("INSERT INTO profile_store.audiences VALUES ('extra', 'Extra', NULL)")

    with pytest.raises(CopyError, match=r"not empty.*--replace"):
        copy_store(path, postgres_url)
    report = copy_store(path, postgres_url, replace=True)

    with psycopg.connect(postgres_url) as conn:
        row = conn.execute("SELECT count(*) FROM profile_store.audiences").fetchone()
    assert row is not None
    assert row[0] == report.counts["audiences"] == len(AUDIENCES)


def test_the_command_copies_with_a_progress_bar_and_says_what_it_copied(
    tmp_path, postgres_url, monkeypatch
):
    monkeypatch.setenv("CAHUB_DATA_DIR", str(tmp_path))
    source_store(tmp_path / "profiles.sqlite3").close()

    result = CliRunner().invoke(main, ["store", "copy", "--to", postgres_url])

    assert result.exit_code == 0, result.output
    assert "copying profiles.sqlite3" in result.stderr
    assert "counts verified" in result.stdout
    again = CliRunner().invoke(main, ["store", "copy", "--to", postgres_url])
    assert again.exit_code == 1
    assert "is not empty" in again.stderr
    assert "--replace" in again.stderr


def test_the_command_says_clearly_what_is_missing(tmp_path):
    runner = CliRunner()
    missing = runner.invoke(main, ["store", "copy", "--from", str(tmp_path / "none.sqlite3"),
                                   "--to", "postgresql://127.0.0.1/x"])
    assert missing.exit_code == 1
    assert f"no store at {tmp_path / 'none.sqlite3'}" in missing.stderr

    source_store(tmp_path / "profiles.sqlite3").close()
    url = f"postgresql://someone:s3cret@127.0.0.1:{free_port()}/hub"
    away = runner.invoke(main, ["store", "copy", "--from", str(tmp_path / "profiles.sqlite3"),
                                "--to", url])
    assert away.exit_code == 1
    assert f"cannot reach PostgreSQL at 127.0.0.1:{url.split(':')[-1]}" in away.stderr
    assert "s3cret" not in away.output
