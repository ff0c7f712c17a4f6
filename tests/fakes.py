"""Hand-written fakes of the hub's ports, for tests that need no real adapter."""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from hub.desk import ConsoleEvent
from hub.models import Identity, Profile
from hub.ports import Confirmation, ForgetEntry, PopStream, TransientError

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class SecondsClock:
    """A ``time.monotonic`` stand-in that moves only when its ``now`` is moved."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def far() -> float:
    """A lookup deadline a minute from now, taken when the lookup starts (not at import)."""
    return time.monotonic() + 60


class InMemoryProfileProvider:
    """Profiles keyed by identity; records every lookup it was asked."""

    def __init__(self, profiles: dict[Identity, Profile] | None = None, name: str = "memory"):
        self.name = name
        self.profiles = dict(profiles or {})
        self.asked: list[tuple[Identity, ...]] = []

    def lookup(self, identities: Sequence[Identity], deadline: float) -> Profile | None:
        self.asked.append(tuple(identities))
        return next((self.profiles[i] for i in identities if i in self.profiles), None)

    def ping(self) -> None:
        return None


class SlowProvider(InMemoryProfileProvider):
    """Answers like ``InMemoryProfileProvider`` after ``delay`` seconds (or when released)."""

    def __init__(self, delay: float, profiles: dict[Identity, Profile] | None = None):
        super().__init__(profiles, name="slow")
        self.delay = delay
        self.release = threading.Event()

    def lookup(self, identities: Sequence[Identity], deadline: float) -> Profile | None:
        self.release.wait(self.delay)
        return super().lookup(identities, deadline)


class FailingProvider(InMemoryProfileProvider):
    """Always fails the way an unreachable remote API does."""

    def __init__(self) -> None:
        super().__init__(name="failing")

    def lookup(self, identities: Sequence[Identity], deadline: float) -> Profile | None:
        self.asked.append(tuple(identities))
        raise TransientError("connection refused")

    def ping(self) -> None:
        raise TransientError("connection refused")


def wait_for(condition: object, timeout: float = 5.0) -> bool:
    """Poll ``condition()`` until it is true or ``timeout`` passes."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return False


class RecordingBroker:
    """A screen-pop broker that keeps what was published, per agent."""

    def __init__(self) -> None:
        self.published: list[tuple[str, ConsoleEvent]] = []
        self._lock = threading.Lock()

    def publish(self, agent_id: str, summary: ConsoleEvent) -> str:
        with self._lock:
            self.published.append((agent_id, summary))
            return str(len(self.published))

    def subscribe(self, agent_id: str, last_event_id: str | None = None) -> PopStream:
        raise NotImplementedError("RecordingBroker only records")


class RecordingRevocations:
    """``SessionRevocations`` in memory, keeping the time to live each revocation was given."""

    def __init__(self) -> None:
        self.ttls: dict[str, float] = {}

    def revoke(self, session_id: str, ttl_s: float) -> None:
        self.ttls[session_id] = ttl_s

    def is_revoked(self, session_id: str) -> bool:
        return session_id in self.ttls

    def revoked(self) -> frozenset[str]:
        return frozenset(self.ttls)


class UnreachableRevocations:
    """A revocation store that cannot be reached (its server is down)."""

    def revoke(self, session_id: str, ttl_s: float) -> None:
        raise TransientError("the session store is unreachable")

    def is_revoked(self, session_id: str) -> bool:
        raise TransientError("the session store is unreachable")

    def revoked(self) -> frozenset[str]:
        raise TransientError("the session store is unreachable")


class InMemoryForgetLog:
    """A ``ForgetLog`` in memory; ``clock`` gives Unix seconds."""

    def __init__(self, clock: object = time.time) -> None:
        self.entries: list[ForgetEntry] = []
        self.confirmed: dict[str, Confirmation] = {}
        self.clock = clock
        self._seq = 0

    def secret(self) -> bytes:
        return b"test-secret"

    def record(self, digests: Collection[str]) -> int:
        self._seq += 1
        self.entries.append(ForgetEntry(self._seq, frozenset(digests)))
        return self._seq

    def since(self, seq: int) -> list[ForgetEntry]:
        return [entry for entry in self.entries if entry.seq > seq]

    def confirm(self, process: str, seq: int, cleaned: Mapping[str, int]) -> None:
        self.confirmed[process] = Confirmation(process, seq, self.clock(), dict(cleaned))  # type: ignore[operator]

    def confirmations(self) -> list[Confirmation]:
        return list(self.confirmed.values())

    def erase(self, up_to: int) -> None:
        self.entries = [entry for entry in self.entries if entry.seq > up_to]
