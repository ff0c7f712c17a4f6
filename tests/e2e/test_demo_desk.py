"""The demo, end to end: ``cahub demo`` as a real process with its simulated phone, ``cahub
simulate-call`` as a real command, Chromium as the agent, HubSpot and Twilio's REST API as
local stand-ins. An agent answers a call that rings on its pop, types notes, hangs up and
picks an outcome; the CRM gets the call log and the next pop shows the outcome. Calling out
and a warm transfer work the same way."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from integrations.simulate import leg_status_form, post_signed
from lookup.demo import DEMO_CALLER
from tests.e2e.browser import BROWSER_MARKS
from tests.e2e.hub_process import HubProcess, hub_environment, run_cahub
from tests.e2e.softphone import shot
from tests.fakes import wait_for
from tests.standins.hubspot import HubSpotStandIn
from tests.standins.twilio import TwilioStandIn

pytestmark = [*BROWSER_MARKS, pytest.mark.slow]

AUTH_TOKEN = "demo-desk-auth-token-0123456789ab"
ACCOUNT = "AC" + "de" * 16
NUMBER = "+18005550100"
CALL_SID = "CA" + "0d" * 16
CONFIG = f"""
[[agents]]
id = "grace"
name = "Grace Hopper"
client = "grace"
numbers = ["{NUMBER}"]
token = "grace-demo-token"
caller_id = "{NUMBER}"

[[agents]]
id = "alan"
name = "Alan Turing"
client = "alan"
token = "alan-demo-token"
caller_id = "{NUMBER}"
"""


@pytest.fixture
def scene(tmp_path: Path) -> Iterator[tuple[HubProcess, HubSpotStandIn, TwilioStandIn]]:
    with HubSpotStandIn() as hubspot, TwilioStandIn(ACCOUNT, AUTH_TOKEN) as rest:
        (tmp_path / "hub.toml").write_text(CONFIG)
        env = hub_environment({
            "CAHUB_DATA_DIR": str(tmp_path / "data"), "CAHUB_CONFIG": str(tmp_path / "hub.toml"),
            "CAHUB_TWILIO_AUTH_TOKEN": AUTH_TOKEN, "CAHUB_TWILIO_ACCOUNT_SID": ACCOUNT,
            "CAHUB_TWILIO_BASE_URL": rest.base_url, "CAHUB_CRM": "hubspot",
            "CAHUB_HUBSPOT_BASE_URL": hubspot.base_url, "CAHUB_HUBSPOT_TOKEN": hubspot.token,
            "CAHUB_SECRET_KEY": "demo-desk-secret"})
        hub = HubProcess(env, tmp_path, command=("demo",))
        hub.start()
        try:
            yield hub, hubspot, rest
        finally:
            hub.stop()


def console(page: Any, hub: HubProcess, agent: str = "grace") -> Any:
    from playwright.sync_api import expect

    page.goto(hub.url(f"/console#token={agent}-demo-token"))
    expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "live")
    page.get_by_test_id("phone-start").click()
    expect(page.get_by_test_id("phone")).to_have_attribute("data-state", "ready")
    return page


def written_back(hub: HubProcess) -> bool:
    """Whether the hub has written a call back into the profile store."""
    with closing(sqlite3.connect(hub.workdir / "data" / "hub.sqlite3", timeout=5)) as conn:
        return bool(conn.execute("SELECT count(*) FROM deliveries WHERE sink = 'profile'"
                                 " AND status = 'done'").fetchone()[0])


def simulate_call(hub: HubProcess, *extra: str) -> None:
    run_cahub(["simulate-call", "--from", DEMO_CALLER, "--to", NUMBER, "--url", hub.base_url,
               *extra], hub.env, hub.workdir)


def test_in_the_demo_a_call_is_answered_noted_wrapped_up_logged_and_shown_on_the_next_pop(
        scene, page):
    from playwright.sync_api import expect

    hub, hubspot, _ = scene
    console(page, hub)
    simulate_call(hub, "--verstat", "TN-Validation-Passed-A")
    card = page.get_by_test_id("card")
    expect(card.get_by_test_id("caller-name")).to_have_text("Ada Lovelace")
    expect(card.get_by_test_id("verstat")).to_have_text("Number verified")
    card.get_by_test_id("answer").click()
    expect(card.get_by_test_id("call-state")).to_contain_text("Connected")
    card.get_by_test_id("notes").fill("Asked for a refund of order 1042; issued.")
    expect(card.get_by_test_id("notes-status")).to_have_text("Saved")

    card.get_by_test_id("hangup").click()
    card.get_by_test_id("outcome").filter(has_text="Refund issued").click()
    card.get_by_test_id("wrapup-save").click()
    expect(card.get_by_test_id("call-state")).to_contain_text("Wrapped up · Refund issued")

    assert wait_for(lambda: hubspot.objects["calls"], timeout=15)
    [logged] = hubspot.objects["calls"].values()
    assert "Asked for a refund of order 1042; issued." in logged.properties["hs_call_body"]
    assert wait_for(lambda: written_back(hub), timeout=15)
    simulate_call(hub)
    expect(page.get_by_test_id("card").first.get_by_test_id("recent-events")).to_contain_text(
        "Refund issued", timeout=15000)
    shot(page, "8-demo-next-pop")


def test_in_the_demo_an_agent_calls_a_customer_from_the_number_field(scene, page):
    from playwright.sync_api import expect

    hub, hubspot, _ = scene
    console(page, hub)

    page.get_by_test_id("dial-number").fill("(415) 555-0134")
    page.get_by_test_id("dial").click()

    card = page.get_by_test_id("card")
    expect(card.get_by_test_id("caller-name")).to_have_text("Ada Lovelace")
    expect(card.get_by_test_id("call-state")).to_contain_text("Connected", timeout=10000)
    card.get_by_test_id("hangup").click()
    card.get_by_test_id("outcome").filter(has_text="Left voicemail").click()
    card.get_by_test_id("wrapup-save").click()
    assert wait_for(lambda: hubspot.objects["calls"], timeout=15)
    [logged] = hubspot.objects["calls"].values()
    assert "OUTBOUND" == logged.properties["hs_call_direction"]


def test_in_the_demo_a_warm_transfer_reaches_twilio_and_the_colleagues_console(scene, page):
    from playwright.sync_api import expect

    hub, hubspot, rest = scene
    grace = console(page, hub)
    alan = console(page.context.browser.new_context(locale="en-US", timezone_id="UTC")
                   .new_page(), hub, "alan")
    rest.live_calls.add(CALL_SID)
    simulate_call(hub, "--call-sid", CALL_SID)
    grace.get_by_test_id("answer").click()
    expect(grace.get_by_test_id("call-state")).to_contain_text("Connected")
    grace.get_by_test_id("notes").fill("Wants the annual plan.")
    expect(grace.get_by_test_id("notes-status")).to_have_text("Saved")

    grace.get_by_test_id("transfer-open").click()
    grace.get_by_test_id("transfer-agent").select_option("alan")
    grace.get_by_test_id("transfer-confirm").click()

    assert wait_for(lambda: rest.call_updates, timeout=10)
    assert "<Identity>alan</Identity>" in rest.call_updates[0]["Twiml"]
    # Twilio ends the first agent's leg when the caller moves on.
    grace.evaluate("TwilioSimulator.calls()[0].remoteHangup()")
    leg = leg_status_form(CALL_SID, "CA" + "0e" * 16, "completed", "client:grace", ACCOUNT, 20, 90)
    post_signed(hub.url("/twilio/leg-status"), leg, AUTH_TOKEN)
    expect(alan.get_by_test_id("handoff")).to_contain_text("Wants the annual plan.")
    alan.get_by_test_id("answer").click()
    expect(grace.get_by_test_id("call-state")).to_contain_text("Transferred to Alan Turing")
    alan.get_by_test_id("hangup").click()
    alan.get_by_test_id("outcome").filter(has_text="Resolved").click()
    alan.get_by_test_id("wrapup-save").click()

    assert wait_for(lambda: hubspot.objects["calls"], timeout=15)
    [logged] = hubspot.objects["calls"].values()
    body = logged.properties["hs_call_body"]
    assert "Grace Hopper: Wants the annual plan." in body
    alan.context.close()
