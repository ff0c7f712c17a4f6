"""Computed attributes and rule audiences, worked out by the store at lookup."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from hub.models import Identity, Profile
from lookup.store import ProfileStore
from lookup.store.audience_rules import AudienceRule
from lookup.store.computed import ComputedAttribute

PHONE = Identity(namespace="Phone", id="+14155550134")
SPEND = ComputedAttribute(name="spend_90d", function="sum", event_type="commerce.purchases",
                          field="productListItems[].priceTotal", window_days=90)
VIP = AudienceRule.model_validate({
    "id": "vip", "name": "Big spender",
    "all": [{"path": "_computed.spend_90d", "op": ">", "value": 200}]})


def purchase(event_id: str, days_ago: int, price: float) -> str:
    when = datetime.now(UTC) - timedelta(days=days_ago)
    return json.dumps({
        "_id": event_id, "timestamp": when.isoformat().replace("+00:00", "Z"),
        "eventType": "commerce.purchases",
        "identityMap": {"Phone": [{"id": "(415) 555-0134"}]},
        "productListItems": [{"name": "Trail Shoe", "priceTotal": price}]})


@pytest.fixture
def store(make_store: Callable[..., ProfileStore]) -> ProfileStore:
    made = make_store(computed=[SPEND], audience_rules=[VIP])
    made.ingest("profiles", [json.dumps({"identityMap": {"Phone": [{"id": "(415) 555-0134"}]},
                                         "person": {"name": {"fullName": "Ada"}}})])
    return made


def ada(store: ProfileStore) -> Profile:
    found = store.lookup([PHONE], time.monotonic() + 5)
    assert isinstance(found, Profile)
    return found


def test_a_computed_attribute_is_in_the_looked_up_profile(store: ProfileStore) -> None:
    store.ingest("events", [purchase("e1", 10, 150.0), purchase("e2", 100, 999.0)])
    assert {"spend_90d": 150.0} == ada(store).attributes["_computed"]


def test_a_rule_audience_follows_the_computed_attribute(store: ProfileStore) -> None:
    store.ingest("events", [purchase("e1", 10, 150.0)])
    before = [a.name for a in ada(store).audiences]
    store.ingest("events", [purchase("e2", 3, 80.0)])
    after = [(a.id, a.name, a.status) for a in ada(store).audiences]
    assert ([], [("vip", "Big spender", "realized")]) == (before, after)
