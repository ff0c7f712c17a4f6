"""The inbound-call use case: a webhook becomes a routing decision and a screen pop.

The lookup runs on a worker thread and the webhook waits for it no longer than the
lookup deadline; a late profile still pops on the agent's console when it arrives.
A CallSid is decided once: a retried webhook gets the stored decision back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import AbstractContextManager
from dataclasses import dataclass

from hub.deliveries import DeliveryPlanner
from hub.metrics import HubMetrics
from hub.models import Caller, CallStatusUpdate, InboundCall, NewDelivery, Summary
from hub.ports import CallLedger, Outbox, ScreenPopBroker
from hub.progress import EndOfCall, ImmediateLog
from hub.routing import AgentRouter
from hub.settings import Agent, Settings
from hub.summary import build_summary, call_info
from lookup.chain import LookupResult, ProviderChain
from lookup.phone import classify_caller

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CallDecision:
    """Where the call goes and what the agent is shown."""

    agent: Agent | None
    summary: Summary
    repeated: bool = False


class InboundCallHandler:
    """Decides each inbound call once, within the lookup deadline."""

    def __init__(
        self,
        settings: Settings,
        chain: ProviderChain,
        router: AgentRouter,
        ledger: CallLedger,
        broker: ScreenPopBroker,
        metrics: HubMetrics,
        *,
        outbox: Outbox,
        planner: DeliveryPlanner,
        transaction: Callable[[], AbstractContextManager[object]],
        notify: Callable[[], None] = lambda: None,
        end: EndOfCall | None = None,
    ) -> None:
        self._settings = settings
        self._chain = chain
        self._router = router
        self._ledger = ledger
        self._broker = broker
        self._metrics = metrics
        self._outbox = outbox
        self._planner = planner
        self._transaction = transaction
        self._notify = notify
        self._end = end or ImmediateLog(outbox, planner)
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="cahub-lookup")

    def handle(self, call: InboundCall, received: float) -> CallDecision:
        """Route ``call``; ``received`` is the ``time.perf_counter()`` at request arrival."""
        stored = self._ledger.get(call.call_sid)
        if stored is not None:
            return CallDecision(self._agent(stored.agent_id), stored.summary, repeated=True)
        caller = self.classify(call.from_)
        agent = self._router.route(call.to)
        summary, late = self._summarize(call, caller)
        if not self._accept(call.call_sid, agent, summary, deferred=late is not None):
            return self.handle(call, received)  # a concurrent retry won the race; use its answer
        self._metrics.calls.labels(caller.kind.value, _outcome(summary, late)).inc()
        self._pop(agent, summary, received, "in_time")
        if late is not None:
            late.add_done_callback(self._late_pop(call, caller, agent, received))
        return CallDecision(agent, summary)

    def status(self, update: CallStatusUpdate) -> bool:
        """Record a status callback; True when it ended the call (first time only).

        The end and what it schedules (the call log, or its wrap-up deadline) are committed
        together, so a crash between them cannot lose the log.
        """
        with self._transaction():
            ended = self._ledger.record_status(update.call_sid, update.call_status,
                                               update.sequence, update.duration_s)
            record = self._ledger.get(update.call_sid) if ended else None
            scheduled = self._end.schedule(record, update) if record is not None else None
        if ended:
            self._metrics.calls_ended.labels(update.call_status).inc()
        if scheduled is not None:
            scheduled.announce()
            if scheduled.queued:
                self._notify()
        return ended

    def classify(self, raw: str) -> Caller:
        return classify_caller(raw, self._settings.default_region,
                               self._settings.identity_namespaces)

    def lookup(self, caller: Caller) -> LookupResult:
        """Look ``caller`` up with the full deadline (the API and CLI use this)."""
        deadline = time.monotonic() + self._settings.lookup_deadline_ms / 1000
        return self._chain.lookup(caller.candidates, deadline)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _summarize(
        self, call: InboundCall, caller: Caller
    ) -> tuple[Summary, Future[LookupResult] | None]:
        info = call_info(call, caller.kind, caller.e164)
        fields = self._settings.hub.fields
        if not caller.candidates:
            return build_summary(info, None, None, None, fields), None
        budget = max(self._settings.lookup_deadline_ms, self._settings.late_lookup_ms) / 1000
        future = self._pool.submit(self._chain.lookup, caller.candidates,
                                   time.monotonic() + budget)
        try:
            result = future.result(timeout=self._settings.lookup_deadline_ms / 1000)
        except FutureTimeout:
            log.warning("lookup for call %s passed the deadline; answering without it",
                        call.call_sid)
            return build_summary(info, None, None, None, fields), future
        return build_summary(info, result.identity, result.profile, result.elapsed_ms,
                             fields), None

    def _late_pop(
        self, call: InboundCall, caller: Caller, agent: Agent | None, received: float
    ) -> Callable[[Future[LookupResult]], None]:
        def deliver(future: Future[LookupResult]) -> None:
            info = call_info(call, caller.kind, caller.e164)
            if future.cancelled() or future.exception() is not None:
                # The pop already shows an unknown caller; send the deferred note now.
                self._refresh(self._planner.on_answer(build_summary(info, None, None, None), agent))
                return
            result = future.result()
            summary = build_summary(info, result.identity, result.profile, result.elapsed_ms,
                                    self._settings.hub.fields)
            self._ledger.update_summary(call.call_sid, summary)
            self._refresh(self._planner.on_answer(summary, agent))
            self._pop(agent, summary, received, "late")

        return deliver

    def _accept(self, call_sid: str, agent: Agent | None, summary: Summary,
                deferred: bool) -> bool:
        """Record the decision and its deliveries in one transaction; False if already taken.

        When the profile is late the deliveries are stored now, deferred by the late
        lookup's budget, so a crash before the profile arrives still leaves them to send.
        """
        delay = self._settings.late_lookup_ms / 1000 if deferred else 0.0
        deliveries = self._planner.on_answer(summary, agent)
        with self._transaction():
            if not self._ledger.claim(call_sid, agent.id if agent else None, summary):
                return False
            queued = bool(deliveries) and self._outbox.enqueue(deliveries, delay) > 0
        if queued and not deferred:
            self._notify()
        return True

    def _refresh(self, deliveries: list[NewDelivery]) -> None:
        if deliveries and self._outbox.refresh(deliveries):
            self._notify()

    def _pop(self, agent: Agent | None, summary: Summary, received: float, timing: str) -> None:
        if agent is None:
            return
        self._broker.publish(agent.id, self._settings.hub.data_usage.filter(summary, "pop"))
        self._metrics.pop_seconds.labels(timing).observe(time.perf_counter() - received)

    def _agent(self, agent_id: str | None) -> Agent | None:
        return self._settings.agent(agent_id) if agent_id else None


def _outcome(summary: Summary, late: Future[LookupResult] | None) -> str:
    if late is not None:
        return "late"
    return "found" if summary.found else "not_found"
