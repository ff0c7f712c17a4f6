"""The call ledger's contract, kept by every adapter (SQLite, PostgreSQL): one decision per
CallSid, status callbacks that only move a call forward, a transaction that a call's
ledger row and its deliveries share, a ping that fails while no call could be recorded,
and ``forget``, which rewrites a forgotten person's records.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from hub.forget_keys import redact, stripped, value_key
from hub.models import (
    Ambiguity,
    CallerKind,
    CallInfo,
    DeliveryAction,
    Identity,
    NewDelivery,
    PersonFacts,
    Summary,
)
from hub.ports import HubError
from tests.adapters.conftest import HubState

SID = "CA" + "a" * 32
ADA, BOB = "+14155550134", "+12025550199"


def summary(name: str | None = None, sid: str = SID) -> Summary:
    found = name is not None
    return Summary(
        call=CallInfo(sid=sid, **{"from": "+14155550134"}, to="+18005550100",
                      caller_kind=CallerKind.NUMBER),
        identity=Identity(namespace="Phone", id="+14155550134") if found else None,
        found=found, name=name, lookup_ms=1.5 if found else None,
    )


@pytest.fixture
def ledger(state: HubState) -> Any:
    return state.ledger()


def test_a_claimed_call_is_remembered_with_its_agent_and_summary(ledger: Any) -> None:
    ledger.claim(SID, "grace", summary("Ada Lovelace"))
    record = ledger.get(SID)
    assert ("grace", summary("Ada Lovelace")) == (record.agent_id, record.summary)


def test_a_call_routed_to_no_agent_is_remembered_too(ledger: Any) -> None:
    assert ledger.claim(SID, None, summary())
    assert (None, False) == (ledger.get(SID).agent_id, ledger.get(SID).summary.found)


def test_a_callsid_is_claimed_once_and_keeps_its_first_decision(ledger: Any) -> None:
    assert (True, False) == (ledger.claim(SID, "grace", summary("Ada Lovelace")),
                             ledger.claim(SID, "alan", summary()))
    assert "grace" == ledger.get(SID).agent_id


def test_an_unknown_callsid_has_no_record(ledger: Any) -> None:
    assert ledger.get(SID) is None


def test_a_late_profile_updates_the_stored_summary(ledger: Any) -> None:
    ledger.claim(SID, "grace", summary())
    ledger.update_summary(SID, summary("Ada Lovelace"))
    assert "Ada Lovelace" == ledger.get(SID).summary.name


def test_of_callers_racing_on_one_callsid_exactly_one_claims_it(state: HubState) -> None:
    ledger, won = state.ledger(), []
    start = threading.Barrier(8)

    def claim(agent: str) -> None:
        start.wait()
        if ledger.claim(SID, agent, summary()):
            won.append(agent)

    threads = [threading.Thread(target=claim, args=(f"agent{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert [ledger.get(SID).agent_id] == won


def test_a_status_callback_that_ends_the_call_says_so_once(ledger: Any) -> None:
    steps = [("ringing", 0), ("in-progress", 1), ("completed", 2), ("completed", 2)]
    assert [False, False, True, False] == [
        ledger.record_status(SID, status, sequence, None) for status, sequence in steps]


def test_a_callback_older_than_the_stored_one_is_ignored(ledger: Any) -> None:
    ledger.record_status(SID, "in-progress", 3, None)
    assert (False, True) == (ledger.record_status(SID, "ringing", 2, None),
                             ledger.record_status(SID, "busy", 4, None))


def test_a_call_that_ended_never_unends(ledger: Any) -> None:
    ledger.record_status(SID, "completed", 3, 65)
    assert (False, False) == (ledger.record_status(SID, "in-progress", 4, None),
                              ledger.record_status(SID, "completed", 5, 70))


@pytest.mark.parametrize("end", ["completed", "busy", "failed", "no-answer", "canceled"])
def test_every_end_status_ends_the_call(ledger: Any, end: str) -> None:
    assert ledger.record_status(SID, end, 1, None)


def note(sid: str = SID) -> NewDelivery:
    return NewDelivery(call_sid=sid, sink="crm", action=DeliveryAction.NOTE, payload={"n": 1})


def test_a_claim_and_its_deliveries_commit_together(state: HubState) -> None:
    ledger, outbox = state.ledger(), state.outbox()
    with state.db.transaction():
        ledger.claim(SID, "grace", summary())
        outbox.enqueue([note()])
    assert (True, 1) == (ledger.get(SID) is not None, outbox.counts()["pending"])


def claim_then_fail(state: HubState) -> None:
    with state.db.transaction():
        state.ledger().claim(SID, "grace", summary())
        raise RuntimeError("the process fails before the deliveries are stored")


def test_a_failure_between_the_claim_and_its_deliveries_leaves_neither(state: HubState) -> None:
    with pytest.raises(RuntimeError):
        claim_then_fail(state)
    assert (None, 0) == (state.ledger().get(SID), state.outbox().counts()["pending"])


def claim_in_outer_enqueue_in_inner_then_fail(state: HubState) -> None:
    with state.db.transaction():
        state.ledger().claim(SID, "grace", summary())
        with state.db.transaction():
            state.outbox().enqueue([note()])
        raise RuntimeError("the outer transaction fails after the inner one ended")


def test_a_nested_transaction_joins_the_outer_one(state: HubState) -> None:
    with pytest.raises(RuntimeError):
        claim_in_outer_enqueue_in_inner_then_fail(state)
    assert (None, 0) == (state.ledger().get(SID), state.outbox().counts()["pending"])


def test_a_claim_is_seen_elsewhere_only_once_committed(state: HubState) -> None:
    ledger, elsewhere = state.ledger(), state.ledger(state.open())
    with state.db.transaction():
        ledger.claim(SID, "grace", summary())
        seen_inside = elsewhere.get(SID)
    assert (None, "grace") == (seen_inside, elsewhere.get(SID).agent_id)


def test_another_thread_does_not_join_a_transaction_open_on_this_one(state: HubState) -> None:
    ledger, seen = state.ledger(), []
    with state.db.transaction():
        ledger.claim(SID, "grace", summary())
        thread = threading.Thread(target=lambda: seen.append(ledger.get(SID)))
        thread.start()
        thread.join(10)
    assert [None] == seen


def test_a_ledger_pings_while_it_can_record_calls(ledger: Any) -> None:
    assert ledger.ping() is None


def test_a_ledger_ping_fails_while_no_write_can_start(state: HubState) -> None:
    ledger = state.ledger()
    with state.locked(), pytest.raises(HubError):
        ledger.ping()


def caller(call: int, number: str | None = ADA, name: str | None = "Ada Lovelace") -> Summary:
    info = CallInfo(sid=f"CA{call:032x}", **{"from": number}, to="+18005550100",
                    caller_kind=CallerKind.NUMBER)
    return Summary(call=info, identity=None, found=name is not None, name=name)


def forgetting(number: str) -> Callable[[Summary], Summary]:
    return lambda s: redact(s, lambda key: key == value_key(number))


def test_forget_rewrites_the_records_holding_a_needle_as_redacted(ledger: Any) -> None:
    ledger.claim(f"CA{1:032x}", "grace", caller(1))
    ledger.claim(f"CA{2:032x}", "grace", caller(2, BOB, "Charles Babbage"))

    changed = ledger.forget({ADA}, forgetting(ADA))

    assert [f"CA{1:032x}"] == changed
    assert stripped(caller(1)) == ledger.get(f"CA{1:032x}").summary
    assert caller(2, BOB, "Charles Babbage") == ledger.get(f"CA{2:032x}").summary


def test_forget_finds_a_needle_whatever_its_ascii_case(ledger: Any) -> None:
    ledger.claim(f"CA{1:032x}", None, caller(1).model_copy(update={"email": "Ada@Example.COM"}))

    found: list[Summary] = []
    ledger.forget({"ada@example.com"}, lambda s: found.append(s) or s)

    assert 1 == len(found)


def test_forget_takes_a_needle_literally(ledger: Any) -> None:
    for call, email in ((1, "ada_100%@example.com"), (2, "adaX100@example.com")):
        ledger.claim(f"CA{call:032x}", None, caller(call).model_copy(update={"email": email}))

    found: list[str | None] = []
    ledger.forget({"a_100%@"}, lambda s: found.append(s.email) or s)

    assert ["ada_100%@example.com"] == found


@pytest.mark.parametrize("field", ["from", "identity", "profile_id", "candidate"])
def test_forget_finds_the_person_wherever_the_summary_says_who_called(
    ledger: Any, field: str,
) -> None:
    ledger.claim(f"CA{1:032x}", None, said_by(field, "needle-7"))

    found: list[Summary] = []
    ledger.forget({"NEEDLE-7"}, lambda s: found.append(s) or s)

    assert [said_by(field, "needle-7")] == found


def said_by(field: str, value: str) -> Summary:
    """A summary that names ``value`` in one of the places that say who called."""
    plain = caller(1, number=None, name=None)
    if field == "from":
        return plain.model_copy(update={"call": plain.call.model_copy(update={"from_": value})})
    if field == "identity":
        return plain.model_copy(update={"identity": Identity(namespace="CRMID", id=value)})
    if field == "profile_id":
        return plain.model_copy(update={"profile_id": value})
    candidate = PersonFacts(profile_id="p-1", email=f"{value}@example.com")
    return plain.model_copy(update={"ambiguous": Ambiguity(count=2, candidates=(candidate,))})


def test_forget_leaves_a_record_the_redaction_does_not_change(ledger: Any) -> None:
    ledger.claim(f"CA{1:032x}", None, caller(1))

    assert [] == ledger.forget({ADA}, lambda s: s)


def test_forget_without_needles_changes_nothing(ledger: Any) -> None:
    ledger.claim(f"CA{1:032x}", None, caller(1))

    assert ([], caller(1)) == (ledger.forget(set(), forgetting(ADA)),
                               ledger.get(f"CA{1:032x}").summary)


def forget_then_fail(state: HubState) -> None:
    with state.db.transaction():
        state.ledger().forget({ADA}, forgetting(ADA))
        raise RuntimeError("the outbox's part of the forget fails")


def test_a_forget_inside_a_transaction_that_fails_changes_nothing(state: HubState) -> None:
    state.ledger().claim(f"CA{1:032x}", None, caller(1))

    with pytest.raises(RuntimeError):
        forget_then_fail(state)

    assert caller(1) == state.ledger().get(f"CA{1:032x}").summary
