"""Writes the bundled demo data set: ``python -m lookup.demo.generate [DIRECTORY]``.

Deterministic (fixed seed, standard library only), so the committed files only change
when this script does. People come from two systems, as they would in a real export: a
CRM (phone, email, CRM id, name) and a loyalty programme (email, loyalty id, tier,
scores); most people appear in both and are joined only by their email. Events fall in
the 90 days before the anchor date. Ada Lovelace is the well-known demo caller.
"""

from __future__ import annotations

import json
import random
import string
import sys
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lookup.demo import catalog
from lookup.demo.events import (
    Visitor,
    ada_events,
    anonymous_events,
    before,
    iso,
    person_events,
)
from lookup.demo.phones import PhoneBook

SEED = 20261120
ANCHOR = datetime(2026, 11, 20, tzinfo=UTC)
PEOPLE = 300
HERE = Path(__file__).parent
AUDIENCE_IDS = {key: str(uuid.uuid5(uuid.NAMESPACE_URL, f"cahub-demo:{key}"))
                for key, _, _ in catalog.AUDIENCES}

ALPHANUMERIC = string.ascii_letters + string.digits
Record = dict[str, Any]


@dataclass
class Person:
    first: str
    last: str
    full: str
    country: str
    city: str
    email: str
    ecid: str
    phone: str | None = None  # as written in the CRM
    phone_e164: str | None = None
    crm_id: str | None = None
    loyalty_id: str | None = None
    loyalty_phone: str | None = None  # the same number, spelled the loyalty system's way
    loyalty_email: str | None = None
    tier: str = "bronze"
    lifetime_value: float = 0.0
    churn: float = 0.0
    winter_engaged: bool = False
    audiences: dict[str, Record] = field(default_factory=dict)


def days_ago(rng: random.Random, most: int) -> datetime:
    return before(rng, ANCHOR, most)


def ascii_slug(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(c for c in folded.lower() if c.isalnum())


def ada() -> Person:
    """The demo caller: split across CRM and loyalty, joined by email."""
    return Person(
        first="Ada", last="Lovelace", full="Ada Lovelace", country="US",
        city="San Francisco", email="ada@example.com", ecid="4" * 6 + "18151210" * 4,
        phone="(415) 555-0134", phone_e164="+14155550134", crm_id="0035g00000AdaL0v",
        loyalty_id="LOY18151210", tier="gold", lifetime_value=1234.5, churn=0.82,
        winter_engaged=True,
    )


def family() -> list[Person]:
    # A SHARED FAMILY LANDLINE: María and Tomás García are two different people (own
    # emails, own CRM records) who both give the household's landline, +1 212 555 0199,
    # spelled differently. A lookup by that number is reported as ambiguous, never
    # silently resolved to one of them (their CRM ids are a unique namespace).
    return [
        _garcia("María", "maria.garcia@example.com", "(212) 555-0199", "0035g00000GarcM1"),
        _garcia("Tomás", "tomas.g@example.org", "+1 212 555 0199", "0035g00000GarcT2"),
    ]


def _garcia(first: str, email: str, phone: str, crm_id: str) -> Person:
    return Person(
        first=first, last="García", full=f"{first} García", country="US", city="New York",
        email=email, ecid=f"2125550199{int(crm_id[-1]):028d}", phone=phone,
        phone_e164="+12125550199", crm_id=crm_id, tier="silver",
    )


def random_person(rng: random.Random, phones: PhoneBook, emails: set[str]) -> Person:
    country = rng.choices(list(catalog.COUNTRY_WEIGHTS), list(catalog.COUNTRY_WEIGHTS.values()))[0]
    firsts, lasts, cities = catalog.PEOPLE[country]
    if rng.random() < 0.04:
        last, first, local = rng.choice(catalog.NATIVE_NAMES)
        full = f"{last} {first}"
    else:
        first, last = rng.choice(firsts), rng.choice(lasts)
        full, local = f"{first} {last}", f"{ascii_slug(first)}.{ascii_slug(last)}"
    person = Person(first=first, last=last, full=full, country=country,
                    city=rng.choice(cities), email=unique_email(rng, local, emails),
                    ecid=str(rng.randrange(10**37, 10**38)))
    shape_person(rng, person, phones)
    return person


def unique_email(rng: random.Random, local: str, taken: set[str]) -> str:
    domain = rng.choice(catalog.EMAIL_DOMAINS)
    email, n = f"{local}@{domain}", 1
    while email in taken:
        n += 1
        email = f"{local}{n}@{domain}"
    taken.add(email)
    return email


def shape_person(rng: random.Random, person: Person, phones: PhoneBook) -> None:
    """Which systems know the person (CRM, loyalty or both), and what they hold."""
    shape = rng.choices(("split", "crm", "loyalty"), (65, 20, 15))[0]
    if shape != "loyalty":
        person.phone_e164, spellings = phones.draw(person.country)
        person.phone = rng.choice(spellings)
        person.crm_id = "0035g00000" + "".join(rng.choices(ALPHANUMERIC, k=6))
        if shape == "split" and rng.random() < 0.15:
            person.loyalty_phone = rng.choice([s for s in spellings if s != person.phone])
    if shape != "crm":
        person.loyalty_id = f"LOY{rng.randrange(10**7, 10**8)}"
        person.loyalty_email = person.email.title() if rng.random() < 0.2 else person.email
    person.tier = rng.choices(catalog.TIERS, catalog.TIER_WEIGHTS)[0]
    person.lifetime_value = round(min(rng.lognormvariate(6.0, 1.0), 25_000.0), 2)
    person.churn = round(rng.betavariate(2, 5), 2)
    person.winter_engaged = rng.random() < 0.25


def memberships(rng: random.Random, person: Person) -> dict[str, Record]:
    """``segmentMembership.ups`` as AEP exports it, from the person's scores."""
    wanted = {
        "high-value": person.lifetime_value > 1000,
        "churn-risk": person.churn >= 0.7,
        "winter-sale-2026-engaged": person.winter_engaged,
        "lapsed-loyalty": person.loyalty_id is not None and person.churn > 0.5,
        "newsletter": rng.random() < 0.3,
    }
    return {
        AUDIENCE_IDS[key]: {"status": rng.choice(("realized", "existing", "existing", "exited")),
                            "lastQualificationTime": iso(days_ago(rng, 60))}
        for key, member in wanted.items() if member
    }


def crm_record(rng: random.Random, person: Person, crm_id: str, phone: str) -> Record:
    record: Record = {
        "identityMap": {"CRMID": [{"id": crm_id, "primary": True}],
                        "Phone": [{"id": phone}], "Email": [{"id": person.email}]},
        "person": {"name": {"firstName": person.first, "lastName": person.last,
                            "fullName": person.full}},
        "personalEmail": {"address": person.email},
        "homePhone": {"number": phone},
        "homeAddress": {"city": person.city, "countryCode": person.country},
    }
    if person.loyalty_id is None and person.audiences:
        record["segmentMembership"] = {"ups": person.audiences}
    record["_repo"] = {"lastModifiedDate": iso(days_ago(rng, 365), millis=True)}
    return record


def loyalty_record(rng: random.Random, person: Person, loyalty_id: str) -> Record:
    identity_map: Record = {"loyaltyId": [{"id": loyalty_id, "primary": True}],
                            "Email": [{"id": person.loyalty_email or person.email}]}
    if person.loyalty_phone:
        identity_map["mobilePhone"] = [{"id": person.loyalty_phone}]
    record: Record = {"identityMap": identity_map}
    if person.crm_id is None:  # loyalty-only members: the programme is all we know
        record["person"] = {"name": {"firstName": person.first, "lastName": person.last,
                                     "fullName": person.full}}
        record["personalEmail"] = {"address": person.email}
    record["loyalty"] = {"program": "Trailblazer Rewards", "tier": person.tier,
                         "points": rng.randrange(100, 40_000),
                         "joinDate": iso(days_ago(rng, 2000))[:10]}
    record["_cah"] = {"scores": {"lifetimeValue": person.lifetime_value,
                                 "churnPropensity": person.churn,
                                 "scoredAt": iso(days_ago(rng, 7))}}
    if person.audiences:
        record["segmentMembership"] = {"ups": person.audiences}
    record["_repo"] = {"lastModifiedDate": iso(days_ago(rng, 30), millis=True)}
    return record


def build(rng: random.Random) -> dict[str, list[Record]]:
    """Every demo record, by file name."""
    people = [ada(), *family()]
    phones, emails = PhoneBook(rng), {p.email for p in people}
    people += [random_person(rng, phones, emails) for _ in range(PEOPLE)]
    for person in people:
        person.audiences = memberships(rng, person)
    people[0].audiences = ada_memberships()
    return {
        "audiences.jsonl": [{"id": AUDIENCE_IDS[key], "name": name, "description": description}
                            for key, name, description in catalog.AUDIENCES],
        "crm.profiles.jsonl": [crm_record(rng, p, p.crm_id, p.phone)
                               for p in people if p.crm_id and p.phone],
        "loyalty.profiles.jsonl": [loyalty_record(rng, p, p.loyalty_id)
                                   for p in people if p.loyalty_id],
        "events.jsonl": all_events(rng, people),
    }


def ada_memberships() -> dict[str, Record]:
    statuses = {"high-value": "realized", "churn-risk": "existing",
                "winter-sale-2026-engaged": "realized"}
    return {AUDIENCE_IDS[key]: {"status": status, "lastQualificationTime": "2026-11-19T03:00:00Z"}
            for key, status in statuses.items()}


def all_events(rng: random.Random, people: list[Person]) -> list[Record]:
    """Ada's scripted events, everyone else's random ones, and anonymous visitors'."""
    events = ada_events(ANCHOR, people[0].ecid)
    for person in people[1:]:
        visitor = Visitor(email=person.email, ecid=person.ecid, phone=person.phone_e164,
                          currency=catalog.CURRENCY[person.country],
                          winter_engaged=person.winter_engaged)
        events += person_events(rng, ANCHOR, visitor)
    events += anonymous_events(rng, ANCHOR)
    return sorted(events, key=lambda event: (event["timestamp"], event["_id"]))


def write(directory: Path, files: dict[str, list[Record]]) -> None:
    for name, records in files.items():
        lines = (json.dumps(record, ensure_ascii=False) + "\n" for record in records)
        (directory / name).write_text("".join(lines), encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    directory = Path(args[0]) if args else HERE
    write(directory, build(random.Random(SEED)))  # noqa: S311 - reproducible, not secret


if __name__ == "__main__":
    main()
