"""Keeping personal data and secrets out of logs: numbers, emails, tokens and keys are masked.

The filter rewrites every record that reaches the hub's handlers, so a careless log line
elsewhere (a library, a traceback, a server's access log) still cannot leak a caller's
number or an agent's token. What it masks:

- the value of anything named like a secret (``token=``, ``api_key=``, ``"client_secret":``,
  ``Authorization:``, ``X-Twilio-Signature:``), and a ``Bearer``/``Basic`` credential;
- phone numbers and email addresses, written plainly or URL-encoded (``%2B1415…``,
  ``ada%40example.com``, even encoded twice), in paths, query strings and text alike.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import quote, unquote

PHONE = re.compile(r"(?<![\w(.:])[+(]?\d[\d\s().-]{6,}\d(?![\w.:])")
IPV4 = re.compile(r"\d{1,3}(\.\d{1,3}){3}")
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
MIN_PHONE_DIGITS = 8
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
HIDDEN = "…"
# A name that says its value is a secret, then ``=`` or ``:``, then the value: quoted, a
# credential after its scheme (``Bearer abc``), or a bare word.
SECRET = re.compile(
    r"""(?ix) (?<![\w-])
    (?P<name> ["']? [\w-]* (?:token|key|secret|passw(?:or)?d|signature|credential|auth\w*)
        [\w-]* ["']? )
    (?P<sep> \s*[:=]\s* )
    (?: (?P<quote>["']) [^"'\r\n]* (?P=quote)
      | (?:bearer|basic|digest|token)\s+[^\s&"',;]+
      | [^\s&"',;)]+ )""")
CREDENTIAL = re.compile(r"(?i)\b(bearer|basic)\s+[\w.~+/=-]+")
ENCODED_RUN = re.compile(r"""[^\s"'<>]*%[0-9A-Fa-f]{2}[^\s"'<>]*""")
MAX_DECODINGS = 3  # %252B is %2B encoded again: decode until it stops changing
# What may stay unencoded when a decoded run is written back: printable ASCII, but not the
# percent sign or quotes (so what is written cannot pass for another encoding or field).
URL_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in "%\"'")


def mask_phone(text: str) -> str:
    """Keep the last two digits: enough to tell calls apart, not to call back."""
    digits = re.sub(r"\D", "", text)
    return f"{HIDDEN}{digits[-2:]}" if len(digits) >= 2 else HIDDEN


def mask_text(text: str) -> str:
    """``text`` with every secret, phone number and email address masked."""
    return _mask_plain(ENCODED_RUN.sub(_mask_encoded, text))


def _mask_plain(text: str) -> str:
    text = SECRET.sub(_hide_secret, text)
    text = CREDENTIAL.sub(lambda m: f"{m.group(1)} {HIDDEN}", text)
    text = EMAIL.sub(lambda m: HIDDEN + "@" + m.group(0).rsplit("@", 1)[1], text)
    return PHONE.sub(_mask_if_phone, text)


def _hide_secret(match: re.Match[str]) -> str:
    quote_mark = match.group("quote") or ""
    return f"{match.group('name')}{match.group('sep')}{quote_mark}{HIDDEN}{quote_mark}"


def _mask_encoded(match: re.Match[str]) -> str:
    """A URL-encoded run, decoded and masked if it hides anything; else unchanged."""
    run = decoded = match.group(0)
    for _ in range(MAX_DECODINGS):
        decoded, previous = unquote(decoded), decoded
        if decoded == previous:
            break
    masked = _mask_plain(decoded)
    if masked == decoded:
        return run
    return quote(masked, safe=URL_SAFE).replace(quote(HIDDEN), HIDDEN)


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
