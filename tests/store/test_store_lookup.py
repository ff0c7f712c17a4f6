"""Lookup: the Profile a provider returns, events, audiences, errors and threads."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from datetime import UTC, datetime

import pytest

from hub.models import AudienceMembership, Identity
from hub.ports import HubError, TransientError
from lookup.store import EmbeddedProfileStore

ADA = {"identityMap": {"Email": [{"id": "ada@example.com"}]}}
ADA_EMAIL = [Identity(namespace="Email", id="ada@example.com")]


def event(n, day, **fields):
    return {
        "_id": f"e{n}",
        "timestamp": f"2026-11-{day:02d}T10:00:00Z",
        "eventType": "t",
        "identityMap": {"Email": [{"id": "ada@example.com"}]},
        **fields,
    }


def test_an_unknown_identity_is_none(load, find):
    load("profiles", ADA)

    assert find("Email", "nobody@example.com") is None


def test_an_empty_store_finds_nobody(find):
    assert find("Phone_E.164", "+14155550134") is None


def test_an_unusable_identity_is_skipped(load, find):
    load("profiles", ADA)

    assert find("Phone", "anonymous") is None


def test_the_profile_says_where_it_came_from(load, find):
    load("profiles", ADA)

    profile = find("Email", "ada@example.com")

    assert profile is not None
    assert "embedded" == profile.source


def test_events_are_the_newest_first_up_to_the_limit(tmp_path):
    store = EmbeddedProfileStore(tmp_path / "store.db", event_limit=3)
    try:
        store.ingest(
            "events", [json.dumps(event(n, day)) for n, day in enumerate([3, 9, 1, 12, 7])]
        )
        profile = store.lookup(ADA_EMAIL, time.monotonic() + 5)
    finally:
        store.close()

    assert profile is not None
    assert ["e3", "e1", "e4"] == [e.id for e in profile.events]


def test_an_event_is_its_record_without_the_envelope(load, find):
    load("events", event(1, 20, marketing={"campaignName": "Winter Sale 2026"}))

    profile = find("Email", "ada@example.com")

    assert profile is not None
    (only,) = profile.events
    assert ("e1", datetime(2026, 11, 20, 10, tzinfo=UTC), "t") == (
        only.id,
        only.timestamp,
        only.type,
    )
    assert {"marketing": {"campaignName": "Winter Sale 2026"}} == only.data


def test_event_times_with_offsets_are_returned_in_utc(load, find):
    load("events", {**event(1, 20), "timestamp": "2026-11-20T12:30:00.250+02:00"})

    profile = find("Email", "ada@example.com")

    assert profile is not None
    assert datetime(2026, 11, 20, 10, 30, 0, 250_000, tzinfo=UTC) == profile.events[0].timestamp


def test_audiences_carry_their_names_and_every_status(load, find):
    load("audiences", {"id": "a1", "name": "High value"}, {"id": "a2", "name": "Churn risk"})
    load(
        "profiles",
        {
            **ADA,
            "segmentMembership": {
                "ups": {
                    "a1": {"status": "realized"},
                    "a2": {"status": "exited"},
                    "a9": {"status": "existing"},
                }
            },
        },
    )

    profile = find("Email", "ada@example.com")

    assert profile is not None
    expected = (
        AudienceMembership(id="a1", name="High value", status="realized"),
        AudienceMembership(id="a2", name="Churn risk", status="exited"),
        AudienceMembership(id="a9", name=None, status="existing"),
    )
    assert expected == profile.audiences


def test_audience_names_loaded_after_the_profile_are_used(load, find):
    load("profiles", {**ADA, "segmentMembership": {"ups": {"a1": {"xdm:status": "existing"}}}})
    load("audiences", {"id": "a1", "name": "High value"})

    profile = find("Email", "ada@example.com")

    assert profile is not None
    assert (AudienceMembership(id="a1", name="High value", status="existing"),) == profile.audiences


def test_a_lookup_past_its_deadline_is_a_transient_error(load, store):
    load("profiles", ADA)

    with pytest.raises(TransientError):
        store.lookup(ADA_EMAIL, time.monotonic() - 1)


def test_creating_a_store_opens_nothing(tmp_path):
    EmbeddedProfileStore(tmp_path / "data" / "store.db")

    assert [] == list(tmp_path.iterdir())


def test_ping_passes_on_a_new_store(tmp_path):
    store = EmbeddedProfileStore(tmp_path / "data" / "store.db")
    try:
        store.ping()
    finally:
        store.close()

    assert (tmp_path / "data" / "store.db").exists()


def test_ping_fails_on_a_file_that_is_not_a_store(tmp_path):
    path = tmp_path / "store.db"
    path.write_text("not a database " * 100)
    store = EmbeddedProfileStore(path)

    with pytest.raises(HubError):
        store.ping()


def test_ping_fails_where_the_file_cannot_be_created(tmp_path):
    (tmp_path / "file").write_text("")
    store = EmbeddedProfileStore(tmp_path / "file" / "store.db")

    with pytest.raises(HubError):
        store.ping()


def test_counts_name_every_part_of_the_store(store):
    expected = {"persons": 0, "fragments": 0, "identities": 0, "events": 0, "audiences": 0}

    assert expected == store.counts()


def test_threads_look_up_at_once_with_their_own_connections(load, store):
    load("profiles", ADA)
    found: list[bool] = []

    def look() -> None:
        found.extend(store.lookup(ADA_EMAIL, time.monotonic() + 5) is not None for _ in range(20))

    threads = [threading.Thread(target=look) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [True] * 80 == found


def test_a_closed_store_reopens_on_next_use(load, store):
    load("profiles", ADA)
    store.close()

    assert store.lookup(ADA_EMAIL, time.monotonic() + 5) is not None


def test_the_store_file_is_in_wal_mode(tmp_path):
    store = EmbeddedProfileStore(tmp_path / "store.db")
    store.ingest("profiles", [json.dumps(ADA)])
    store.close()

    with sqlite3.connect(store.path) as connection:
        mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
    connection.close()

    assert "wal" == mode


def test_a_profile_is_found_by_its_profile_id(load, find, store):
    load("profiles", ADA, {"identityMap": {"Email": [{"id": "grace@example.com"}]}})
    profile = find("Email", "ada@example.com")
    assert profile is not None

    assert profile == store.get_profile(profile.profile_id)


def test_an_unknown_profile_id_is_none(load, store):
    load("profiles", ADA)

    assert store.get_profile("0123456789abcdef") is None


def test_a_merged_away_profile_id_is_none(load, find, store):
    old_email = {"identityMap": {"Email": [{"id": "ada@old.example.org"}]}}
    load("profiles", ADA, old_email)
    load("events", event(1, 1), event(2, 2))
    smaller = find("Email", "ada@old.example.org")

    load("profiles", {"identityMap": {"Email": [{"id": "ada@example.com"},
                                                {"id": "ada@old.example.org"}]}})

    assert smaller is not None
    assert store.get_profile(smaller.profile_id) is None
