"""Event retention: events older than the retention are not returned, not kept, purged."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hub.models import Profile

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
ADA = {"identityMap": {"Email": [{"id": "ada@example.com"}]}, "person": {"name": "Ada"}}


def event(event_id, day, email="ada@example.com"):
    return {"_id": event_id, "timestamp": f"2026-11-{day:02d}T12:00:00Z", "eventType": "t",
            "identityMap": {"Email": [{"id": email}]}}


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = NOW.timestamp()

    def __call__(self) -> float:
        return self.now

    def advance(self, days: float) -> None:
        self.now += days * 86_400


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def kept(make_store, clock, load_into, find_in):
    """A store keeping events 7 days, its load and its find."""
    store = make_store(event_retention_days=7, clock=clock)
    return store, load_into(store), find_in(store)


def event_ids(profile):
    assert isinstance(profile, Profile)
    return [e.id for e in profile.events]


def test_events_within_the_retention_are_returned(kept):
    _, load, find = kept
    load("profiles", ADA)
    load("events", event("recent", 19), event("edge", 14))

    assert ["recent", "edge"] == event_ids(find("Email", "ada@example.com"))


def test_events_older_than_the_retention_are_not_stored(kept):
    store, load, _ = kept

    report = load("events", event("old", 1), event("recent", 19))

    assert (2, 1) == (report.loaded, store.counts()["events"])


def test_events_that_age_past_the_retention_are_no_longer_returned(kept, clock):
    _, load, find = kept
    load("profiles", ADA)
    load("events", event("e1", 15), event("e2", 19))

    clock.advance(days=3)

    assert ["e2"] == event_ids(find("Email", "ada@example.com"))


def test_purge_deletes_the_expired_events(kept, clock):
    store, load, _ = kept
    load("profiles", ADA)
    load("events", event("e1", 15), event("e2", 19))
    clock.advance(days=3)

    purged = store.purge_expired()

    assert (1, 1) == (purged, store.counts()["events"])


def test_an_ingest_purges_the_expired_events(kept, clock):
    store, load, _ = kept
    load("events", event("e1", 15), event("e2", 19))
    clock.advance(days=3)

    load("audiences", {"id": "a1", "name": "Anyone"})

    assert 1 == store.counts()["events"]


def test_a_person_known_only_by_expired_events_vanishes(kept, clock):
    store, load, find = kept
    load("events", event("e1", 15, email="visitor@example.com"))
    clock.advance(days=3)

    store.purge_expired()

    assert (None, 0, 0) == (find("Email", "visitor@example.com"),
                            store.counts()["persons"], store.counts()["identities"])


def test_a_person_with_a_profile_stays_when_their_events_expire(kept, clock):
    store, load, find = kept
    load("profiles", ADA)
    load("events", event("e1", 15))
    clock.advance(days=30)

    store.purge_expired()

    assert [] == event_ids(find("Email", "ada@example.com"))


def test_without_a_retention_nothing_is_purged(load, store):
    load("events", event("e1", 1))

    assert (0, 1) == (store.purge_expired(), store.counts()["events"])


def test_without_a_retention_old_events_are_returned(load, find):
    load("events", *(event(f"e{day}", day) for day in (1, 2)))

    assert ["e2", "e1"] == event_ids(find("Email", "ada@example.com"))


def test_a_lookup_never_purges(kept, clock, rows_of):
    store, load, find = kept
    load("events", event("e1", 15))
    clock.advance(days=30)

    find("Email", "ada@example.com")

    assert 1 == len(rows_of(store)["events"])


def test_an_event_exactly_the_retention_old_is_kept(kept):
    _, load, find = kept

    load("events", event("seven-days-old", 13))

    assert ["seven-days-old"] == event_ids(find("Email", "ada@example.com"))
