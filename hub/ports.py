"""The ports the core depends on, as small Protocols, and the errors adapters raise.

Adapters live in ``lookup/`` (read side) and ``integrations/`` (write side); they
translate vendor errors into ``TransientError`` or ``PermanentError`` at their edge.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from hub.desk import ConsoleEvent, DeskCall
from hub.models import AmbiguousMatch, Delivery, Identity, NewDelivery, Profile, Summary

if TYPE_CHECKING:  # hub.settings imports the store, which imports these errors
    from hub.settings import Agent


class HubError(Exception):
    """Base of the hub's own errors."""


class TransientError(HubError):
    """A failure that may succeed if tried again later (timeouts, 5xx, throttling)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(HubError):
    """A failure that will fail the same way again (bad input, rejected credentials)."""


class ProfileProvider(Protocol):
    """A source of customer profiles."""

    name: str

    def lookup(
        self, identities: Sequence[Identity], deadline: float
    ) -> Profile | AmbiguousMatch | None:
        """Return the person known by any of ``identities`` (tried in order), or None.

        An identity shared by several unrelated people gives an ``AmbiguousMatch``.
        ``deadline`` is a ``time.monotonic()`` instant the provider should not run past.
        """
        ...

    def ping(self) -> None:
        """Raise ``HubError`` when the provider cannot serve lookups."""
        ...


Answer = Profile | AmbiguousMatch | None  # a provider's answer; None: nobody has the identities


@dataclass(frozen=True)
class CachedAnswer:
    """An answer a ``ProfileCache`` holds, and how much longer it keeps it."""

    answer: Answer
    ttl_s: float


@dataclass(frozen=True)
class CacheRead:
    """What a ``ProfileCache`` holds for some identities (None: nothing), and its generation:
    the number of forgets it has seen, which a later ``write`` must name."""

    cached: CachedAnswer | None
    generation: int


class ProfileCache(Protocol):
    """A remote provider's answers, kept a while: hits for one time to live, misses (None)
    for a shorter one. A store shared by several servers is how a repeat caller answered on
    one is served from cache on the others, and how they share one request to the provider.

    Every call returns within ``budget_s`` seconds or raises ``TransientError`` (a store that
    cannot be reached, or is too slow): a caller never waits on the cache longer than that.
    """

    budget_s: float

    def read(self, identities: Sequence[Identity]) -> CacheRead:
        """The answer kept for ``identities``, if any, and the cache's generation now."""
        ...

    def write(self, identities: Sequence[Identity], answer: Answer, generation: int,
              ttl_s: float | None = None) -> bool:
        """Keep ``answer`` for its time to live (a hit's or a miss's; no longer than ``ttl_s``
        when given), unless a forget came after ``generation`` was read: then keep nothing
        (it may have been asked for before the forget) and return False."""
        ...

    def claim(self, identities: Sequence[Identity], ttl_s: float) -> str | None:
        """Take the right to ask the provider for ``identities`` for ``ttl_s`` seconds; a
        token for ``release``, or None while someone else holds it or the answer is kept
        (it came since it was read)."""
        ...

    def release(self, identities: Sequence[Identity], token: str) -> None:
        """Give back a claim, if ``token`` still holds it."""
        ...

    def forget(self) -> int:
        """Drop every answer kept (forgets are rare, and a cached profile cannot say whose
        it is), refuse writes of answers read before; how many answers were dropped."""
        ...


class PopStream(Protocol):
    """One agent's subscription to screen pops and call states."""

    def next(self, timeout: float) -> tuple[str, ConsoleEvent] | None:
        """The next ``(event id, event)`` or None when ``timeout`` seconds pass first."""
        ...

    def close(self) -> None: ...


class ScreenPopBroker(Protocol):
    """Fans console events out to the agent consoles that are listening: screen pops (a
    ``Summary``) and call states (a ``CallState``), in the order they were published.
    ``hub.desk.encode_event`` / ``decode_event`` carry either as text between servers."""

    def publish(self, agent_id: str, summary: ConsoleEvent) -> str | None:
        """Send ``summary`` (a pop or a call state) to every console of ``agent_id``, never
        waiting and never raising.

        Returns the event id when it is known at once; a broker that sends events on in the
        background (through Redis) returns None, and its consoles see the id with the event.
        """
        ...

    def subscribe(self, agent_id: str, last_event_id: str | None = None) -> PopStream:
        """Listen for ``agent_id``'s pops, first replaying those after ``last_event_id``."""
        ...

    def forget(self, concerns: Callable[[ConsoleEvent], bool]) -> int:
        """Drop every kept or queued event (a pop, a call state) that ``concerns`` a
        forgotten person from the replay history and the consoles' queues; how many."""
        ...


@dataclass(frozen=True)
class CallRecord:
    """What the hub decided for one CallSid."""

    call_sid: str
    agent_id: str | None
    summary: Summary


class CallLedger(Protocol):
    """Remembers each call's decision so a retried webhook gets the same answer."""

    def claim(self, call_sid: str, agent_id: str | None, summary: Summary) -> bool:
        """Store the decision; False when the CallSid was already recorded."""
        ...

    def get(self, call_sid: str) -> CallRecord | None: ...

    def update_summary(self, call_sid: str, summary: Summary) -> None: ...

    def record_status(self, call_sid: str, status: str, sequence: int,
                      duration_s: int | None) -> bool:
        """Apply a status callback; True only the first time the call reaches an end."""
        ...

    def ping(self) -> None:
        """Raise ``HubError`` unless a call could be recorded now (writes, not just reads)."""
        ...

    def forget(self, needles: Collection[str], redact: Callable[[Summary], Summary]) -> list[str]:
        """Rewrite each record whose summary holds any of ``needles`` (ignoring ASCII case)
        where it says who called (the number, the identity, the profile id and email, a
        shared number's candidates), as ``redact`` returns it, where that differs; the
        CallSids rewritten. An adapter may search more of the summary (``redact`` decides).
        Nothing of the old summary may be left where the adapter keeps data (free pages,
        old versions), once the database is compacted."""
        ...


class AgentDesk(Protocol):
    """Each call on an agent's desk: its progress, the agent's draft notes, the wrap-up and
    the hand-overs (``hub.desk.DeskCall``), shared by every server.

    Writes compare and set ``version``, so two servers changing one call at once (a status
    callback and a draft, say) never lose either change: the loser reads again and retries.
    Raise ``TransientError`` when the store cannot be reached.
    """

    def create(self, call: DeskCall) -> bool:
        """Store a new call (at version 0); False when the CallSid is already on the desk."""
        ...

    def get(self, call_sid: str) -> DeskCall | None: ...

    def save(self, call: DeskCall) -> bool:
        """Store ``call`` over the stored copy if that is still at ``call.version``; the
        stored copy is then at ``call.version + 1``. False when another writer came first."""
        ...

    def open_for(self, agent_id: str, since: datetime) -> list[DeskCall]:
        """The calls ``agent_id`` holds that changed at or after ``since``, newest first."""
        ...

    def forget(self, call_sids: Collection[str]) -> int:
        """Delete these calls (a data subject request); how many were there."""
        ...

    def purge(self, finished_before: datetime, any_before: datetime) -> int:
        """Delete the calls finished with (the whole call ended and its log was made: missed,
        wrapped up or logged) that last changed before ``finished_before``, and every call
        that last changed before ``any_before``; how many were deleted."""
        ...

    def ping(self) -> None:
        """Raise ``TransientError`` unless the desk can be read now."""
        ...


class CallControl(Protocol):
    """Twilio's REST API for calls in progress: moving a caller to another agent's phone."""

    def ring_agent(self, call_sid: str, agent: Agent, summary: Summary, back_to: Agent,
                   base_url: str) -> None:
        """Have the live call ``call_sid`` ring ``agent`` (with the summary's facts and the
        CallSid as parameters); if they do not answer, ring ``back_to`` again. ``base_url``
        is where Twilio reaches the hub for the dial's callbacks.

        ``PermanentError`` when Twilio refuses (the call has ended, say), ``TransientError``
        for what may work if tried again.
        """
        ...


class SessionRevocations(Protocol):
    """Agent console sessions ended before their time (a logout), shared by every server.

    A revocation is kept for ``ttl_s`` seconds, as long as the session could otherwise still
    be used, then forgotten: the store holds no more than the sessions that could be live.
    """

    def revoke(self, session_id: str, ttl_s: float) -> None:
        """Refuse ``session_id`` for ``ttl_s`` seconds (never shortening an earlier revocation).

        Raise ``TransientError`` when the store cannot be reached.
        """
        ...

    def is_revoked(self, session_id: str) -> bool:
        """Whether ``session_id`` was revoked; ``TransientError`` when the store is away."""
        ...

    def revoked(self) -> frozenset[str]:
        """Every session revoked now (no more than the logouts of one shift length);
        ``TransientError`` when the store is away."""
        ...


class Sink(Protocol):
    """Somewhere deliveries go: a CRM, the Twilio Messages API, a webhook."""

    name: str

    def deliver(self, delivery: Delivery) -> None:
        """Make the delivery, at most once per ``delivery.key`` at the far end.

        Raise ``TransientError`` (with ``retry_after`` when the service said so) for
        what may work later, ``PermanentError`` for what never will.
        """
        ...

    def ping(self) -> None: ...


class Outbox(Protocol):
    """Durable deliveries: written before the webhook answers, worked off in the background."""

    def enqueue(self, deliveries: Sequence[NewDelivery], delay: float = 0.0) -> int:
        """Store new deliveries due after ``delay`` s; ones already stored are ignored."""
        ...

    def refresh(self, deliveries: Sequence[NewDelivery]) -> int:
        """Give still-pending deliveries a new payload and make them due now."""
        ...

    def claim_due(self, limit: int, skip_sinks: Collection[str] = ()) -> list[Delivery]:
        """Take up to ``limit`` due deliveries, leased to this worker; none of ``skip_sinks``."""
        ...

    def mark_done(self, delivery_id: int) -> None: ...

    def mark_failed(self, delivery_id: int, error: str, retry_at: datetime | None) -> None:
        """Record a failure: retried at ``retry_at``, or dead-lettered when it is None."""
        ...

    def purge(self, older_than: timedelta,
              statuses: Sequence[str] = ("done", "cancelled")) -> int:
        """Delete deliveries finished (done, dead or cancelled) more than ``older_than`` ago."""
        ...

    def forget(self, call_sids: Collection[str]) -> dict[str, int]:
        """Cancel the pending and in-flight deliveries of these calls (status
        ``cancelled``, saying why) and erase the payloads of all their deliveries; how many
        there were of each status before."""
        ...


class InspectableOutbox(Outbox, Protocol):
    """The outbox as an operator sees it: ``cahub outbox`` and ``/healthz``."""

    def get(self, delivery_id: int) -> Delivery | None: ...

    def list(self, status: str | None = None, limit: int = 100) -> builtins.list[Delivery]:
        """The newest ``limit`` deliveries, of one status or of all."""
        ...

    def counts(self) -> dict[str, int]:
        """How many deliveries are in each status."""
        ...

    def retry(self, delivery_id: int) -> bool:
        """Make a dead delivery pending and due now; False when it is not dead."""
        ...


@dataclass(frozen=True)
class ForgetEntry:
    """One forget, as every server process reads it: keyed digests of the person's keys."""

    seq: int
    digests: frozenset[str]


@dataclass(frozen=True)
class Confirmation:
    """A server process's word that it applied every forget up to ``seq``."""

    process: str
    seq: int
    seen_at: float  # Unix seconds: the process confirms (or says it lives) every few seconds
    cleaned: Mapping[str, int]  # what its forgets removed since it started, by place


class ForgetLog(Protocol):
    """Forgets, durably, for every server process to apply to what it holds in memory.

    It never holds the person's identifiers, only keyed digests of them (``secret()`` is
    the key, made once and shared by every process).
    """

    def secret(self) -> bytes: ...

    def record(self, digests: Collection[str]) -> int:
        """Store one forget; its sequence number, higher than any before (even erased)."""
        ...

    def since(self, seq: int) -> list[ForgetEntry]:
        """The forgets kept with a sequence number above ``seq``, oldest first."""
        ...

    def confirm(self, process: str, seq: int, cleaned: Mapping[str, int]) -> None:
        """``process`` applied every forget up to ``seq`` (and is alive)."""
        ...

    def confirmations(self) -> list[Confirmation]: ...

    def erase(self, up_to: int) -> None:
        """Delete the forgets up to ``up_to`` (every live process applied them)."""
        ...
