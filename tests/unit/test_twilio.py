"""Twilio signatures and the TwiML that routes a call (parsed as XML, never matched as text)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from hub.models import CallerKind, CallInfo, Summary
from hub.settings import Agent, Routing
from integrations.twilio import (
    Callbacks,
    after_dial,
    dial_number,
    hold_in_queue,
    is_valid_signature,
    route_call,
    sign,
    signed_url,
)

AGENT = Agent(id="grace", name="Grace", client="grace", numbers=("+18005550100",), token="t")
SUMMARY = Summary(
    call=CallInfo(sid="CA" + "b" * 32, **{"from": "+14155550134"}, to="+18005550100",
                  caller_kind=CallerKind.NUMBER),
    identity=None, found=True, name="Ada Lovelace", loyalty_tier="gold", lifetime_value=1234.5,
)


def test_signature_matches_twilios_published_vector() -> None:
    params = {"CallSid": "CA1234567890ABCDE", "Digits": "1234", "From": "+14158675309",
              "To": "+18005551212", "Caller": "+14158675309"}
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert sign("12345", url, params) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def test_a_missing_or_wrong_signature_is_invalid() -> None:
    url, params = "https://hub.example.com/twilio/voice", {"CallSid": "CA1"}
    good = sign("token", url, params)
    assert (
        is_valid_signature("token", url, params, good),
        is_valid_signature("token", url, params, None),
        is_valid_signature("other", url, params, good),
        is_valid_signature("token", url, {"CallSid": "CA2"}, good),
    ) == (True, False, False, False)


def test_signed_url_keeps_the_raw_query() -> None:
    url = signed_url("https://abc.ngrok.app/", "/twilio/voice", b"x=%27a%27")
    assert url == "https://abc.ngrok.app/twilio/voice?x=%27a%27"


def test_signed_url_has_no_lone_question_mark() -> None:
    assert signed_url("https://h", "/twilio/voice", b"") == "https://h/twilio/voice"


def test_routed_call_dials_the_agents_client_with_parameters() -> None:
    root = ET.fromstring(route_call(AGENT, SUMMARY, Routing()))
    dial = root.find("Dial")
    assert dial is not None
    assert "true" == dial.get("answerOnBridge")
    assert root.findtext("Dial/Client/Identity") == "grace"
    params = {p.get("name"): p.get("value") for p in root.iterfind("Dial/Client/Parameter")}
    expected = {"callSid": SUMMARY.call.sid, "found": "true", "name": "Ada Lovelace",
                "loyalty_tier": "gold", "lifetime_value": "1234.5"}
    assert expected == params


def test_a_dial_asks_the_hub_what_next_once_it_is_over() -> None:
    callbacks = Callbacks.at("https://hub.example.com/")

    root = ET.fromstring(route_call(AGENT, SUMMARY, Routing(), callbacks))

    assert ["Dial"] == [child.tag for child in root]
    assert "https://hub.example.com/twilio/dial-done" == root.find("Dial").get("action")


def test_the_agents_leg_reports_ringing_answered_and_over_to_the_hub() -> None:
    root = ET.fromstring(route_call(AGENT, SUMMARY, Routing(), Callbacks.at("https://h")))
    client = root.find("Dial/Client")

    assert ("https://h/twilio/leg-status", "initiated ringing answered completed") == (
        client.get("statusCallback"), client.get("statusCallbackEvent"))


@pytest.mark.parametrize("status", ["completed", "answered"])
def test_once_an_answered_dial_is_over_the_call_ends(status: str) -> None:
    root = ET.fromstring(after_dial(status, Routing()))

    assert ["Hangup"] == [child.tag for child in root]


@pytest.mark.parametrize("status", ["no-answer", "busy", "failed", "canceled"])
def test_an_unanswered_dial_falls_back_to_the_queue(status: str) -> None:
    root = ET.fromstring(after_dial(status, Routing(queue="support")))

    assert [child.tag for child in root] == ["Say", "Enqueue"]
    assert root.findtext("Enqueue") == "support"


def test_a_dial_back_to_an_agent_names_them_in_its_action() -> None:
    callbacks = Callbacks.at("https://h").back_to(AGENT)

    assert "https://h/twilio/dial-done?back_to=grace" == callbacks.dial_done


def test_an_agents_call_out_shows_their_caller_id() -> None:
    root = ET.fromstring(dial_number("+18005550100", "+14155550134", Callbacks.at("https://h")))
    dial = root.find("Dial")

    assert ("+18005550100", "+14155550134") == (dial.get("callerId"), root.findtext("Dial/Number"))
    assert "https://h/twilio/leg-status" == root.find("Dial/Number").get("statusCallback")


def test_workflow_enqueues_a_task_with_the_summary() -> None:
    routing = Routing(workflow_sid="WW" + "c" * 32)
    root = ET.fromstring(route_call(AGENT, SUMMARY, routing))
    enqueue = root.find("Enqueue")
    assert enqueue is not None
    assert routing.workflow_sid == enqueue.get("workflowSid")
    task = json.loads(root.findtext("Enqueue/Task") or "{}")
    assert ("Ada Lovelace", SUMMARY.call.sid, "+14155550134") == (
        task["name"], task["call_sid"], task["from"])


def test_no_agent_gets_a_spoken_fallback_and_the_queue() -> None:
    root = ET.fromstring(route_call(None, SUMMARY, Routing()))
    assert [child.tag for child in root] == ["Say", "Enqueue"]
    assert root.findtext("Say") == Routing().fallback_message
    assert ET.fromstring(hold_in_queue(Routing())).find("Enqueue") is not None


def test_twiml_text_is_the_librarys_own_xml_character_for_character() -> None:
    from twilio.twiml.voice_response import VoiceResponse

    from integrations.twilio import twiml_text

    response = VoiceResponse()
    dial = response.dial(answer_on_bridge=True, timeout=20)
    client = dial.client()
    client.identity("grace")
    for name, value in {"name": "Zoë O'Brien <&> \"Ç\"", "note": "日本語\n\ttab",
                        "empty": ""}.items():
        client.parameter(name=name, value=value)
    response.say("Merci d'avoir appelé — un instant.")
    response.enqueue("support", workflow_sid="WW" + "0" * 32)

    assert response.to_xml() == twiml_text(response)
