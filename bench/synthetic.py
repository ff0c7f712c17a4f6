"""Synthetic XDM JSON Lines at any size: profiles, experience events and audiences.

Everything is deterministic for a seed and streamed, one line at a time, so a million
profiles and ten million events never sit in memory. A profile's identities are pure
functions of its index ``i`` (``phone_of(i)``, ``email_of(i)``, ``crm_id_of(i)``), so the
events can be keyed to it and a benchmark can call from a known number without reading
the files back. Phone numbers are valid US numbers (real area codes, no N11 exchanges,
no 555), unique per index, written the many ways a CRM collects them.

``ensure_dataset`` writes the files under ``bench/data/<profiles>/`` and reuses them
when a manifest says they were written by this version of the generator with the same
parameters.
"""

from __future__ import annotations

import json
import os
import random
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

GENERATOR_VERSION = 1
DATA_ROOT = Path(__file__).resolve().parent / "data"
# The newest event is just before this instant; events span the 90 days before it.
ANCHOR = datetime(2026, 11, 20, tzinfo=UTC)
SPAN_SECONDS = 90 * 86_400

Record = dict[str, Any]

# Area codes in service in the US (all valid for phonenumbers' US metadata).
AREA_CODES = (
    201, 202, 203, 205, 206, 207, 208, 209, 210, 212, 213, 214, 215, 216, 217, 218, 219, 224,
    225, 228, 229, 231, 234, 239, 240, 248, 251, 252, 253, 254, 256, 260, 262, 267, 269, 270,
    276, 281, 301, 302, 303, 304, 305, 307, 308, 309, 310, 312, 313, 314, 315, 316, 317, 318,
    319, 320, 321, 323, 325, 330, 334, 336, 337, 339, 347, 351, 352, 360, 361, 386, 401, 402,
    404, 405, 406, 407, 408, 409, 410, 412, 413, 414, 415, 417, 419, 423, 424, 425, 430, 432,
    434, 435, 440, 443, 469, 478, 479, 480, 484, 501, 502, 503, 504, 505, 507, 508, 509, 510,
    512, 513, 515, 516, 517, 518, 520, 530, 540, 541, 551, 559, 561, 562, 563, 567, 570, 571,
    573, 574, 575, 580, 585, 586, 601, 602, 603, 605, 606, 607, 608, 609, 610, 612, 614, 615,
    616, 617, 618, 619, 620, 623, 626, 630, 631, 636, 641, 646, 650, 651, 660, 661, 662, 678,
    682, 701, 702, 703, 704, 706, 707, 708, 712, 713, 714, 715, 716, 717, 718, 719, 720, 724,
    727, 731, 732, 734, 740, 754, 757, 760, 763, 765, 770, 772, 773, 774, 775, 779, 781, 785,
    786, 801, 802, 803, 804, 805, 806, 808, 810, 812, 813, 814, 815, 816, 817, 818, 828, 830,
    831, 832, 843, 845, 847, 848, 850, 856, 857, 858, 859, 860, 862, 863, 864, 865, 870, 872,
    878, 901, 903, 904, 906, 907, 908, 909, 910, 912, 913, 914, 915, 916, 917, 918, 919, 920,
    925, 928, 931, 936, 937, 940, 941, 947, 949, 952, 954, 956, 970, 971, 972, 973, 978, 979,
    980, 985, 989,
)
# Central-office codes: 200-999 without the N11 service codes and the 555 fiction range.
EXCHANGES = tuple(x for x in range(200, 1000) if x % 100 != 11 and x != 555)
PHONE_SPACE = len(AREA_CODES) * len(EXCHANGES) * 10_000
# i -> (i * MULTIPLIER + OFFSET) mod PHONE_SPACE is a bijection (the multiplier is prime
# and does not divide PHONE_SPACE), so numbers are unique per index and scattered.
PHONE_MULTIPLIER = 1_000_000_007
PHONE_OFFSET = 123_456_789

FIRST_NAMES = (
    "Ada", "Grace", "Alan", "María", "Tomás", "Chen", "Priya", "Kwame", "Sofia", "Liam",
    "Noah", "Olivia", "Emma", "Mateo", "Aisha", "Yuki", "Hugo", "Zoë", "Omar", "Ines",
    "Lucas", "Mia", "Elena", "Jonas", "Amara", "Ravi", "Chloé", "Diego", "Hana", "Samuel",
    "Fatima", "Oscar", "Leila", "Nikolai", "Isla", "Kofi", "Ana", "Felix", "Mei", "Carlos",
)
LAST_NAMES = (
    "Lovelace", "Hopper", "Turing", "García", "Chen", "Patel", "Mensah", "Davis", "Smith",
    "Johnson", "Müller", "Rossi", "Nguyen", "Kim", "Okafor", "Silva", "Novak", "Dubois",
    "O'Brien", "Tanaka", "Haddad", "Kowalski", "Larsen", "Moreau", "Ivanova", "Santos",
    "Fischer", "Ali", "Jensen", "Romero", "Bauer", "Costa", "Yilmaz", "Murphy", "Sato",
)
EMAIL_DOMAINS = ("example.com", "example.org", "example.net")
CITIES = (("San Francisco", "CA"), ("New York", "NY"), ("Chicago", "IL"), ("Boston", "MA"),
          ("Seattle", "WA"), ("Austin", "TX"), ("Denver", "CO"), ("Atlanta", "GA"),
          ("Miami", "FL"), ("Portland", "OR"), ("Phoenix", "AZ"), ("Detroit", "MI"))
TIERS = ("bronze", "bronze", "bronze", "silver", "silver", "gold", "platinum")
PRODUCTS = (
    ("Trail Shoe", "TS-100", 120.0), ("Rain Jacket", "RJ-200", 189.0),
    ("Merino Base Layer", "MB-310", 79.0), ("Daypack 24L", "DP-240", 95.0),
    ("Trekking Poles", "TP-330", 110.0), ("Down Vest", "DV-410", 149.0),
    ("Headlamp", "HL-520", 45.0), ("Insulated Bottle", "IB-510", 29.95),
    ("Camp Stove", "CS-600", 64.5), ("Sleeping Bag", "SB-700", 229.0),
)
CAMPAIGNS = ("Winter Sale 2026", "Black Friday 2026", "Autumn Trail Collection",
             "Welcome Series", "Loyalty Double Points")
PAGES = ("Home", "Store Locator", "My Account", "Returns", "Gift Cards", "New Arrivals")
SUPPORT_REASONS = ("Delivery question", "Return request", "Loyalty points", "Sizing advice",
                   "Payment issue")
# (name, description, share of profiles in it)
AUDIENCES = (
    ("High value", "Lifetime value over 1,000", 0.08),
    ("Churn risk", "Churn propensity of 0.7 or more", 0.12),
    ("Winter Sale 2026 engaged", "Opened, clicked or bought in the Winter Sale 2026 campaign",
     0.25),
    ("Loyalty gold and above", "Loyalty tier gold or platinum", 0.2),
    ("Lapsed buyers", "No purchase in 180 days", 0.15),
    ("Newsletter subscribers", "Opted in to the weekly newsletter", 0.4),
    ("Outdoor enthusiasts", "Bought hiking or camping gear twice or more", 0.18),
    ("Support-heavy", "Three or more support contacts in 90 days", 0.05),
)
EVENT_TYPES = (
    ("commerce.productViews", 30), ("web.webpagedetails.pageViews", 25),
    ("commerce.productListAdds", 12), ("directMarketing.emailClicked", 12),
    ("commerce.purchases", 12), ("support.contact", 9),
)
EVENT_TYPE_NAMES = tuple(name for name, _ in EVENT_TYPES)
EVENT_TYPE_WEIGHTS = tuple(weight for _, weight in EVENT_TYPES)


def audience_id(index: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"cahub-bench:audience:{index}"))


AUDIENCE_IDS = tuple(audience_id(index) for index in range(len(AUDIENCES)))


# --- identities of profile i ---------------------------------------------------------

def _phone_parts(i: int) -> tuple[int, int, int]:
    if not 0 <= i < PHONE_SPACE:
        raise ValueError(f"profile index {i} is outside 0..{PHONE_SPACE - 1}")
    j = (i * PHONE_MULTIPLIER + PHONE_OFFSET) % PHONE_SPACE
    j, area = divmod(j, len(AREA_CODES))
    subscriber, exchange = divmod(j, len(EXCHANGES))
    return AREA_CODES[area], EXCHANGES[exchange], subscriber


def phone_of(i: int) -> str:
    """The E.164 number of profile ``i``; distinct for every ``i``."""
    area, exchange, subscriber = _phone_parts(i)
    return f"+1{area}{exchange}{subscriber:04d}"


def written_phone(i: int, style: int) -> str:
    """Profile ``i``'s number as people write it; ``style`` picks one of several spellings."""
    a, x, s = _phone_parts(i)
    spellings = (f"({a}) {x}-{s:04d}", f"+1 {a} {x} {s:04d}", f"{a}.{x}.{s:04d}",
                 f"{a}-{x}-{s:04d}", f"+1 ({a}) {x}-{s:04d}", f"1-{a}-{x}-{s:04d}",
                 f"+1{a}{x}{s:04d}")
    return spellings[style % len(spellings)]


def name_of(i: int) -> tuple[str, str]:
    """Profile ``i``'s first and last name (names repeat; identities do not)."""
    first = FIRST_NAMES[(i * 7_919) % len(FIRST_NAMES)]
    return first, LAST_NAMES[(i // 3 * 104_729) % len(LAST_NAMES)]


def email_of(i: int) -> str:
    """Profile ``i``'s email, in its stored (lower-case) form; distinct for every ``i``."""
    first, last = name_of(i)
    local = f"{_ascii(first)}.{_ascii(last)}{i}"
    return f"{local}@{EMAIL_DOMAINS[i % len(EMAIL_DOMAINS)]}".lower()


def crm_id_of(i: int) -> str:
    """A Salesforce-style contact id: 003 prefix, 15 characters, distinct for every ``i``."""
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    text, value = "", i
    for _ in range(10):
        value, digit = divmod(value, 62)
        text = digits[digit] + text
    return f"0035g{text}"


def _ascii(name: str) -> str:
    table = str.maketrans("áéíóúüöëñç'", "aeiouuoenc-")
    return name.lower().translate(table)


# --- the three kinds of record -----------------------------------------------------------

def iso(seconds: float) -> str:
    """UTC ISO-8601 with a Z, as XDM exports write it."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def profile(i: int, rng: random.Random) -> Record:
    """Profile ``i``: CRM identities (phone primary), name, email, loyalty, scores, audiences."""
    first, last = name_of(i)
    email = email_of(i)
    written_email = email if rng.random() < 0.7 else email.title()  # stored lower-cased
    anchor = ANCHOR.timestamp()
    city, state = CITIES[i % len(CITIES)]
    record: Record = {
        "identityMap": {
            "Phone": [{"id": written_phone(i, rng.randrange(7)), "primary": True}],
            "Email": [{"id": written_email}],
            "CRMID": [{"id": crm_id_of(i)}],
        },
        "person": {"name": {"firstName": first, "lastName": last,
                            "fullName": f"{first} {last}"}},
        "personalEmail": {"address": email},
        "homeAddress": {"city": city, "stateProvince": state, "countryCode": "US"},
        "loyalty": {"program": "Trailblazer Rewards", "tier": rng.choice(TIERS),
                    "points": rng.randrange(50_000)},
        "_cah": {"scores": {"lifetimeValue": round(rng.lognormvariate(5.5, 1.0), 2),
                            "churnPropensity": round(rng.random(), 2),
                            "scoredAt": iso(anchor - rng.randrange(7 * 86_400))}},
        "_repo": {"lastModifiedDate": iso(anchor - rng.randrange(365 * 86_400))},
    }
    ups = {
        AUDIENCE_IDS[index]: {
            "status": "realized" if rng.random() < 0.8 else "existing",
            "lastQualificationTime": iso(anchor - rng.randrange(30 * 86_400)),
        }
        for index, (_, _, share) in enumerate(AUDIENCES)
        if rng.random() < share
    }
    if ups:
        record["segmentMembership"] = {"ups": ups}
    return record


def event(i: int, serial: int, seconds: int, rng: random.Random) -> Record:
    """One experience event of profile ``i``, keyed by its email or phone."""
    kind = rng.choices(EVENT_TYPE_NAMES, EVENT_TYPE_WEIGHTS)[0]
    if kind == "support.contact" or rng.random() < 0.3:
        identities = {"Phone": [{"id": written_phone(i, rng.randrange(7)), "primary": True}]}
    else:
        identities = {"Email": [{"id": email_of(i), "primary": True}]}
    # Unique by construction: the serial fills the last group, the rest is random.
    bits = rng.getrandbits(80)
    event_id = str(uuid.UUID(int=(bits << 48) | serial, version=4))
    return {"_id": event_id, "timestamp": iso(seconds), "eventType": kind,
            "identityMap": identities, **_event_body(kind, rng)}


def _event_body(kind: str, rng: random.Random) -> Record:
    name, sku, price = rng.choice(PRODUCTS)
    quantity = 1 if rng.random() < 0.8 else 2
    line = {"name": name, "SKU": sku, "quantity": quantity,
            "priceTotal": round(price * quantity, 2), "currencyCode": "USD"}
    campaign = rng.choice(CAMPAIGNS)
    if kind == "commerce.productViews":
        return {"commerce": {"productViews": {"value": 1}}, "productListItems": [line],
                "web": {"webPageDetails": {"name": name,
                                           "URL": f"https://shop.example.com/p/{sku}"}}}
    if kind == "commerce.productListAdds":
        return {"commerce": {"productListAdds": {"value": 1}}, "productListItems": [line]}
    if kind == "commerce.purchases":
        order = f"ORD-{rng.randrange(10**10):010d}"
        return {"commerce": {"purchases": {"value": 1},
                             "order": {"purchaseID": order, "priceTotal": line["priceTotal"],
                                       "currencyCode": "USD"}},
                "productListItems": [line],
                "marketing": {"campaignName": campaign,
                              "trackingCode": _tracking_code(campaign, "email")}}
    if kind == "directMarketing.emailClicked":
        return {"directMarketing": {"clicks": {"value": 1}},
                "marketing": {"campaignName": campaign,
                              "trackingCode": _tracking_code(campaign, "email")}}
    if kind == "support.contact":
        return {"_cah": {"support": {"channel": rng.choice(("phone", "chat", "email")),
                                     "reason": rng.choice(SUPPORT_REASONS),
                                     "outcome": rng.choice(("resolved", "resolved", "open"))}}}
    page = rng.choice(PAGES)
    return {"web": {"webPageDetails": {"name": page, "pageViews": {"value": 1},
                                       "URL": f"https://shop.example.com/{page.lower()}"}}}


def _tracking_code(campaign: str, channel: str) -> str:
    return f"{campaign.lower().replace(' ', '-')}-{channel}"


def _dumps(record: Record) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(", ", ": "))


def profiles(n: int, seed: int) -> Iterator[str]:
    """``n`` profile lines, profile 0 first."""
    rng = random.Random(f"profiles:{seed}")
    for i in range(n):
        yield _dumps(profile(i, rng))


def events(n_profiles: int, per_profile: int, seed: int) -> Iterator[str]:
    """``per_profile`` events for each profile, oldest first, over the 90 days before ANCHOR.

    Round ``r`` gives every profile one event in the ``r``-th slice of the 90 days, so
    the stream is roughly in time order, as an export would be, and interleaves people.
    """
    rng = random.Random(f"events:{seed}")
    start = int(ANCHOR.timestamp()) - SPAN_SECONDS
    width = SPAN_SECONDS // max(1, per_profile)
    serial = 0
    for round_ in range(per_profile):
        base = start + round_ * width
        for i in range(n_profiles):
            yield _dumps(event(i, serial, base + rng.randrange(width), rng))
            serial += 1


def audiences() -> Iterator[str]:
    """The audience definitions the profiles' ``segmentMembership`` refers to."""
    for audience, (name, description, _) in zip(AUDIENCE_IDS, AUDIENCES, strict=True):
        yield _dumps({"id": audience, "name": name, "description": description})


# --- files on disk ---------------------------------------------------------------------

@dataclass(frozen=True)
class Dataset:
    """The three files of one size, and how many lines each holds."""

    directory: Path
    profiles: Path
    events: Path
    audiences: Path
    n_profiles: int
    n_events: int
    n_audiences: int = len(AUDIENCES)


def ensure_dataset(
    n_profiles: int, per_profile: int, seed: int = 1, root: Path = DATA_ROOT,
    log: Callable[[str], None] | None = None,
) -> Dataset:
    """Write (or reuse) ``root/<n_profiles>/``: profiles, events and audiences JSON Lines."""
    directory = root / str(n_profiles)
    directory.mkdir(parents=True, exist_ok=True)
    dataset = Dataset(
        directory=directory,
        profiles=directory / "profiles.jsonl",
        events=directory / f"events-{per_profile}-per-profile.jsonl",
        audiences=directory / "audiences.jsonl",
        n_profiles=n_profiles,
        n_events=n_profiles * per_profile,
    )
    _ensure(dataset.audiences, {"kind": "audiences"}, audiences(), log)
    _ensure(dataset.profiles, {"kind": "profiles", "n": n_profiles, "seed": seed},
            profiles(n_profiles, seed), log)
    _ensure(dataset.events, {"kind": "events", "n": n_profiles, "per_profile": per_profile,
                             "seed": seed}, events(n_profiles, per_profile, seed), log)
    return dataset


def _ensure(
    path: Path, params: dict[str, Any], lines: Iterable[str],
    log: Callable[[str], None] | None,
) -> None:
    """Write ``lines`` to ``path`` unless its marker says it holds exactly these lines."""
    marker = path.with_name(path.name + ".generated")
    expected = json.dumps({"generator_version": GENERATOR_VERSION, **params}, sort_keys=True)
    if path.exists() and marker.exists() and marker.read_text().strip() == expected:
        if log:
            log(f"reusing {path}")
        return
    if log:
        log(f"generating {path} …")
    marker.unlink(missing_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8", buffering=1 << 20) as out:
        for line in lines:
            out.write(line)
            out.write("\n")
    os.replace(partial, path)
    marker.write_text(expected + "\n")


def main() -> None:
    """``python -m bench.synthetic N [PER_PROFILE]``: write (or reuse) one dataset."""
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    per = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    dataset = ensure_dataset(n, per, log=lambda text: print(text, file=sys.stderr))
    print(dataset.directory)


if __name__ == "__main__":
    main()
