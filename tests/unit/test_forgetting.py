"""The forget use case over the hub's own state: records, deliveries, servers, the log."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hub.desk import DeskCall
from hub.forget_keys import PersonKeys, call_key, digest, value_key
from hub.forgetting import Forgetting
from hub.models import CallerKind, CallInfo, DeliveryAction, NewDelivery, Summary
from state.desk.sqlite import SCHEMA as DESK_SCHEMA
from state.desk.sqlite import SqliteAgentDesk
from state.ledger.sqlite import SCHEMA as LEDGER_SCHEMA
from state.ledger.sqlite import SqliteCallLedger
from state.outbox.sqlite import SCHEMA as OUTBOX_SCHEMA
from state.outbox.sqlite import SqliteOutbox
from state.sqlite import ThreadLocalDatabase
from tests.fakes import InMemoryForgetLog

ADA, OTHER = "+14155550134", "+12025550100"
KEYS = PersonKeys.of(value_key(ADA), [])


class Time:
    """A clock and a sleep that only moves it, so a wait costs nothing."""

    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.on_sleep: list[object] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        for hook in self.on_sleep:
            hook()  # type: ignore[operator]


class Hub:
    def __init__(self, tmp_path: Path) -> None:
        self.db = ThreadLocalDatabase(tmp_path / "hub.sqlite3",
                                      LEDGER_SCHEMA + OUTBOX_SCHEMA + DESK_SCHEMA)
        self.ledger, self.outbox = SqliteCallLedger(self.db), SqliteOutbox(self.db)
        self.desk = SqliteAgentDesk(self.db)
        self.time = Time()
        self.log = InMemoryForgetLog(self.time.clock)
        self.forgetting = Forgetting(self.ledger, self.outbox, self.log, self.db.transaction,
                                     wait_s=5, clock=self.time.clock, sleep=self.time.sleep,
                                     desk=self.desk)
        self.steps: list[str] = []

    def call(self, n: int, number: str, profile_id: str | None = None) -> str:
        sid = f"CA{n:032x}"
        info = CallInfo(sid=sid, **{"from": number}, to="+18005550100",
                        caller_kind=CallerKind.NUMBER)
        self.ledger.claim(sid, "grace", Summary(call=info, identity=None, found=True,
                                                name="Ada Lovelace", profile_id=profile_id))
        self.outbox.enqueue([NewDelivery(call_sid=sid, sink="crm", action=DeliveryAction.NOTE,
                                         payload={"phone": number})])
        self.desk.create(DeskCall(call_sid=sid, agent_id="grace", notes=f"About {number}",
                                  updated_at=datetime(2026, 11, 20, 10, 0, tzinfo=UTC)))
        return sid

    def forget(self, keys: PersonKeys = KEYS) -> object:
        return self.forgetting.forget(keys, lambda: self.steps.append("erase"),
                                      lambda _: self.steps.append("sweep") or 0)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    made = Hub(tmp_path)
    yield made
    made.db.close()


def test_the_persons_calls_are_taken_off_the_agents_desks_with_their_notes(hub: Hub) -> None:
    mine, bobs = hub.call(1, ADA), hub.call(2, "+12025550199")

    outcome = hub.forget()

    assert 1 == outcome.desk_calls  # type: ignore[attr-defined]
    assert (None, "About +12025550199") == (hub.desk.get(mine),
                                           hub.desk.get(bobs).notes)  # type: ignore[union-attr]


def test_the_persons_calls_are_redacted_and_their_deliveries_cancelled(hub: Hub) -> None:
    mine, bobs = hub.call(1, ADA), hub.call(2, "+12025550199")

    outcome = hub.forget()

    assert (1, 1) == (outcome.calls, outcome.deliveries["pending"])  # type: ignore[attr-defined]
    assert (None, "Ada Lovelace") == (hub.ledger.get(mine).summary.name,  # type: ignore[union-attr]
                                      hub.ledger.get(bobs).summary.name)  # type: ignore[union-attr]


def test_a_call_from_another_number_matched_to_the_same_remote_profile_goes_too(hub: Hub) -> None:
    hub.call(1, ADA, profile_id="aep-77")
    elsewhere = hub.call(2, OTHER, profile_id="aep-77")

    outcome = hub.forget()

    assert (2, None) == (outcome.calls, hub.ledger.get(elsewhere).summary.name)  # type: ignore[attr-defined, union-attr]


def test_a_second_forget_names_the_calls_found_for_deliveries_a_server_has_in_hand(
    hub: Hub,
) -> None:
    sid = hub.call(1, ADA)
    seen: list[frozenset[str]] = []
    hub.time.on_sleep.append(lambda: seen.extend(e.digests for e in hub.log.entries))
    hub.log.confirm("web-1", 0, {})

    hub.forget()

    assert digest(hub.log.secret(), call_key(sid)) in seen[-1]


def test_it_waits_for_every_live_server_then_sweeps_and_erases_the_log(hub: Hub) -> None:
    hub.log.confirm("web-1", 0, {})
    hub.time.on_sleep.append(lambda: hub.steps.append("waited"))
    hub.time.on_sleep.append(lambda: hub.log.confirm("web-1", 99, {"replay history": 2}))

    outcome = hub.forget()

    assert ["erase", "waited", "sweep"] == hub.steps
    assert (["web-1"], [], []) == ([s.process for s in outcome.servers],  # type: ignore[attr-defined]
                                   outcome.unconfirmed, hub.log.entries)  # type: ignore[attr-defined]


def test_a_server_reports_what_it_removed_for_this_forget_over_both_confirmations(
    hub: Hub,
) -> None:
    hub.call(1, ADA)
    hub.log.confirm("web-1", 0, {"replay history": 5})  # earlier forgets
    confirmations = iter([(1, {"replay history": 8, "cache": 1}),  # the first forget
                          (99, {"replay history": 8, "cache": 2})])  # the second
    hub.time.on_sleep.append(lambda: hub.log.confirm("web-1", *next(confirmations, (99, {
        "replay history": 8, "cache": 2}))))

    outcome = hub.forget()

    assert [{"replay history": 3, "cache": 2}] == [dict(s.cleaned) for s in outcome.servers]  # type: ignore[attr-defined]


def test_a_server_that_does_not_confirm_in_time_is_named_and_the_forget_kept(hub: Hub) -> None:
    hub.log.confirm("web-1", 0, {})
    hub.time.on_sleep.append(lambda: hub.log.confirm("web-1", 0, {}))  # alive, not confirming

    outcome = hub.forget()

    assert (["web-1"], 1) == (outcome.unconfirmed, len(hub.log.entries))  # type: ignore[attr-defined]


def test_a_server_not_heard_from_for_a_while_is_not_waited_for(hub: Hub) -> None:
    hub.log.confirm("gone", 0, {})
    hub.time.now += 60

    outcome = hub.forget()

    assert ([], [], ["erase", "sweep"]) == (outcome.servers, outcome.unconfirmed, hub.steps)  # type: ignore[attr-defined]
