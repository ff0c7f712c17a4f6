"""Turns to write for the ingest API (web.ingest_turns): one writer at a time, a bounded
wait, and a short rest once the store was found busy."""

from __future__ import annotations

import time

import pytest

from hub.ports import TransientError
from web.ingest_turns import StoreBusy, WriterTurns


def found_busy(turns: WriterTurns) -> None:
    with pytest.raises(TransientError), turns.turn():
        raise TransientError("database is locked")


def test_after_the_store_was_found_busy_a_turn_is_refused_for_the_rest() -> None:
    turns = WriterTurns(waiting=1, wait_s=1.0, rest_s=60.0)
    found_busy(turns)

    with pytest.raises(StoreBusy), turns.turn():
        pass


def test_after_the_rest_a_turn_tries_the_store_again() -> None:
    turns = WriterTurns(waiting=1, wait_s=1.0, rest_s=0.05)
    found_busy(turns)
    time.sleep(0.06)

    with turns.turn():
        tried = True

    assert tried


def test_a_turn_that_ends_in_another_error_leaves_no_rest() -> None:
    turns = WriterTurns(waiting=1, wait_s=1.0, rest_s=60.0)
    with pytest.raises(ValueError, match="a bug"), turns.turn():
        raise ValueError("a bug")

    with turns.turn():
        tried = True

    assert (True, 0) == (tried, turns.admitted)
