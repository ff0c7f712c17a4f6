"""The warm transfer's REST call, against the local Twilio stand-in."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from pydantic import SecretStr

from hub.models import CallerKind, CallInfo, Summary
from hub.ports import PermanentError, TransientError
from hub.settings import Agent, Routing
from integrations.twilio_calls import TwilioCallControl
from tests.standins.twilio import TwilioStandIn

ACCOUNT = "AC" + "7e" * 16
TOKEN = "auth-token-0123456789abcdef0123"
KEY, SECRET = "SK" + "8f" * 16, "key-secret-0123456789abcdef012345"
CALL = "CA" + "9a" * 16
GRACE = Agent(id="grace", name="Grace Hopper", client="grace", token="t1")
ALAN = Agent(id="alan", name="Alan Turing", client="alan", token="t2")
SUMMARY = Summary(call=CallInfo(sid=CALL, **{"from": "+14155550134"}, to="+18005550100",
                                caller_kind=CallerKind.NUMBER),
                  identity=None, found=True, name="Ada Lovelace", loyalty_tier="gold")


@pytest.fixture
def twilio() -> Iterator[TwilioStandIn]:
    with TwilioStandIn(ACCOUNT, TOKEN) as standin:
        standin.add_api_key(KEY, SECRET)
        standin.live_calls.add(CALL)
        yield standin


def settings(twilio: TwilioStandIn, **changes: object) -> SimpleNamespace:
    values = {"twilio_base_url": twilio.base_url, "twilio_account_sid": ACCOUNT,
              "twilio_auth_token": SecretStr(TOKEN), "twilio_api_key_sid": KEY,
              "twilio_api_key_secret": SecretStr(SECRET), "sink_timeout_s": 5.0}
    return SimpleNamespace(**{**values, **changes})


@pytest.fixture
def control(twilio: TwilioStandIn) -> Iterator[TwilioCallControl]:
    made = TwilioCallControl.from_settings(settings(twilio), Routing())
    assert made is not None
    yield made
    made.close()


def transfer(control: TwilioCallControl) -> None:
    control.ring_agent(CALL, ALAN, SUMMARY, GRACE, "https://hub.example.com")


def test_the_call_is_moved_to_a_dial_to_the_colleague_with_the_calls_parameters(control, twilio):
    transfer(control)

    [update] = twilio.call_updates
    root = ET.fromstring(update["Twiml"])
    params = {p.get("name"): p.get("value") for p in root.iterfind("Dial/Client/Parameter")}
    assert "alan" == root.findtext("Dial/Client/Identity")
    assert (CALL, "Ada Lovelace", "Grace Hopper") == (
        params["callSid"], params["name"], params["transferFrom"])


def test_a_colleague_who_does_not_answer_sends_the_caller_back(control, twilio):
    transfer(control)

    dial = ET.fromstring(twilio.call_updates[0]["Twiml"]).find("Dial")
    assert "https://hub.example.com/twilio/dial-done?back_to=grace" == dial.get("action")


def test_the_api_key_authenticates_when_there_is_one(control, twilio):
    transfer(control)

    scheme, _, credentials = twilio.requests[-1].headers["Authorization"].partition(" ")
    assert ("Basic", f"{KEY}:{SECRET}") == (scheme, base64.b64decode(credentials).decode())


def test_without_an_api_key_the_auth_token_authenticates(twilio):
    control = TwilioCallControl.from_settings(
        settings(twilio, twilio_api_key_sid=None, twilio_api_key_secret=None), Routing())
    assert control is not None

    transfer(control)
    control.close()

    assert 1 == len(twilio.call_updates)


def test_without_an_account_there_is_no_call_control(twilio):
    assert None is TwilioCallControl.from_settings(settings(twilio, twilio_account_sid=None),
                                                   Routing())


def test_a_call_that_has_ended_is_a_permanent_refusal(control, twilio):
    twilio.ended_calls.add(CALL)

    with pytest.raises(PermanentError, match="21220"):
        transfer(control)


def test_an_unknown_call_is_a_permanent_refusal(control, twilio):
    twilio.live_calls.clear()

    with pytest.raises(PermanentError, match="404"):
        transfer(control)


def test_twilio_failing_is_a_transient_error(control, twilio):
    twilio.fail_next(1, status=503)

    with pytest.raises(TransientError):
        transfer(control)


def test_throttling_carries_twilios_retry_after(control, twilio):
    twilio.fail_next(1, status=429, retry_after_ms=3000)

    with pytest.raises(TransientError) as caught:
        transfer(control)

    assert 3.0 == caught.value.retry_after
