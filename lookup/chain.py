"""The provider chain: providers tried in the configured order, first hit wins.

A provider that fails or overruns is logged and skipped; a lookup never raises, so a
broken profile source can never drop a call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from hub.metrics import HubMetrics
from hub.models import AmbiguousMatch, Identity, Profile
from hub.ports import HubError, ProfileProvider

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LookupResult:
    """The chain's answer: the person, a shared-number match or None; the identity; the time."""

    profile: Profile | AmbiguousMatch | None
    identity: Identity | None
    elapsed_ms: float


class ProviderChain:
    """Looks a caller up in each provider in turn until one knows them."""

    def __init__(self, providers: Sequence[ProfileProvider], metrics: HubMetrics) -> None:
        self.providers = list(providers)
        self._metrics = metrics

    def lookup(self, candidates: Sequence[Identity], deadline: float) -> LookupResult:
        """The first provider's profile for ``candidates``, within ``deadline`` (monotonic)."""
        started = time.perf_counter()
        for provider in self.providers:
            if time.monotonic() >= deadline:
                break
            profile = self._ask(provider, candidates, deadline)
            if profile is not None:
                return LookupResult(profile, _matched(profile, candidates), _ms_since(started))
        return LookupResult(None, None, _ms_since(started))

    def _ask(
        self, provider: ProfileProvider, candidates: Sequence[Identity], deadline: float
    ) -> Profile | AmbiguousMatch | None:
        started = time.perf_counter()
        outcome = "error"
        try:
            profile = provider.lookup(candidates, deadline)
            outcome = "miss" if profile is None else \
                "ambiguous" if isinstance(profile, AmbiguousMatch) else "hit"
            return profile
        except HubError as exc:
            log.warning("provider %s failed: %s", provider.name, type(exc).__name__)
            return None
        except Exception:  # a provider's bug must not drop the call; it is logged in full
            log.exception("provider %s raised unexpectedly", provider.name)
            return None
        finally:
            self._metrics.lookup_seconds.labels(provider.name, outcome).observe(
                time.perf_counter() - started
            )


def _matched(
    profile: Profile | AmbiguousMatch, candidates: Sequence[Identity]
) -> Identity | None:
    """The first candidate the profile carries, else the first candidate asked."""
    if isinstance(profile, AmbiguousMatch):
        return profile.identity
    known = {(i.namespace, i.id) for i in profile.identities}
    found = next((c for c in candidates if (c.namespace, c.id) in known), None)
    return found or (candidates[0] if candidates else None)


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
