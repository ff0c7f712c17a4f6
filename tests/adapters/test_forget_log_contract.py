"""The forget log's contract, kept by every adapter (SQLite, PostgreSQL): a key made once,
forgets read back in order by sequence numbers never given twice, dropped after an hour,
and each server process's last confirmation.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from tests.adapters.conftest import HubState
from tests.fakes import FakeClock


@pytest.fixture
def forgets(state: HubState, clock: FakeClock) -> Any:
    return state.forgets(clock=clock)


def test_the_secret_is_made_once(forgets: Any) -> None:
    first = forgets.secret()
    assert (32, first) == (len(first), forgets.secret())


def test_every_process_gets_the_same_secret(state: HubState, forgets: Any) -> None:
    elsewhere = state.forgets(state.open())
    assert elsewhere.secret() == forgets.secret()


def test_forgets_are_read_back_in_order_after_a_sequence_number(forgets: Any) -> None:
    one, two = forgets.record({"a1", "a2"}), forgets.record({"b1"})

    assert one < two
    assert [(two, frozenset({"b1"}))] == [(e.seq, e.digests) for e in forgets.since(one)]


def test_a_forget_holds_its_digests_whole(forgets: Any) -> None:
    digests = {f"{n:032x}" for n in range(200)}
    forgets.record(digests)

    assert [frozenset(digests)] == [e.digests for e in forgets.since(0)]


def test_a_sequence_number_is_never_given_twice_even_after_an_erase(forgets: Any) -> None:
    erased = forgets.record({"a"})
    forgets.erase(erased)

    assert ([], True) == (forgets.since(0), forgets.record({"b"}) > erased)


def test_forgets_recorded_by_processes_at_once_get_numbers_of_their_own(state: HubState) -> None:
    logs = [state.forgets(state.open()) for _ in range(4)]
    numbers: list[int] = []
    start = threading.Barrier(len(logs))

    def record(log: Any) -> None:
        start.wait()
        numbers.extend(log.record({f"d{n}"}) for n in range(10))

    threads = [threading.Thread(target=record, args=(log,)) for log in logs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert (40, sorted(numbers)) == (len(set(numbers)), [e.seq for e in logs[0].since(0)])


def test_a_forget_is_dropped_after_an_hour_unless_erased_before(
    forgets: Any, clock: FakeClock,
) -> None:
    forgets.record({"old"})
    clock.advance(3601)
    newer = forgets.record({"new"})

    assert [newer] == [e.seq for e in forgets.since(0)]


def test_erase_keeps_the_forgets_after_it(forgets: Any) -> None:
    first, second = forgets.record({"a"}), forgets.record({"b"})
    forgets.erase(first)

    assert [second] == [e.seq for e in forgets.since(0)]


def test_a_process_confirmation_replaces_its_last(forgets: Any, clock: FakeClock) -> None:
    forgets.confirm("web-1", 1, {"cache": 2})
    clock.advance(5)
    forgets.confirm("web-1", 3, {"replay history": 1})

    [confirmed] = forgets.confirmations()
    assert ("web-1", 3, clock.now.timestamp(), {"replay history": 1}) == (
        confirmed.process, confirmed.seq, confirmed.seen_at, dict(confirmed.cleaned))


def test_a_stopped_process_may_confirm_every_forget_to_come(forgets: Any) -> None:
    forgets.confirm("web-1", 2**62, {})

    assert [2**62] == [c.seq for c in forgets.confirmations()]


def test_confirmations_of_a_process_silent_for_a_day_are_erased(
    forgets: Any, clock: FakeClock,
) -> None:
    forgets.confirm("gone", 1, {})
    clock.advance(86_401)
    forgets.confirm("web-1", 1, {})
    forgets.erase(1)

    assert ["web-1"] == [c.process for c in forgets.confirmations()]
