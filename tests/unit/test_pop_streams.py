"""A console's place in the Redis streams: ids, live pops, replays and catch-ups."""

from __future__ import annotations

import pytest

from state.pops.redis_streams import (
    ORIGIN,
    StreamId,
    StreamSubscription,
    format_stream_id,
    parse_stream_id,
)
from state.pops.subscription import Pop
from tests.support import pop_summary


def pop(ms: int) -> tuple[StreamId, Pop]:
    stream_id = (ms, 0)
    return stream_id, (format_stream_id(stream_id), pop_summary(ms))


def subscription(after: StreamId | None = (10, 0)) -> StreamSubscription:
    console = StreamSubscription("ada", 10, lambda _: None)
    console.after = after
    return console


def queued(console: StreamSubscription) -> list[int]:
    pops = []
    while (item := console.next(0)) is not None:
        pops.append(int(item[0].split("-")[0]))
    return pops


@pytest.mark.parametrize(("text", "expected"), [
    ("1764501234567-0", (1764501234567, 0)), (b"5-12", (5, 12)), ("0-0", ORIGIN),
    ("18446744073709551615-18446744073709551615", (2**64 - 1, 2**64 - 1)),
])
def test_stream_ids_parse_into_pairs_that_sort_as_redis_sorts_them(text, expected):
    assert expected == parse_stream_id(text)


@pytest.mark.parametrize("text", [None, "", "5", "5-", "-5", "5-1-2", "a-1", "٣-1", " 5-1",
                                  "18446744073709551616-0"])
def test_anything_else_is_no_stream_id(text):
    assert parse_stream_id(text) is None


def test_a_live_pop_at_or_below_the_consoles_place_is_skipped():
    console = subscription(after=(10, 0))

    for ms in (9, 10, 11, 11, 12):
        console.offer(*pop(ms))

    assert [11, 12] == queued(console)


def test_a_replay_goes_ahead_of_the_live_pops_and_repeats_none_of_them():
    console = subscription(after=(10, 0))
    console.offer(*pop(12))

    console.replay([pop(8), pop(11), pop(12)])
    console.offer(*pop(13))

    assert [8, 11, 12, 13] == queued(console)


def test_after_a_replay_a_live_pop_it_held_is_not_given_again():
    console = subscription(after=(10, 0))

    console.replay([pop(11), pop(12)])
    console.offer(*pop(12))
    console.offer(*pop(13))

    assert [11, 12, 13] == queued(console)


def test_the_reader_places_a_console_without_a_place_and_catches_up_the_others():
    placed, unplaced = subscription(after=(10, 0)), subscription(after=None)

    asked = (placed.anchor((20, 0), restart=False), unplaced.anchor((20, 0), restart=False))

    assert ((True, False), (10, 0), (20, 0)) == (asked, placed.after, unplaced.after)


def test_after_a_redis_restart_every_pop_is_news_even_with_a_lower_id():
    console = subscription(after=(10, 0))
    console.offer(*pop(11))

    console.anchor((0, 0), restart=True)
    console.offer(*pop(5))

    assert [11, 5] == queued(console)
