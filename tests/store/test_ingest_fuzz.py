"""Fuzzing ingest: any bytes, any JSON value in any field, any identity.

What must hold whatever arrives: every line is loaded or rejected (never an exception),
and nothing loaded breaks anything later: a load of more fragments and events of the
same person, a lookup, the summary an agent sees and its text. Runs derandomized in CI
(``CI`` or ``CAHUB_NO_SKIP`` set), so a run there is repeatable.
"""

from __future__ import annotations

import json
import math
import os
import time
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hub.models import AmbiguousMatch, Identity, Profile, Summary
from hub.render import summary_text
from hub.summary import build_summary, caller_info
from hub.titles import RENDERERS
from lookup.phone import classify_caller
from lookup.store import ProfileStore
from lookup.store.audience_rules import AudienceRule, Condition
from lookup.store.computed import ComputedAttribute
from lookup.store.packing import unpack
from lookup.store.parsing import parse_chunk, parse_packed
from lookup.store.records import Rules
from lookup.store.validation import INT64_MAX, INT64_MIN

IN_CI = bool(os.environ.get("CI") or os.environ.get("CAHUB_NO_SKIP"))
FUZZ = settings(max_examples=100, deadline=None, derandomize=IN_CI,
                database=None if IN_CI else settings.default.database,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
ADA_PHONE = "+14155550134"
ADA_MAP = {"Email": [{"id": "ada@example.com", "primary": True}],
           "Phone": [{"id": "(415) 555-0134"}]}
COMPUTED = (
    ComputedAttribute(name="spend", function="sum", field="productListItems[].priceTotal"),
    ComputedAttribute(name="outcome", function="most_recent", field="_cah.call.outcome"),
    ComputedAttribute(name="calls", function="count", event_type="call.completed",
                      window_days=30),
)
RULES = (AudienceRule(id="big", name="Big spenders",
                      any=[Condition(path="_computed.spend", op=">", value=100),
                           Condition(path="loyalty.tier", op="==", value="gold")]),)

EDGES = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00Z",
         "9999-12-31T23:59:59.999999Z", "2026-11-20T10:00:00Z", "2026-11-20T10:00:00"]
BIG = [2**63, 2**63 - 1, -(2**63), -(2**63) - 1, 2**64, 10**30, -(10**400)]


def nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = {"a": value}
    return value


leaves = (st.none() | st.booleans() | st.integers(INT64_MIN, INT64_MAX)
          | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12)
          | st.sampled_from(["NaN", "Infinity", "1e999", "0.5", "7"]))
values = st.recursive(
    leaves, lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=12,
)
# What JSON can hold but a line may not: at most one per record, so that the others get
# through to the lookups.
poison = (st.sampled_from(BIG) | st.sampled_from([math.nan, math.inf, -math.inf])
          | st.integers(60, 300).map(nested) | st.integers())
offsets = st.timedeltas(min_value=-timedelta(hours=23, minutes=59),
                        max_value=timedelta(hours=23, minutes=59)).map(timezone)
timestamps = (st.datetimes(timezones=offsets).map(datetime.isoformat)
              | st.sampled_from(EDGES) | st.text(max_size=30) | values)


def mostly(usual: st.SearchStrategy, other: st.SearchStrategy) -> st.SearchStrategy:
    """``usual`` three times in four, else ``other``."""
    return st.integers(0, 3).flatmap(lambda n: usual if n else other)


def some(**fields: st.SearchStrategy) -> st.SearchStrategy[dict]:
    """A dict holding any of ``fields``."""
    return st.fixed_dictionaries({}, optional=fields)


identity_maps = st.just(ADA_MAP) | st.dictionaries(
    st.sampled_from(["Phone", "Email", "CRMID", "ECID"]) | st.text(max_size=6),
    st.lists(some(id=st.text(max_size=20) | values, primary=values), max_size=2),
    max_size=3,
).map(lambda extra: {**extra, **ADA_MAP})
profiles = st.tuples(
    identity_maps,
    some(person=some(name=some(firstName=values, lastName=values, fullName=values)),
         personalEmail=some(address=values), loyalty=some(tier=values),
         _cah=some(scores=some(lifetimeValue=values, churnPropensity=values)) | values,
         _repo=some(lastModifiedDate=timestamps) | values,
         segmentMembership=some(ups=st.dictionaries(st.text(max_size=6), values, max_size=3))),
    st.dictionaries(st.text(max_size=6), values, max_size=3) | some(poison=poison),
).map(lambda parts: {**parts[2], **parts[1], "identityMap": parts[0]})
items = some(name=values, SKU=values, quantity=values, priceTotal=values, currencyCode=values)
# Mostly what a load takes, so that the fields around them are fuzzed through to lookups.
event_ids = st.from_regex(r"\Ae[0-9]{1,2}\Z")
moments = st.datetimes(timezones=offsets).map(datetime.isoformat)
events = st.tuples(
    st.fixed_dictionaries(
        {"_id": mostly(event_ids, values),
         "timestamp": mostly(moments, timestamps),
         "eventType": st.one_of(st.sampled_from(sorted(RENDERERS)), st.text(max_size=12)),
         "identityMap": identity_maps}),
    some(productListItems=st.lists(items, max_size=3) | values, marketing=some(
        campaignName=values), web=some(webPageDetails=some(name=values)), support=values,
         _cah=some(call=some(durationSeconds=values, outcome=values), support=values) | values,
         poison=poison),
).map(lambda parts: {**parts[1], **parts[0]})


def lines_of(records: list[dict], ascii_only: bool) -> list[str]:
    return [json.dumps(record, ensure_ascii=ascii_only) for record in records]


def shown(store: ProfileStore) -> list[Summary]:
    """What an agent would be shown for the person, by phone and by email (the summary,
    its text and its JSON are all made)."""
    summaries = []
    for identity in (Identity(namespace="Phone_E.164", id=ADA_PHONE),
                     Identity(namespace="Email", id="ada@example.com")):
        found = store.lookup([identity], time.monotonic() + 5)
        assert isinstance(found, Profile | AmbiguousMatch)
        call = caller_info(classify_caller(ADA_PHONE, "US", ["Phone_E.164"]))
        summary = build_summary(call, identity, found, 0.1)
        for score, (lowest, highest) in (("churn_propensity", (0, 1)),
                                         ("lifetime_value", (-math.inf, math.inf))):
            value = getattr(summary, score)
            assert value is None or (math.isfinite(value) and lowest <= value <= highest)
        summary_text(summary)
        json.dumps(summary.to_json_dict(), allow_nan=False)
        summaries.append(summary)
    return summaries


LATER_PROFILE = json.dumps({"identityMap": ADA_MAP, "loyalty": {"tier": "gold"}})
LATER_EVENT = json.dumps({"_id": "later", "timestamp": "2026-11-21T10:00:00Z",
                          "eventType": "call.completed", "identityMap": ADA_MAP,
                          "_cah": {"call": {"durationSeconds": 240, "outcome": "completed"}}})


@FUZZ
@given(profile_records=st.lists(profiles, max_size=3), event_records=st.lists(events, max_size=3),
       ascii_only=st.booleans())
@example(profile_records=[{"identityMap": ADA_MAP, "n": 10**30}], event_records=[
    {"_id": "e1", "timestamp": EDGES[0], "eventType": "t", "identityMap": ADA_MAP}],
    ascii_only=True)
def test_whatever_ingest_accepts_never_breaks_a_later_load_or_a_lookup(
    kit, profile_records, event_records, ascii_only
):
    with kit.made(computed=COMPUTED, audience_rules=RULES) as store:
        for kind, records in (("profiles", profile_records), ("events", event_records)):
            report = store.ingest(kind, lines_of(records, ascii_only))
            assert len(records) == report.loaded + len(report.rejected)
        later = [store.ingest("profiles", [LATER_PROFILE], dataset="crm"),
                 store.ingest("events", [LATER_EVENT])]

        assert [(1, ()), (1, ())] == [(r.loaded, r.rejected) for r in later]
        for summary in shown(store):  # a shared number shows no one person's events
            titles = [event.title for event in summary.recent_events]
            assert summary.ambiguous is not None or "Called, 4 min (completed)" in titles


GOOD_LINES = [LATER_PROFILE.encode(), LATER_EVENT.encode(),
              b'{"id": "a1", "name": "High value", "description": null}']
damaged = st.tuples(st.sampled_from(GOOD_LINES), st.integers(0, 400), st.binary(max_size=3),
                    st.integers(0, 3)).map(
    lambda d: d[0][: d[1]] + d[2] + d[0][d[1] + d[3]:])


@FUZZ
@given(kind=st.sampled_from(["profiles", "events", "audiences"]),
       lines=st.lists(st.binary(max_size=40) | damaged, max_size=6))
def test_any_bytes_are_loaded_or_rejected_line_by_line(kit, kind, lines):
    with kit.made() as store:
        report = store.ingest(kind, lines)
        again = store.ingest(kind, lines)

    written = [line for line in lines if line and not line.isspace()]
    assert len(written) == report.loaded + len(report.rejected)
    assert (report.loaded, report.rejected) == (again.loaded, again.rejected)


@FUZZ
@given(kind=st.sampled_from(["profiles", "events", "audiences"]),
       lines=st.lists(st.text(max_size=30) | st.binary(max_size=30) | damaged
                      | profiles.map(json.dumps) | events.map(json.dumps), max_size=5))
def test_a_chunk_comes_back_from_a_worker_as_it_was_parsed(kind, lines):
    rules = Rules.of("US", ("CRMID",))
    parsed = parse_chunk(kind, 1, lines, rules)

    assert parsed.records == unpack(kind, parse_packed(kind, 1, lines, rules), 1, lines)


phone_like = st.from_regex(r"\A[+0(]?[0-9 ()\-.]{6,16}\Z") | st.sampled_from(
    ["+86-282452253", "(415) 555-0134", "+44 20 7946 0958", "anonymous", "+1 415 555 0134 "])


@FUZZ
@given(namespace=st.sampled_from(["Phone", "Phone_E.164", "mobilePhone", "Email", "CRMID",
                                  "ECID"]) | st.text(max_size=8),
       value=st.text(max_size=40) | phone_like)
def test_an_identity_that_loads_finds_its_person_and_is_forgotten(kit, namespace, value):
    identity = [Identity(namespace=namespace, id=value)]
    line = json.dumps({"identityMap": {namespace: [{"id": value}]}})
    with kit.made() as store:
        report = store.ingest("profiles", [line])
        if report.loaded:
            assert isinstance(store.lookup(identity, time.monotonic() + 5), Profile)
            assert store.forget(namespace, value).found
        assert store.lookup(identity, time.monotonic() + 5) is None
