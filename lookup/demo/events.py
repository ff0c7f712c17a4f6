"""Experience events of the demo data: Ada's scripted ones and random ones for the rest.

Events carry the identities a real source would: web events the browser's ECID (and the
email once the visitor signs in), email clicks the email, support contacts the caller's
number in E.164. The identity graph stitches them to the person.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from lookup.demo import catalog

Record = dict[str, Any]
Product = tuple[str, str, float]
WINTER_SALE_START = datetime(2026, 11, 1, tzinfo=UTC)
LATE_CAMPAIGNS = ("Winter Sale 2026", "Black Friday 2026", "Loyalty Double Points")
EARLY_CAMPAIGNS = ("Autumn Trail Collection", "Welcome Series", "Loyalty Double Points")
EVENT_WEIGHTS = {
    "commerce.productViews": 30,
    "web.webpagedetails.pageViews": 25,
    "commerce.productListAdds": 12,
    "directMarketing.emailClicked": 12,
    "commerce.purchases": 12,
    "support.contact": 9,
}


@dataclass(frozen=True)
class Visitor:
    """What the event sources know of one person."""

    email: str
    ecid: str
    phone: str | None
    currency: str
    winter_engaged: bool


def iso(moment: datetime, *, millis: bool = False) -> str:
    """ISO-8601 in UTC with a Z, as XDM exports write it."""
    pattern = "%Y-%m-%dT%H:%M:%S.%f" if millis else "%Y-%m-%dT%H:%M:%S"
    text = moment.astimezone(UTC).strftime(pattern)
    return f"{text[:-3] if millis else text}Z"


def before(rng: random.Random, anchor: datetime, days: int) -> datetime:
    """A random moment in the ``days`` before ``anchor``."""
    return anchor - timedelta(seconds=rng.randrange(days * 86_400))


def event(event_id: str, moment: datetime, kind: str, identities: Record, body: Record) -> Record:
    return {"_id": event_id, "timestamp": iso(moment, millis=moment.microsecond > 0),
            "eventType": kind, "identityMap": identities, **body}


def item(product: Product, quantity: int, currency: str) -> Record:
    name, sku, price = product
    return {"name": name, "SKU": sku, "quantity": quantity,
            "priceTotal": round(price * quantity, 2), "currencyCode": currency}


def purchase(line: Record, order: str, campaign: str | None) -> Record:
    body: Record = {
        "commerce": {"purchases": {"value": 1},
                     "order": {"purchaseID": order, "priceTotal": line["priceTotal"],
                               "currencyCode": line["currencyCode"]}},
        "productListItems": [line],
    }
    if campaign:
        body["marketing"] = {"campaignName": campaign}
    return body


def product_view(line: Record) -> Record:
    return {"commerce": {"productViews": {"value": 1}}, "productListItems": [line],
            "web": {"webPageDetails": {"name": line["name"],
                                       "URL": f"https://shop.example.com/p/{line['SKU']}"}}}


def list_add(line: Record) -> Record:
    return {"commerce": {"productListAdds": {"value": 1}}, "productListItems": [line]}


def email_click(campaign: str) -> Record:
    code = campaign.lower().replace(" ", "-")
    return {"directMarketing": {"clicks": {"value": 1}},
            "marketing": {"campaignName": campaign, "trackingCode": f"{code}-email"}}


def page_view(page: str) -> Record:
    path = page.lower().replace(" ", "-")
    return {"web": {"webPageDetails": {"name": page, "URL": f"https://shop.example.com/{path}",
                                       "pageViews": {"value": 1}}}}


def support_contact(channel: str, reason: str, outcome: str) -> Record:
    return {"_cah": {"support": {"channel": channel, "reason": reason, "outcome": outcome}}}


def ada_events(anchor: datetime, ecid: str) -> list[Record]:
    """Ada's recent history, newest first: she bought in the Winter Sale this morning."""
    email = {"Email": [{"id": "ada@example.com"}]}
    web = {"ECID": [{"id": ecid, "primary": True}]}
    shoe, jacket, vest = catalog.PRODUCTS[0], catalog.PRODUCTS[1], catalog.PRODUCTS[5]
    script: list[tuple[str, int, str, Record, Record]] = [
        ("10:00:00", 0, "commerce.purchases", {**web, **email},
         purchase(item(shoe, 2, "USD"), "ORD-2611200001", "Winter Sale 2026")),
        ("09:52:13", 0, "commerce.productListAdds", {**web, **email},
         list_add(item(shoe, 2, "USD"))),
        ("09:47:40", 0, "commerce.productViews", web, product_view(item(shoe, 1, "USD"))),
        ("18:05:21", 1, "directMarketing.emailClicked", email, email_click("Winter Sale 2026")),
        ("16:30:00", 8, "support.contact", {"Phone": [{"id": "+14155550134"}]},
         support_contact("phone", "Delivery question", "resolved")),
        ("08:14:09", 23, "web.webpagedetails.pageViews", web, page_view("Home")),
        ("19:41:55", 49, "commerce.purchases", {**web, **email},
         purchase(item(jacket, 1, "USD"), "ORD-2610020417", "Autumn Trail Collection")),
        ("12:00:00", 66, "web.webpagedetails.pageViews", web, page_view("Store Locator")),
        ("20:15:02", 71, "directMarketing.emailClicked", email,
         email_click("Autumn Trail Collection")),
        ("07:58:30", 74, "commerce.productViews", web, product_view(item(vest, 1, "USD"))),
        ("11:20:00", 80, "support.contact", email,
         support_contact("chat", "Loyalty points", "resolved")),
        ("21:03:44", 86, "web.webpagedetails.pageViews", {**web, **email}, page_view("My Account")),
    ]
    return [
        event(str(uuid.uuid5(uuid.NAMESPACE_URL, f"cahub-demo:ada:{n}")),
              _at(anchor, days, clock), kind, identities, body)
        for n, (clock, days, kind, identities, body) in enumerate(script)
    ]


def person_events(rng: random.Random, anchor: datetime, visitor: Visitor) -> list[Record]:
    """A few weeks of a customer's activity."""
    return [random_event(rng, anchor, visitor) for _ in range(rng.randint(3, 18))]


def anonymous_events(rng: random.Random, anchor: datetime, visitors: int = 40) -> list[Record]:
    """Browsing by visitors who never signed in: ECID only, never stitched to anyone."""
    events = []
    for _ in range(visitors):
        web = {"ECID": [{"id": str(rng.randrange(10**37, 10**38)), "primary": True}]}
        for _ in range(rng.randint(1, 4)):
            body = page_view(rng.choice(catalog.PAGES))
            events.append(event(_random_id(rng), before(rng, anchor, 90),
                                "web.webpagedetails.pageViews", web, body))
    return events


def random_event(rng: random.Random, anchor: datetime, visitor: Visitor) -> Record:
    kind = rng.choices(list(EVENT_WEIGHTS), list(EVENT_WEIGHTS.values()))[0]
    moment = before(rng, anchor, 90)
    if rng.random() < 0.3:
        moment += timedelta(milliseconds=rng.randrange(1, 1000))
    body = BODIES[kind](rng, visitor, moment)
    return event(_random_id(rng), moment, kind, _identities(rng, kind, visitor), body)


def _identities(rng: random.Random, kind: str, visitor: Visitor) -> Record:
    email = {"Email": [{"id": visitor.email}]}
    if kind == "support.contact":
        return {"Phone": [{"id": visitor.phone, "primary": True}]} if visitor.phone else email
    if kind == "directMarketing.emailClicked":
        return email
    web = {"ECID": [{"id": visitor.ecid, "primary": True}]}
    signed_in = kind in ("commerce.purchases", "commerce.productListAdds") or rng.random() < 0.5
    return {**web, **email} if signed_in else web


def _campaign(rng: random.Random, visitor: Visitor, moment: datetime) -> str:
    if moment < WINTER_SALE_START:
        return rng.choice(EARLY_CAMPAIGNS)
    return "Winter Sale 2026" if visitor.winter_engaged else rng.choice(LATE_CAMPAIGNS)


def _random_purchase(rng: random.Random, visitor: Visitor, moment: datetime) -> Record:
    line = item(rng.choice(catalog.PRODUCTS), rng.choice((1, 1, 1, 2, 3)), visitor.currency)
    campaign = _campaign(rng, visitor, moment) if rng.random() < 0.5 else None
    return purchase(line, f"ORD-{rng.randrange(10**9, 10**10)}", campaign)


def _random_product(rng: random.Random, visitor: Visitor) -> Record:
    return item(rng.choice(catalog.PRODUCTS), rng.choice((1, 1, 2)), visitor.currency)


BODIES: dict[str, Callable[[random.Random, Visitor, datetime], Record]] = {
    "commerce.purchases": _random_purchase,
    "commerce.productViews": lambda rng, v, _: product_view(_random_product(rng, v)),
    "commerce.productListAdds": lambda rng, v, _: list_add(_random_product(rng, v)),
    "directMarketing.emailClicked": lambda rng, v, m: email_click(_campaign(rng, v, m)),
    "web.webpagedetails.pageViews": lambda rng, v, _: page_view(rng.choice(catalog.PAGES)),
    "support.contact": lambda rng, v, _: support_contact(
        rng.choice(("phone", "chat", "email")), rng.choice(catalog.SUPPORT_REASONS),
        rng.choice(("resolved", "resolved", "escalated", "callback"))),
}


def _at(anchor: datetime, days: int, clock: str) -> datetime:
    hours, minutes, seconds = (int(part) for part in clock.split(":"))
    return anchor - timedelta(days=days) + timedelta(hours=hours, minutes=minutes, seconds=seconds)


def _random_id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))
