"""A server process applies forgets: it cleans its memory, stops late writes, confirms."""

from __future__ import annotations

import threading

import pytest

from hub.desk import CallState
from hub.forget_guard import ForgetGuard
from hub.forget_keys import PersonKeys, call_key, digest, value_key
from hub.models import CallerKind, CallInfo, Summary
from hub.ports import TransientError
from tests.fakes import InMemoryForgetLog

ADA, BOB = "+14155550134", "+12025550199"


def summary(number: str, name: str) -> Summary:
    info = CallInfo(sid="CA" + "1" * 32, **{"from": number}, to="+18005550100",
                    caller_kind=CallerKind.NUMBER)
    return Summary(call=info, identity=None, found=True, name=name)


def forget(log: InMemoryForgetLog, *keys: str) -> int:
    return log.record({digest(log.secret(), key) for key in keys})


def started(log: InMemoryForgetLog, **cleaners: object) -> ForgetGuard:
    guard = ForgetGuard(log, "web-1", cleaners)  # type: ignore[arg-type]
    guard.poll()  # the first poll learns where the log is
    return guard


def test_a_call_begun_before_a_forget_is_redacted_and_one_begun_after_is_not() -> None:
    log = InMemoryForgetLog()
    guard = started(log)
    before = guard.mark()
    forget(log, value_key(ADA))
    guard.poll()
    after = guard.mark()

    assert (None, "Ada Lovelace") == (guard.redacted(summary(ADA, "Ada Lovelace"), before).name,
                                      guard.redacted(summary(ADA, "Ada Lovelace"), after).name)


def test_forgets_recorded_before_the_process_started_are_not_applied() -> None:
    log = InMemoryForgetLog()
    forget(log, value_key(ADA))
    guard = started(log)

    assert not guard.concerns(summary(ADA, "Ada Lovelace"), guard.mark())


def test_someone_else_is_not_concerned() -> None:
    log = InMemoryForgetLog()
    guard = started(log)
    before = guard.mark()
    forget(log, *PersonKeys.of(value_key(ADA), []).keys)
    guard.poll()

    assert not guard.concerns(summary(BOB, "Charles Babbage"), before)


def test_the_cleaners_are_told_which_call_states_are_of_a_forgotten_persons_calls() -> None:
    log = InMemoryForgetLog()
    states = [CallState(call_sid="CA" + "1" * 32, phase="connected"),
              CallState(call_sid="CA" + "2" * 32, phase="connected")]
    seen: list[bool] = []

    def cleaner(concerns: object) -> int:
        seen.extend(concerns(state) for state in states)  # type: ignore[operator]
        return 0

    guard = started(log, **{"replay history": cleaner})
    forget(log, value_key(ADA), call_key("CA" + "1" * 32))
    guard.poll()

    assert [True, False] == seen[:2]


def test_the_cleaners_get_what_concerns_the_person_and_their_counts_are_confirmed() -> None:
    log = InMemoryForgetLog()
    seen: list[bool] = []

    def cleaner(concerns: object) -> int:
        seen.extend(concerns(s) for s in (summary(ADA, "Ada"), summary(BOB, "Bob")))  # type: ignore[operator]
        return 1

    guard = started(log, **{"replay history": cleaner})
    seq = forget(log, value_key(ADA))
    guard.poll()

    assert [True, False, True, False] == seen  # at once, and again before confirming
    assert (seq, {"replay history": 2}) == (log.confirmed["web-1"].seq,
                                            dict(log.confirmed["web-1"].cleaned))


def test_the_confirmed_counts_add_up_everything_removed_since_the_process_started() -> None:
    log = InMemoryForgetLog()
    guard = started(log, **{"replay history": lambda concerns: 1})
    forget(log, value_key(ADA))
    guard.poll()
    forget(log, value_key(BOB))
    guard.poll()

    assert {"replay history": 4} == dict(log.confirmed["web-1"].cleaned)


def test_a_place_that_cannot_be_cleaned_holds_the_confirmation_not_the_other_places() -> None:
    log = InMemoryForgetLog()
    redis_up = False

    def redis(concerns: object) -> int:
        if not redis_up:
            raise TransientError("Redis: connection refused")
        return 1

    guard = started(log, **{"replay history": redis, "remote cache": lambda concerns: 1})
    seq = forget(log, value_key(ADA))
    with pytest.raises(TransientError):
        guard.poll()
    unconfirmed = log.confirmed["web-1"].seq
    redis_up = True
    guard.poll()

    assert (True, seq) == (unconfirmed < seq, log.confirmed["web-1"].seq)
    assert {"replay history": 1, "remote cache": 2} == dict(log.confirmed["web-1"].cleaned)


def test_a_forget_is_not_confirmed_while_a_write_begun_before_it_runs() -> None:
    log = InMemoryForgetLog()
    guard = started(log)
    writing, done = threading.Event(), threading.Event()

    def write() -> None:
        with guard.writing():
            writing.set()
            done.wait(5)

    writer = threading.Thread(target=write)
    writer.start()
    writing.wait(5)
    seq = forget(log, value_key(ADA))
    guard.poll()
    while_writing = log.confirmed["web-1"].seq
    done.set()
    writer.join(5)
    guard.poll()

    assert (0, seq) == (while_writing, log.confirmed["web-1"].seq)


def test_a_forgotten_call_is_known_by_its_sid_whenever_it_began() -> None:
    log = InMemoryForgetLog()
    guard = started(log)
    forget(log, call_key("CA" + "2" * 32))
    guard.poll()

    assert (True, False) == (guard.call_forgotten("CA" + "2" * 32),
                             guard.call_forgotten("CA" + "3" * 32))


def test_a_guard_without_a_log_forgets_nothing() -> None:
    guard = ForgetGuard(None, "cli")
    guard.poll()

    assert (0, False) == (guard.mark(), guard.call_forgotten("CA" + "2" * 32))


def test_a_process_that_stops_is_not_waited_for() -> None:
    log = InMemoryForgetLog()
    guard = ForgetGuard(log, "web-1")
    guard.start()
    guard.stop()

    assert forget(log, value_key(ADA)) <= log.confirmed["web-1"].seq
