"""The identity graph: records sharing an identity are one person, whatever the order."""

from __future__ import annotations

import itertools
import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.models import Identity

CRM = {
    "identityMap": {
        "CRMID": [{"id": "003A", "primary": True}],
        "Phone": [{"id": "(415) 555-0134"}],
        "Email": [{"id": "Ada@Example.com"}],
    },
    "person": {"name": {"firstName": "Ada", "lastName": "Lovelace"}},
}
LOYALTY = {
    "identityMap": {
        "loyaltyId": [{"id": "L1", "primary": True}],
        "Email": [{"id": "ada@example.com"}],
    },
    "loyalty": {"tier": "gold"},
}
VISIT = {
    "_id": "e1",
    "timestamp": "2026-11-20T10:00:00Z",
    "eventType": "web.webpagedetails.pageViews",
    "identityMap": {"ECID": [{"id": "1" * 38}], "Email": [{"id": "ADA@example.com"}]},
}


@pytest.mark.parametrize(
    ("written", "e164"),
    [
        ("(415) 555-0134", "+14155550134"),
        ("415.555.0134", "+14155550134"),
        ("415-555-0134", "+14155550134"),
        ("+1 415 555 0134", "+14155550134"),
        ("1-415-555-0134", "+14155550134"),
        ("+14155550134", "+14155550134"),
        ("+44 20 7946 0958", "+442079460958"),
        ("0044 20 7946 0958", "+442079460958"),
        ("+44 (0)20 7946 0958", "+442079460958"),
        ("+33 1 99 00 12 34", "+33199001234"),
    ],
)
def test_a_phone_is_found_by_e164_whatever_its_spelling(load, find, written, e164):
    load("profiles", {"identityMap": {"Phone": [{"id": written}]}, "n": 1})

    profile = find("Phone_E.164", e164)

    assert profile is not None
    assert 1 == profile.attributes["n"]


@pytest.mark.parametrize("stored_as", ["Phone", "Phone_E.164", "mobilePhone"])
@pytest.mark.parametrize("asked_as", ["Phone", "Phone_E.164", "mobilePhone"])
def test_phone_namespaces_share_one_key_space(load, find, stored_as, asked_as):
    load("profiles", {"identityMap": {stored_as: [{"id": "+1 (415) 555-0134"}]}})

    assert find(asked_as, "+14155550134") is not None


def test_a_person_is_found_by_email_in_any_case(load, find):
    load("profiles", CRM)

    assert find("Email", "ADA@EXAMPLE.COM") is not None


def test_a_person_is_found_by_crm_id(load, find):
    load("profiles", CRM)

    profile = find("CRMID", "003A")

    assert profile is not None
    assert "Ada" == profile.attributes["person"]["name"]["firstName"]


def test_a_value_in_another_namespace_is_not_a_match(load, find):
    load("profiles", CRM)

    assert find("loyaltyId", "003A") is None


def test_the_first_identity_that_resolves_wins(load, store):
    load("profiles", CRM, {"identityMap": {"Email": [{"id": "grace@example.com"}]}, "n": 2})
    identities = [
        Identity(namespace="Email", id="nobody@example.com"),
        Identity(namespace="Email", id="grace@example.com"),
        Identity(namespace="CRMID", id="003A"),
    ]

    profile = store.lookup(identities, time.monotonic() + 5)

    assert profile is not None
    assert 2 == profile.attributes["n"]


@settings(max_examples=12, deadline=None)
@given(order=st.permutations([("profiles", CRM), ("profiles", LOYALTY), ("events", VISIT)]))
def test_a_split_person_is_joined_by_email_whatever_the_arrival_order(kit, order):
    store = kit.make()
    try:
        for kind, record in order:
            store.ingest(kind, [json.dumps(record)])
        profile = store.lookup(
            [Identity(namespace="Phone", id="+14155550134")], time.monotonic() + 5
        )
        assert 1 == store.counts()["persons"]
    finally:
        kit.discard(store)

    assert profile is not None
    assert ("Ada", "gold") == (
        profile.attributes["person"]["name"]["firstName"],
        profile.attributes["loyalty"]["tier"],
    )
    assert ["e1"] == [event.id for event in profile.events]


def test_a_later_record_linking_two_persons_merges_them(load, find, store):
    load("profiles", CRM)
    load(
        "profiles",
        {
            "identityMap": {"loyaltyId": [{"id": "L1"}], "Email": [{"id": "ada@old.example.org"}]},
            "loyalty": {"tier": "gold"},
        },
    )
    load("events", {**VISIT, "identityMap": {"Email": [{"id": "ada@old.example.org"}]}})
    assert 2 == store.counts()["persons"]

    load("profiles", {"identityMap": {"CRMID": [{"id": "003A"}], "loyaltyId": [{"id": "L1"}]}})

    profile = find("Phone_E.164", "+14155550134")
    assert 1 == store.counts()["persons"]
    assert profile is not None
    assert ("gold", ["e1"]) == (
        profile.attributes["loyalty"]["tier"],
        [e.id for e in profile.events],
    )


def test_merging_keeps_the_larger_persons_profile_id(load, find):
    load("profiles", CRM)
    load("events", {**VISIT, "identityMap": {"CRMID": [{"id": "003A"}]}})
    larger = find("CRMID", "003A")
    load("profiles", LOYALTY | {"identityMap": {"loyaltyId": [{"id": "L1"}]}})

    load("profiles", {"identityMap": {"CRMID": [{"id": "003A"}], "loyaltyId": [{"id": "L1"}]}})

    merged = find("loyaltyId", "L1")
    assert larger is not None
    assert merged is not None
    assert larger.profile_id == merged.profile_id


def test_every_identity_of_a_person_finds_the_same_profile(load, find):
    load("profiles", CRM, LOYALTY)
    load("events", VISIT)
    asked = [
        ("CRMID", "003A"),
        ("Phone_E.164", "+14155550134"),
        ("Email", "ada@example.com"),
        ("loyaltyId", "L1"),
        ("ECID", "1" * 38),
    ]

    profile_ids = {
        profile.profile_id for profile in (find(*identity) for identity in asked) if profile
    }

    assert 1 == len(profile_ids)


def test_a_profile_lists_all_the_persons_identities(load, find):
    load("profiles", CRM, LOYALTY)
    load("events", VISIT)

    profile = find("CRMID", "003A")

    assert profile is not None
    expected = {
        ("CRMID", "003A"),
        ("Phone", "+14155550134"),
        ("Email", "ada@example.com"),
        ("loyaltyId", "L1"),
        ("ECID", "1" * 38),
    }
    assert expected == {(identity.namespace, identity.id) for identity in profile.identities}


def test_an_event_of_an_unknown_visitor_is_stitched_once_the_visitor_is_known(load, find):
    load("events", {**VISIT, "identityMap": {"ECID": [{"id": "1" * 38}]}})

    load("profiles", {**CRM, "identityMap": {**CRM["identityMap"], "ECID": [{"id": "1" * 38}]}})

    profile = find("CRMID", "003A")
    assert profile is not None
    assert ["e1"] == [event.id for event in profile.events]


def test_records_sharing_nothing_stay_apart(load, store):
    people = [{"identityMap": {"Email": [{"id": f"p{n}@example.com"}]}} for n in range(5)]

    load("profiles", *people)

    assert 5 == store.counts()["persons"]


def test_a_chain_of_links_in_one_batch_makes_one_person(load, store):
    chain = [{"identityMap": {"Account": [{"id": f"A{n}"}, {"id": f"A{n + 1}"}]}} for n in range(5)]

    load("profiles", *itertools.chain(chain[::2], chain[1::2]))

    assert 1 == store.counts()["persons"]
