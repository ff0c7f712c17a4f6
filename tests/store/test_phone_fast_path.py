"""The fast path for North American numbers gives what phonenumbers gives, or nothing."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from lookup.phone import nanp_e164, parsed_e164, to_e164

SPELLINGS = ("({a}) {x}-{s}", "{a}.{x}.{s}", "{a}-{x}-{s}", "+1 {a} {x} {s}", "1-{a}-{x}-{s}",
             "+1 ({a}) {x}-{s}", "+1{a}{x}{s}", "{a}{x}{s}", "1{a}{x}{s}", "+{a}{x}{s}")
digits = st.text("0123456789", min_size=3, max_size=4)


@settings(max_examples=500)
@given(spelling=st.sampled_from(SPELLINGS), area=digits, exchange=digits, line=digits,
       region=st.sampled_from(["US", "CA", "GB", "FR", "us"]))
def test_the_fast_path_agrees_with_phonenumbers_on_written_numbers(
    spelling, area, exchange, line, region
):
    text = spelling.format(a=area, x=exchange, s=line)

    assert nanp_e164(text, region) in (None, parsed_e164(text, region))


@settings(max_examples=500)
@given(text=st.text("0123456789 +()-.", min_size=1, max_size=20),
       region=st.sampled_from(["US", "CA", "GB"]))
@example(text="+2125550199", region="US")
@example(text="11125550199", region="US")
def test_the_fast_path_agrees_with_phonenumbers_on_any_punctuated_digits(text, region):
    assert nanp_e164(text.strip(), region) in (None, parsed_e164(text.strip(), region))


@pytest.mark.parametrize(
    ("text", "region", "expected"),
    [
        ("+14155550134", "GB", "+14155550134"),
        ("(415) 555-0134", "US", "+14155550134"),
        ("1-415-555-0134", "CA", "+14155550134"),
        ("+1 (415) 555-0134", "FR", "+14155550134"),
    ],
)
def test_north_american_spellings_take_the_fast_path(text, region, expected):
    assert expected == nanp_e164(text, region)


@pytest.mark.parametrize(
    ("text", "region"),
    [
        ("(415) 555-0134", "GB"),  # a national number outside North America
        ("+44 20 7946 0958", "US"),
        ("415 555 0134 ext 7", "US"),
        ("+1 015 555 0134", "US"),  # no area code starts with 0 or 1
    ],
)
def test_anything_else_is_left_to_phonenumbers(text, region):
    assert nanp_e164(text, region) is None


def test_to_e164_still_reads_every_other_spelling():
    assert "+442079460958" == to_e164("0044 20 7946 0958", "US")
