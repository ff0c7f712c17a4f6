"""Lines that could poison the store are rejected at the edge, with their number and reason.

Each case here was once accepted, then broke a later load or every lookup of the person.
A rejected line costs only itself: the good lines around it load, and the person can be
loaded again and looked up afterwards.
"""

from __future__ import annotations

import json

import pytest

from app import build_store
from hub.settings import HubConfig
from hub.summary import build_summary, caller_info
from lookup.phone import classify_caller
from lookup.store import IngestWarning, Rejection
from tests.support import make_settings

ADA_ID = {"Email": [{"id": "ada@example.com"}]}
ADA = {"identityMap": ADA_ID, "person": {"name": {"fullName": "Ada Lovelace"}}}
GRACE = {"identityMap": {"Email": [{"id": "grace@example.com"}]}, "loyalty": {"tier": "gold"}}
HUGE = 123456789012345678901234567890


def event(event_id: str, timestamp: str = "2026-11-20T10:00:00Z", **fields: object) -> dict:
    return {"_id": event_id, "timestamp": timestamp, "eventType": "commerce.purchases",
            "identityMap": ADA_ID, **fields}


def one_rejection(report):
    """(lines loaded, the number of the one rejected line)."""
    (rejection,) = report.rejected
    return report.loaded, rejection.line


@pytest.mark.parametrize(
    "poison",
    [
        {"n": HUGE},
        {"n": -HUGE},
        {"n": 2**63},  # one past what SQLite and PostgreSQL's bigint hold
        {"n": -(2**63) - 1},
        {"deep": {"list": [1, {"x": HUGE}]}},
        {"identityMap": {**ADA_ID, "Loyalty": [{"id": "L1", "points": HUGE}]}},
    ],
)
def test_an_integer_beyond_64_bits_is_a_rejected_line(load, poison):
    report = load("profiles", GRACE, {**ADA, **poison}, {**GRACE, "n": 1})

    assert (2, 2) == one_rejection(report)
    assert "64-bit" in report.rejected[0].reason


def test_an_integer_at_the_64_bit_edges_loads(load, find):
    report = load("profiles", {**ADA, "low": -(2**63), "high": 2**63 - 1})

    assert (1, ()) == (report.loaded, report.rejected)
    assert (-(2**63), 2**63 - 1) == (find("Email", "ada@example.com").attributes["low"],
                                     find("Email", "ada@example.com").attributes["high"])


def test_an_integer_beyond_64_bits_in_an_event_is_a_rejected_line(load):
    report = load("events", event("e1"), event("e2", commerce={"order": {"total": HUGE}}))

    assert (1, 2) == one_rejection(report)


def test_a_big_number_inside_a_string_is_only_text(load, find):
    report = load("profiles", {**ADA, "note": f"ref:{HUGE},"})

    assert (1, ()) == (report.loaded, report.rejected)
    assert f"ref:{HUGE}," == find("Email", "ada@example.com").attributes["note"]


def test_a_person_whose_big_integer_was_rejected_loads_again_and_is_found(load, find):
    load("profiles", {**ADA, "n": HUGE})
    load("profiles", ADA, dataset="crm")

    report = load("profiles", {**ADA, "loyalty": {"tier": "gold"}}, dataset="loyalty")

    assert (1, ()) == (report.loaded, report.rejected)
    assert "gold" == find("Email", "ada@example.com").attributes["loyalty"]["tier"]


@pytest.mark.parametrize(
    "timestamp",
    [
        "0001-01-01T00:00:00+14:00",  # before year 1 in UTC
        "9999-12-31T23:59:59-14:00",  # after year 9999 in UTC
        "0001-01-01T00:00:00Z",  # cannot be shown in a time zone west of UTC
        "9999-12-31T23:59:59Z",  # nor east of it
    ],
)
def test_an_event_at_the_edges_of_the_calendar_is_a_rejected_line(load, find, timestamp):
    report = load("events", event("e1"), event("e2", timestamp),
                  event("e3", "2026-11-21T10:00:00Z"))

    assert (2, 2) == one_rejection(report)
    assert "timestamp" in report.rejected[0].reason
    assert ["e3", "e1"] == [e.id for e in find("Email", "ada@example.com").events]


@pytest.mark.parametrize("timestamp", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_a_profile_modified_at_the_edges_of_the_calendar_is_a_rejected_line(load, timestamp):
    report = load("profiles", GRACE, {**ADA, "_repo": {"lastModifiedDate": timestamp}})

    assert (1, 2) == one_rejection(report)
    assert "_repo.lastModifiedDate" in report.rejected[0].reason


@pytest.mark.parametrize("timestamp", ["0001-01-02T00:00:00Z", "9999-12-30T23:59:59.999999Z"])
def test_an_event_a_day_inside_the_calendar_loads_and_is_shown(load, find, timestamp):
    report = load("events", event("e1", timestamp))
    found = find("Email", "ada@example.com")

    summary = build_summary(caller_info(classify_caller("+14155550134", "US", ["Phone"])),
                            None, found, 0.1)

    assert (1, ()) == (report.loaded, report.rejected)
    assert timestamp[:10] == summary.recent_events[0].timestamp.isoformat()[:10]


def test_a_line_that_is_not_utf8_is_rejected_and_the_lines_around_it_load(store):
    lines = [json.dumps(GRACE).encode(), b'{"identityMap": {"Email": [{"id": "b\xe9@x.com"}]}}',
             json.dumps(ADA).encode()]

    report = store.ingest("profiles", lines)

    assert (2, (Rejection(line=2, reason="not UTF-8: byte 0xe9 at column 37"),)) == (
        report.loaded, report.rejected)


def test_lines_read_as_bytes_load_as_text_does(store, find):
    report = store.ingest("profiles", [(json.dumps(ADA) + "\r\n").encode()])

    assert (1, ()) == (report.loaded, report.rejected)
    assert "Ada Lovelace" == find("Email", "ada@example.com").attributes["person"]["name"][
        "fullName"]


@pytest.mark.parametrize(
    "first", ["\ufeff" + json.dumps(ADA), b"\xef\xbb\xbf" + json.dumps(ADA).encode()])
def test_a_byte_order_mark_before_the_first_record_is_not_part_of_it(store, first):
    report = store.ingest("profiles", [first])

    assert (1, ()) == (report.loaded, report.rejected)


def nested(depth: int, leaf: object = 1) -> object:
    value = leaf
    for _ in range(depth - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize("leaf", [1, None])  # a null makes the record be written again
def test_nesting_deeper_than_any_schema_is_a_rejected_line(load, leaf):
    report = load("profiles", GRACE, {**ADA, "x": nested(300, leaf)}, ADA)

    assert (2, 2) == one_rejection(report)
    assert "nested" in report.rejected[0].reason


def test_an_event_nested_deeper_than_any_schema_is_a_rejected_line(load):
    report = load("events", event("e1", web=nested(300)), event("e2"))

    assert (1, 1) == one_rejection(report)


def test_nesting_of_a_real_schema_loads(load):
    report = load("profiles", {**ADA, "x": nested(60, None)})

    assert (1, ()) == (report.loaded, report.rejected)


def test_a_line_longer_than_any_record_is_rejected_unread(load):
    report = load("profiles", GRACE, {**ADA, "notes": "x" * (2 << 20)}, ADA)

    assert (2, 2) == one_rejection(report)
    assert "too long" in report.rejected[0].reason


@pytest.mark.parametrize("number", ["+86-282452253", "0086 282 452 253", "+86 56 696"])
def test_a_withheld_pseudo_number_is_no_identity_however_it_is_written(load, number):
    report = load("profiles", {"identityMap": {"Phone": [{"id": number}]}})

    assert (0, "no usable identity in identityMap") == (report.loaded,
                                                        report.rejected[0].reason)


def test_an_ecid_of_other_digits_than_ascii_is_no_identity(load):
    report = load("profiles", {"identityMap": {"ECID": [{"id": "\u0661" * 38}]}})

    assert (0, "no usable identity in identityMap") == (report.loaded,
                                                        report.rejected[0].reason)


def scores(**values: object) -> dict:
    return {**ADA, "_cah": {"scores": values}}


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (1.5, "1.5 is outside 0..1"),
        (-0.1, "-0.1 is outside 0..1"),
        ("7", "'7' is outside 0..1"),
        ("NaN", "'NaN' is not a finite number"),
        ("high", "'high' is not a number"),
        (True, "True is not a number"),
        ({"value": 0.5}, "an object is not a number"),
    ],
)
def test_a_churn_propensity_out_of_range_is_dropped_with_a_warning(load, find, value, reason):
    report = load("profiles", GRACE, scores(churnPropensity=value, lifetimeValue=1234.5))
    attributes = find("Email", "ada@example.com").attributes

    expected = IngestWarning(
        line=2, reason=f"dropped _cah.scores.churnPropensity (churn_propensity): {reason}")
    assert (2, (), (expected,)) == (report.loaded, report.rejected, report.warnings)
    assert {"lifetimeValue": 1234.5} == attributes["_cah"]["scores"]


@pytest.mark.parametrize("value", ["Infinity", "-inf", "1e999", "nan"])
def test_a_lifetime_value_that_is_not_finite_is_dropped_with_a_warning(load, find, value):
    report = load("profiles", scores(lifetimeValue=value, churnPropensity=0.8))

    assert 1 == len(report.warnings)
    assert "_cah.scores.lifetimeValue (lifetime_value)" in report.warnings[0].reason
    assert {"churnPropensity": 0.8} == find("Email", "ada@example.com").attributes["_cah"][
        "scores"]


@pytest.mark.parametrize("value", [0, 1, 0.82, "0.5"])
def test_a_churn_propensity_in_range_loads_without_a_warning(load, find, value):
    report = load("profiles", scores(churnPropensity=value))

    assert (1, ()) == (report.loaded, report.warnings)
    assert value == find("Email", "ada@example.com").attributes["_cah"]["scores"][
        "churnPropensity"]


def test_a_score_the_field_map_moves_is_checked_where_the_map_puts_it(make_store, load_into,
                                                                       find_in):
    store = make_store(fields={"churn_propensity": "_acme.churn"})
    report = load_into(store)("profiles", {**scores(churnPropensity=5), "_acme": {"churn": 5}})

    assert ["dropped _acme.churn (churn_propensity): 5 is outside 0..1"] == [
        w.reason for w in report.warnings]
    attributes = find_in(store)("Email", "ada@example.com").attributes
    assert ({}, {"churnPropensity": 5}) == (attributes["_acme"], attributes["_cah"]["scores"])


def test_an_older_valid_score_is_shown_when_a_newer_one_is_dropped(load, find):
    load("profiles", {**scores(churnPropensity=0.3),
                      "_repo": {"lastModifiedDate": "2026-01-01T00:00:00Z"}})
    load("profiles", {**scores(churnPropensity=3),
                      "_repo": {"lastModifiedDate": "2026-06-01T00:00:00Z"}}, dataset="crm")

    assert 0.3 == find("Email", "ada@example.com").attributes["_cah"]["scores"][
        "churnPropensity"]


def test_the_hubs_store_checks_the_scores_where_its_settings_field_map_puts_them(tmp_path):
    settings = make_settings(tmp_path, hub=HubConfig(fields={"lifetime_value": "_acme.ltv"}))
    store = build_store(settings, tmp_path / "store.db")
    try:
        report = store.ingest("profiles", [json.dumps({**ADA, "_acme": {"ltv": "Infinity"}})])
    finally:
        store.close()

    assert ["dropped _acme.ltv (lifetime_value): 'Infinity' is not a finite number"] == [
        w.reason for w in report.warnings]


def test_a_key_written_twice_means_its_last_value_now_and_after_a_merge(load, find):
    twice = '{"identityMap": {"Email": [{"id": "ada@example.com"}]}, "tier": "a", "tier": "b"}'
    load("profiles", twice)
    shown_first = find("Email", "ada@example.com").attributes["tier"]
    load("profiles", {**ADA, "loyalty": {"tier": "gold"}}, dataset="crm")

    assert ("b", "b") == (shown_first, find("Email", "ada@example.com").attributes["tier"])


def test_an_identity_map_written_twice_links_its_last_value(load, find):
    load("profiles", '{"identityMap": {"Email": [{"id": "old@example.com"}]},'
                     ' "identityMap": {"Email": [{"id": "ada@example.com"}]}}')

    assert (None, True) == (find("Email", "old@example.com"),
                            find("Email", "ada@example.com") is not None)
