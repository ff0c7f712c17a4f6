"""Screen pops fanned out to agent consoles, in process (the ``ScreenPopBroker`` port).

Event ids are a process-wide counter ("1", "2", …), so they only ever grow. The broker keeps
the last ``replay`` pops of each agent: a console that reconnects with ``Last-Event-ID`` is
first given the ones it missed. A console that subscribes without an id gets live pops only
(nothing old), so opening the page never shows yesterday's calls as if they were ringing now.
An id newer than any this broker issued comes from a console that outlived a restart; it is
given everything still kept.

Publishing never waits for a subscriber: each has a bounded queue (``PopSubscription``), and
when a slow or dead one falls behind its oldest pop is dropped (and logged). Only pops
published for an agent id reach that agent's subscriptions. ``state.pops.redis`` gives the
same behaviour across processes, behind the same port.

``forget`` drops a forgotten caller's pops from the replay history and from the queues of
consoles that have not read them yet.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable

from hub.desk import ConsoleEvent
from state.pops.subscription import Pop, PopSubscription


class InProcessScreenPopBroker:
    """A ``ScreenPopBroker`` for one process: thread-safe, never blocked by a subscriber."""

    def __init__(self, replay: int = 20, queue_size: int = 100) -> None:
        self._replay = replay
        self._queue_size = max(queue_size, replay, 1)
        self._lock = threading.Lock()
        self._last_id = 0
        self._history: dict[str, deque[tuple[int, ConsoleEvent]]] = {}
        self._subscribers: dict[str, set[PopSubscription]] = {}

    def publish(self, agent_id: str, summary: ConsoleEvent) -> str:
        """Send ``summary`` to every console of ``agent_id``; return the new event id."""
        with self._lock:
            self._last_id += 1
            event_id = str(self._last_id)
            history = self._history.setdefault(agent_id, deque(maxlen=self._replay))
            history.append((self._last_id, summary))
            # Delivering under the lock keeps every console's order equal to publish order;
            # put() only appends to a bounded deque, so no subscriber can hold the lock long.
            for subscription in self._subscribers.get(agent_id, ()):
                subscription.put((event_id, summary))
        return event_id

    def subscribe(self, agent_id: str, last_event_id: str | None = None) -> PopSubscription:
        """Listen for ``agent_id``'s pops, first replaying those kept after ``last_event_id``."""
        subscription = PopSubscription(self._queue_size, self._unsubscriber(agent_id))
        with self._lock:
            for pop in self._missed(agent_id, last_event_id):
                subscription.put(pop)
            self._subscribers.setdefault(agent_id, set()).add(subscription)
        return subscription

    def forget(self, concerns: Callable[[ConsoleEvent], bool]) -> int:
        """Drop every kept and queued event (pop or call state) that ``concerns``; how many."""
        dropped = 0
        with self._lock:
            for agent_id, history in self._history.items():
                kept = [(number, event) for number, event in history if not concerns(event)]
                dropped += len(history) - len(kept)
                self._history[agent_id] = deque(kept, maxlen=self._replay)
            for subscriptions in self._subscribers.values():
                dropped += sum(subscription.drop(concerns) for subscription in subscriptions)
        return dropped

    def listening(self, agent_id: str) -> int:
        """How many consoles of ``agent_id`` are subscribed now."""
        with self._lock:
            return len(self._subscribers.get(agent_id, ()))

    def _missed(self, agent_id: str, last_event_id: str | None) -> Iterable[Pop]:
        after = _parse_event_id(last_event_id)
        if after is None:
            return []
        if after > self._last_id:  # an id from before a restart: all we kept is news
            after = 0
        kept = self._history.get(agent_id, ())
        return [(str(number), summary) for number, summary in kept if number > after]

    def _unsubscriber(self, agent_id: str) -> Callable[[PopSubscription], None]:
        def unsubscribe(subscription: PopSubscription) -> None:
            with self._lock:
                subscribers = self._subscribers.get(agent_id, set())
                subscribers.discard(subscription)
                if not subscribers:
                    self._subscribers.pop(agent_id, None)

        return unsubscribe


def _parse_event_id(value: str | None) -> int | None:
    """The counter in an event id, or None when absent or not one of ours."""
    if value is None or not value.isascii() or not value.isdigit() or len(value) > 18:
        return None
    return int(value)
