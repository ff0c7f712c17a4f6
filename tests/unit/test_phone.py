"""Caller classification and phone normalisation."""

from __future__ import annotations

import pytest

from hub.models import CallerKind, Identity
from lookup.phone import classify_caller, normalize_identity, to_e164

NAMESPACES = ["Phone_E.164", "Phone"]


@pytest.mark.parametrize(
    ("raw", "kind", "e164"),
    [
        ("+14155550134", CallerKind.NUMBER, "+14155550134"),
        ("(415) 555-0134", CallerKind.NUMBER, "+14155550134"),
        ("415.555.0134", CallerKind.NUMBER, "+14155550134"),
        ("1-415-555-0134", CallerKind.NUMBER, "+14155550134"),
        ("+44 20 7946 0958", CallerKind.NUMBER, "+442079460958"),
        ("0044 20 7946 0958", CallerKind.NUMBER, "+442079460958"),
        ("+49 (30) 1234567", CallerKind.NUMBER, "+49301234567"),
        ("anonymous", CallerKind.WITHHELD, None),
        ("Anonymous", CallerKind.WITHHELD, None),
        ("Restricted", CallerKind.WITHHELD, None),
        ("UNAVAILABLE", CallerKind.WITHHELD, None),
        ("Private", CallerKind.WITHHELD, None),
        ("", CallerKind.WITHHELD, None),
        ("  ", CallerKind.WITHHELD, None),
        ("+266696687", CallerKind.WITHHELD, None),
        ("+86282452253", CallerKind.WITHHELD, None),
        ("+8656696", CallerKind.WITHHELD, None),
        ("+2562533", CallerKind.WITHHELD, None),
        ("+7378742833", CallerKind.WITHHELD, None),
        ("client:agent_7", CallerKind.CLIENT, None),
        ("client:Anonymous", CallerKind.WITHHELD, None),
        ("sip:alice@example.sip.twilio.com", CallerKind.SIP, None),
        ("12", CallerKind.INVALID, None),
        ("not a number", CallerKind.INVALID, None),
        ("+1" + "9" * 40, CallerKind.INVALID, None),
    ],
)
def test_classify_caller(raw: str, kind: CallerKind, e164: str | None) -> None:
    caller = classify_caller(raw, "US", NAMESPACES)
    assert (kind, e164) == (caller.kind, caller.e164)


def test_number_gives_a_candidate_per_namespace_in_order() -> None:
    caller = classify_caller("(415) 555-0134", "US", NAMESPACES)
    expected = (Identity(namespace="Phone_E.164", id="+14155550134"),
                Identity(namespace="Phone", id="+14155550134"))
    assert expected == caller.candidates


@pytest.mark.parametrize("raw", ["anonymous", "+266696687", "client:bob", "sip:x@y", "12"])
def test_non_numbers_give_no_identity_candidates(raw: str) -> None:
    assert classify_caller(raw, "US", NAMESPACES).candidates == ()


def test_national_numbers_are_read_in_the_default_region() -> None:
    assert to_e164("020 7946 0958", "GB") == "+442079460958"


def test_identity_values_are_normalised_per_namespace() -> None:
    assert normalize_identity("Phone", "(415) 555-0134", "US") == "+14155550134"
    assert normalize_identity("Email", " Ada@Example.com ", "US") == "ada@example.com"
    assert normalize_identity("CRMID", "003ABC", "US") == "003ABC"
    assert normalize_identity("Phone", "anonymous", "US") is None
