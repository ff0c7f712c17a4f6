"""End to end: the demo data, a real server, a signed simulated call, a card in Chromium."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from app import close_app, create_app, services
from integrations.simulate import inbound_call_form, new_call_sid, post_signed
from lookup.demo import DEMO_CALLER, load_demo
from tests.e2e.browser import BROWSER_MARKS, serve
from tests.support import AGENT_NUMBER, AUTH_TOKEN, make_settings

pytestmark = BROWSER_MARKS


@pytest.fixture
def demo_app(tmp_path: Path) -> Iterator[Flask]:
    app = create_app(make_settings(tmp_path))
    load_demo(services(app).store)
    yield app
    close_app(app)


def test_a_simulated_call_pops_the_callers_card(demo_app: Flask, page: Any) -> None:
    from playwright.sync_api import expect

    with serve(demo_app) as base:
        page.goto(f"{base}/console#token=grace-token")
        expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "live")
        form = inbound_call_form(new_call_sid(), DEMO_CALLER, AGENT_NUMBER, "AC" + "0" * 32)
        reply = post_signed(f"{base}/twilio/voice", form, AUTH_TOKEN)
        expect(page.get_by_test_id("caller-name")).to_have_text("Ada Lovelace")
    assert "grace" == ET.fromstring(reply.text).findtext("Dial/Client/Identity")
