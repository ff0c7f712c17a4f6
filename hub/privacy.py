"""Keeping personal data out of logs: phone numbers and email addresses are masked.

The filter rewrites every record that reaches the hub's handlers, so a careless log
line elsewhere (a library, a traceback) still cannot leak a caller's number.
"""

from __future__ import annotations

import logging
import re

PHONE = re.compile(r"(?<![\w(.:])[+(]?\d[\d\s().-]{6,}\d(?![\w.:])")
IPV4 = re.compile(r"\d{1,3}(\.\d{1,3}){3}")
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
MIN_PHONE_DIGITS = 8
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")


def mask_phone(text: str) -> str:
    """Keep the last two digits: enough to tell calls apart, not to call back."""
    digits = re.sub(r"\D", "", text)
    return f"…{digits[-2:]}" if len(digits) >= 2 else "…"


def mask_text(text: str) -> str:
    """``text`` with every phone number and email address masked."""
    text = EMAIL.sub(lambda m: "…@" + m.group(0).rsplit("@", 1)[1], text)
    return PHONE.sub(_mask_if_phone, text)


def _mask_if_phone(match: re.Match[str]) -> str:
    """Mask a digit run unless it is an IP address, a date, or too short for a number."""
    text = match.group(0)
    digits = sum(ch.isdigit() for ch in text)
    if digits < MIN_PHONE_DIGITS or IPV4.fullmatch(text) or DATE.match(text):
        return text
    return mask_phone(text)


class MaskingFilter(logging.Filter):
    """A logging filter that masks personal data in the formatted message."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_text(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = mask_text(logging.Formatter().formatException(record.exc_info))
        return True


def configure_logging(level: str = "INFO") -> None:
    """Log to stderr through the masking filter (the CLI calls this)."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    install_masking()


def install_masking() -> None:
    """Put the masking filter on every root handler, adding a stderr handler if there is none.

    ``create_app`` calls this, so personal data is masked under any server (gunicorn
    included) and whatever logging the host process set up.
    """
    root = logging.getLogger()
    if not root.handlers:
        stderr = logging.StreamHandler()
        stderr.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(stderr)
    mask_handlers(root)


def mask_handlers(logger: logging.Logger) -> None:
    """Put the masking filter on each of ``logger``'s handlers (once)."""
    for handler in logger.handlers:
        if not any(isinstance(f, MaskingFilter) for f in handler.filters):
            handler.addFilter(MaskingFilter())
