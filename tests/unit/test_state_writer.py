"""The state writer: writes in order, retried while the database cannot take them."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from hub.ports import PermanentError, TransientError
from hub.state_writer import StateUnavailable, StateWriter, wait


@pytest.fixture
def writer() -> Iterator[StateWriter]:
    made = StateWriter(give_up_after=0.5, max_pending=3)
    yield made
    made.stop(timeout=1)


class Database:
    """Refuses writes (locked) until ``free`` is set; remembers what it took."""

    def __init__(self) -> None:
        self.free = threading.Event()
        self.taken: list[str] = []

    def write(self, what: str) -> str:
        if not self.free.is_set():
            raise TransientError("database is locked")
        self.taken.append(what)
        return what


def test_a_write_is_made_and_its_result_given_back(writer: StateWriter) -> None:
    assert 42 == wait(writer.submit(lambda: 42, "answer"), 1.0)


def test_writes_refused_while_the_database_is_locked_are_made_in_order_once_it_is_free(
    writer: StateWriter,
) -> None:
    db = Database()
    futures = [writer.submit(lambda what=what: db.write(what), what) for what in "abc"]

    with pytest.raises(StateUnavailable):
        wait(futures[0], 0.1)
    db.free.set()

    assert (["a", "b", "c"], "c") == ([wait(f, 2.0) for f in futures], db.taken[-1])


def test_a_write_that_fails_for_good_fails_alone(writer: StateWriter) -> None:
    def broken() -> None:
        raise PermanentError("bad data")

    failed, after = writer.submit(broken, "broken"), writer.submit(lambda: "next", "next")

    with pytest.raises(PermanentError):
        wait(failed, 1.0)
    assert "next" == wait(after, 1.0)


def test_a_write_refused_for_longer_than_the_patience_is_given_up(writer: StateWriter) -> None:
    db = Database()
    future = writer.submit(lambda: db.write("a"), "a")

    with pytest.raises(StateUnavailable, match="not saved"):
        future.result(timeout=5)
    assert 1 == writer.lost


def test_no_more_writes_wait_than_the_limit(writer: StateWriter) -> None:
    db = Database()
    futures = [writer.submit(lambda: db.write("x"), f"write {n}") for n in range(4)]

    with pytest.raises(StateUnavailable, match="too many"):
        futures[3].result(timeout=1)
    assert 3 == writer.pending()
