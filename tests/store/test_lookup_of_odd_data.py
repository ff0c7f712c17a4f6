"""Lookups of data that is odd but valid (found by fuzzing ingest): whatever a record
holds where the store computes or an agent reads, the person is found and shown."""

from __future__ import annotations

import time

import pytest

from hub.models import Identity
from hub.summary import build_summary, caller_info
from lookup.phone import classify_caller
from lookup.store.computed import ComputedAttribute

ADA_ID = {"Email": [{"id": "ada@example.com"}]}
SPEND = ComputedAttribute(name="spend", function="sum", field="productListItems[].priceTotal")
SIZES = ComputedAttribute(name="sizes", function="most_recent",
                          field="productListItems[].sizes[].label")


def purchase(items: list[object]) -> dict:
    return {"_id": "e1", "timestamp": "2026-11-20T10:00:00Z", "eventType": "commerce.purchases",
            "identityMap": ADA_ID, "productListItems": items}


@pytest.mark.parametrize("item", ["", "Trail Shoe", '{"priceTotal": 5}', 7, None, [1]])
def test_a_computed_field_of_list_items_skips_items_that_are_not_objects(
    make_store, load_into, item
):
    store = make_store(computed=(SPEND, SIZES))
    load_into(store)("events", purchase([item, {"priceTotal": 240, "sizes": [{"label": "M"}]}]))

    found = store.lookup([Identity(namespace="Email", id="ada@example.com")],
                         time.monotonic() + 5)

    assert 240 == found.attributes["_computed"]["spend"]
    assert ["M"] == found.attributes["_computed"]["sizes"]["value"]


@pytest.mark.parametrize(
    ("event_type", "data", "title"),
    [
        ("call.completed", {"_cah": {"call": {"durationSeconds": "abc"}}}, "Called"),
        ("call.completed", {"_cah": {"call": {"durationSeconds": "inf"}}}, "Called"),
        ("call.completed", {"_cah": {"call": {"durationSeconds": [240]}}}, "Called"),
        ("call.completed", {"_cah": {"call": {"durationSeconds": "240"}}}, "Called, 4 min"),
        ("support.contact", {"_cah": 5}, "Contacted support"),
    ],
)
def test_an_event_whose_fields_are_odd_is_shown_with_a_plain_title(
    load, find, event_type, data, title
):
    load("events", {"_id": "e1", "timestamp": "2026-11-20T10:00:00Z", "eventType": event_type,
                    "identityMap": ADA_ID, **data})
    caller = caller_info(classify_caller("+14155550134", "US", ["Phone"]))

    summary = build_summary(caller, None, find("Email", "ada@example.com"), 0.1)

    assert [title] == [event.title for event in summary.recent_events]
