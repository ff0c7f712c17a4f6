"""Browser fixtures: headless Debian Chromium driven by playwright, failing on page errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS


@pytest.fixture
def page() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=CHROMIUM_ARGS)
        context = browser.new_context(locale="en-US", timezone_id="UTC",
                                      viewport={"width": 1100, "height": 900})
        new_page = context.new_page()
        errors: list[str] = []
        new_page.on("pageerror", lambda error: errors.append(str(error)))
        new_page.on("console",
                    lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        yield new_page
        context.close()
        browser.close()
    assert [] == errors, "the console logged errors (a CSP violation, a script error)"
