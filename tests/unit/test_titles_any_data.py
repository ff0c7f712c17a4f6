"""Event titles are written for any data an event holds: a source writes what it writes."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.models import ExperienceEvent
from hub.titles import RENDERERS, event_title

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
    | st.sampled_from(["inf", "nan", "1e999", "240"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                  max_size=3),
    max_leaves=8,
)
some_of = st.fixed_dictionaries
items = st.lists(some_of({}, optional={key: values for key in (
    "name", "SKU", "quantity", "priceTotal", "currencyCode")}) | values, max_size=3)
data = some_of({}, optional={
    "productListItems": items | values,
    "marketing": some_of({}, optional={"campaignName": values}) | values,
    "web": some_of({}, optional={"webPageDetails": some_of({}, optional={"name": values})}),
    "support": values,
    "_cah": some_of({}, optional={"call": some_of({}, optional={"durationSeconds": values,
                                                                "outcome": values}) | values,
                                  "support": values}) | values,
})


IN_CI = bool(os.environ.get("CI") or os.environ.get("CAHUB_NO_SKIP"))  # repeatable there


@settings(max_examples=300, deadline=None, derandomize=IN_CI)
@given(event_type=st.sampled_from(sorted(RENDERERS)) | st.text(max_size=12), fields=data)
def test_a_title_is_written_for_any_data(event_type, fields):
    event = ExperienceEvent(id="e", timestamp=datetime(2026, 11, 20, tzinfo=UTC),
                            type=event_type, data=fields)

    assert isinstance(event_title(event), str)
