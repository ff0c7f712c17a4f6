"""The identity cap: a person keeps their newest identities, the oldest go first."""

from __future__ import annotations

import pytest

from hub.models import Profile


def linked(first, last, namespace="Account"):
    """Records chaining ``namespace`` values ``first``..``last``, two per record."""
    return [{"identityMap": {namespace: [{"id": f"A{n}"}, {"id": f"A{n + 1}"}]}}
            for n in range(first, last)]


def identities_of(profile):
    assert isinstance(profile, Profile)
    return [identity.id for identity in profile.identities]


@pytest.fixture
def capped(make_store, load_into, find_in):
    store = make_store(max_identities=3)
    return store, load_into(store), find_in(store)


def test_a_person_keeps_at_most_the_cap(capped):
    store, load, _ = capped

    load("profiles", *linked(0, 5))

    assert (1, 3) == (store.counts()["persons"], store.counts()["identities"])


def test_the_oldest_identities_are_dropped_first(capped):
    _, load, find = capped
    load("profiles", *linked(0, 2))  # A0, A1, A2

    load("profiles", *linked(2, 4))  # A3, A4

    assert ["A2", "A3", "A4"] == identities_of(find("Account", "A4"))


def test_a_dropped_identity_no_longer_finds_the_person(capped):
    _, load, find = capped
    load("profiles", *linked(0, 4))

    assert find("Account", "A0") is None
    assert find("Account", "A4") is not None


def test_the_cap_applies_within_one_load_in_first_seen_order(capped):
    _, load, find = capped

    load("profiles", *linked(0, 6))

    assert ["A4", "A5", "A6"] == identities_of(find("Account", "A6"))


def test_a_person_under_the_cap_keeps_everything(capped):
    _, load, find = capped

    load("profiles", *linked(0, 2))

    assert ["A0", "A1", "A2"] == identities_of(find("Account", "A0"))


def test_the_default_cap_is_fifty_identities(load, find, store):
    load("profiles", *linked(0, 59))  # A0..A59: sixty identities

    assert 50 == store.counts()["identities"]
    assert [f"A{n}" for n in range(10, 60)] == identities_of(find("Account", "A59"))


def test_a_cap_below_one_is_refused(make_store):
    with pytest.raises(ValueError, match="max_identities"):
        make_store(max_identities=0)
