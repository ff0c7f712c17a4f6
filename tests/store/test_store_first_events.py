"""A first load of events: held back, then stored side by side per person, in one go.

Whatever the way they are written, the events must end where a later load would put
them: with the person they belong to after every merge and every identity that became
shared during the load.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from hub.models import AmbiguousMatch, Profile
from lookup.store import ProfileStore, ingest, parsing
from tests.store.conftest import StoreKit

ADA = {"identityMap": {"CRMID": [{"id": "A1", "primary": True}],
                       "Phone": [{"id": "+14155550134"}], "Email": [{"id": "ada@example.com"}]}}
GRACE = {"identityMap": {"CRMID": [{"id": "G1", "primary": True}],
                         "Email": [{"id": "grace@example.com"}]}}
LIN = {"identityMap": {"Email": [{"id": "lin@example.com"}]}}
MAY = {"identityMap": {"Phone": [{"id": "+14155550188"}]}}
UNRELATED = {"identityMap": {"Email": [{"id": "someone.else@example.com"}]}}


def event(n: int, day: int, **identities: str) -> dict[str, Any]:
    return {
        "_id": f"e{n}",
        "timestamp": f"2026-11-{day:02d}T10:00:00Z",
        "eventType": "web.webpagedetails.pageViews",
        "identityMap": {ns: [{"id": value}] for ns, value in identities.items()},
    }


def stored_order(kit: StoreKit, store: ProfileStore) -> list[tuple[int, int]]:
    """(person, time) of every stored event, in the order they were stored."""
    return [(row[1], row[2]) for row in kit.rows_of(store)["events"]]


def event_ids(found: Profile | AmbiguousMatch | None) -> set[str]:
    assert isinstance(found, Profile)
    return {e.id for e in found.events}


@pytest.fixture
def one_line_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every line its own chunk, so that merges happen between chunks of one load."""
    monkeypatch.setattr(parsing, "CHUNK_LINES", 1)


def test_a_first_load_stores_each_persons_events_side_by_side(kit, load, store):
    load("profiles", ADA, GRACE, LIN)
    # Interleaved, as an export in time order is: one event of each person per day.
    load("events", *(event(3 * day + k, day + 1, Email=email) for day in range(4)
                      for k, email in enumerate(("ada@example.com", "grace@example.com",
                                                  "lin@example.com"))))

    order = stored_order(kit, store)
    assert 12 == len(order)
    assert order == sorted(order)  # grouped by person, oldest first within each


def test_a_later_load_is_not_held_back(kit, load, store):
    load("profiles", ADA, GRACE)
    load("events", event(1, 1, Email="ada@example.com"))
    load("events", event(2, 2, Email="grace@example.com"), event(3, 3, Email="ada@example.com"))

    persons = [person for person, _ in stored_order(kit, store)]
    assert persons[0] == persons[2] != persons[1]  # as they came: only a first load is ordered


def test_events_held_back_move_with_the_persons_a_later_event_merges(
        one_line_chunks, load, find):
    load("profiles", LIN, MAY)
    load("events", event(1, 1, Email="lin@example.com"), event(2, 2, Phone="+14155550188"),
         event(3, 3, Email="lin@example.com", Phone="+14155550188"))

    assert {"e1", "e2", "e3"} == event_ids(find("Phone", "+14155550188"))
    assert {"e1", "e2", "e3"} == event_ids(find("Email", "lin@example.com"))


def test_events_held_back_leave_a_person_with_the_number_that_became_shared(
        one_line_chunks, load, find):
    load("profiles", ADA, GRACE)
    # e1 is Ada's through her number, until Grace's CRM id turns up with the same number.
    load("events", event(1, 1, Phone="+14155550134"), event(2, 2, Email="ada@example.com"),
         event(3, 3, CRMID="G1", Phone="+14155550134"))

    assert isinstance(find("Phone", "+14155550134"), AmbiguousMatch)
    assert {"e2"} == event_ids(find("CRMID", "A1"))
    assert {"e3"} == event_ids(find("CRMID", "G1"))


@pytest.mark.parametrize("events", [
    [event(1, 1, Email="lin@example.com"), event(2, 2, Phone="+14155550188"),
     event(3, 3, Email="lin@example.com", Phone="+14155550188"), event(4, 4, Email="new@x.org")],
    [event(1, 1, Phone="+14155550134"), event(2, 2, Email="ada@example.com"),
     event(3, 3, CRMID="G1", Phone="+14155550134"), event(4, 1, Phone="+14155550134")],
])
def test_a_first_load_ends_as_a_later_load_would(
        one_line_chunks, make_store, load_into, find_in, events):
    first, later = make_store(), make_store()
    for store in (first, later):
        load_into(store)("profiles", ADA, GRACE, LIN, MAY, UNRELATED)
    load_into(later)("events", event(99, 1, Email="someone.else@example.com"))
    for store in (first, later):
        load_into(store)("events", *events)

    for namespace, value in (("CRMID", "A1"), ("CRMID", "G1"), ("Email", "lin@example.com"),
                             ("Phone", "+14155550188"), ("Phone", "+14155550134"),
                             ("Email", "new@x.org")):
        one, other = find_in(first)(namespace, value), find_in(later)(namespace, value)
        assert type(one) is type(other)
        if isinstance(one, Profile):
            assert event_ids(one) == event_ids(other)


def test_a_first_load_that_fails_leaves_no_event(load, store):
    load("profiles", ADA)

    def fail_midway(lines: int) -> None:
        raise RuntimeError("the operator pressed ctrl-c")

    with pytest.raises(RuntimeError):
        store.ingest("events", [f'{{"_id": "e{n}", "timestamp": "2026-11-01T10:00:00Z",'
                                f' "eventType": "x", "identityMap": {{"Email":'
                                f' [{{"id": "ada@example.com"}}]}}}}' for n in range(3)],
                     progress=fail_midway)

    assert 0 == store.counts()["events"]
    load("events", event(1, 1, Email="ada@example.com"))  # and the next load is a first one
    assert 1 == store.counts()["events"]


def test_the_operator_hears_of_storing_a_large_first_load_and_that_it_goes_on(
        monkeypatch, load, store):
    monkeypatch.setattr(ingest, "NOTE_HELD", 3)
    monkeypatch.setattr(ingest, "HEARTBEAT_S", 0.0)
    monkeypatch.setattr(ingest, "HEARTBEAT_STEPS", 10)
    load("profiles", ADA)
    heard: list[str] = []
    store.ingest("events", [json.dumps(event(n, 1 + n % 20, Email="ada@example.com"))
                            for n in range(3)], note=heard.append)

    assert "storing 3 events in person order (a first load of events)" == heard[0]
    assert len(heard) > 1  # at least one heartbeat
    assert all(text.startswith("still storing events, ") for text in heard[1:])
    assert 3 == store.counts()["events"]


def test_a_small_first_load_is_stored_without_a_word(load, store):
    load("profiles", ADA)
    heard: list[str] = []
    store.ingest("events", [json.dumps(event(1, 1, Email="ada@example.com"))],
                 note=heard.append)

    assert ([], 1) == (heard, store.counts()["events"])
