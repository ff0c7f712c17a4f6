"""The softphone in a real Chromium: ring -> answer -> hang up -> wrap-up, drafts that outlive
their tab, tokens renewed, one tab holding the phone. The CRM is the HubSpot stand-in."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from flask import Flask

from app import close_app, create_app, services
from hub.models import Identity, Profile
from tests.e2e.browser import BROWSER_MARKS, serve
from tests.e2e.softphone import KEY_SECRET, SOFTPHONE, Twilio, fake_sdk_site, shot
from tests.fakes import InMemoryProfileProvider, wait_for
from tests.standins.hubspot import HubSpotStandIn
from tests.standins.twilio import TwilioStandIn
from tests.support import ADA_PHONE, AUTH_TOKEN, make_settings, outbound_form

pytestmark = BROWSER_MARKS

SID = "CA" + "5a" * 16
LEG = "CA" + "6b" * 16
ADA = Profile(source="embedded", profile_id="ada", attributes={
    "person": {"name": {"firstName": "Ada", "lastName": "Lovelace"}},
    "loyalty": {"tier": "gold"}, "_cah": {"scores": {"lifetimeValue": 1234.5,
                                                     "churnPropensity": 0.82}}})


@pytest.fixture
def hubspot() -> Iterator[HubSpotStandIn]:
    with HubSpotStandIn() as standin:
        yield standin


@pytest.fixture
def sdk_url() -> Iterator[str]:
    with fake_sdk_site() as url:
        yield url


@pytest.fixture
def rest() -> Iterator[TwilioStandIn]:
    with TwilioStandIn(SOFTPHONE["twilio_account_sid"], AUTH_TOKEN) as standin:
        standin.add_api_key(SOFTPHONE["twilio_api_key_sid"], KEY_SECRET)
        yield standin


@pytest.fixture
def desk_app(tmp_path: Path, hubspot: HubSpotStandIn, rest: TwilioStandIn,
             sdk_url: str) -> Iterator[Flask]:
    settings = make_settings(tmp_path / "instance", crm="hubspot", hubspot_token=hubspot.token,
                             hubspot_base_url=hubspot.base_url, voice_sdk_url=sdk_url,
                             twilio_base_url=rest.base_url, **SOFTPHONE)
    provider = InMemoryProfileProvider({Identity(namespace="Phone_E.164", id=ADA_PHONE): ADA})
    app = create_app(settings, providers=[provider])
    app.config["CAHUB_SSE_KEEPALIVE"] = 0.25
    yield app
    close_app(app)


@pytest.fixture
def base(desk_app: Flask) -> Iterator[str]:
    with serve(desk_app) as url:
        yield url


@pytest.fixture
def twilio(base: str) -> Twilio:
    return Twilio(base)


def open_console(page: Any, base: str, agent: str = "grace") -> Any:
    from playwright.sync_api import expect

    page.goto(f"{base}/console#token={agent}-token")
    expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "live")
    return page


def phone_on(page: Any) -> Any:
    from playwright.sync_api import expect

    page.get_by_test_id("phone-start").click()
    expect(page.get_by_test_id("phone")).to_have_attribute("data-state", "ready")
    return page


def ring(page: Any, parent: str = SID, leg: str = LEG) -> None:
    page.evaluate("([parent, leg]) => TwilioSimulator.ring({parent, leg, to: 'client:grace'})",
                  [parent, leg])


def until(page: Any, expression: str, timeout: float = 5.0) -> None:
    """Wait for ``expression`` to hold in the page. Not ``wait_for_function``: its polling
    evaluates strings in the page, which the console's policy (rightly) refuses."""
    assert wait_for(lambda: page.evaluate(expression), timeout), f"never true: {expression}"


def fake_call_log(page: Any) -> list[str]:
    return page.evaluate("TwilioSimulator.calls().map(c => c.log).flat()")


def test_a_call_rings_on_its_pop_is_answered_hung_up_and_wrapped_up_into_the_crm(
        page, base, twilio, hubspot):
    from playwright.sync_api import expect

    phone_on(open_console(page, base))
    twilio.call(SID, ADA_PHONE, StirVerstat="TN-Validation-Passed-A")
    card = page.get_by_test_id("card")
    expect(card.get_by_test_id("caller-name")).to_have_text("Ada Lovelace")
    ring(page)
    twilio.leg(SID, LEG, "ringing")
    expect(card.get_by_test_id("call-state")).to_contain_text("Incoming call")
    expect(card.get_by_test_id("verstat")).to_have_text("Number verified")
    shot(page, "1-ringing")

    card.get_by_test_id("answer").click()
    twilio.leg(SID, LEG, "in-progress")
    expect(card.get_by_test_id("call-state")).to_contain_text("Connected")
    expect(card.get_by_test_id("call-clock")).to_contain_text("0:0")
    card.get_by_test_id("notes").fill("Parcel 1042 arrived damaged. Refunded in full.")
    expect(card.get_by_test_id("notes-status")).to_have_text("Saved")
    page.wait_for_timeout(1200)
    shot(page, "2-connected")

    card.get_by_test_id("hangup").click()
    twilio.leg(SID, LEG, "completed", duration=252)
    twilio.ended(SID, duration=260)
    expect(card.get_by_test_id("wrapup")).to_be_visible()
    expect(card.get_by_test_id("call-state")).to_contain_text("4 min 12 s")
    expect(card.get_by_test_id("wrapup-deadline")).to_contain_text("logged then")
    shot(page, "3-wrap-up")

    card.get_by_test_id("outcome").filter(has_text="Refund issued").click()
    card.get_by_test_id("wrapup-save").click()
    expect(card.get_by_test_id("call-state")).to_contain_text("Wrapped up · Refund issued")
    expect(card.get_by_test_id("wrapup")).to_be_hidden()
    shot(page, "4-wrapped-up")

    assert wait_for(lambda: hubspot.objects["calls"], timeout=10)
    [logged] = hubspot.objects["calls"].values()
    assert logged.properties["hs_call_body"].startswith(
        "Outcome: Refund issued<br><br>Parcel 1042 arrived damaged. Refunded in full.")
    assert ("260000", "COMPLETED") == (logged.properties["hs_call_duration"],
                                       logged.properties["hs_call_status"])
    assert ["accept", "disconnect"] == fake_call_log(page)


def test_a_tab_closed_mid_note_and_reopened_still_has_the_draft(page, base, twilio):
    from playwright.sync_api import expect

    phone_on(open_console(page, base))
    twilio.call(SID, ADA_PHONE)
    ring(page)
    page.get_by_test_id("answer").click()
    twilio.leg(SID, LEG, "in-progress")
    expect(page.get_by_test_id("call-state")).to_contain_text("Connected")
    page.get_by_test_id("notes").fill("Customer asked about the Winter Sale price match")

    page.close(run_before_unload=True)

    reopened = open_console(page.context.new_page(), base)
    expect(reopened.get_by_test_id("caller-name")).to_have_text("Ada Lovelace")
    expect(reopened.get_by_test_id("notes")).to_have_value(
        "Customer asked about the Winter Sale price match")
    expect(reopened.get_by_test_id("call-state")).to_contain_text("Connected")


def test_the_phone_gets_the_agents_token_and_a_new_one_before_it_expires(page, base):
    phone_on(open_console(page, base))

    page.evaluate("TwilioSimulator.expireToken()")
    until(page, "TwilioSimulator.devices[0].tokens.length === 2")

    tokens = page.evaluate("TwilioSimulator.devices[0].tokens")
    claims = [jwt.decode(t, KEY_SECRET, algorithms=["HS256"]) for t in tokens]
    assert ["grace", "grace"] == [c["grants"]["identity"] for c in claims]
    assert claims[1]["exp"] >= claims[0]["exp"]
    options = page.evaluate("TwilioSimulator.devices[0].options")
    assert (True, ["roaming"]) == (options["allowIncomingWhileBusy"], options["edge"])


def test_a_token_due_during_a_call_is_renewed_once_the_call_is_over(page, base, twilio):
    from playwright.sync_api import expect

    phone_on(open_console(page, base))
    twilio.call(SID, ADA_PHONE)
    ring(page)
    page.get_by_test_id("answer").click()
    page.evaluate("TwilioSimulator.expireToken()")
    page.wait_for_timeout(300)
    assert 1 == page.evaluate("TwilioSimulator.devices[0].tokens.length")

    page.get_by_test_id("hangup").click()

    until(page, "TwilioSimulator.devices[0].tokens.length === 2")
    expect(page.get_by_test_id("phone")).to_have_attribute("data-state", "ready")


def test_turning_the_phone_on_in_a_second_tab_turns_it_off_in_the_first(page, base):
    from playwright.sync_api import expect

    phone_on(open_console(page, base))
    second = phone_on(open_console(page.context.new_page(), base))

    expect(page.get_by_test_id("phone")).to_have_attribute("data-state", "elsewhere")
    expect(page.get_by_test_id("phone-start")).to_have_text("Use phone here")
    assert "destroyed" == page.evaluate("TwilioSimulator.devices[0].state")
    assert "registered" == second.evaluate("TwilioSimulator.devices[0].state")


def test_a_second_call_during_a_call_can_be_declined_but_not_answered(page, base, twilio):
    from playwright.sync_api import expect

    phone_on(open_console(page, base))
    twilio.call(SID, ADA_PHONE)
    ring(page)
    page.get_by_test_id("answer").click()
    other = "CA" + "7c" * 16
    twilio.call(other, "+14155550199")
    ring(page, parent=other, leg="CA" + "8d" * 16)

    ringing = page.locator(f'[data-call-sid="{other}"]')
    expect(ringing.get_by_test_id("answer")).to_be_disabled()
    ringing.get_by_test_id("decline").click()

    expect(ringing.get_by_test_id("call-state")).to_have_text("Declined")
    expect(page.locator(f'[data-call-sid="{SID}"]').get_by_test_id("call-state")).to_contain_text(
        "Connected")


def test_mute_is_a_toggle_the_call_hears(page, base, twilio):
    from playwright.sync_api import expect

    phone_on(open_console(page, base))
    twilio.call(SID, ADA_PHONE)
    ring(page)
    page.get_by_test_id("answer").click()

    page.get_by_test_id("mute").click()

    expect(page.get_by_test_id("mute")).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_test_id("mute")).to_have_text("Unmute")
    assert ["accept", "mute"] == fake_call_log(page)


def test_the_phone_rings_before_the_pop_with_the_callers_parameters(page, base):
    from playwright.sync_api import expect

    phone_on(open_console(page, base))

    page.evaluate("""TwilioSimulator.ring({parent: 'CA' + '9e'.repeat(16),
                   leg: 'CA' + 'af'.repeat(16), params: {name: 'Ada Lovelace', found: 'true'}})""")

    expect(page.get_by_test_id("caller-name")).to_have_text("Ada Lovelace")
    expect(page.get_by_test_id("answer")).to_be_visible()


def test_without_an_sdk_the_console_still_pops_and_says_the_softphone_is_unavailable(
        page, tmp_path):
    from playwright.sync_api import expect

    app = create_app(make_settings(tmp_path / "bare", **SOFTPHONE), start_background=False)
    try:
        with serve(app) as url:
            open_console(page, url)
            expect(page.get_by_test_id("phone-unavailable")).to_contain_text("cahub voice-sdk")
            twilio = Twilio(url)
            twilio.call(SID, ADA_PHONE)
            expect(page.get_by_test_id("card")).to_have_count(1)
            shot(page, "0-softphone-unavailable")
    finally:
        close_app(app)


def test_the_draft_is_saved_while_typing_without_waiting_for_the_tab_to_close(
        desk_app, page, base, twilio):
    phone_on(open_console(page, base))
    twilio.call(SID, ADA_PHONE)
    twilio.leg(SID, LEG, "in-progress")

    page.get_by_test_id("notes").fill("typed")

    assert wait_for(lambda: stored_notes(desk_app) == "typed", timeout=5)


def stored_notes(app: Flask) -> str | None:
    stored = services(app).desk.store.get(SID)
    return stored.notes if stored is not None else None


def test_an_agent_dials_a_number_and_the_person_dialled_pops_on_the_calls_card(
        page, base, twilio, hubspot):
    from playwright.sync_api import expect

    phone_on(open_console(page, base))
    page.get_by_test_id("dial-number").fill("(415) 555-0134")
    page.get_by_test_id("dial").click()
    card = page.get_by_test_id("card")
    expect(card.get_by_test_id("call-state")).to_contain_text("Calling…")
    dialled = page.evaluate("TwilioSimulator.calls()[0].customParameters.get('To')")
    assert "(415) 555-0134" == dialled

    reply = twilio.post("/twilio/outbound", outbound_form(SID, "(415) 555-0134"))
    page.evaluate(f"TwilioSimulator.calls()[0].remoteRinging('{SID}')")
    expect(card.get_by_test_id("caller-name")).to_have_text("Ada Lovelace")
    assert ADA_PHONE == ET.fromstring(reply.text).findtext("Dial/Number")
    twilio.leg(SID, LEG, "in-progress", to=ADA_PHONE)
    page.evaluate("TwilioSimulator.calls()[0].remoteAnswer()")
    expect(card.get_by_test_id("call-state")).to_contain_text("Connected")
    expect(page.get_by_test_id("card")).to_have_count(1)
    shot(page, "5-outbound-connected")

    card.get_by_test_id("hangup").click()
    twilio.leg(SID, LEG, "completed", to=ADA_PHONE, duration=64)
    twilio.ended(SID, duration=70)
    card.get_by_test_id("outcome").filter(has_text="Left voicemail").click()
    card.get_by_test_id("wrapup-save").click()

    assert wait_for(lambda: hubspot.objects["calls"], timeout=10)
    [logged] = hubspot.objects["calls"].values()
    assert ("OUTBOUND", "b2cf5968-551e-4856-9783-52b3da59a7d0") == (
        logged.properties["hs_call_direction"], logged.properties["hs_call_disposition"])


def test_call_back_from_a_card_dials_the_callers_number(page, base, twilio):
    from playwright.sync_api import expect

    phone_on(open_console(page, base))
    twilio.call(SID, ADA_PHONE)
    twilio.leg(SID, LEG, "no-answer")
    expect(page.get_by_test_id("call-state")).to_have_text("Missed call")

    page.get_by_test_id("call-back").click()

    until(page, "TwilioSimulator.calls().length === 1")
    assert ADA_PHONE == page.evaluate("TwilioSimulator.calls()[0].customParameters.get('To')")


def test_a_warm_transfer_rings_the_colleague_with_the_pop_and_the_notes(page, base, twilio, rest):
    from playwright.sync_api import expect

    phone_on(open_console(page, base))
    alan = page.context.browser.new_context(locale="en-US", timezone_id="UTC",
                                            viewport={"width": 1100, "height": 900}).new_page()
    errors: list[str] = []
    alan.on("pageerror", lambda error: errors.append(str(error)))
    phone_on(open_console(alan, base, agent="alan"))
    twilio.call(SID, ADA_PHONE)
    rest.live_calls.add(SID)
    ring(page)
    page.get_by_test_id("answer").click()
    twilio.leg(SID, LEG, "in-progress")
    page.get_by_test_id("notes").fill("Wants the annual plan; price quoted at $99.")
    expect(page.get_by_test_id("notes-status")).to_have_text("Saved")

    page.get_by_test_id("transfer-open").click()
    page.get_by_test_id("transfer-agent").select_option("alan")
    page.get_by_test_id("transfer-confirm").click()
    expect(page.get_by_test_id("call-state")).to_contain_text("Transferring to Alan Turing")
    assert wait_for(lambda: rest.call_updates, timeout=5)
    page.evaluate("TwilioSimulator.calls()[0].remoteHangup()")
    twilio.leg(SID, LEG, "completed", duration=40)
    ring(alan, leg="CA" + "7d" * 16)

    alan_card = alan.get_by_test_id("card")
    expect(alan_card.get_by_test_id("caller-name")).to_have_text("Ada Lovelace")
    expect(alan_card.get_by_test_id("call-state")).to_contain_text("Transfer for you")
    expect(alan_card.get_by_test_id("handoff")).to_contain_text(
        "Wants the annual plan; price quoted at $99.")
    expect(alan_card.get_by_test_id("handoff")).to_contain_text("Notes from Grace Hopper")
    shot(alan, "6-transfer-ringing-at-second-agent")
    shot(page, "6b-transferring-at-first-agent")

    alan_card.get_by_test_id("answer").click()
    twilio.leg(SID, "CA" + "7d" * 16, "in-progress", to="client:alan")
    expect(page.get_by_test_id("call-state")).to_contain_text("Transferred to Alan Turing")
    expect(alan_card.get_by_test_id("call-state")).to_contain_text("Connected")
    shot(page, "7-transferred-at-first-agent")
    assert [] == errors
    alan.context.close()


def test_a_card_in_wrap_up_fits_a_narrow_window(page, base, twilio):
    from playwright.sync_api import expect

    page.set_viewport_size({"width": 390, "height": 844})
    phone_on(open_console(page, base))
    twilio.call(SID, ADA_PHONE, StirVerstat="TN-Validation-Passed-B")
    ring(page)
    page.get_by_test_id("answer").click()
    page.get_by_test_id("hangup").click()
    expect(page.get_by_test_id("wrapup")).to_be_visible()
    expect(page.get_by_test_id("verstat")).to_have_text("Number not verified")

    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")

    shot(page, "9-wrap-up-narrow")
    assert 0 >= overflow
