"""Agent-readable titles for XDM experience events.

Common event types get a sentence built from their fields ("Purchased 2× Trail Shoe
(USD 240.00)"); any other type falls back to its name made readable.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from hub.models import ExperienceEvent

MAX_ITEMS_NAMED = 2


def _items(data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    items = data.get("productListItems")
    return [item for item in items if isinstance(item, Mapping)] if isinstance(items, list) else []


def _item_label(item: Mapping[str, Any]) -> str:
    name = str(item.get("name") or item.get("SKU") or "item")
    quantity = item.get("quantity")
    return f"{quantity}× {name}" if isinstance(quantity, int) and quantity > 1 else name


def _products(data: Mapping[str, Any]) -> str:
    items = _items(data)
    if not items:
        return ""
    named = ", ".join(_item_label(item) for item in items[:MAX_ITEMS_NAMED])
    more = len(items) - MAX_ITEMS_NAMED
    return f"{named} and {more} more" if more > 0 else named


def _total(data: Mapping[str, Any]) -> str:
    prices = [item.get("priceTotal") for item in _items(data)]
    if not prices or not all(isinstance(p, int | float) for p in prices):
        return ""
    amount = f"{sum(float(p) for p in prices if isinstance(p, int | float)):,.2f}"
    currency = str(_items(data)[0].get("currencyCode") or "").upper()
    return f" ({currency} {amount})" if currency else f" ({amount})"


def _purchase(data: Mapping[str, Any]) -> str:
    return f"Purchased {_products(data) or 'an order'}{_total(data)}"


def _with_products(verb: str) -> Callable[[Mapping[str, Any]], str]:
    return lambda data: f"{verb} {_products(data) or 'a product'}"


def _campaign(verb: str) -> Callable[[Mapping[str, Any]], str]:
    def render(data: Mapping[str, Any]) -> str:
        marketing = data.get("marketing")
        name = marketing.get("campaignName") if isinstance(marketing, Mapping) else None
        return f"{verb} {name}" if name else f"{verb} a campaign"

    return render


def _page_view(data: Mapping[str, Any]) -> str:
    web = data.get("web")
    details = web.get("webPageDetails") if isinstance(web, Mapping) else None
    name = details.get("name") if isinstance(details, Mapping) else None
    return f"Viewed page {name}" if name else "Viewed a web page"


def _support(data: Mapping[str, Any]) -> str:
    support = data.get("support") or _inside(data, "_cah", "support")
    topic = support.get("topic") if isinstance(support, Mapping) else None
    return f"Contacted support: {topic}" if topic else "Contacted support"


def _call(data: Mapping[str, Any]) -> str:
    """"Called, 4 min, Refund issued": the agent's outcome when they wrapped the call up,
    else Twilio's status in brackets; "Agent called" for a call an agent placed."""
    call = _inside(data, "_cah", "call")
    if not isinstance(call, Mapping):
        return "Phone call"
    minutes = round(_seconds(call.get("durationSeconds")) / 60)
    outcome = call.get("outcome")
    verb = "Agent called" if call.get("direction") == "outbound" else "Called"
    length = f", {minutes} min" if minutes else ""
    if outcome and call.get("outcomeId"):
        return f"{verb}{length}, {outcome}"
    return f"{verb}{length}" + (f" ({outcome})" if outcome else "")


def _inside(data: Mapping[str, Any], *path: str) -> Any:
    """The value at ``path``, or None where a step is missing or not an object (an
    event's fields are whatever its source wrote)."""
    value: Any = data
    for step in path:
        value = value.get(step) if isinstance(value, Mapping) else None
    return value


def _seconds(value: Any) -> float:
    """A duration in seconds as written (a number, or a string holding one); else 0."""
    try:
        seconds = float(value) if isinstance(value, int | float | str) else 0.0
    except (ValueError, OverflowError):
        return 0.0
    return seconds if math.isfinite(seconds) and not isinstance(value, bool) else 0.0


RENDERERS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "commerce.purchases": _purchase,
    "commerce.productViews": _with_products("Viewed"),
    "commerce.productListAdds": _with_products("Added to cart:"),
    "commerce.productListRemovals": _with_products("Removed from cart:"),
    "commerce.checkouts": _with_products("Started checkout:"),
    "directMarketing.emailOpened": _campaign("Opened email from"),
    "directMarketing.emailClicked": _campaign("Clicked email from"),
    "directMarketing.emailSent": _campaign("Was sent"),
    "advertising.clicks": _campaign("Clicked an ad from"),
    "web.webpagedetails.pageViews": _page_view,
    "support.contact": _support,
    "call.completed": _call,
}


def event_title(event: ExperienceEvent) -> str:
    """One line an agent understands at a glance."""
    renderer = RENDERERS.get(event.type)
    if renderer is not None:
        return renderer(event.data)
    readable = event.type.replace("_", " ").replace(".", " · ")
    return readable[:1].upper() + readable[1:]
