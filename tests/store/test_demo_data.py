"""The bundled demo data: it loads cleanly, and Ada Lovelace is who the demo says she is."""

from __future__ import annotations

import json
import time

import pytest

from hub.models import AmbiguousMatch, Identity, Profile
from lookup.demo import DEMO_CALLER, DEMO_FILES, generate, load_demo
from lookup.phone import normalize_identity
from lookup.store.records import identity_key


@pytest.fixture
def ada(store):
    load_demo(store)
    profile = store.lookup(
        [Identity(namespace="Phone_E.164", id=DEMO_CALLER)], time.monotonic() + 5
    )
    assert isinstance(profile, Profile)
    return profile


def test_the_demo_loads_without_a_rejected_line(store):
    reports = load_demo(store)

    assert [(kind, ()) for kind, _, _ in DEMO_FILES] == [(r.kind, r.rejected) for r in reports]
    assert 300 <= store.counts()["persons"]
    assert 3000 <= store.counts()["events"]


def test_ada_is_stitched_from_crm_and_loyalty(ada):
    attributes = ada.attributes

    expected = ("Ada", "Lovelace", "ada@example.com", "gold", 1234.5, 0.82)
    assert expected == (
        attributes["person"]["name"]["firstName"],
        attributes["person"]["name"]["lastName"],
        attributes["personalEmail"]["address"],
        attributes["loyalty"]["tier"],
        attributes["_cah"]["scores"]["lifetimeValue"],
        attributes["_cah"]["scores"]["churnPropensity"],
    )


def test_ada_is_a_realized_member_of_high_value(ada):
    assert ("High value", "realized") in {(a.name, a.status) for a in ada.audiences}


def test_adas_newest_event_is_a_winter_sale_purchase(ada):
    newest = ada.events[0]

    assert ("commerce.purchases", "Winter Sale 2026") == (
        newest.type,
        newest.data["marketing"]["campaignName"],
    )
    assert 10 == len(ada.events)


def test_ada_is_known_by_every_identity_of_both_systems(ada):
    namespaces = {identity.namespace for identity in ada.identities}

    assert {"Phone", "Email", "CRMID", "loyaltyId", "ECID"} == namespaces


def test_ada_is_found_by_her_email(store, ada):
    by_email = store.lookup(
        [Identity(namespace="Email", id="ada@example.com")], time.monotonic() + 5
    )

    assert isinstance(by_email, Profile)
    assert ada.profile_id == by_email.profile_id


def test_every_demo_identity_is_usable():
    unusable = []
    for _, _, path in DEMO_FILES:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for namespace, items in json.loads(line).get("identityMap", {}).items():
                unusable += [
                    (path.name, number, namespace)
                    for item in items
                    if identity_key(namespace, item["id"], "US") is None
                ]

    assert [] == unusable


def test_the_family_landline_is_ambiguous_between_maria_and_tomas(store):
    load_demo(store)

    match = store.lookup([Identity(namespace="Phone_E.164", id="+12125550199")],
                         time.monotonic() + 5)

    assert isinstance(match, AmbiguousMatch)
    assert (2, ["María García", "Tomás García"]) == (
        match.count,
        [c.attributes["person"]["name"]["fullName"] for c in match.candidates],
    )


def test_the_family_landline_is_on_two_crm_records():
    crm = next(path for _, dataset, path in DEMO_FILES if dataset == "crm")
    phones = [
        normalize_identity("Phone", json.loads(line)["identityMap"]["Phone"][0]["id"], "US")
        for line in crm.read_text(encoding="utf-8").splitlines()
    ]

    assert 2 == phones.count("+12125550199")


def test_the_generator_reproduces_the_committed_files(tmp_path):
    generate.main([str(tmp_path)])

    for _, _, path in DEMO_FILES:
        assert path.read_bytes() == (tmp_path / path.name).read_bytes(), path.name
