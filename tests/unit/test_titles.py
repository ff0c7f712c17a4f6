"""Agent-readable event titles."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from hub.models import ExperienceEvent
from hub.titles import event_title


def event(type_: str, **data: Any) -> ExperienceEvent:
    return ExperienceEvent(id="e", timestamp=datetime(2026, 11, 20, tzinfo=UTC), type=type_,
                           data=data)


ITEMS = [{"name": "Trail Shoe", "quantity": 2, "priceTotal": 240, "currencyCode": "USD"},
         {"name": "Sock", "quantity": 1, "priceTotal": 10, "currencyCode": "USD"},
         {"name": "Cap", "quantity": 1, "priceTotal": 20, "currencyCode": "USD"}]


@pytest.mark.parametrize(
    ("ev", "title"),
    [
        (event("commerce.purchases", productListItems=ITEMS[:1]),
         "Purchased 2× Trail Shoe (USD 240.00)"),
        (event("commerce.purchases", productListItems=ITEMS),
         "Purchased 2× Trail Shoe, Sock and 1 more (USD 270.00)"),
        (event("commerce.purchases"), "Purchased an order"),
        (event("commerce.productViews", productListItems=[{"name": "Rain Jacket"}]),
         "Viewed Rain Jacket"),
        (event("commerce.productListAdds", productListItems=[{"SKU": "RJ-1"}]),
         "Added to cart: RJ-1"),
        (event("directMarketing.emailClicked", marketing={"campaignName": "Winter Sale"}),
         "Clicked email from Winter Sale"),
        (event("web.webpagedetails.pageViews", web={"webPageDetails": {"name": "Returns"}}),
         "Viewed page Returns"),
        (event("support.contact", support={"topic": "late delivery"}),
         "Contacted support: late delivery"),
        (event("call.completed", _cah={"call": {"durationSeconds": 240, "outcome": "completed"}}),
         "Called, 4 min (completed)"),
        (event("call.completed", _cah={"call": {"durationSeconds": 250, "outcome": "Refund issued",
                                                "outcomeId": "refund_issued"}}),
         "Called, 4 min, Refund issued"),
        (event("call.completed", _cah={"call": {"durationSeconds": 61, "direction": "outbound",
                                                "outcome": "Left voicemail",
                                                "outcomeId": "left_voicemail"}}),
         "Agent called, 1 min, Left voicemail"),
        (event("application.launch"), "Application · launch"),
    ],
)
def test_event_title(ev: ExperienceEvent, title: str) -> None:
    assert title == event_title(ev)
