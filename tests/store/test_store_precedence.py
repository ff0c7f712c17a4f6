"""Dataset precedence, and changing the merge policy of a store that holds profiles."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.models import Identity, Profile
from lookup.store.merge import MergePolicy

EMAIL = {"Email": [{"id": "ada@example.com"}]}


def fragment(key, modified, **attributes):
    identity_map = {"Account": [{"id": key, "primary": True}], **EMAIL}
    return {"identityMap": identity_map, "_repo": {"lastModifiedDate": modified}, **attributes}


# The same person in three datasets; the web record is the newest, the CRM the oldest.
CRM = ("crm", fragment("C", "2026-01-01T00:00:00Z", tier="crm", city="Paris"))
LOYALTY = ("loyalty", fragment("L", "2026-06-01T00:00:00Z", tier="loyalty", points=7))
WEB = ("web", fragment("W", "2026-11-01T00:00:00Z", tier="web", device="phone"))
SUPPORT = ("support", fragment("S", "2026-10-01T00:00:00Z", tier="support"))


def merged(store, *datasets):
    for dataset, record in datasets:
        store.ingest("profiles", [json.dumps(record)], dataset=dataset)
    profile = store.lookup([Identity(namespace="Email", id="ada@example.com")],
                           time.monotonic() + 5)
    assert isinstance(profile, Profile)
    return profile.attributes


@pytest.fixture
def precedence(make_store):
    return make_store(merge_policy="dataset_precedence", dataset_order=("crm", "loyalty"))


def test_the_first_dataset_of_the_order_wins_though_older(precedence):
    assert "crm" == merged(precedence, LOYALTY, CRM)["tier"]


def test_a_leaf_only_a_later_dataset_holds_comes_through(precedence):
    attributes = merged(precedence, CRM, LOYALTY)

    assert ("Paris", 7) == (attributes["city"], attributes["points"])


def test_datasets_not_in_the_order_rank_after_those_in_it(precedence):
    assert "loyalty" == merged(precedence, WEB, LOYALTY)["tier"]


def test_datasets_not_in_the_order_are_merged_newest_first(precedence):
    attributes = merged(precedence, WEB, SUPPORT)

    assert ("web", "phone") == (attributes["tier"], attributes["device"])


def test_timestamp_order_lets_the_newest_fragment_win(store):
    assert "web" == merged(store, CRM, WEB, LOYALTY)["tier"]


@settings(max_examples=20, deadline=None)
@given(order=st.permutations([CRM, LOYALTY, WEB, SUPPORT]),
       policy=st.sampled_from(["timestamp_ordered", "dataset_precedence"]))
def test_the_merge_does_not_depend_on_arrival_order(kit, order, policy):
    with kit.made(merge_policy=policy, dataset_order=("crm", "loyalty")) as store:
        attributes = merged(store, *order)

    expected = {"timestamp_ordered": "web", "dataset_precedence": "crm"}[policy]
    assert (expected, "Paris", 7, "phone") == (
        attributes["tier"], attributes["city"], attributes["points"], attributes["device"]
    )


def test_a_changed_policy_needs_a_rebuild(kit, store):
    merged(store, CRM, WEB)

    again = kit.reopen(store, merge_policy="dataset_precedence", dataset_order=("crm",))
    try:
        assert again.needs_rebuild()
    finally:
        again.close()


def test_a_rebuild_merges_every_profile_under_the_new_policy(kit, store):
    merged(store, CRM, WEB)
    again = kit.reopen(store, merge_policy="dataset_precedence", dataset_order=("crm",))
    try:
        rebuilt = again.rebuild()
        attributes, stale = merged(again), again.needs_rebuild()
    finally:
        again.close()

    assert (1, "crm", False) == (rebuilt, attributes["tier"], stale)


def test_an_ingest_rebuilds_first_when_the_policy_changed(kit, store):
    merged(store, CRM, WEB)
    again = kit.reopen(store, merge_policy="dataset_precedence", dataset_order=("crm",))
    try:
        other = {"identityMap": {"Email": [{"id": "x@example.com"}]}}
        again.ingest("profiles", [json.dumps(other)])
        attributes = merged(again)
    finally:
        again.close()

    assert "crm" == attributes["tier"]


def test_lookups_serve_the_previous_merge_until_a_rebuild(kit, store):
    merged(store, CRM, WEB)

    again = kit.reopen(store, merge_policy="dataset_precedence", dataset_order=("crm",))
    try:
        attributes = merged(again)
    finally:
        again.close()

    assert "web" == attributes["tier"]


def test_a_new_store_needs_no_rebuild(store):
    assert not store.needs_rebuild()


def test_an_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="unknown merge policy 'newest'"):
        MergePolicy("newest")  # type: ignore[arg-type]
