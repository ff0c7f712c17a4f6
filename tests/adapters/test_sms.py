"""SMS text fitting (GSM-7 / UCS-2 segments) and the Twilio SMS sink against `responses`."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
import responses
from pydantic import SecretStr

from hub.deliveries import DeliveryPlanner
from hub.models import CallerKind, CallInfo, Delivery, DeliveryAction, Summary
from hub.policy import DataUsage
from hub.ports import PermanentError, TransientError
from hub.settings import Agent
from integrations.sms import TwilioSmsSink, fit_sms, gsm7_length, segments
from tests.standins.twilio import TwilioStandIn

ACCOUNT_SID = "AC" + "1" * 32
BASE = "http://127.0.0.1:8099/twilio"
MESSAGES = f"{BASE}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
CREATED = datetime(2026, 11, 23, 10, 4, 5, 600000, tzinfo=UTC)
REP = "+14155550199"
BODY = "Ada Lovelace (gold) calling"


# --- text ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "septets"), [
    ("Hello", 5), ("€", 2), ("[x]{y}~^|\\", 18), ("Zoë", None), ("Åse à Ørsted", 12),
    ("Łukasz", None), ("山田 太郎", None), ("Hi 🙂", None), ("", 0),
])
def test_gsm7_length_counts_septets(text: str, septets: int | None) -> None:
    assert septets == gsm7_length(text)


@pytest.mark.parametrize(("text", "count"), [
    ("a" * 160, 1), ("a" * 161, 2), ("a" * 306, 2), ("a" * 307, 3),
    ("€" * 80, 1), ("€" * 81, 2),
    ("Ł" * 70, 1), ("Ł" * 71, 2), ("山" * 134, 2), ("山" * 135, 3),
    ("🙂" * 35, 1), ("🙂" * 36, 2),
])
def test_segments_follow_gsm7_and_ucs2_limits(text: str, count: int) -> None:
    assert count == segments(text)


def test_a_two_septet_character_is_never_split_between_segments() -> None:
    assert 3 == segments("a" * 152 + "€" + "a" * 152)  # 306 septets, but € cannot straddle


def test_an_emoji_is_never_split_between_segments() -> None:
    assert 3 == segments("a" * 66 + "🙂" + "a" * 66)  # 134 units, but the pair cannot straddle


def test_parts_are_joined_most_important_first_into_one_gsm7_segment() -> None:
    body = fit_sms(["Ada Lovelace (gold)", "LTV 1234.50, churn 0.82",
                    "Last: Purchased 2x Trail Shoe (USD 240.00) " * 4, "Winter Sale 2026"])

    assert body.startswith("Ada Lovelace (gold)\nLTV 1234.50, churn 0.82\nLast: Purchased")
    assert body.endswith("...")
    assert (1, len(body)) == (segments(body), gsm7_length(body))


def test_a_long_part_is_truncated_to_fill_the_segment() -> None:
    body = fit_sms(["Ada", "x" * 200, "gold"])

    assert "Ada\n" + "x" * 153 + "..." == body
    assert 160 == gsm7_length(body)


def test_a_part_with_no_useful_room_left_is_dropped_and_shorter_ones_still_fit() -> None:
    assert "a" * 150 + "\ngold" == fit_sms(["a" * 150, "Winter Sale 2026 is on", "gold"])


def test_extension_characters_count_double_against_the_segment() -> None:
    assert "a" * 75 + "\nLTV 1234.50 USD" == fit_sms(["a" * 75, "LTV 1234.50 USD"])
    assert "€" * 75 == fit_sms(["€" * 75, "LTV 1234.50 USD"])


def test_a_trailing_emoji_part_is_dropped_to_stay_gsm7() -> None:
    assert "Ada\nLTV 5" == fit_sms(["Ada", "Campaign 🙂 Winter", "LTV 5"])


@pytest.mark.parametrize("name", ["Łukasz Nowak", "山田 太郎"])
def test_a_non_latin_name_makes_one_ucs2_segment(name: str) -> None:
    body = fit_sms([f"{name} (gold)", "LTV 1234.50, churn 0.82",
                    "Last: Purchased 2x Trail Shoe (USD 240.00)"])

    assert body.startswith(f"{name} (gold)\nLTV 1234.50, churn 0.82")
    assert gsm7_length(body) is None
    assert 1 == segments(body)


def test_a_first_part_too_long_for_one_segment_is_kept_within_320_characters() -> None:
    body = fit_sms(["y" * 400, "gold"])

    assert 320 == len(body)
    assert body.endswith("...")


def test_nothing_to_say_is_an_empty_body() -> None:
    assert "" == fit_sms(["", "  "])


# --- sink ---------------------------------------------------------------------------------

def delivery(payload: dict[str, Any] | None = None,
             action: DeliveryAction = DeliveryAction.SMS) -> Delivery:
    return Delivery(id=1, call_sid="CA" + "34" * 16, sink="sms", action=action,
                    payload=payload or {"to": REP, "body": BODY},
                    created_at=CREATED, next_attempt_at=CREATED)


def listing(*messages: dict[str, Any]) -> dict[str, Any]:
    return {"messages": list(messages), "next_page_uri": None, "page": 0, "page_size": 20,
            "start": 0, "end": 0, "uri": "/", "first_page_uri": "/", "previous_page_uri": None}


def message(body: str, created: datetime) -> dict[str, Any]:
    return {"sid": "SM" + "5" * 32, "status": "sent", "to": REP, "from": "+18005550100",
            "body": body, "date_created": format_datetime(created, usegmt=True)}


def twilio_error(status: int, code: int) -> dict[str, Any]:
    return {"code": code, "message": f"error for {REP}", "status": status,
            "more_info": f"https://www.twilio.com/docs/errors/{code}"}


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(MESSAGES, json=listing())
        mock.post(MESSAGES, status=201, json={"sid": "SM" + "6" * 32, "status": "queued"})
        yield mock


@pytest.fixture
def sink() -> Iterator[TwilioSmsSink]:
    sink = TwilioSmsSink(ACCOUNT_SID, "auth-token", "+18005550100", base_url=BASE, timeout_s=4)
    yield sink
    sink.close()


def posted(rsps: responses.RequestsMock) -> list[Any]:
    return [c.request for c in rsps.calls if c.request.method == "POST"]


def test_the_message_goes_to_the_configured_host_with_a_timeout(
        rsps: responses.RequestsMock, sink: TwilioSmsSink) -> None:
    sink.deliver(delivery())

    [create] = posted(rsps)
    assert {"To": [REP], "From": ["+18005550100"], "Body": [BODY]} == parse_qs(create.body)
    assert 4 == create.req_kwargs["timeout"]


def test_the_sender_in_the_payload_is_used(
        rsps: responses.RequestsMock, sink: TwilioSmsSink) -> None:
    sink.deliver(delivery({"to": REP, "from": "+18005550111", "body": BODY}))

    [create] = posted(rsps)
    assert ["+18005550111"] == parse_qs(create.body)["From"]


def test_twilio_environment_variables_do_not_move_the_host(
        rsps: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIO_EDGE", "sydney")
    monkeypatch.setenv("TWILIO_REGION", "au1")
    sink = TwilioSmsSink(ACCOUNT_SID, "auth-token", "+18005550100", base_url=BASE)

    sink.deliver(delivery())
    sink.close()

    assert 1 == len(posted(rsps))


def test_a_message_already_sent_for_this_delivery_is_not_sent_again(
        rsps: responses.RequestsMock, sink: TwilioSmsSink) -> None:
    rsps.replace("GET", MESSAGES, json=listing(message(BODY, CREATED.replace(microsecond=0))))

    sink.deliver(delivery())

    assert [] == posted(rsps)
    assert {"To": [REP], "From": ["+18005550100"], "PageSize": ["20"]} == parse_qs(
        rsps.calls[0].request.url.split("?", 1)[1])


def test_the_same_text_from_an_earlier_call_does_not_stop_the_message(
        rsps: responses.RequestsMock, sink: TwilioSmsSink) -> None:
    earlier = CREATED - timedelta(minutes=5, seconds=1)  # before the clock-skew allowance
    rsps.replace("GET", MESSAGES, json=listing(message(BODY, earlier)))

    sink.deliver(delivery())

    assert 1 == len(posted(rsps))


def test_a_message_sent_while_the_hub_clock_ran_ahead_of_twilios_is_not_sent_again(
        rsps: responses.RequestsMock, sink: TwilioSmsSink) -> None:
    twilio_time = CREATED - timedelta(minutes=2)  # the hub's clock is two minutes fast
    rsps.replace("GET", MESSAGES, json=listing(message(BODY, twilio_time)))

    sink.deliver(delivery())

    assert [] == posted(rsps)


def test_the_clock_skew_allowance_is_five_minutes(
        rsps: responses.RequestsMock, sink: TwilioSmsSink) -> None:
    rsps.replace("GET", MESSAGES, json=listing(message(BODY, CREATED - timedelta(minutes=5))))

    sink.deliver(delivery())

    assert [] == posted(rsps)


@pytest.mark.parametrize("code", [21211, 21610, 21614])
def test_unreachable_recipients_are_permanent(
        rsps: responses.RequestsMock, sink: TwilioSmsSink, code: int) -> None:
    rsps.replace("POST", MESSAGES, status=400, json=twilio_error(400, code))

    with pytest.raises(PermanentError, match=str(code)) as raised:
        sink.deliver(delivery())

    assert REP not in str(raised.value)


def test_too_many_requests_is_transient_with_retry_after(
        rsps: responses.RequestsMock, sink: TwilioSmsSink) -> None:
    rsps.replace("POST", MESSAGES, status=429, json=twilio_error(429, 20429),
                 headers={"Retry-After": "3"})

    with pytest.raises(TransientError, match="20429") as raised:
        sink.deliver(delivery())

    assert 3.0 == raised.value.retry_after


def test_a_throttled_message_list_reports_twilios_error_code(
        rsps: responses.RequestsMock, sink: TwilioSmsSink) -> None:
    rsps.replace("GET", MESSAGES, status=429, json=twilio_error(429, 20429))

    with pytest.raises(TransientError) as raised:
        sink.deliver(delivery())

    assert "twilio: HTTP 429 code 20429" == str(raised.value)


def test_a_message_list_failing_without_a_json_body_has_no_code(
        rsps: responses.RequestsMock, sink: TwilioSmsSink) -> None:
    rsps.replace("GET", MESSAGES, status=503, body="<html>Service Unavailable</html>")

    with pytest.raises(TransientError) as raised:
        sink.deliver(delivery())

    assert "twilio: HTTP 503 code None" == str(raised.value)


@pytest.mark.parametrize(("status", "code", "error"), [
    (500, 20500, TransientError), (503, 20503, TransientError),
    (401, 20003, PermanentError), (400, 21606, PermanentError),
])
def test_other_failures_by_status(rsps: responses.RequestsMock, sink: TwilioSmsSink,
                                  status: int, code: int, error: type[Exception]) -> None:
    rsps.replace("POST", MESSAGES, status=status, json=twilio_error(status, code))

    with pytest.raises(error):
        sink.deliver(delivery())


def test_a_refused_connection_is_transient(
        rsps: responses.RequestsMock, sink: TwilioSmsSink) -> None:
    rsps.replace("POST", MESSAGES, body=requests.ConnectionError("refused"))

    with pytest.raises(TransientError):
        sink.deliver(delivery())


def test_only_sms_deliveries_with_a_recipient_and_a_body_are_sent(sink: TwilioSmsSink) -> None:
    with pytest.raises(PermanentError):
        sink.deliver(delivery({"to": REP, "body": " "}))
    with pytest.raises(PermanentError):
        sink.deliver(delivery(action=DeliveryAction.NOTE))


def test_ping_reads_the_account(rsps: responses.RequestsMock, sink: TwilioSmsSink) -> None:
    rsps.get(f"{BASE}/2010-04-01/Accounts/{ACCOUNT_SID}.json",
             json={"sid": ACCOUNT_SID, "status": "active"})

    sink.ping()


def test_no_sender_no_sink() -> None:
    settings = SimpleNamespace(twilio_base_url=BASE, twilio_account_sid=ACCOUNT_SID,
                               twilio_auth_token=SecretStr("t"), sms_from=None,
                               sink_timeout_s=5.0)

    with pytest.raises(ValueError, match="CAHUB_SMS_FROM"):
        TwilioSmsSink.from_settings(settings)


def test_nothing_logged_carries_the_numbers(rsps: responses.RequestsMock, sink: TwilioSmsSink,
                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    sink.deliver(delivery())

    assert "4155550199" not in caplog.text


# --- one message per call -------------------------------------------------------------------

def caller_summary(call_sid: str) -> Summary:
    return Summary(call=CallInfo(sid=call_sid, **{"from": "+14155550134"}, to="+18005550100",
                                 caller_kind=CallerKind.NUMBER),
                   identity=None, found=True, name="Ada Lovelace", loyalty_tier="gold")


def test_a_second_call_from_the_same_caller_texts_the_rep_again() -> None:
    rep = Agent(id="grace", name="Grace", client="grace", sms=REP, token="t")
    planner = DeliveryPlanner("none", "+18005550100", DataUsage(), fit_sms)
    with TwilioStandIn(ACCOUNT_SID, "auth-token") as twilio:
        sink = TwilioSmsSink(ACCOUNT_SID, "auth-token", "+18005550100",
                             base_url=twilio.base_url)
        for sid in ("CA" + "1" * 32, "CA" + "2" * 32):
            [new] = planner.on_answer(caller_summary(sid), rep)
            made = Delivery(id=1, **new.model_dump(), created_at=datetime.now(UTC),
                            next_attempt_at=datetime.now(UTC))
            sink.deliver(made)
            sink.deliver(made)  # a retry of this call's SMS is still sent once
        sink.close()

    assert 2 == len(twilio.sent_to(REP))


def test_a_suffix_is_always_kept_and_counted_against_the_segment() -> None:
    body = fit_sms(["Ada", "x" * 200], suffix="Ref 9f3a1c")

    assert "Ada\n" + "x" * 142 + "...\nRef 9f3a1c" == body
    assert 160 == gsm7_length(body)


def test_a_suffix_follows_a_ucs2_body_in_the_same_segment() -> None:
    body = fit_sms(["山田 太郎", "y" * 100], suffix="Ref 9f3a1c")

    assert (True, 1) == (body.endswith("\nRef 9f3a1c"), segments(body))
