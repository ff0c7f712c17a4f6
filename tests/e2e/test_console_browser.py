"""The agent console in a real headless Chromium against a real threaded server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask

from app import close_app, create_app, services
from hub.models import (
    Ambiguity,
    CallerKind,
    CallInfo,
    PersonFacts,
    Summary,
    SummaryAudience,
    SummaryEvent,
)
from hub.settings import Agent, HubConfig
from tests.e2e.browser import BROWSER_MARKS, serve
from tests.support import make_settings

AGENT = Agent(id="ada", name="Ada Agent", client="ada", token="ada-browser-token")
SCREENSHOT = "/tmp/console.png"

pytestmark = BROWSER_MARKS


def rich_summary(sid_number: int = 1, **changes: Any) -> Summary:
    now = datetime.now(UTC)
    call = CallInfo(sid=f"CA{sid_number:032x}", from_="+14155550134", to="+18005550100",
                    caller_kind=CallerKind.NUMBER)
    values: dict[str, Any] = {
        "call": call, "identity": None, "found": True, "source": "embedded",
        "profile_id": "p-1", "name": "Grace Hopper", "email": "grace@example.com",
        "loyalty_tier": "gold", "lifetime_value": 1234.5, "churn_propensity": 0.82,
        "audiences": (SummaryAudience(id="a1", name="High value", status="realized"),
                      SummaryAudience(id="a2", name="Lapsed", status="exited")),
        "recent_events": (
            SummaryEvent(timestamp=now - timedelta(days=2), type="commerce.purchases",
                         title="Purchased 2× Trail Shoe (USD 240.00)"),
            SummaryEvent(timestamp=now - timedelta(days=9), type="web.webpagedetails.pageViews",
                         title="Viewed Returns policy"),
        ),
        "last_campaign": "Winter Sale 2026", "lookup_ms": 0.7,
    }
    return Summary(**{**values, **changes})


def _trigger_pop(app: Flask, agent_id: str, summary: Summary) -> None:
    """Make the hub pop ``summary`` on ``agent_id``'s console (later: a signed /twilio/voice)."""
    services(app).broker.publish(agent_id, summary)


@pytest.fixture
def console_app(tmp_path: Path) -> Iterator[Flask]:
    app = create_app(make_settings(tmp_path, hub=HubConfig(agents=(AGENT,))),
                     start_background=False)
    app.config["CAHUB_SSE_KEEPALIVE"] = 0.25
    yield app
    close_app(app)


@pytest.fixture
def requested(console_app: Flask) -> list[str]:
    """Every URL the server was asked for (path and query), as an access log would show it."""
    urls: list[str] = []
    inner = console_app.wsgi_app

    def recording(environ: dict[str, Any], start_response: Any) -> Any:
        query = environ.get("QUERY_STRING", "")
        urls.append(environ["PATH_INFO"] + (f"?{query}" if query else ""))
        return inner(environ, start_response)

    console_app.wsgi_app = recording  # type: ignore[method-assign]
    return urls


@pytest.fixture
def base_url(console_app: Flask, requested: list[str]) -> Iterator[str]:
    with serve(console_app) as url:
        yield url


@pytest.fixture
def live_console(page: Any, base_url: str) -> Any:
    """The console, logged in through the URL ``cahub demo`` prints, and connected."""
    from playwright.sync_api import expect

    page.goto(f"{base_url}/console#token={AGENT.token.get_secret_value()}")
    expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "live")
    return page


def test_a_pop_shows_the_callers_card(console_app, live_console, base_url):
    from playwright.sync_api import expect

    _trigger_pop(console_app, "ada", rich_summary())

    card = live_console.get_by_test_id("card")
    expect(card.get_by_test_id("caller-name")).to_have_text("Grace Hopper")
    expect(card.get_by_test_id("lifetime-value")).to_have_text("$1,234.50")
    expect(card.get_by_test_id("churn-risk")).to_contain_text("82%")
    expect(card.get_by_test_id("loyalty-tier")).to_have_text("Gold")
    expect(card.get_by_test_id("audiences")).to_have_text("High value")
    expect(card.get_by_test_id("recent-events")).to_contain_text("2 days ago")
    assert live_console.url == f"{base_url}/console"
    live_console.screenshot(path=SCREENSHOT, full_page=True, animations="disabled")


def test_a_later_pop_for_the_same_call_updates_its_card_in_place(console_app, live_console):
    from playwright.sync_api import expect

    _trigger_pop(console_app, "ada", rich_summary(1, found=False, name=None, source=None))
    _trigger_pop(console_app, "ada", rich_summary(2, name="Someone Else"))
    _trigger_pop(console_app, "ada", rich_summary(1))

    names = live_console.get_by_test_id("caller-name")
    expect(names).to_have_text(["Someone Else", "Grace Hopper"])


def test_unknown_and_withheld_callers_never_get_a_blank_card(console_app, live_console):
    from playwright.sync_api import expect

    withheld = CallInfo(sid="CA" + "f" * 32, from_="anonymous", to="+18005550100",
                        caller_kind=CallerKind.WITHHELD)
    _trigger_pop(console_app, "ada", rich_summary(1, found=False, name=None))
    _trigger_pop(console_app, "ada", rich_summary(call=withheld, found=False, name=None))

    names = live_console.get_by_test_id("caller-name")
    expect(names).to_have_text(["Withheld number", "Unknown caller"])
    expect(live_console.get_by_test_id("caller-number").last).to_have_text("+14155550134")


def test_caller_data_is_shown_as_text_never_as_markup(console_app, live_console):
    from playwright.sync_api import expect

    markup = '<img src=x onerror="alert(1)">'
    _trigger_pop(console_app, "ada", rich_summary(name=markup))

    expect(live_console.get_by_test_id("caller-name")).to_have_text(markup)
    assert live_console.locator(".card img").count() == 0


def test_signing_out_returns_to_the_login_form(live_console):
    from playwright.sync_api import expect

    live_console.get_by_test_id("logout").click()

    expect(live_console.get_by_test_id("token-input")).to_be_visible()


def test_the_fragment_login_keeps_the_token_out_of_every_url_the_server_sees(
        live_console, base_url, requested):
    token = AGENT.token.get_secret_value()

    assert f"{base_url}/console" == live_console.url
    assert [] == [url for url in requested if token in url]


def test_after_logout_the_old_cookie_no_longer_opens_the_stream(console_app, live_console,
                                                                base_url):
    from playwright.sync_api import expect

    _trigger_pop(console_app, "ada", rich_summary())
    expect(live_console.get_by_test_id("caller-name")).to_have_text("Grace Hopper")
    saved = {c["name"]: c["value"] for c in live_console.context.cookies()}

    live_console.get_by_test_id("logout").click()
    expect(live_console.get_by_test_id("token-input")).to_be_visible()

    reply = requests.get(f"{base_url}/console/events", cookies=saved, stream=True, timeout=5)
    reply.close()
    assert 401 == reply.status_code


def test_signing_out_in_one_tab_signs_out_the_others_open_console(live_console):
    from playwright.sync_api import expect

    other_tab = live_console.context.new_page()
    other_tab.goto(live_console.url)
    expect(other_tab.get_by_test_id("connection")).to_have_attribute("data-state", "live")

    other_tab.get_by_test_id("logout").click()

    expect(live_console.get_by_test_id("connection")).to_have_attribute(
        "data-state", "signed-out", timeout=3000)


def shared_number_summary() -> Summary:
    maria = PersonFacts(source="embedded", profile_id="p-maria", name="María García",
                        email="maria@example.com", loyalty_tier="silver")
    tomas = PersonFacts(source="embedded", profile_id="p-tomas", name="Tomás García",
                        lifetime_value=99.0)
    return rich_summary(7, name=None, email=None, loyalty_tier=None, lifetime_value=None,
                        churn_propensity=None, audiences=(), recent_events=(),
                        last_campaign=None, profile_id=None,
                        ambiguous=Ambiguity(count=2, candidates=(maria, tomas)))


def test_a_shared_number_offers_a_chooser_and_shows_the_chosen_person(console_app,
                                                                       live_console):
    from playwright.sync_api import expect

    _trigger_pop(console_app, "ada", shared_number_summary())

    expect(live_console.get_by_test_id("caller-name")).to_have_text("Shared number")
    candidates = live_console.get_by_test_id("candidate")
    expect(candidates).to_have_count(2)
    candidates.filter(has_text="Tomás García").click()
    expect(live_console.get_by_test_id("caller-name")).to_have_text("Tomás García")
    expect(live_console.get_by_test_id("lifetime-value")).to_have_text("$99.00")
    expect(live_console.get_by_test_id("candidate")).to_contain_text(["María García"])
    expect(live_console.get_by_test_id("card")).to_have_count(1)
