"""Personal data never reaches the logs."""

from __future__ import annotations

import logging

import pytest

from hub.privacy import MaskingFilter, mask_text


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("call from +14155550134 routed", "call from …34 routed"),
        ("caller (415) 555-0134", "caller …34"),
        ("uk +44 20 7946 0958", "uk …58"),
        ("mail ada@example.com", "mail …@example.com"),
        ("call CAdddddddddddddddddddddddddddddddd", "call CAdddddddddddddddddddddddddddddddd"),
        ("took 12.5 ms", "took 12.5 ms"),
        ("Running on http://127.0.0.1:5055", "Running on http://127.0.0.1:5055"),
        ("at 2026-11-20 10:00", "at 2026-11-20 10:00"),
    ],
)
def test_mask_text(text: str, masked: str) -> None:
    assert masked == mask_text(text)


def test_filter_masks_arguments_of_a_log_call() -> None:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "caller %s", ("+14155550134",), None)
    MaskingFilter().filter(record)
    assert "caller …34" == record.getMessage()


def test_filter_masks_tracebacks() -> None:
    try:
        raise ValueError("bad number +14155550134")
    except ValueError:
        import sys

        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    MaskingFilter().filter(record)
    assert "+14155550134" not in (record.exc_text or "")
    assert "…34" in (record.exc_text or "")
