"""What identifies a forgotten person in the hub's state, and how a summary loses them."""

from __future__ import annotations

import pytest

from hub.forget_keys import (
    PersonKeys,
    concerns,
    digest,
    given_key,
    redact,
    stripped,
    summary_keys,
    value_key,
)
from hub.models import (
    Ambiguity,
    CallerKind,
    CallInfo,
    Identity,
    PersonFacts,
    Profile,
    Summary,
)

ADA = Profile(source="embedded", profile_id="p-ada",
              attributes={"person": {"name": {"firstName": "Ada", "lastName": "Lovelace"}},
                          "personalEmail": {"address": "Ada@Example.com"}},
              identities=(Identity(namespace="Phone", id="+14155550134"),
                          Identity(namespace="CRMID", id="003ADA")))


def call(number: str | None = "+14155550134", **facts: object) -> Summary:
    info = CallInfo(sid="CA" + "1" * 32, **{"from": number}, to="+18005550100",
                    caller_kind=CallerKind.NUMBER)
    return Summary(call=info, identity=None, found=bool(facts), **facts)  # type: ignore[arg-type]


def keys(*profiles: Profile, given: str = "email:ada@example.com") -> PersonKeys:
    return PersonKeys.of(given, profiles)


@pytest.mark.parametrize(("value", "namespace", "expected"), [
    ("(415) 555-0134", None, "number:+14155550134"),
    ("415.555.0134", "Phone", "number:+14155550134"),
    ("Ada@Example.com", None, "email:ada@example.com"),
    ("003ADA", "CRMID", "identity:003ADA"),
    ("4155550134", "CRMID", "identity:4155550134"),  # not a phone namespace: as given
])
def test_the_identity_forget_is_given_becomes_the_key_calls_carry(
    value: str, namespace: str | None, expected: str,
) -> None:
    assert expected == given_key(value, namespace, "US")


def test_a_profile_gives_every_identity_its_email_and_its_id_as_keys() -> None:
    assert {"email:ada@example.com", "number:+14155550134", "identity:003ADA",
            "profile:p-ada"} == set(keys(ADA).keys)


def test_names_are_kept_for_the_report_but_never_searched_for() -> None:
    found = keys(ADA)
    assert ({"Ada Lovelace"}, False) == (set(found.names), "Lovelace" in found.needles())


def test_a_call_from_the_persons_number_is_stripped_to_its_sid_and_the_number_called() -> None:
    redacted = redact(call(name="Ada Lovelace", profile_id="p-ada"), keys(ADA).contains)
    assert (call().call.sid, None, "+18005550100", False, None) == (
        redacted.call.sid, redacted.call.from_, redacted.call.to, redacted.found, redacted.name)


def test_a_call_matched_to_the_persons_profile_from_another_number_is_stripped() -> None:
    theirs = call("+12025550100", name="Ada Lovelace", profile_id="p-ada")
    assert stripped(theirs) == redact(theirs, keys(ADA).contains)


def test_someone_elses_call_is_left_as_it_is() -> None:
    bob = call("+12025550199", name="Ada Lovelace", profile_id="p-bob")  # a namesake
    assert bob == redact(bob, keys(ADA).contains)


def test_a_shared_number_loses_the_person_from_its_candidates_only() -> None:
    shared = call("+12125550100").model_copy(update={"found": True, "ambiguous": Ambiguity(
        count=2, candidates=(PersonFacts(profile_id="p-ada", name="Ada Lovelace"),
                             PersonFacts(profile_id="p-bob", name="Charles Babbage")))})

    redacted = redact(shared, keys(ADA).contains)

    assert redacted.ambiguous is not None
    assert ("+12125550100", 1, ["Charles Babbage"]) == (
        redacted.call.from_, redacted.ambiguous.count,
        [c.name for c in redacted.ambiguous.candidates])


def test_what_the_persons_own_calls_say_widens_the_keys() -> None:
    remote = call(name="Ada Lovelace", profile_id="aep-77", email="ada.l@work.example")
    wider = keys(ADA).widened([remote, call("+12025550199", profile_id="p-bob")])
    assert {"profile:aep-77", "email:ada.l@work.example"} <= set(wider.keys)
    assert "profile:p-bob" not in wider.keys


def test_a_summarys_keys_are_its_caller_its_identity_its_profile_and_email() -> None:
    summary = call(name="Ada", profile_id="p-ada", email="ada@example.com").model_copy(
        update={"identity": Identity(namespace="Phone", id="+14155550134")})
    assert {"number:+14155550134", "profile:p-ada", "email:ada@example.com"} == set(
        summary_keys(summary))


def test_digests_match_equal_keys_and_differ_by_secret() -> None:
    key = value_key("+14155550134")
    assert digest(b"s1", key) == digest(b"s1", key) != digest(b"s2", key)
    assert "4155550134" not in digest(b"s1", key)


def test_concerns_sees_a_candidate_too() -> None:
    shared = call("+12125550100").model_copy(update={"ambiguous": Ambiguity(
        count=2, candidates=(PersonFacts(profile_id="p-ada"),))})
    assert concerns(shared, keys(ADA).contains)
