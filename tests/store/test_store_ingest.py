"""Ingest: what is loaded, what is rejected (with line number and reason), idempotence."""

from __future__ import annotations

import json

import pytest

from lookup.store import EmbeddedProfileStore, IngestReport, Rejection

ADA = {
    "identityMap": {
        "CRMID": [{"id": "003A", "primary": True}],
        "Phone": [{"id": "(415) 555-0134"}],
        "Email": [{"id": "ada@example.com"}],
    },
    "person": {"name": {"firstName": "Ada", "lastName": "Lovelace"}},
}
GRACE = {"identityMap": {"Email": [{"id": "grace@example.com"}]}, "loyalty": {"tier": "silver"}}
PURCHASE = {
    "_id": "e1",
    "timestamp": "2026-11-20T10:00:00Z",
    "eventType": "commerce.purchases",
    "identityMap": {"Email": [{"id": "ada@example.com"}]},
}


def test_loaded_profiles_are_counted(load, store):
    report = load("profiles", ADA, GRACE)

    assert IngestReport(kind="profiles", loaded=2, rejected=()) == report
    expected = {"persons": 2, "fragments": 2, "identities": 4, "events": 0, "audiences": 0}
    assert expected == store.counts()


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"identityMap": ', "not JSON: unexpected end of data at column 17"),
        ("[1, 2]", "not a JSON object (a list)"),
        ('"ada@example.com"', "not a JSON object (a string)"),
        (json.dumps({"person": {}}), "no identityMap"),
        (json.dumps({"identityMap": ["Email"]}), "identityMap is not an object"),
        (json.dumps({"identityMap": {}}), "no usable identity in identityMap"),
        (
            json.dumps({"identityMap": {"Phone": [{"id": "anonymous"}], "Email": [{"id": " "}]}}),
            "no usable identity in identityMap",
        ),
        (
            json.dumps({**GRACE, "_repo": {"lastModifiedDate": "last Tuesday"}}),
            "_repo.lastModifiedDate is not an ISO-8601 timestamp: 'last Tuesday'",
        ),
        (
            json.dumps({"identityMap": {"Account": [{"id": f"A{n}"} for n in range(21)]}}),
            "too many identities (21; at most 20 per record)",
        ),
        ('{"identityMap": {"Email": [{"id": "a@example.com"}]}, "score": NaN}',
         "not JSON: unexpected character, expected a JSON value at column 64"),
        (
            json.dumps({"identityMap": {"CRMID": [{"id": "A"}, {"id": "B"}]}}),
            "two values of the unique namespace CRMID in one record",
        ),
    ],
)
def test_a_bad_profile_line_is_rejected_with_its_reason(load, line, reason):
    report = load("profiles", ADA, line)

    assert (1, (Rejection(line=2, reason=reason),)) == (report.loaded, report.rejected)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"_id": None}, "event has no _id"),
        ({"_id": ""}, "event has no _id"),
        ({"eventType": None}, "event has no eventType"),
        ({"timestamp": None}, "timestamp is missing or not a string"),
        ({"timestamp": "20/11/2026"}, "timestamp is not an ISO-8601 timestamp: '20/11/2026'"),
        (
            {"timestamp": "2026-11-20T10:00:00"},
            "timestamp has no time zone (add Z or an offset): '2026-11-20T10:00:00'",
        ),
        ({"identityMap": None}, "no identityMap"),
    ],
)
def test_a_bad_event_line_is_rejected_with_its_reason(load, change, reason):
    event = {k: v for k, v in {**PURCHASE, **change}.items() if v is not None}

    report = load("events", event)

    assert (Rejection(line=1, reason=reason),) == report.rejected


@pytest.mark.parametrize(
    ("audience", "reason"),
    [
        ({"name": "High value"}, "audience has no id"),
        ({"id": "a1"}, "audience has no name"),
        (
            {"id": "a1", "name": "High value", "description": 7},
            "audience description is not a string",
        ),
    ],
)
def test_a_bad_audience_line_is_rejected_with_its_reason(load, audience, reason):
    assert (Rejection(line=1, reason=reason),) == load("audiences", audience).rejected


def test_a_rejection_reads_as_line_and_reason():
    assert "line 7: no identityMap" == str(Rejection(line=7, reason="no identityMap"))


def test_blank_lines_are_skipped_silently_but_keep_their_numbers(load):
    report = load("profiles", "", ADA, "   ", "not json", "\n")

    assert 1 == report.loaded
    assert [4] == [rejection.line for rejection in report.rejected]


def test_a_bad_line_does_not_stop_the_load(load, find):
    report = load("profiles", "{", "{", GRACE)

    assert 1 == report.loaded
    assert find("Email", "grace@example.com") is not None


def test_progress_is_reported_every_thousand_lines_and_at_the_end(store):
    lines = [json.dumps({"identityMap": {"CRMID": [{"id": f"C{n}"}]}}) for n in range(2500)]
    calls: list[int] = []

    store.ingest("profiles", lines, progress=calls.append)

    assert [1000, 1000, 500] == calls


def test_loading_the_same_data_again_changes_no_count(load, store):
    load("profiles", ADA, GRACE)
    load("events", PURCHASE)
    before = store.counts()

    load("profiles", ADA, GRACE)
    load("events", PURCHASE)

    assert before == store.counts()


def test_an_event_id_seen_twice_is_one_event(load, store):
    load("events", PURCHASE, {**PURCHASE, "eventType": "commerce.productViews"})

    assert 1 == store.counts()["events"]


def test_an_audience_loaded_again_is_updated_not_duplicated(load, store):
    load("audiences", {"id": "a1", "name": "Hi value"}, {"id": "a1", "name": "High value"})

    assert 1 == store.counts()["audiences"]


def test_an_unknown_kind_is_refused(store: EmbeddedProfileStore):
    with pytest.raises(ValueError, match="unknown kind 'people'"):
        store.ingest("people", [])  # type: ignore[arg-type]


def _profile_lines(count: int) -> list[str]:
    return [json.dumps({"identityMap": {"Email": [{"id": f"p{n}@example.com"}]}})
            for n in range(count)]


def test_a_long_load_pauses_the_garbage_collector_and_restores_it(store, monkeypatch):
    import gc

    from lookup.store import ingest, parsing

    monkeypatch.setattr(parsing, "CHUNK_LINES", 10)
    monkeypatch.setattr(ingest, "GC_PAUSE_AFTER", 3)
    seen: list[bool] = []
    assert gc.isenabled()

    report = store.ingest("profiles", _profile_lines(60), progress=lambda _: seen.append(
        gc.isenabled()))

    assert report.loaded == 60
    assert seen == [True, True, False, False, False, False]  # paused from the third chunk on
    assert gc.isenabled()


def test_a_load_leaves_a_paused_collector_paused_and_restores_it_after_a_failure(
    store, monkeypatch,
):
    import gc

    from lookup.store import ingest, parsing

    monkeypatch.setattr(parsing, "CHUNK_LINES", 10)
    monkeypatch.setattr(ingest, "GC_PAUSE_AFTER", 1)
    gc.disable()
    try:
        store.ingest("profiles", _profile_lines(30))
        assert not gc.isenabled()
    finally:
        gc.enable()

    def fail(_: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.ingest("profiles", _profile_lines(30), progress=fail)
    assert gc.isenabled()
