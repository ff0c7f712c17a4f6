"""The open consoles' list of logouts (``hub.revocations.RevocationSnapshot``)."""

from __future__ import annotations

import pytest

from hub.ports import TransientError
from hub.revocations import RevocationSnapshot
from tests.fakes import RecordingRevocations


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class CountingRevocations(RecordingRevocations):
    """Counts the listings; ``away`` makes the store unreachable."""

    def __init__(self) -> None:
        super().__init__()
        self.listings = 0
        self.away = False
        self.during_listing: list[str] = []  # revoked by another server while it lists

    def revoked(self) -> frozenset[str]:
        self.listings += 1
        if self.away:
            raise TransientError("the session store is unreachable")
        listed = super().revoked()
        for session_id in self.during_listing:
            self.ttls[session_id] = 60
        return listed


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store() -> CountingRevocations:
    return CountingRevocations()


@pytest.fixture
def snapshot(store: CountingRevocations, clock: Clock) -> RevocationSnapshot:
    return RevocationSnapshot(store, max_age_s=1.0, clock=clock)


def test_thousands_of_keepalive_checks_within_a_second_list_the_logouts_once(store, snapshot):
    store.revoke("gone", 60)

    answers = {snapshot.recently_revoked(f"s-{n}") for n in range(5000)}

    assert ({False}, 1, True) == (answers, store.listings, snapshot.recently_revoked("gone"))


def test_the_list_is_read_again_once_it_is_a_second_old(store, snapshot, clock):
    snapshot.recently_revoked("s-1")
    store.revoke("s-1", 60)  # through another server

    clock.now += 0.5
    before = snapshot.recently_revoked("s-1")
    clock.now += 0.5
    after = snapshot.recently_revoked("s-1")

    assert (False, True, 2) == (before, after, store.listings)


def test_a_logout_through_this_server_holds_at_once(store, snapshot):
    snapshot.recently_revoked("s-1")

    snapshot.revoke("s-1", 60)

    assert (True, True, 1) == (snapshot.recently_revoked("s-1"), store.is_revoked("s-1"),
                               store.listings)


def test_a_logout_here_while_the_list_is_read_is_not_lost_with_the_older_list(store, clock):
    snapshot = RevocationSnapshot(store, max_age_s=1.0, clock=clock)
    snapshot.recently_revoked("x")
    clock.now += 1.0
    # The list is read before this server's own logout commits, and comes back without it.
    store.during_listing = []
    real_revoked = store.revoked

    def slow_listing() -> frozenset[str]:
        listed = real_revoked()
        snapshot.revoke("s-1", 60)  # made (and noted here) while the list was on its way
        return listed

    store.revoked = slow_listing  # type: ignore[method-assign]

    snapshot.recently_revoked("x")

    assert snapshot.recently_revoked("s-1")


def test_a_store_away_is_said_and_asked_again_at_the_next_check(store, snapshot):
    store.away = True
    with pytest.raises(TransientError):
        snapshot.recently_revoked("s-1")

    store.away = False
    store.revoke("s-1", 60)

    assert (True, 2) == (snapshot.recently_revoked("s-1"), store.listings)


def test_any_other_check_asks_the_store_itself(store, snapshot):
    snapshot.recently_revoked("s-1")
    store.revoke("s-1", 60)  # through another server

    assert (True, False) == (snapshot.is_revoked("s-1"), snapshot.recently_revoked("s-1"))
