"""Deletion on request: forgetting a person leaves nothing of them behind."""

from __future__ import annotations

import json

import pytest

from hub.models import AmbiguousMatch, Profile
from hub.ports import PermanentError
from lookup.store import EmbeddedProfileStore, ForgetReport

ADA_CRM = {
    "identityMap": {
        "CRMID": [{"id": "003A", "primary": True}],
        "Phone": [{"id": "(415) 555-0134"}],
        "Email": [{"id": "ada@example.com"}],
    },
    "person": {"name": {"lastName": "Lovelace"}},
}
ADA_LOYALTY = {
    "identityMap": {"loyaltyId": [{"id": "L1"}], "Email": [{"id": "ada@example.com"}]},
    "loyalty": {"tier": "gold", "note": "Lovelace"},
}
GRACE = {"identityMap": {"Email": [{"id": "grace@example.com"}]}, "person": {"name": "Hopper"}}
MARIA = {"identityMap": {"CRMID": [{"id": "M1"}], "Phone": [{"id": "+12125550199"}]},
         "person": {"name": "María"}}
TOMAS = {"identityMap": {"CRMID": [{"id": "T2"}], "Phone": [{"id": "+12125550199"}]},
         "person": {"name": "Tomás"}}


def event(event_id, identity_map):
    return {"_id": event_id, "timestamp": "2026-11-20T10:00:00Z", "eventType": "t",
            "identityMap": identity_map, "note": "Lovelace" if "ada" in event_id else "-"}


@pytest.fixture
def ada_and_grace(load):
    load("profiles", ADA_CRM, GRACE)
    load("profiles", ADA_LOYALTY, dataset="loyalty")
    load("events", event("ada-1", {"Email": [{"id": "ada@example.com"}]}),
         event("ada-2", {"ECID": [{"id": "4" * 38}], "Phone": [{"id": "+14155550134"}]}),
         event("grace-1", {"Email": [{"id": "grace@example.com"}]}))


def test_forgetting_reports_what_was_removed(store, ada_and_grace):
    report = store.forget("Email", "ada@example.com")

    assert ForgetReport(found=True, persons=1, fragments=2, events=2, identities=5) == report


def test_forgetting_leaves_no_row_of_the_person_in_any_table(store, ada_and_grace, rows_of):
    store.forget("Email", "ada@example.com")

    leftovers = {
        table: [row for row in rows if any(
            marker in str(row) for marker in ("Lovelace", "ada", "003A", "L1", "4444", "0134"))]
        for table, rows in rows_of(store).items()
    }
    assert all(rows == [] for rows in leftovers.values()), leftovers


def test_forgetting_leaves_everyone_else(store, ada_and_grace, find):
    before = find("Email", "grace@example.com")

    store.forget("Email", "ada@example.com")

    assert before == find("Email", "grace@example.com")
    assert {"persons": 1, "fragments": 1, "identities": 1, "events": 1, "audiences": 0} == (
        store.counts())


def test_a_forgotten_person_is_found_by_none_of_their_identities(store, ada_and_grace, find):
    store.forget("Email", "ada@example.com")

    asked = [("Email", "ada@example.com"), ("Phone", "+14155550134"), ("CRMID", "003A"),
             ("loyaltyId", "L1"), ("ECID", "4" * 38)]
    assert [None] * 5 == [find(*identity) for identity in asked]


def test_the_deleted_text_is_not_left_in_the_database(kit, store, ada_and_grace):
    assert kit.remnants(store, b"Lovelace")  # the check finds what is there

    store.forget("Email", "ada@example.com")

    # SQLite: in no file (secure_delete, then the WAL checkpointed); PostgreSQL: in no row
    # version of any table, live or dead (VACUUM after the forget).
    assert [] == kit.remnants(store, b"Lovelace")


@pytest.mark.parametrize(
    ("namespace", "value"),
    [
        ("Phone", "(415) 555-0134"),
        ("Phone_E.164", "+14155550134"),
        ("Email", "ADA@example.com"),
        ("CRMID", "003A"),
        (None, "415.555.0134"),
        (None, "Ada@Example.com"),
        (None, "L1"),
        (None, "4" * 38),
    ],
)
def test_the_identity_is_read_as_ingest_reads_it(store, ada_and_grace, namespace, value):
    assert store.forget(namespace, value).found


def test_an_unknown_identity_is_not_found(store, ada_and_grace):
    before = store.counts()

    report = store.forget(None, "nobody@example.com")

    assert (ForgetReport(found=False), before) == (report, store.counts())


def test_a_value_in_another_namespace_is_not_found(store, ada_and_grace):
    assert not store.forget("loyaltyId", "003A").found


def test_a_shared_number_is_refused_and_says_how_many_people_it_touches(load, store):
    load("profiles", MARIA, TOMAS)

    with pytest.raises(PermanentError, match="shared by 2 people"):
        store.forget("Phone", "+12125550199")
    assert 2 == store.counts()["persons"]


def test_a_shared_number_forgets_everyone_it_touches_when_told_to(load, store, rows_of):
    load("profiles", MARIA, TOMAS)
    load("events", event("call", {"Phone": [{"id": "+12125550199"}]}))

    report = store.forget("Phone", "+12125550199", all_shared=True)

    assert ForgetReport(found=True, persons=2, fragments=2, events=1, identities=3) == report
    assert {"persons": [], "identities": [], "shared_links": [], "fragments": [], "events": []} == {
        table: rows for table, rows in rows_of(store).items() if table in
        ("persons", "identities", "shared_links", "fragments", "events")}


def test_forgetting_one_person_removes_their_share_of_the_number(load, store, find):
    load("profiles", MARIA, TOMAS)

    store.forget("CRMID", "M1")

    match = find("Phone", "+12125550199")
    assert isinstance(match, AmbiguousMatch)
    assert (1, ["Tomás"]) == (match.count, [c.attributes["person"]["name"]
                                            for c in match.candidates])


def test_a_number_nobody_shares_any_more_goes_with_its_last_person(load, store, rows_of):
    load("profiles", MARIA, TOMAS)
    load("events", event("call", {"Phone": [{"id": "+12125550199"}]}))

    store.forget("CRMID", "M1")
    store.forget("CRMID", "T2")

    assert {table: [] for table in ("persons", "identities", "shared_links", "events")} == {
        table: rows_of(store)[table] for table in ("persons", "identities", "shared_links",
                                                   "events")}


def test_a_person_forgotten_is_a_person_loaded_again_from_scratch(store, load, find):
    load("profiles", GRACE)
    store.forget("Email", "grace@example.com")

    load("profiles", GRACE)

    profile = find("Email", "grace@example.com")
    assert isinstance(profile, Profile)
    assert {"name": "Hopper"} == profile.attributes["person"]


def test_every_connection_deletes_securely_even_after_a_forget(tmp_path) -> None:
    store = EmbeddedProfileStore(tmp_path / "store.db")
    store.ingest("profiles", [json.dumps({"identityMap": {"Email": [{"id": "ada@example.com"}]}})])
    store.forget("Email", "ada@example.com")

    # Whatever this build of SQLite does by default (Debian's deletes securely, others not).
    assert (1,) == store._connections.get().execute("PRAGMA secure_delete").fetchone()


def test_the_people_forget_would_remove_are_read_without_removing_them(
    store, ada_and_grace, find,
) -> None:
    people = store.people("Email", "ada@example.com")

    assert ["ada@example.com"] == [i.id for p in people for i in p.identities
                                   if i.namespace == "Email"]
    assert find("Email", "ada@example.com") is not None
