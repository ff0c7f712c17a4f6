"""Forgetting a person everywhere the hub keeps them (a data subject request).

The profile store is the adapter's business (``erase`` and ``sweep`` below); the rest is
the hub's own state, in this order:

1. the forget is recorded in the ``ForgetLog`` (keyed digests), so that every server
   process starts dropping the person from memory and stopping late writes at once;
2. the profiles are erased;
3. the call records that concern the person are redacted, their deliveries are
   cancelled (pending, in flight) or emptied (done, dead), and their calls are taken off
   the agents' desks (draft notes, outcomes), in one transaction; what the records say of
   the person (a remote profile id, an email) widens the search;
4. the calls found are recorded as a second forget, for deliveries a server has in hand;
5. every live server process confirms it applied both, having waited for any write that
   began before (it has ``wait_s`` seconds); what each removed from memory is the
   difference between what it reports it removed since it started, before and after;
6. the store and the records are swept once more, for what such a write put back, and
   the forgets are erased from the log once every live process confirmed them.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace

from hub.forget_keys import PersonKeys, call_key, digest, redact
from hub.models import Summary
from hub.ports import AgentDesk, CallLedger, Confirmation, ForgetLog, Outbox

ALIVE_S = 15.0  # a process that confirmed within this is alive (they confirm every 5 s)


@dataclass
class ForgetOutcome:
    """What forgetting removed from the hub's own state, place by place."""

    calls: int = 0
    deliveries: Counter[str] = field(default_factory=Counter)
    desk_calls: int = 0  # calls taken off the agents' desks
    swept: int = 0  # rows the second sweep found in the store (written back meanwhile)
    servers: list[Confirmation] = field(default_factory=list)
    unconfirmed: list[str] = field(default_factory=list)


class Forgetting:
    """The ``cahub forget`` use case over the hub's own state."""

    def __init__(self, ledger: CallLedger, outbox: Outbox, forgets: ForgetLog,
                 transaction: Callable[[], AbstractContextManager[object]], *,
                 wait_s: float = 15.0, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep,
                 desk: AgentDesk | None = None) -> None:
        self._ledger, self._outbox, self._log, self._desk = ledger, outbox, forgets, desk
        self._transaction = transaction
        self._wait_s, self._clock, self._sleep = wait_s, clock, sleep

    def forget(self, keys: PersonKeys, erase: Callable[[], object],
               sweep: Callable[[PersonKeys], int]) -> ForgetOutcome:
        """Forget the person of ``keys``: ``erase()`` removes them from the profile
        store, ``sweep(keys)`` removes what was written back since (how many rows)."""
        outcome = ForgetOutcome()
        secret = self._log.secret()
        before = {c.process: c.cleaned for c in self._log.confirmations()}
        seq = self._log.record(keys.digests(secret))
        erase()
        keys, calls = self._scrub(keys, outcome)
        if calls:
            seq = self._log.record(keys.digests(secret)
                                   | {digest(secret, call_key(sid)) for sid in calls})
        servers, outcome.unconfirmed = self._await(seq)
        outcome.servers = [replace(c, cleaned=_since(before.get(c.process, {}), c.cleaned))
                           for c in servers]
        outcome.swept = sweep(keys)
        self._scrub(keys, outcome)
        if not outcome.unconfirmed:
            self._log.erase(seq)
        return outcome

    def _scrub(self, keys: PersonKeys, outcome: ForgetOutcome) -> tuple[PersonKeys, list[str]]:
        """Redact the person's call records and settle their deliveries; the widened keys
        and every call found."""
        seen: list[Summary] = []

        def redacted(summary: Summary, by: PersonKeys) -> Summary:
            seen.append(summary)
            return redact(summary, by.contains)

        with self._transaction():
            calls = self._ledger.forget(keys.needles(), lambda s: redacted(s, keys))
            wider = keys.widened(seen)
            more = wider.needles() - keys.needles()
            if more:
                calls += self._ledger.forget(more, lambda s: redacted(s, wider))
            outcome.calls += len(calls)
            outcome.deliveries += Counter(self._outbox.forget(calls))
            outcome.desk_calls += self._desk.forget(calls) if self._desk and calls else 0
        return wider, calls

    def _await(self, seq: int) -> tuple[list[Confirmation], list[str]]:
        """The live processes that confirmed ``seq``, and those that did not in time."""
        end = self._clock() + self._wait_s
        while True:
            now = self._clock()
            alive = [c for c in self._log.confirmations() if now - c.seen_at < ALIVE_S]
            late = [c.process for c in alive if c.seq < seq]
            if not late or now >= end:
                return [c for c in alive if c.seq >= seq], late
            self._sleep(0.1)


def _since(before: Mapping[str, int], now: Mapping[str, int]) -> dict[str, int]:
    """What a server removed between two of its confirmations, by place."""
    return {place: count - before.get(place, 0) for place, count in now.items()}
