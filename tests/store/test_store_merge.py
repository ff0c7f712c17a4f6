"""Timestamp-ordered merge of a person's fragments, and fragment versions on re-ingest."""

from __future__ import annotations

CRM_KEY = {"CRMID": [{"id": "003A", "primary": True}], "Email": [{"id": "ada@example.com"}]}
LOYALTY_KEY = {"loyaltyId": [{"id": "L1", "primary": True}], "Email": [{"id": "ada@example.com"}]}


def fragment(identity_map, modified=None, **attributes):
    record = {"identityMap": identity_map, **attributes}
    if modified:
        record["_repo"] = {"lastModifiedDate": modified}
    return record


def attributes_of(find):
    profile = find("Email", "ada@example.com")
    assert profile is not None
    return profile.attributes


def test_the_newer_fragment_wins_per_leaf_whatever_the_arrival_order(load, find):
    newer = fragment(LOYALTY_KEY, "2026-11-01T00:00:00Z", loyalty={"tier": "gold"})
    older = fragment(CRM_KEY, "2026-01-01T00:00:00Z", loyalty={"tier": "bronze", "points": 7})

    load("profiles", newer, dataset="loyalty")
    load("profiles", older, dataset="crm")

    assert {"tier": "gold", "points": 7} == attributes_of(find)["loyalty"]


def test_timestamps_with_offsets_are_compared_as_instants(load, find):
    earlier = fragment(CRM_KEY, "2026-11-01T09:00:00+02:00", tier="crm")  # 07:00Z
    later = fragment(LOYALTY_KEY, "2026-11-01T08:00:00Z", tier="loyalty")

    load("profiles", later, earlier)

    assert "loyalty" == attributes_of(find)["tier"]


def test_without_timestamps_the_later_arrival_wins(load, find):
    load("profiles", fragment(CRM_KEY, tier="first"), dataset="crm")
    load("profiles", fragment(LOYALTY_KEY, tier="second"), dataset="loyalty")

    assert "second" == attributes_of(find)["tier"]


def test_objects_merge_key_by_key_and_lists_are_replaced_whole(load, find):
    load(
        "profiles",
        fragment(
            CRM_KEY, "2026-01-01T00:00:00Z", person={"name": {"firstName": "Ada"}}, tags=[1, 2]
        ),
        fragment(LOYALTY_KEY, "2026-02-01T00:00:00Z", person={"name": {"lastName": "L"}}, tags=[3]),
    )

    attributes = attributes_of(find)

    assert {"firstName": "Ada", "lastName": "L"} == attributes["person"]["name"]
    assert [3] == attributes["tags"]


def test_a_null_does_not_erase_a_value(load, find):
    load(
        "profiles",
        fragment(CRM_KEY, "2026-01-01T00:00:00Z", loyalty={"tier": "gold"}),
        fragment(LOYALTY_KEY, "2026-02-01T00:00:00Z", loyalty={"tier": None, "points": 5}),
    )

    assert {"tier": "gold", "points": 5} == attributes_of(find)["loyalty"]


def test_identity_map_is_not_an_attribute(load, find):
    load("profiles", fragment(CRM_KEY, tier="gold"))

    assert {"tier": "gold"} == attributes_of(find)


def test_a_newer_version_of_a_fragment_replaces_it(load, find, store):
    load("profiles", fragment(CRM_KEY, "2026-01-01T00:00:00Z", phone="old", city="Paris"))

    load("profiles", fragment(CRM_KEY, "2026-02-01T00:00:00Z", phone="new"))

    assert {"phone": "new", "_repo": {"lastModifiedDate": "2026-02-01T00:00:00Z"}} == attributes_of(
        find
    )
    assert 1 == store.counts()["fragments"]


def test_an_older_version_of_a_fragment_does_not_replace_a_newer_one(load, find):
    load("profiles", fragment(CRM_KEY, "2026-02-01T00:00:00Z", phone="new"))

    load("profiles", fragment(CRM_KEY, "2026-01-01T00:00:00Z", phone="old"))

    assert "new" == attributes_of(find)["phone"]


def test_a_fragment_is_keyed_by_its_primary_identity(load, store):
    load("profiles", fragment(CRM_KEY, n=1))

    load("profiles", fragment({**CRM_KEY, "Email": [{"id": "ada@new.example.org"}]}, n=2))

    assert 1 == store.counts()["fragments"]


def test_without_a_primary_flag_the_first_identity_is_the_key(load, store):
    load("profiles", fragment({"Email": [{"id": "ada@example.com"}], "Account": [{"id": "A"}]}))

    load("profiles", fragment({"Email": [{"id": "ada@example.com"}], "Account": [{"id": "B"}]}))

    assert (1, 1) == (store.counts()["fragments"], store.counts()["persons"])


def test_the_same_key_in_two_datasets_is_two_fragments(load, store):
    load("profiles", fragment(CRM_KEY, n=1), dataset="crm")
    load("profiles", fragment(CRM_KEY, n=2), dataset="web")

    assert 2 == store.counts()["fragments"]
