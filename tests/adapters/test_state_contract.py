"""One contract for every adapter of the hub's own state, for what forgetting and a sick
database ask of them: ``CallLedger.ping``/``forget``, ``Outbox.forget`` (the ``cancelled``
status), ``ForgetLog`` and ``ScreenPopBroker.forget``.

Each fixture is parametrized by backend; an adapter for another engine (PostgreSQL,
Redis) joins the contract by adding its factory to ``LEDGERS``, ``OUTBOXES``, ``LOGS`` or
``BROKERS``. A factory gets the test's ``tmp_path`` and clock and returns the adapter and
a context manager that keeps every write from starting (another client holding a lock).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hub.forget_keys import redact, stripped, value_key
from hub.models import CallerKind, CallInfo, DeliveryAction, NewDelivery, Summary
from hub.ports import CallLedger, ForgetLog, HubError, Outbox, ScreenPopBroker
from state.forgets.sqlite import SCHEMA as FORGETS_SCHEMA
from state.forgets.sqlite import SqliteForgetLog
from state.ledger.sqlite import SCHEMA as LEDGER_SCHEMA
from state.ledger.sqlite import SqliteCallLedger
from state.outbox.sqlite import SCHEMA as OUTBOX_SCHEMA
from state.outbox.sqlite import SqliteOutbox, upgrade
from state.pops.memory import InProcessScreenPopBroker
from state.sqlite import ThreadLocalDatabase

ADA, BOB = "+14155550134", "+12025550199"
T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def seconds(self) -> float:
        return self.now.timestamp()


@dataclass
class Backend:
    adapter: Any
    locked: Callable[[], AbstractContextManager[None]]


def sqlite_database(tmp_path: Path) -> tuple[ThreadLocalDatabase, Callable[[], Any]]:
    db = ThreadLocalDatabase(tmp_path / "hub.sqlite3",
                             LEDGER_SCHEMA + OUTBOX_SCHEMA + FORGETS_SCHEMA, upgrades=[upgrade])

    @contextmanager
    def locked() -> Iterator[None]:
        other = sqlite3.connect(db.path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            other.execute("ROLLBACK")
            other.close()

    return db, locked


def sqlite_ledger(tmp_path: Path, clock: Clock) -> Backend:
    db, locked = sqlite_database(tmp_path)
    return Backend(SqliteCallLedger(db), locked)


def sqlite_outbox(tmp_path: Path, clock: Clock) -> Backend:
    db, locked = sqlite_database(tmp_path)
    return Backend(SqliteOutbox(db, clock=clock), locked)


def sqlite_log(tmp_path: Path, clock: Clock) -> Backend:
    db, locked = sqlite_database(tmp_path)
    return Backend(SqliteForgetLog(db, clock=clock.seconds), locked)


def in_process_broker(tmp_path: Path, clock: Clock) -> Backend:
    return Backend(InProcessScreenPopBroker(replay=5, queue_size=10), contextmanager(iter))


LEDGERS = {"sqlite": sqlite_ledger}
OUTBOXES = {"sqlite": sqlite_outbox}
LOGS = {"sqlite": sqlite_log}
BROKERS = {"in_process": in_process_broker}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=sorted(LEDGERS))
def ledger_backend(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Backend:
    return LEDGERS[request.param](tmp_path, clock)


@pytest.fixture
def ledger(ledger_backend: Backend) -> CallLedger:
    return ledger_backend.adapter  # type: ignore[no-any-return]


@pytest.fixture(params=sorted(OUTBOXES))
def outbox(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Outbox:
    return OUTBOXES[request.param](tmp_path, clock).adapter  # type: ignore[no-any-return]


@pytest.fixture(params=sorted(LOGS))
def forgets(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> ForgetLog:
    return LOGS[request.param](tmp_path, clock).adapter  # type: ignore[no-any-return]


@pytest.fixture(params=sorted(BROKERS))
def broker(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> ScreenPopBroker:
    return BROKERS[request.param](tmp_path, clock).adapter  # type: ignore[no-any-return]


def summary(call: int, number: str = ADA, name: str | None = "Ada Lovelace") -> Summary:
    info = CallInfo(sid=f"CA{call:032x}", **{"from": number}, to="+18005550100",
                    caller_kind=CallerKind.NUMBER)
    return Summary(call=info, identity=None, found=name is not None, name=name)


def forgetting(number: str) -> Callable[[Summary], Summary]:
    return lambda s: redact(s, lambda key: key == value_key(number))


# --- CallLedger ------------------------------------------------------------------------------

def test_a_ledger_pings_while_it_can_record_calls(ledger: CallLedger) -> None:
    ledger.ping()


def test_a_ledger_ping_fails_while_no_write_can_start(ledger_backend: Backend) -> None:
    with ledger_backend.locked(), pytest.raises(HubError):
        ledger_backend.adapter.ping()


def test_forget_rewrites_the_records_holding_a_needle_as_redacted(ledger: CallLedger) -> None:
    ledger.claim(f"CA{1:032x}", "grace", summary(1))
    ledger.claim(f"CA{2:032x}", "grace", summary(2, BOB, "Charles Babbage"))

    changed = ledger.forget({ADA}, forgetting(ADA))

    assert [f"CA{1:032x}"] == changed
    assert stripped(summary(1)) == ledger.get(f"CA{1:032x}").summary  # type: ignore[union-attr]
    assert summary(2, BOB, "Charles Babbage") == ledger.get(f"CA{2:032x}").summary  # type: ignore[union-attr]


def test_forget_finds_a_needle_whatever_its_ascii_case(ledger: CallLedger) -> None:
    ledger.claim(f"CA{1:032x}", None, summary(1).model_copy(update={"email": "Ada@Example.COM"}))

    found: list[Summary] = []
    ledger.forget({"ada@example.com"}, lambda s: found.append(s) or s)  # type: ignore[func-returns-value]

    assert 1 == len(found)


def test_forget_leaves_a_record_the_redaction_does_not_change(ledger: CallLedger) -> None:
    ledger.claim(f"CA{1:032x}", None, summary(1))

    assert [] == ledger.forget({ADA}, lambda s: s)


def test_forget_without_needles_changes_nothing(ledger: CallLedger) -> None:
    ledger.claim(f"CA{1:032x}", None, summary(1))

    assert [] == ledger.forget(set(), forgetting(ADA))


# --- Outbox ----------------------------------------------------------------------------------

def delivery(call: int, sink: str = "crm", action: DeliveryAction = DeliveryAction.NOTE,
             ) -> NewDelivery:
    return NewDelivery(call_sid=f"CA{call:032x}", sink=sink, action=action,
                       payload={"phone": ADA, "text": "Ada Lovelace"})


def statuses(outbox: Outbox, call: int) -> dict[str, str]:
    return {f"{d.sink}/{d.action.value}": d.status
            for d in outbox.list(limit=100) if d.call_sid == f"CA{call:032x}"}  # type: ignore[attr-defined]


@pytest.fixture
def three_states(outbox: Outbox) -> Outbox:
    """Call 1: a note done, an SMS in flight, a call log pending; call 2: a note pending."""
    outbox.enqueue([delivery(1), delivery(1, "sms", DeliveryAction.SMS)])
    done, _in_flight = outbox.claim_due(2)
    outbox.mark_done(done.id)
    outbox.enqueue([delivery(1, action=DeliveryAction.CALL_LOG), delivery(2)])
    return outbox


def test_forget_cancels_pending_and_in_flight_deliveries(three_states: Outbox) -> None:
    three_states.forget([f"CA{1:032x}"])

    assert {"crm/note": "done", "sms/sms": "cancelled", "crm/call_log": "cancelled"} == (
        statuses(three_states, 1))


def test_forget_counts_what_it_found_by_status(three_states: Outbox) -> None:
    counts = three_states.forget([f"CA{1:032x}"])

    assert (1, 1, 1, 0) == (counts["pending"], counts["in_flight"], counts["done"],
                            counts["dead"])


def test_forget_empties_every_payload_of_the_calls_and_says_why(three_states: Outbox) -> None:
    three_states.forget([f"CA{1:032x}"])

    rows = [d for d in three_states.list(limit=100) if d.call_sid == f"CA{1:032x}"]  # type: ignore[attr-defined]
    assert [{}, {}, {}] == [d.payload for d in rows]
    assert all("forgotten" in (d.last_error or "") for d in rows if d.status == "cancelled")


def test_forget_leaves_other_calls_alone(three_states: Outbox) -> None:
    three_states.forget([f"CA{1:032x}"])

    assert {"crm/note": "pending"} == statuses(three_states, 2)


def test_a_cancelled_delivery_is_never_claimed_nor_finished(three_states: Outbox) -> None:
    three_states.forget([f"CA{1:032x}"])
    in_flight = [d for d in three_states.list(limit=100) if d.action is DeliveryAction.SMS]  # type: ignore[attr-defined]

    three_states.mark_done(in_flight[0].id)  # its worker finishes after the forget

    assert [f"CA{2:032x}"] == [d.call_sid for d in three_states.claim_due(10)]
    assert "cancelled" == statuses(three_states, 1)["sms/sms"]


def test_forget_of_no_calls_changes_nothing(three_states: Outbox) -> None:
    assert 0 == sum(three_states.forget([]).values())


# --- ForgetLog -------------------------------------------------------------------------------

def test_the_secret_is_made_once(forgets: ForgetLog) -> None:
    first = forgets.secret()
    assert (32, first) == (len(first), forgets.secret())


def test_forgets_are_read_back_in_order_after_a_sequence_number(forgets: ForgetLog) -> None:
    one, two = forgets.record({"a1", "a2"}), forgets.record({"b1"})

    assert one < two
    assert [(two, frozenset({"b1"}))] == [(e.seq, e.digests) for e in forgets.since(one)]


def test_a_sequence_number_is_never_given_twice_even_after_an_erase(forgets: ForgetLog) -> None:
    erased = forgets.record({"a"})
    forgets.erase(erased)

    assert ([], True) == (forgets.since(0), forgets.record({"b"}) > erased)


def test_a_forget_is_dropped_after_an_hour_unless_erased_before(
    forgets: ForgetLog, clock: Clock,
) -> None:
    forgets.record({"old"})
    clock.now += timedelta(hours=1, seconds=1)
    newer = forgets.record({"new"})

    assert [newer] == [e.seq for e in forgets.since(0)]


def test_a_process_confirmation_replaces_its_last(forgets: ForgetLog, clock: Clock) -> None:
    forgets.confirm("web-1", 1, {"cache": 2})
    clock.now += timedelta(seconds=5)
    forgets.confirm("web-1", 3, {"replay history": 1})

    [confirmed] = forgets.confirmations()
    assert ("web-1", 3, clock.seconds(), {"replay history": 1}) == (
        confirmed.process, confirmed.seq, confirmed.seen_at, dict(confirmed.cleaned))


# --- ScreenPopBroker -------------------------------------------------------------------------

def test_forget_drops_kept_pops_from_the_replay_history(broker: ScreenPopBroker) -> None:
    broker.publish("grace", summary(1))
    broker.publish("grace", summary(2, BOB, "Charles Babbage"))

    dropped = broker.forget(lambda s: s.call.from_ == ADA)
    stream = broker.subscribe("grace", last_event_id="0")
    replayed = []
    while (pop := stream.next(0.05)) is not None:
        replayed.append(pop[1].name)
    stream.close()

    assert (1, ["Charles Babbage"]) == (dropped, replayed)


def test_forget_drops_pops_a_console_has_not_read_yet(broker: ScreenPopBroker) -> None:
    stream = broker.subscribe("grace")
    broker.publish("grace", summary(1))

    broker.forget(lambda s: s.call.from_ == ADA)

    assert None is stream.next(0.05)
    stream.close()


def test_forget_takes_a_needle_literally(ledger: CallLedger) -> None:
    ledger.claim(f"CA{1:032x}", None, summary(1, name="Ada_100%"))
    ledger.claim(f"CA{2:032x}", None, summary(2, name="AdaX100"))

    found: list[str | None] = []
    ledger.forget({"a_100%"}, lambda s: found.append(s.name) or s)  # type: ignore[func-returns-value]

    assert ["Ada_100%"] == found
