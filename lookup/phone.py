"""Phone numbers: classify Twilio's ``From``, normalise to E.164, build identity candidates.

Withheld callers arrive in many spellings (``anonymous``, ``Restricted``, an empty
string, or keypad digits such as ``+266696687`` for ANONYMOUS). They are never an
identity: a shared pseudo-number must not match a customer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import phonenumbers

from hub.models import Caller, CallerKind, Identity

WITHHELD_WORDS = frozenset(
    {"", "anonymous", "restricted", "unknown", "unavailable", "private", "blocked",
     "withheld", "no caller id", "nocallerid"}
)
# Keypad spellings Twilio and carriers use for withheld numbers (see the Twilio notes, §1.3).
WITHHELD_KEYPAD = frozenset(
    {"+266696687", "+86282452253", "+8656696", "+2562533", "+7378742833", "266696687",
     "86282452253", "8656696", "2562533", "7378742833"}
)
PHONE_NAMESPACES = frozenset({"Phone", "Phone_E.164", "mobilePhone"})
# The fast path: North American numbers, the bulk of the data, in their usual spellings.
NANP_PUNCTUATION = str.maketrans("", "", " ()-.")
NANP_INTERNATIONAL = re.compile(r"\+1[2-9][0-9]{9}")
NANP_NATIONAL = re.compile(r"1?([2-9][0-9]{9})")
NANP_NATIONAL_REGIONS = frozenset({"US", "CA"})


def to_e164(raw: str, region: str) -> str | None:
    """``raw`` as an E.164 number, or None when it is not a possible phone number.

    Numbers without a country code are read in ``region`` (ISO 3166 alpha-2).
    """
    text = raw.strip()
    if not text or len(text) > 64:
        return None
    return nanp_e164(text, region) or parsed_e164(text, region)


def parsed_e164(text: str, region: str) -> str | None:
    """``to_e164`` the thorough way: ``phonenumbers`` parses ``text`` (already stripped)."""
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        parsed = phonenumbers.parse(text, region.upper())
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


def nanp_e164(text: str, region: str) -> str | None:
    """The E.164 form of a North American number written as +1 and ten digits, or in a
    US or Canadian region as ten digits (optionally after a 1), with only spaces,
    brackets, dashes and dots between; None for anything else.

    It gives what ``phonenumbers`` gives for those spellings (a test holds it to that)
    at a tenth of the cost, which is most of the cost of loading a CRM export.
    """
    compact = text.translate(NANP_PUNCTUATION)
    if NANP_INTERNATIONAL.fullmatch(compact):
        return compact
    if region.upper() in NANP_NATIONAL_REGIONS and (national := NANP_NATIONAL.fullmatch(compact)):
        return "+1" + national.group(1)
    return None


def is_withheld(raw: str) -> bool:
    """True for every spelling of a withheld caller ID."""
    text = raw.strip()
    return text.lower() in WITHHELD_WORDS or text.replace(" ", "") in WITHHELD_KEYPAD


def classify_caller(raw: str, region: str, namespaces: Sequence[str]) -> Caller:
    """Turn Twilio's ``From`` into a ``Caller`` with identity candidates in namespace order."""
    text = raw.strip()
    lowered = text.lower()
    if is_withheld(text):
        return Caller(kind=CallerKind.WITHHELD, raw=raw)
    if lowered.startswith("client:"):
        kind = CallerKind.WITHHELD if is_withheld(text[7:]) else CallerKind.CLIENT
        return Caller(kind=kind, raw=raw)
    if lowered.startswith("sip:"):
        return Caller(kind=CallerKind.SIP, raw=raw)
    e164 = to_e164(text, region)
    if e164 is None:
        return Caller(kind=CallerKind.INVALID, raw=raw)
    candidates = tuple(Identity(namespace=ns, id=e164) for ns in namespaces)
    return Caller(kind=CallerKind.NUMBER, raw=raw, e164=e164, candidates=candidates)


def normalize_identity(namespace: str, value: str, region: str) -> str | None:
    """The stored form of an identity value: E.164 for phone namespaces, trimmed otherwise.

    Emails are lower-cased, since mailbox providers treat them case-insensitively
    in practice. None means the value is unusable (empty, withheld, not a number).
    """
    text = value.strip()
    if not text:
        return None
    if namespace in PHONE_NAMESPACES:
        return None if is_withheld(text) else to_e164(text, region)
    if namespace.lower() == "email":
        return text.lower()
    return text
