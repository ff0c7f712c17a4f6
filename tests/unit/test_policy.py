"""Data-usage labels: each channel's rendering carries only what its policy allows."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hub.models import (
    Ambiguity,
    CallerKind,
    CallInfo,
    Identity,
    PersonFacts,
    Summary,
    SummaryAudience,
)
from hub.policy import ChannelPolicy, DataUsage

SUMMARY = Summary(
    call=CallInfo(sid="CA" + "f" * 32, **{"from": "+14155550134"}, to="+18005550100",
                  caller_kind=CallerKind.NUMBER),
    identity=Identity(namespace="Phone_E.164", id="+14155550134"), found=True,
    profile_id="p1", name="Ada Lovelace", email="ada@example.com", loyalty_tier="gold",
    lifetime_value=1234.5, churn_propensity=0.82,
    audiences=(SummaryAudience(id="a1", name="High value", status="realized"),),
)


def test_sms_by_default_carries_the_name_and_key_facts_but_no_identifiers() -> None:
    sms = DataUsage().filter(SUMMARY, "sms")
    kept = (sms.name, sms.loyalty_tier, sms.lifetime_value, sms.churn_propensity, sms.audiences)
    assert (SUMMARY.name, "gold", 1234.5, 0.82, SUMMARY.audiences) == kept
    assert (None, None, None, None) == (sms.email, sms.profile_id, sms.identity, sms.call.from_)


def test_the_pop_by_default_carries_everything() -> None:
    assert SUMMARY == DataUsage().filter(SUMMARY, "pop")


def test_a_labelled_field_is_removed_where_the_channel_denies_its_label() -> None:
    usage = DataUsage(labels={"churn_propensity": ("C9",)},
                      policies={"note": ChannelPolicy(deny=("C9",))})
    assert (None, 0.82) == (usage.filter(SUMMARY, "note").churn_propensity,
                            usage.filter(SUMMARY, "pop").churn_propensity)


def test_list_fields_are_emptied_not_nulled() -> None:
    usage = DataUsage(labels={"audiences": ("S2",)})
    assert () == usage.filter(SUMMARY, "sms").audiences


def test_the_people_of_a_shared_number_are_filtered_too() -> None:
    shared = SUMMARY.model_copy(update={"ambiguous": Ambiguity(count=1, candidates=(
        PersonFacts(name="María", email="maria@example.com"),))})
    candidate = DataUsage().filter(shared, "sms").ambiguous.candidates[0]  # type: ignore[union-attr]
    assert ("María", None) == (candidate.name, candidate.email)


def test_labels_for_unknown_fields_are_a_configuration_error() -> None:
    with pytest.raises(ValidationError, match="unknown summary fields"):
        DataUsage(labels={"shoe_size": ("C1",)})
