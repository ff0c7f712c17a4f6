"""The hub's record of its calls (ledger and outbox), kept without ever holding a call.

Reads run on worker threads and writes on the ``StateWriter``; a webhook waits for them
only until its deadline. A call the database has not recorded by then is still answered:
its record and deliveries wait in memory, in order, until the database takes them, and a
retried webhook meanwhile gets the same decision from memory (``known``).

Every write first asks the ``ForgetGuard`` whether a person forgotten since the call
began is in it, and writes the call without them if so (no deliveries then either).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager

from hub.deliveries import DeliveryPlanner
from hub.forget_guard import Concerns, ForgetGuard
from hub.forget_keys import stripped
from hub.models import CallStatusUpdate, Summary
from hub.ports import CallLedger, CallRecord, HubError, Outbox
from hub.progress import EndOfCall, ImmediateLog, ScheduledLog
from hub.settings import Agent
from hub.state_writer import StateUnavailable, StateWriter, wait

log = logging.getLogger(__name__)
STATE_FLOOR_S = 0.05  # what a call's record may take even when the lookup used the deadline


class CallState:
    """Records calls, late profiles and call ends through the state writer."""

    def __init__(self, ledger: CallLedger, outbox: Outbox, planner: DeliveryPlanner,
                 transaction: Callable[[], AbstractContextManager[object]], *,
                 guard: ForgetGuard, notify: Callable[[], None] = lambda: None,
                 writer: StateWriter | None = None, end: EndOfCall | None = None) -> None:
        self._ledger, self._outbox, self._planner = ledger, outbox, planner
        self._transaction, self._guard, self._notify = transaction, guard, notify
        self._end_of_call = end or ImmediateLog(outbox, planner)
        self._writer = writer or StateWriter()
        self._reads = ThreadPoolExecutor(max_workers=4, thread_name_prefix="cahub-state-read")
        self._unsaved: dict[str, CallRecord] = {}  # accepted, not yet in the ledger
        self._lock = threading.Lock()

    def known(self, call_sid: str, deadline: float) -> CallRecord | None:
        """What was decided for ``call_sid``, if anything, as far as the ledger says in time."""
        with self._lock:
            unsaved = self._unsaved.get(call_sid)
        if unsaved is not None:
            return unsaved
        try:
            return wait(self._reads.submit(self._read, call_sid, deadline),
                        deadline - time.perf_counter())
        except (StateUnavailable, HubError) as exc:
            log.warning("call %s: the ledger did not answer (%s); deciding it afresh",
                        call_sid, exc)
            return None

    def mark(self) -> int:
        """Where the forget log stands now: a call's writes drop whoever is forgotten after."""
        return self._guard.mark()

    def record(self, call_sid: str, agent: Agent | None, summary: Summary, *, since: int,
               deferred: float, deadline: float) -> bool:
        """Record the decision and its deliveries; False if the CallSid was already taken.

        ``deferred``: seconds the deliveries wait (for a late profile). A record the
        database has not taken by ``deadline`` (at least ``STATE_FLOOR_S`` from now) is
        saved later: True.
        """
        return self._submit(call_sid, agent, summary, deadline, notify=not deferred,
                            write=lambda: self._claim(call_sid, agent, summary, since, deferred))

    def record_placed(self, call_sid: str, agent: Agent, summary: Summary, *, since: int,
                      also: Callable[[], object], deadline: float) -> bool:
        """Record a call an agent places, and ``also`` (its row on the desk) in the same
        transaction; no deliveries until it ends. As ``record``: False if the CallSid was
        already taken, True when the database has not answered by ``deadline``."""
        def write() -> tuple[bool, bool]:
            with self._guard.writing(), self._transaction():
                if not self._ledger.claim(call_sid, agent.id,
                                          self._guard.redacted(summary, since)):
                    return False, False
                also()
                return True, False

        return self._submit(call_sid, agent, summary, deadline, notify=False, write=write)

    def _submit(self, call_sid: str, agent: Agent | None, summary: Summary, deadline: float, *,
                notify: bool, write: Callable[[], tuple[bool, bool]]) -> bool:
        """Write on the state writer, the record known from memory until it is saved; wait
        for it until ``deadline`` (at least ``STATE_FLOOR_S``)."""
        with self._lock:
            self._unsaved[call_sid] = CallRecord(call_sid, agent.id if agent else None, summary)
        future = self._writer.submit(write, f"call {call_sid}")
        future.add_done_callback(self._recorded(call_sid, notify=notify))
        try:
            return wait(future, max(deadline - time.perf_counter(), STATE_FLOOR_S))[0]
        except (StateUnavailable, HubError) as exc:
            log.warning("call %s answered before the hub's database recorded it: %s",
                        call_sid, exc)
            return True

    def update(self, call_sid: str, agent: Agent | None, summary: Summary, *, since: int,
               found: bool) -> None:
        """The late profile (``found``) into the record, and the deferred deliveries made due."""
        def write() -> bool:
            with self._guard.writing(), self._transaction():
                if self._guard.concerns(summary, since):  # forgotten while it was looked up
                    self._ledger.update_summary(call_sid, stripped(summary))
                    self._outbox.forget([call_sid])
                    return False
                if found:
                    self._ledger.update_summary(call_sid, summary)
                deliveries = self._planner.on_answer(summary, agent)
                return bool(deliveries) and self._outbox.refresh(deliveries) > 0

        future = self._writer.submit(write, f"late profile of call {call_sid}")
        future.add_done_callback(
            lambda done: self._notify() if done.exception() is None and done.result() else None)

    def record_status(self, update: CallStatusUpdate, deadline: float) -> bool:
        """Record a status callback; True when it ended the call (first time only).

        ``StateUnavailable`` when the database did not take it by ``deadline`` (it is
        still tried again in the background).
        """
        future = self._writer.submit(lambda: self._end(update), f"status of call {update.call_sid}")
        future.add_done_callback(self._scheduled)  # when it is written, waited for or not
        return wait(future, deadline - time.perf_counter())[0]

    def ping(self) -> None:
        """Raise ``HubError`` unless the database can record calls now (within a second)."""
        wait(self._reads.submit(self._ledger.ping), 1.0)

    def unsaved(self) -> int:
        """State writes waiting for the database (calls answered but not yet recorded)."""
        return self._writer.pending()

    def forget(self, concerns: Concerns) -> int:
        """Drop the calls not yet saved that concern a forgotten person (a cleaner)."""
        with self._lock:
            found = [r for r in self._unsaved.values() if concerns(r.summary)]
            for record in found:
                self._unsaved[record.call_sid] = CallRecord(
                    record.call_sid, record.agent_id, stripped(record.summary))
        return len(found)

    def close(self) -> None:
        self._writer.stop()
        self._reads.shutdown(wait=False, cancel_futures=True)

    def _read(self, call_sid: str, deadline: float) -> CallRecord | None:
        if time.perf_counter() > deadline:  # queued behind a stuck read; nobody waits
            return None
        return self._ledger.get(call_sid)

    def _claim(self, call_sid: str, agent: Agent | None, summary: Summary, since: int,
               deferred: float) -> tuple[bool, bool]:
        """On the state writer: the record and its deliveries, in one transaction."""
        with self._guard.writing(), self._transaction():
            summary = self._guard.redacted(summary, since)
            if not self._ledger.claim(call_sid, agent.id if agent else None, summary):
                return False, False
            deliveries = self._planner.on_answer(summary, agent)
            return True, bool(deliveries) and self._outbox.enqueue(deliveries, deferred) > 0

    def _recorded(self, call_sid: str, notify: bool) -> Callable[[Future[tuple[bool, bool]]], None]:
        def done(future: Future[tuple[bool, bool]]) -> None:
            with self._lock:
                self._unsaved.pop(call_sid, None)
            if notify and future.exception() is None and future.result()[1]:
                self._notify()

        return done

    def _end(self, update: CallStatusUpdate) -> tuple[bool, ScheduledLog | None]:
        """On the state writer: the status, and what the end of the call schedules (its
        log, or the agent's wrap-up deadline: ``hub.progress``) when it ended."""
        with self._transaction():
            ended = self._ledger.record_status(update.call_sid, update.call_status,
                                               update.sequence, update.duration_s)
            record = self._ledger.get(update.call_sid) if ended else None
            return ended, None if record is None else self._end_of_call.schedule(record, update)

    def _scheduled(self, future: Future[tuple[bool, ScheduledLog | None]]) -> None:
        """Once the end is committed: tell the consoles, and wake the dispatcher."""
        if future.exception() is not None:
            return
        scheduled = future.result()[1]
        if scheduled is not None:
            scheduled.announce()
            if scheduled.queued:
                self._notify()

