"""The inbound-call use case: lookup within the deadline, one decision per CallSid, late pops."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hub.call_state import CallState
from hub.calls import InboundCallHandler
from hub.deliveries import DeliveryPlanner
from hub.forget_guard import ForgetGuard
from hub.metrics import HubMetrics
from hub.models import CallStatusUpdate, Identity, InboundCall, Profile
from hub.policy import DataUsage
from hub.ports import ProfileProvider, TransientError
from hub.routing import AgentRouter
from hub.settings import Settings
from lookup.chain import ProviderChain
from state.ledger.sqlite import SCHEMA, SqliteCallLedger
from state.outbox.sqlite import SCHEMA as OUTBOX_SCHEMA
from state.outbox.sqlite import SqliteOutbox
from state.sqlite import ThreadLocalDatabase
from tests.fakes import (
    FailingProvider,
    InMemoryProfileProvider,
    RecordingBroker,
    SlowProvider,
    wait_for,
)
from tests.support import ADA_PHONE, AGENT_NUMBER, call_form, make_settings

ADA = Profile(source="memory", profile_id="ada",
              attributes={"person": {"name": {"fullName": "Ada Lovelace"}}},
              identities=(Identity(namespace="Phone", id=ADA_PHONE),))
KNOWN = {Identity(namespace="Phone", id=ADA_PHONE): ADA}


class HangingLedger(SqliteCallLedger):
    """A ledger on a database that hangs (a stuck disk) until ``release`` is set."""

    def __init__(self, db: ThreadLocalDatabase) -> None:
        super().__init__(db)
        self.release = threading.Event()

    def get(self, call_sid: str):  # type: ignore[no-untyped-def]
        self.release.wait(10)
        return super().get(call_sid)

    def claim(self, *args: object):  # type: ignore[no-untyped-def]
        self.release.wait(10)
        return super().claim(*args)  # type: ignore[arg-type]


class Harness:
    def __init__(self, tmp_path: Path, providers: Sequence[ProfileProvider],
                 ledger: type[SqliteCallLedger] = SqliteCallLedger, **settings: object):
        self.settings: Settings = make_settings(tmp_path, **settings)
        self.broker = RecordingBroker()
        self.db = ThreadLocalDatabase(tmp_path / "hub.sqlite3", SCHEMA + OUTBOX_SCHEMA)
        metrics = HubMetrics()
        router = AgentRouter(self.settings.hub.agents, None, "US")
        self.outbox = SqliteOutbox(self.db)
        self.ledger = ledger(self.db)
        planner = DeliveryPlanner("webhook", "+18005550111", DataUsage(),
                                  lambda parts, suffix="": parts[0])
        self.guard = ForgetGuard(None, "test")
        state = CallState(self.ledger, self.outbox, planner, self.db.transaction, guard=self.guard)
        self.handler = InboundCallHandler(self.settings, ProviderChain(providers, metrics), router,
                                          state, self.broker, metrics, guard=self.guard)

    def call(self, sid_char: str = "a", from_: str = ADA_PHONE, to: str = AGENT_NUMBER):
        form = call_form("CA" + sid_char * 32, from_, to)
        return self.handler.handle(InboundCall.model_validate(form), time.perf_counter())

    def close(self) -> None:
        self.handler.close()
        self.db.close()


@pytest.fixture
def harness_for(tmp_path: Path) -> Iterator[object]:
    made: list[Harness] = []

    def build(providers: Sequence[ProfileProvider], **settings: object) -> Harness:
        made.append(Harness(tmp_path, providers, **settings))  # type: ignore[arg-type]
        return made[-1]

    yield build
    for harness in made:
        harness.close()


def test_known_caller_is_found_and_popped_to_the_routed_agent(harness_for) -> None:
    harness = harness_for([InMemoryProfileProvider(KNOWN)])
    decision = harness.call()
    actual = (decision.agent.id, decision.summary.found, decision.summary.name)
    assert ("grace", True, "Ada Lovelace") == actual
    assert [("grace", decision.summary)] == harness.broker.published


def test_lookup_asks_the_e164_candidates_in_namespace_order(harness_for) -> None:
    provider = InMemoryProfileProvider(KNOWN)
    harness_for([provider]).call(from_="(415) 555-0134")
    expected = [(Identity(namespace="Phone_E.164", id=ADA_PHONE),
                 Identity(namespace="Phone", id=ADA_PHONE))]
    assert expected == provider.asked


def test_retried_webhook_gets_the_same_decision_and_no_second_pop(harness_for) -> None:
    harness = harness_for([InMemoryProfileProvider(KNOWN)])
    first, second = harness.call(), harness.call()
    assert (first.summary, True, 1) == (second.summary, second.repeated,
                                        len(harness.broker.published))


def test_withheld_caller_is_not_looked_up(harness_for) -> None:
    provider = InMemoryProfileProvider(KNOWN)
    decision = harness_for([provider]).call(from_="+266696687")
    assert (provider.asked, decision.summary.found,
                                 decision.summary.identity) == ([], False, None)


def test_first_provider_with_the_caller_wins(harness_for) -> None:
    from_full = {key: p.model_copy(update={"source": "full"}) for key, p in KNOWN.items()}
    empty, full = InMemoryProfileProvider(name="empty"), InMemoryProfileProvider(from_full, "full")
    decision = harness_for([empty, full]).call()
    assert decision.summary.source == "full"


def test_a_failing_provider_is_skipped(harness_for) -> None:
    decision = harness_for([FailingProvider(), InMemoryProfileProvider(KNOWN)]).call()
    assert decision.summary.name == "Ada Lovelace"


def test_slow_lookup_is_answered_at_the_deadline_and_pops_late(harness_for) -> None:
    slow = SlowProvider(delay=5.0, profiles=KNOWN)
    harness = harness_for([slow], lookup_deadline_ms=100)
    started = time.perf_counter()
    decision = harness.call()
    answered_in = time.perf_counter() - started
    assert decision.summary.found is False
    assert answered_in < 0.5
    slow.release.set()
    assert wait_for(lambda: len(harness.broker.published) == 2)
    assert harness.broker.published[1][1].name == "Ada Lovelace"
    assert harness.call().summary.name == "Ada Lovelace"  # a retry now sees the late profile


def test_call_to_an_unrouted_number_pops_nowhere(harness_for) -> None:
    harness = harness_for([InMemoryProfileProvider(KNOWN)])
    decision = harness.call(to="+18885550000")
    assert (decision.agent, harness.broker.published) == (None, [])


def pending(harness: Harness) -> list[tuple[str, str]]:
    return [(d.sink, d.action.value) for d in harness.outbox.list(status="pending")]


def test_an_accepted_call_enqueues_its_crm_note_before_answering(harness_for) -> None:
    harness = harness_for([InMemoryProfileProvider(KNOWN)])
    harness.call()
    harness.call()  # a retried webhook adds nothing
    assert [("webhook", "note")] == pending(harness)


def test_the_end_of_a_call_enqueues_its_log_once(harness_for) -> None:
    harness = harness_for([InMemoryProfileProvider(KNOWN)])
    harness.call()
    ended = CallStatusUpdate(CallSid="CA" + "a" * 32, CallStatus="completed", SequenceNumber=2,
                             CallDuration=61)
    assert (True, False) == (harness.handler.status(ended), harness.handler.status(ended))
    expected = {("webhook", "note"), ("webhook", "call_log"), ("profile", "call_log")}
    assert expected == set(pending(harness))


def note_row(harness: Harness) -> tuple[object, bool]:
    """The pending note's caller name and whether it is due now."""
    note = harness.outbox.list(status="pending")[0]
    return note.payload["summary"]["name"], note.next_attempt_at <= datetime.now(UTC)


def test_a_late_profile_is_answered_with_its_note_stored_but_deferred(harness_for) -> None:
    harness = harness_for([SlowProvider(delay=5.0, profiles=KNOWN)], lookup_deadline_ms=100)
    harness.call()
    assert (None, False) == note_row(harness)


def test_the_late_profile_fills_the_deferred_note_and_makes_it_due(harness_for) -> None:
    slow = SlowProvider(delay=5.0, profiles=KNOWN)
    harness = harness_for([slow], lookup_deadline_ms=100)
    harness.call()
    slow.release.set()
    assert wait_for(lambda: note_row(harness) == ("Ada Lovelace", True))


def test_a_call_and_its_deliveries_are_recorded_together_or_not_at_all(harness_for) -> None:
    harness = harness_for([InMemoryProfileProvider(KNOWN)], lookup_deadline_ms=200)
    enqueue, full = harness.outbox.enqueue, threading.Event()

    def full_disk(*args: object, **kwargs: object) -> int:
        if not full.is_set():
            raise TransientError("hub database: database or disk is full")
        return enqueue(*args, **kwargs)  # type: ignore[arg-type]

    harness.outbox.enqueue = full_disk  # type: ignore[method-assign]
    answered = harness.call()
    unrecorded = harness.ledger.get("CA" + "a" * 32)
    full.set()  # room again: the call and its note are recorded together

    assert (True, None) == (answered.summary.found, unrecorded)
    assert wait_for(lambda: harness.ledger.get("CA" + "a" * 32) is not None)
    assert [("webhook", "note")] == pending(harness)


class DeadlineHonouringProvider(InMemoryProfileProvider):
    """Answers after ``delay`` seconds, unless its deadline comes first (as remote ones do)."""

    def __init__(self, delay: float) -> None:
        super().__init__(KNOWN, name="remote")
        self.delay = delay

    def lookup(self, identities: Sequence[Identity], deadline: float) -> Profile | None:
        if time.monotonic() + self.delay > deadline:
            time.sleep(max(0.0, deadline - time.monotonic()))
            raise TransientError("deadline")
        time.sleep(self.delay)
        return super().lookup(identities, deadline)


def test_a_hanging_database_does_not_hold_the_call_past_its_deadline(harness_for) -> None:
    harness = harness_for([DeadlineHonouringProvider(delay=0.15)], ledger=HangingLedger,
                          lookup_deadline_ms=300)
    started = time.perf_counter()
    decision = harness.call()
    answered_in = time.perf_counter() - started
    harness.ledger.release.set()

    assert ("Ada Lovelace", 1) == (decision.summary.name, len(harness.broker.published))
    assert answered_in < 0.3 + 0.15
    assert wait_for(lambda: harness.ledger.get("CA" + "a" * 32) is not None)


def test_a_late_lookup_may_outlive_the_webhook_deadline(harness_for) -> None:
    harness = harness_for([DeadlineHonouringProvider(delay=0.3)], lookup_deadline_ms=100,
                          late_lookup_ms=2000)
    assert harness.call().summary.found is False
    assert wait_for(lambda: len(harness.broker.published) == 2)
    assert "Ada Lovelace" == harness.broker.published[1][1].name


def test_threads_opening_a_new_hub_database_at_once_all_get_a_working_connection(
    tmp_path: Path,
) -> None:
    db = ThreadLocalDatabase(tmp_path / "fresh.sqlite3", SCHEMA + OUTBOX_SCHEMA)
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def open_and_write(n: int) -> None:
        start.wait()
        try:
            with db.transaction() as conn:
                conn.execute("INSERT INTO calls VALUES (?, NULL, '{}', 0, 0)", (f"CA{n}",))
        except BaseException as exc:  # every failure is the finding
            errors.append(exc)

    threads = [threading.Thread(target=open_and_write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    db.close()
    assert [] == errors
