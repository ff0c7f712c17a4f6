"""The summary of PRODUCT.md §7, built from a call and a profile."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hub.models import (
    AmbiguousMatch,
    AudienceMembership,
    CallerKind,
    CallInfo,
    ExperienceEvent,
    Identity,
    InboundCall,
    Profile,
)
from hub.summary import build_summary, call_info, resolve_field

INFO = CallInfo(sid="CA" + "a" * 32, **{"from": "+14155550134"}, to="+18005550100",
                caller_kind=CallerKind.NUMBER)
IDENTITY = Identity(namespace="Phone_E.164", id="+14155550134")


def ada(**attributes: object) -> Profile:
    base = {
        "person": {"name": {"firstName": "Ada", "lastName": "Lovelace"}},
        "personalEmail": {"address": "ada@example.com"},
        "loyalty": {"tier": "gold"},
        "_cah": {"scores": {"lifetimeValue": 1234.5, "churnPropensity": 0.82}},
    }
    base.update(attributes)
    events = (
        ExperienceEvent(id="e2", timestamp=datetime(2026, 11, 20, 10, tzinfo=UTC),
                        type="commerce.purchases",
                        data={"marketing": {"campaignName": "Winter Sale 2026"},
                              "productListItems": [{"name": "Trail Shoe", "quantity": 2,
                                                    "priceTotal": 240, "currencyCode": "USD"}]}),
        ExperienceEvent(id="e1", timestamp=datetime(2026, 11, 1, tzinfo=UTC),
                        type="directMarketing.emailClicked",
                        data={"marketing": {"campaignName": "Autumn Launch"}}),
    )
    return Profile(source="embedded", profile_id="p1", attributes=base, events=events,
                   audiences=(AudienceMembership(id="a1", name="High value"),))


def test_found_profile_fills_every_field() -> None:
    summary = build_summary(INFO, IDENTITY, ada(), 0.7).to_json_dict()
    expected = {
        "call": {"sid": INFO.sid, "from": "+14155550134", "to": "+18005550100",
                 "caller_kind": "number", "direction": "inbound", "verstat": None},
        "identity": {"namespace": "Phone_E.164", "id": "+14155550134"},
        "found": True, "source": "embedded", "profile_id": "p1", "name": "Ada Lovelace",
        "email": "ada@example.com", "loyalty_tier": "gold", "lifetime_value": 1234.5,
        "churn_propensity": 0.82,
        "audiences": [{"id": "a1", "name": "High value", "status": "realized"}],
        "recent_events": [
            {"timestamp": "2026-11-20T10:00:00Z", "type": "commerce.purchases",
             "title": "Purchased 2× Trail Shoe (USD 240.00)"},
            {"timestamp": "2026-11-01T00:00:00Z", "type": "directMarketing.emailClicked",
             "title": "Clicked email from Autumn Launch"},
        ],
        "last_campaign": "Winter Sale 2026", "ambiguous": None, "lookup_ms": 0.7,
    }
    assert expected == summary
    assert ["call", "identity", "found"] == list(summary)[:3]


def test_not_found_gives_nulls_and_empty_lists() -> None:
    summary = build_summary(INFO, None, None, 1.0).to_json_dict()
    assert (
        summary["found"], summary["identity"], summary["name"], summary["audiences"],
        summary["recent_events"]) == (False, None, None, [], [])


def test_full_name_is_used_when_first_and_last_are_absent() -> None:
    profile = ada(person={"name": {"fullName": "Augusta Ada King"}})
    assert build_summary(INFO, IDENTITY, profile, 0.1).name == "Augusta Ada King"


def test_field_map_can_be_overridden() -> None:
    profile = ada(crm={"segment": "platinum"})
    summary = build_summary(INFO, IDENTITY, profile, 0.1, {"loyalty_tier": "crm.segment"})
    assert summary.loyalty_tier == "platinum"


def test_scores_that_are_not_numbers_are_unknown() -> None:
    profile = ada(_cah={"scores": {"lifetimeValue": "n/a", "churnPropensity": True}})
    summary = build_summary(INFO, IDENTITY, profile, 0.1)
    assert (summary.lifetime_value, summary.churn_propensity) == (None, None)


@pytest.mark.parametrize(("lifetime_value", "churn_propensity"), [
    ("NaN", "NaN"), ("Infinity", "-Infinity"), (float("nan"), 1.5), (10**400, -0.01),
    (float("inf"), 7),
])
def test_scores_a_provider_sends_that_cannot_be_true_are_unknown(
    lifetime_value: object, churn_propensity: object,
) -> None:
    scores = {"lifetimeValue": lifetime_value, "churnPropensity": churn_propensity}
    summary = build_summary(INFO, IDENTITY, ada(_cah={"scores": scores}), 0.1)
    assert (None, None) == (summary.lifetime_value, summary.churn_propensity)


def test_scores_at_the_edges_of_their_range_are_shown() -> None:
    scores = {"lifetimeValue": "-12.5", "churnPropensity": 1}
    summary = build_summary(INFO, IDENTITY, ada(_cah={"scores": scores}), 0.1)
    assert (-12.5, 1.0) == (summary.lifetime_value, summary.churn_propensity)


def test_resolve_field_takes_the_first_alternative_present() -> None:
    record = {"a": {"b": ""}, "c": "yes"}
    assert resolve_field(record, ["a.b", "c"]) == "yes"


def test_shared_number_lists_the_people_and_chooses_none() -> None:
    other = Profile(source="embedded", profile_id="p2",
                    attributes={"person": {"name": {"fullName": "Tomás García"}}})
    match = AmbiguousMatch(source="embedded", identity=IDENTITY, count=2,
                           candidates=(ada(), other))
    summary = build_summary(INFO, IDENTITY, match, 0.4)
    assert (True, None, None) == (summary.found, summary.name, summary.profile_id)
    assert summary.ambiguous is not None
    assert (2, ["Ada Lovelace", "Tomás García"]) == (
        summary.ambiguous.count, [c.name for c in summary.ambiguous.candidates])


def test_shared_number_without_named_candidates_keeps_the_count() -> None:
    match = AmbiguousMatch(source="aep", identity=IDENTITY, count=None)
    summary = build_summary(INFO, IDENTITY, match, 0.4).to_json_dict()
    assert {"count": None, "candidates": []} == summary["ambiguous"]


def test_the_call_block_carries_the_stir_shaken_verdict_of_an_inbound_call() -> None:
    form = {"CallSid": "CA" + "b" * 32, "From": "+14155550134", "To": "+18005550100",
            "StirVerstat": "TN-Validation-Passed-A"}
    info = call_info(InboundCall.model_validate(form), CallerKind.NUMBER, "+14155550134")

    call = build_summary(info, None, None, None).to_json_dict()["call"]

    assert ("inbound", "TN-Validation-Passed-A") == (call["direction"], call["verstat"])
    assert ["sid", "from", "to", "caller_kind", "direction", "verstat"] == list(call)


def test_a_call_without_a_verdict_has_a_null_verstat() -> None:
    form = {"CallSid": "CA" + "b" * 32, "From": "+14155550134", "To": "+18005550100"}
    info = call_info(InboundCall.model_validate(form), CallerKind.NUMBER, "+14155550134")

    assert None is info.verstat


def test_an_outbound_calls_customer_is_the_number_dialled() -> None:
    info = CallInfo(sid="CA" + "c" * 32, **{"from": "+18005550100"}, to="+14155550134",
                    caller_kind=CallerKind.NUMBER, direction="outbound")

    assert "+14155550134" == info.customer
