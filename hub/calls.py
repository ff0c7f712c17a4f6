"""The inbound-call use case: a webhook becomes a routing decision and a screen pop.

The lookup runs on a worker thread and the webhook waits for it no longer than the
lookup deadline; a late profile still pops on the agent's console when it arrives.
A CallSid is decided once: a retried webhook gets the stored decision back.

The hub's own database never holds a call either (``hub.call_state``): a call it has not
recorded by the deadline is answered all the same, routed to its agent with the pop, and
recorded as soon as the database takes writes again. A person forgotten while their call
was under way is not brought back by it (``hub.forget_guard``): not in the answer, the
pop, the late pop or the record.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from hub.call_state import STATE_FLOOR_S, CallState
from hub.forget_guard import ForgetGuard
from hub.metrics import HubMetrics
from hub.models import Caller, CallStatusUpdate, InboundCall, Summary
from hub.ports import ScreenPopBroker
from hub.routing import AgentRouter
from hub.settings import Agent, Settings
from hub.summary import build_summary, call_info
from lookup.chain import LookupResult, ProviderChain
from lookup.phone import classify_caller

log = logging.getLogger(__name__)
READ_BUDGET_S = 0.1  # the most the call's ledger read may take of the webhook's deadline


@dataclass(frozen=True)
class CallDecision:
    """Where the call goes and what the agent is shown."""

    agent: Agent | None
    summary: Summary
    repeated: bool = False


class InboundCallHandler:
    """Decides each inbound call once, within the lookup deadline."""

    def __init__(self, settings: Settings, chain: ProviderChain, router: AgentRouter,
                 state: CallState, broker: ScreenPopBroker, metrics: HubMetrics, *,
                 guard: ForgetGuard) -> None:
        self._settings = settings
        self._chain = chain
        self._router = router
        self._state = state
        self._broker = broker
        self._metrics = metrics
        self._guard = guard
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="cahub-lookup")

    @property
    def state(self) -> CallState:
        return self._state

    def handle(self, call: InboundCall, received: float) -> CallDecision:
        """Route ``call``; ``received`` is the ``time.perf_counter()`` at request arrival."""
        deadline = received + self._deadline_s
        since = self._guard.mark()
        # A healthy ledger answers in well under a millisecond: one that takes longer is
        # sick, and must not leave the lookup less than most of the deadline.
        known = self._known(call.call_sid, received + min(READ_BUDGET_S, self._deadline_s / 4))
        if known is not None:
            return known
        caller = self.classify(call.from_)
        agent = self._router.route(call.to)
        summary, late = self._summarize(call, caller, deadline)
        if not self._state.record(call.call_sid, agent, summary, since=since,
                                  deferred=self._late_s if late else 0.0, deadline=deadline):
            # A concurrent retry won the race: answer as it did.
            return self._known(call.call_sid, deadline + STATE_FLOOR_S) or \
                CallDecision(agent, summary)
        self._metrics.calls.labels(caller.kind.value, _outcome(summary, late)).inc()
        with self._guard.writing():
            summary = self._guard.redacted(summary, since)
            self._pop(agent, summary, received, "in_time")
        if late is not None:
            late.add_done_callback(self._late_pop(call, caller, agent, received, since))
        return CallDecision(agent, summary)

    def status(self, update: CallStatusUpdate, received: float | None = None) -> bool:
        """Record a status callback; True when it ended the call (first time only).

        ``StateUnavailable`` when the database did not take it within the deadline (it
        is still tried again in the background).
        """
        started = time.perf_counter() if received is None else received
        ended = self._state.record_status(update, started + self._deadline_s)
        if ended:
            self._metrics.calls_ended.labels(update.call_status).inc()
        return ended

    def classify(self, raw: str) -> Caller:
        return classify_caller(raw, self._settings.default_region,
                               self._settings.identity_namespaces)

    def lookup(self, caller: Caller) -> LookupResult:
        """Look ``caller`` up with the full deadline (the API and CLI use this)."""
        deadline = time.monotonic() + self._deadline_s
        return self._chain.lookup(caller.candidates, deadline)

    def close(self) -> None:
        self._state.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    @property
    def _deadline_s(self) -> float:
        return self._settings.lookup_deadline_ms / 1000

    @property
    def _late_s(self) -> float:
        return self._settings.late_lookup_ms / 1000

    def _known(self, call_sid: str, deadline: float) -> CallDecision | None:
        stored = self._state.known(call_sid, deadline)
        if stored is None:
            return None
        agent = self._settings.agent(stored.agent_id) if stored.agent_id else None
        return CallDecision(agent, stored.summary, repeated=True)

    def _summarize(
        self, call: InboundCall, caller: Caller, deadline: float
    ) -> tuple[Summary, Future[LookupResult] | None]:
        info = call_info(call, caller.kind, caller.e164)
        fields = self._settings.hub.fields
        if not caller.candidates:
            return build_summary(info, None, None, None, fields), None
        budget = max(self._deadline_s, self._late_s)
        future = self._pool.submit(self._chain.lookup, caller.candidates,
                                   time.monotonic() + budget)
        try:
            result = future.result(timeout=max(0.0, deadline - time.perf_counter()))
        except FutureTimeout:
            log.warning("lookup for call %s passed the deadline; answering without it",
                        call.call_sid)
            return build_summary(info, None, None, None, fields), future
        return build_summary(info, result.identity, result.profile, result.elapsed_ms,
                             fields), None

    def _late_pop(
        self, call: InboundCall, caller: Caller, agent: Agent | None, received: float,
        since: int,
    ) -> Callable[[Future[LookupResult]], None]:
        def deliver(future: Future[LookupResult]) -> None:
            info = call_info(call, caller.kind, caller.e164)
            if future.cancelled() or future.exception() is not None:
                # The pop already shows an unknown caller; send the deferred note now.
                unknown = build_summary(info, None, None, None)
                self._state.update(call.call_sid, agent, unknown, since=since, found=False)
                return
            result = future.result()
            summary = build_summary(info, result.identity, result.profile, result.elapsed_ms,
                                    self._settings.hub.fields)
            self._state.update(call.call_sid, agent, summary, since=since, found=True)
            with self._guard.writing():
                if not self._guard.concerns(summary, since):
                    self._pop(agent, summary, received, "late")

        return deliver

    def _pop(self, agent: Agent | None, summary: Summary, received: float, timing: str) -> None:
        if agent is None:
            return
        self._broker.publish(agent.id, self._settings.hub.data_usage.filter(summary, "pop"))
        self._metrics.pop_seconds.labels(timing).observe(time.perf_counter() - received)


def _outcome(summary: Summary, late: Future[LookupResult] | None) -> str:
    if late is not None:
        return "late"
    return "found" if summary.found else "not_found"
