"""Rule audiences: each operator, all/any, missing paths, mismatched kinds, validation."""

from __future__ import annotations

import tomllib

import pytest
from pydantic import ValidationError

from hub.models import AudienceMembership
from lookup.store.audience_rules import AudienceRule, Condition, evaluate

PROFILE = {
    "loyalty": {"tier": "gold", "points": 1200},
    "_cah": {"scores": {"lifetimeValue": 1500.0}},
    "_computed": {
        "spend_90d": 250,
        "last_order": {"value": "Trail Shoe", "timestamp": "2026-11-30T10:00:00Z"},
    },
    "interests": ["running", "hiking"],
    "optIn": True,
    "fax": None,
}
VIP_TOML = """
[[audiences]]
id = "vip-at-risk"
name = "VIP at risk"
all = [ { path = "_cah.scores.lifetimeValue", op = ">=", value = 1000 },
        { path = "_computed.spend_90d", op = ">", value = 200 } ]
any = [ { path = "loyalty.tier", op = "in", value = ["gold", "platinum"] } ]
"""


def holds(path, op, value=None):
    return Condition(path=path, op=op, value=value).holds(PROFILE)


def rule(all=(), any=()):
    return AudienceRule(id="a1", name="Audience one", all=all, any=any)


def condition(path, op, value=None):
    return Condition(path=path, op=op, value=value)


TIER_IS_GOLD = condition("loyalty.tier", "==", "gold")
TIER_IS_SILVER = condition("loyalty.tier", "==", "silver")
BIG_SPENDER = condition("_computed.spend_90d", ">", 200)
SMALL_SPENDER = condition("_computed.spend_90d", "<", 100)


@pytest.mark.parametrize(
    ("path", "op", "value", "expected"),
    [
        ("loyalty.tier", "==", "gold", True),
        ("loyalty.tier", "==", "silver", False),
        ("loyalty.points", "==", 1200.0, True),
        ("optIn", "==", True, True),
        ("loyalty.tier", "!=", "silver", True),
        ("loyalty.tier", "!=", "gold", False),
        ("loyalty.points", ">", 1199, True),
        ("loyalty.points", ">", 1200, False),
        ("loyalty.points", ">=", 1200, True),
        ("loyalty.points", ">=", 1200.5, False),
        ("loyalty.points", "<", 1200.5, True),
        ("loyalty.points", "<", 1200, False),
        ("loyalty.points", "<=", 1200, True),
        ("loyalty.points", "<=", 1199, False),
        ("_computed.last_order.timestamp", ">", "2026-11-01", True),
        ("loyalty.tier", "in", ["gold", "platinum"], True),
        ("loyalty.tier", "in", ["silver", "bronze"], False),
        ("loyalty.tier", "not_in", ["silver", "bronze"], True),
        ("loyalty.tier", "not_in", ["gold", "platinum"], False),
        ("loyalty.tier", "contains", "ol", True),
        ("loyalty.tier", "contains", "Gold", False),
        ("interests", "contains", "hiking", True),
        ("interests", "contains", "hik", False),
    ],
)
def test_each_operator_compares_the_value_at_the_path(path, op, value, expected):
    assert expected == holds(path, op, value)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("loyalty.tier", True),
        ("_computed.last_order", True),
        ("loyalty.nothing", False),
        ("fax", False),
        ("loyalty.tier.name", False),
    ],
)
def test_exists_holds_for_a_present_non_null_value(path, expected):
    assert expected == holds(path, "exists")


@pytest.mark.parametrize(
    ("path", "expected"),
    [("loyalty.tier", False), ("loyalty.nothing", True), ("fax", True), ("nothing.at.all", True)],
)
def test_missing_holds_for_an_absent_or_null_value(path, expected):
    assert expected == holds(path, "missing")


@pytest.mark.parametrize(
    ("op", "value"),
    [
        ("==", "gold"),
        ("!=", "gold"),
        (">", 1),
        ("<=", 1),
        ("in", ["gold"]),
        ("not_in", ["gold"]),
        ("contains", "g"),
    ],
)
def test_no_comparison_holds_for_a_missing_path(op, value):
    assert holds("loyalty.nothing", op, value) is False


@pytest.mark.parametrize(
    ("path", "op", "value"),
    [
        ("loyalty.tier", ">", 5),
        ("loyalty.points", "==", "1200"),
        ("loyalty.points", "!=", "gold"),
        ("optIn", "==", 1),
        ("optIn", ">", 0),
        ("loyalty.points", "in", ["1200", "gold"]),
        ("loyalty.tier", "not_in", [1, 2]),
        ("loyalty", "==", "gold"),
        ("interests", ">", "a"),
        ("loyalty.points", "contains", 2),
        ("interests", "contains", True),
    ],
)
def test_values_of_different_kinds_never_compare(path, op, value):
    assert holds(path, op, value) is False


def test_a_rule_matches_when_all_its_conditions_hold():
    assert rule(all=[TIER_IS_GOLD, BIG_SPENDER]).matches(PROFILE)


def test_a_rule_does_not_match_when_one_of_all_fails():
    assert not rule(all=[TIER_IS_GOLD, SMALL_SPENDER]).matches(PROFILE)


def test_a_rule_matches_when_one_of_any_holds():
    assert rule(any=[TIER_IS_SILVER, BIG_SPENDER]).matches(PROFILE)


def test_a_rule_does_not_match_when_none_of_any_holds():
    assert not rule(any=[TIER_IS_SILVER, SMALL_SPENDER]).matches(PROFILE)


def test_a_rule_with_all_and_any_needs_both():
    assert not rule(all=[TIER_IS_GOLD], any=[TIER_IS_SILVER, SMALL_SPENDER]).matches(PROFILE)


def test_a_rule_with_all_and_any_matches_when_both_hold():
    assert rule(all=[TIER_IS_GOLD], any=[TIER_IS_SILVER, BIG_SPENDER]).matches(PROFILE)


def test_evaluate_returns_the_matching_audiences_realized_and_named():
    rules = [
        AudienceRule(id="gold", name="Gold members", all=[TIER_IS_GOLD]),
        AudienceRule(id="silver", name="Silver members", all=[TIER_IS_SILVER]),
        AudienceRule(id="spenders", name="Big spenders", any=[BIG_SPENDER]),
    ]

    expected = [
        AudienceMembership(id="gold", name="Gold members", status="realized"),
        AudienceMembership(id="spenders", name="Big spenders", status="realized"),
    ]
    assert expected == evaluate(rules, PROFILE)


def test_evaluate_of_an_empty_profile_finds_no_audience():
    assert [] == evaluate([rule(all=[TIER_IS_GOLD])], {})


def test_rules_are_read_from_the_settings_toml():
    (vip,) = [AudienceRule.model_validate(a) for a in tomllib.loads(VIP_TOML)["audiences"]]

    expected = [AudienceMembership(id="vip-at-risk", name="VIP at risk", status="realized")]
    assert expected == evaluate([vip], PROFILE)


def test_an_audience_needs_a_condition():
    with pytest.raises(ValidationError, match="at least one condition in all or any"):
        AudienceRule(id="a1", name="Audience one")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"path": "fax", "op": "exists", "value": True}, "exists takes no value"),
        ({"path": "fax", "op": "missing", "value": "x"}, "missing takes no value"),
        ({"path": "loyalty.tier", "op": "in", "value": "gold"}, "in needs a non-empty list"),
        ({"path": "loyalty.tier", "op": "not_in", "value": []}, "not_in needs a non-empty list"),
        ({"path": "loyalty.tier", "op": "=="}, "== needs a value"),
        ({"path": "loyalty.tier", "op": "!=", "value": ["a"]}, "needs a single value"),
        ({"path": "interests", "op": "contains", "value": ["a"]}, "needs a single value"),
        ({"path": "loyalty.points", "op": ">", "value": True}, "> needs a number or a string"),
        ({"path": "loyalty.tier", "op": "~=", "value": "g"}, "op"),
        ({"path": "loyalty..tier", "op": "exists"}, "path"),
        ({"path": "", "op": "exists"}, "path"),
        ({"path": "fax", "op": "exists", "vaule": 1}, "vaule"),
    ],
)
def test_a_bad_condition_is_rejected_with_a_clear_message(settings, message):
    with pytest.raises(ValidationError, match=message):
        Condition(**settings)


def test_a_misspelt_audience_key_is_rejected():
    with pytest.raises(ValidationError, match="alll"):
        AudienceRule(id="a1", name="Audience one", alll=[TIER_IS_GOLD])
