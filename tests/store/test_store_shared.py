"""Shared identities: a number on two people with different CRM ids links neither of them."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.models import AmbiguousMatch, Identity, Profile
from lookup.store import Rejection

LANDLINE = "+12125550199"
MARIA = {
    "identityMap": {
        "CRMID": [{"id": "M1", "primary": True}],
        "Phone": [{"id": "(212) 555-0199"}],
        "Email": [{"id": "maria@example.com"}],
    },
    "person": {"name": {"firstName": "María"}},
}
TOMAS = {
    "identityMap": {
        "CRMID": [{"id": "T2", "primary": True}],
        "Phone": [{"id": "+1 212 555 0199"}],
        "Email": [{"id": "tomas@example.org"}],
    },
    "person": {"name": {"firstName": "Tomás"}},
}
MARIA_LOYALTY = {
    "identityMap": {"loyaltyId": [{"id": "L9"}], "Email": [{"id": "maria@example.com"}]},
    "loyalty": {"tier": "gold"},
}


def event(event_id, identity_map, day=1):
    return {
        "_id": event_id,
        "timestamp": f"2026-11-{day:02d}T10:00:00Z",
        "eventType": "support.contact",
        "identityMap": identity_map,
    }


LANDLINE_CALL = event("call", {"Phone": [{"id": LANDLINE}]})
MARIA_VISIT = event("visit", {"Email": [{"id": "maria@example.com"}]}, day=2)


def first_names(match):
    assert isinstance(match, AmbiguousMatch)
    return [c.attributes["person"]["name"]["firstName"] for c in match.candidates]


def test_a_number_on_two_crm_records_does_not_merge_them(load, store):
    load("profiles", MARIA, TOMAS)

    assert 2 == store.counts()["persons"]


def test_the_shared_number_is_an_ambiguous_match(load, find):
    load("profiles", MARIA, TOMAS)

    match = find("Phone_E.164", LANDLINE)

    assert isinstance(match, AmbiguousMatch)
    expected = ("embedded", Identity(namespace="Phone_E.164", id=LANDLINE), 2)
    assert expected == (match.source, match.identity, match.count)
    assert ["María", "Tomás"] == first_names(match)


def test_the_candidates_are_full_stitched_profiles(load, find):
    load("profiles", MARIA, TOMAS, MARIA_LOYALTY)
    load("events", MARIA_VISIT)

    maria = find("Email", "maria@example.com")
    match = find("Phone", LANDLINE)

    assert isinstance(match, AmbiguousMatch)
    assert maria == match.candidates[0]
    assert ("gold", ["visit"]) == (
        match.candidates[0].attributes["loyalty"]["tier"],
        [e.id for e in match.candidates[0].events],
    )


def test_each_person_is_still_found_by_their_own_identities(load, find):
    load("profiles", MARIA, TOMAS)

    maria, tomas = find("CRMID", "M1"), find("Email", "tomas@example.org")

    assert isinstance(maria, Profile)
    assert isinstance(tomas, Profile)
    assert ("María", "Tomás") == (
        maria.attributes["person"]["name"]["firstName"],
        tomas.attributes["person"]["name"]["firstName"],
    )


def test_a_shared_number_is_in_no_persons_identities(load, find):
    load("profiles", MARIA, TOMAS)

    maria = find("CRMID", "M1")

    assert isinstance(maria, Profile)
    assert {("CRMID", "M1"), ("Email", "maria@example.com")} == {
        (i.namespace, i.id) for i in maria.identities
    }


@pytest.mark.parametrize(
    ("asked", "expected"),
    [
        ([("Phone", LANDLINE), ("Email", "maria@example.com")], AmbiguousMatch),
        ([("Email", "nobody@example.com"), ("Phone", LANDLINE)], AmbiguousMatch),
        ([("Email", "maria@example.com"), ("Phone", LANDLINE)], Profile),
    ],
)
def test_the_first_identity_that_resolves_wins_even_ambiguously(load, store, asked, expected):
    load("profiles", MARIA, TOMAS)
    identities = [Identity(namespace=ns, id=value) for ns, value in asked]

    assert isinstance(store.lookup(identities, time.monotonic() + 5), expected)


def test_an_event_with_only_the_shared_number_is_in_nobodys_history(load, find):
    load("profiles", MARIA, TOMAS)

    load("events", LANDLINE_CALL)

    match = find("Phone", LANDLINE)
    assert isinstance(match, AmbiguousMatch)
    assert [(), ()] == [c.events for c in match.candidates]


def test_an_event_with_the_shared_number_and_an_email_is_that_persons(load, find):
    load("profiles", MARIA, TOMAS)

    both = {"Phone": [{"id": LANDLINE}], "Email": [{"id": "maria@example.com"}]}
    load("events", event("e", both))

    maria = find("Email", "maria@example.com")
    assert isinstance(maria, Profile)
    assert ["e"] == [e.id for e in maria.events]


def test_a_third_person_on_the_number_is_a_third_candidate(load, find):
    load("profiles", MARIA, TOMAS)

    load("profiles", {"identityMap": {"CRMID": [{"id": "A3"}], "Phone": [{"id": LANDLINE}]},
                      "person": {"name": {"firstName": "Ana"}}})

    assert ["María", "Tomás", "Ana"] == first_names(find("Phone", LANDLINE))


def test_an_email_on_two_crm_records_is_shared_too(load, find, store):
    desk = [{"id": "desk@example.com"}]
    load("profiles", {"identityMap": {"CRMID": [{"id": "A"}], "Email": desk}},
         {"identityMap": {"CRMID": [{"id": "B"}], "Email": desk}})

    assert 2 == store.counts()["persons"]
    assert isinstance(find("Email", "desk@example.com"), AmbiguousMatch)


def test_two_values_of_a_unique_namespace_in_one_record_are_rejected(load):
    report = load("profiles", {"identityMap": {"CRMID": [{"id": "A"}, {"id": "B"}]}})

    expected = (Rejection(line=1, reason="two values of the unique namespace CRMID in one record"),)
    assert expected == report.rejected


def test_without_unique_namespaces_a_shared_number_merges_the_people(make_store, load_into):
    store = make_store(unique_namespaces=())

    load_into(store)("profiles", MARIA, TOMAS)

    assert 1 == store.counts()["persons"]


def test_unique_namespaces_are_configurable(make_store, load_into, find_in):
    store = make_store(unique_namespaces=("Email",))
    load = load_into(store)

    phone = [{"id": LANDLINE}]
    load("profiles", {"identityMap": {"Email": [{"id": "a@example.com"}], "Phone": phone}},
         {"identityMap": {"Email": [{"id": "b@example.com"}], "Phone": phone}})

    assert isinstance(find_in(store)("Phone", LANDLINE), AmbiguousMatch)


def test_loading_the_family_again_changes_nothing(load, store, rows_of):
    def graph():
        rows = rows_of(store)
        return rows["identities"], rows["shared_links"], rows["events"], rows["persons"]

    load("profiles", MARIA, TOMAS)
    load("events", LANDLINE_CALL, MARIA_VISIT)
    before = graph()

    load("profiles", MARIA, TOMAS)
    load("events", LANDLINE_CALL, MARIA_VISIT)

    assert before[:3] == graph()[:3]
    assert [row[:5] for row in before[3]] == [row[:5] for row in graph()[3]]


def test_a_candidate_can_be_fetched_by_its_profile_id(load, find, store):
    load("profiles", MARIA, TOMAS)
    match = find("Phone", LANDLINE)
    assert isinstance(match, AmbiguousMatch)

    tomas = store.get_profile(match.candidates[1].profile_id)

    assert match.candidates[1] == tomas


RECORDS = [
    ("profiles", MARIA),
    ("profiles", TOMAS),
    ("profiles", MARIA_LOYALTY),
    ("events", LANDLINE_CALL),
    ("events", MARIA_VISIT),
]


@settings(max_examples=30, deadline=None)
@given(order=st.permutations(RECORDS), together=st.booleans())
def test_the_family_comes_out_the_same_in_every_arrival_order(kit, order, together):
    store = kit.make()
    try:
        if together:  # one chunk, one transaction
            for kind in ("profiles", "events"):
                store.ingest(kind, [json.dumps(r) for k, r in order if k == kind])
        else:
            for kind, record in order:
                store.ingest(kind, [json.dumps(record)])
        match = store.lookup([Identity(namespace="Phone", id=LANDLINE)], time.monotonic() + 5)
        persons = store.counts()["persons"]
    finally:
        kit.discard(store)

    assert isinstance(match, AmbiguousMatch)
    outcome = [(c.attributes["person"]["name"]["firstName"], c.attributes.get("loyalty"),
                [e.id for e in c.events]) for c in match.candidates]
    assert (2, [("María", {"tier": "gold"}, ["visit"]), ("Tomás", None, [])]) == (
        persons, sorted(outcome)
    )
