"""Prometheus metrics of one app: requests, calls, lookups, pops and deliveries.

Each app gets its own registry, so several apps (tests, benchmarks) never share
counters and nothing is registered at import time.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hub.ports import HubError

log = logging.getLogger(__name__)

DELIVERY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# After-call work takes seconds to minutes; its deadline is at most 4 hours.
AFTER_CALL_BUCKETS = (5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)


class HubMetrics:
    """The hub's counters and latency histograms."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "cahub_http_requests", "HTTP requests answered", ["route", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "cahub_http_request_seconds", "Time to answer an HTTP request", ["route"],
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.calls = Counter(
            "cahub_calls", "Inbound calls accepted, by caller kind and lookup outcome",
            ["caller_kind", "outcome"], registry=self.registry,
        )
        self.calls_ended = Counter(
            "cahub_calls_ended", "Calls that reached an end, by final status", ["status"],
            registry=self.registry,
        )
        self.webhook_seconds = Histogram(
            "cahub_webhook_seconds", "Voice webhook: request in to TwiML out",
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.lookup_seconds = Histogram(
            "cahub_lookup_seconds", "Profile lookup time per provider", ["provider", "outcome"],
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.pop_seconds = Histogram(
            "cahub_pop_seconds", "Webhook received to screen pop published", ["timing"],
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.wrapups = Counter(
            "cahub_wrapups", "Calls whose after-call work ended: by the agent (an outcome "
            "picked) or by its deadline (logged with the draft notes)", ["by"],
            registry=self.registry,
        )
        self.after_call_seconds = Histogram(
            "cahub_after_call_seconds", "After-call work: the agent's part of the call over "
            "to their wrap-up saved", buckets=AFTER_CALL_BUCKETS, registry=self.registry,
        )
        self.signature_failures = Counter(
            "cahub_signature_failures", "Twilio requests refused for their signature", ["reason"],
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        """The metrics in Prometheus text format."""
        return bytes(generate_latest(self.registry))


@dataclass(frozen=True)
class DeliveryMetrics:
    deliveries: Counter
    seconds: Histogram


class OutboxGauge(Collector):
    """``cahub_outbox_deliveries{status}``, read from the outbox at scrape time."""

    def __init__(self, counts: Callable[[], Mapping[str, int]]) -> None:
        self._counts = counts

    def describe(self) -> Iterable[Metric]:
        return [self._family()]

    def collect(self) -> Iterable[Metric]:
        family = self._family()
        try:
            counts = self._counts()
        except (sqlite3.Error, HubError):  # HubError: PostgreSQL's, as its adapter says them
            log.warning("outbox counts unavailable for /metrics", exc_info=True)
            return []
        for status, count in counts.items():
            family.add_metric([status], count)
        return [family]

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily("cahub_outbox_deliveries", "Outbox deliveries by status",
                                 labels=["status"])


def register_delivery_metrics(
    registry: CollectorRegistry, counts: Callable[[], Mapping[str, int]] | None = None
) -> DeliveryMetrics:
    """Delivery counters and latency on ``registry``; the outbox gauge when ``counts`` is given."""
    if counts is not None:
        registry.register(OutboxGauge(counts))
    return DeliveryMetrics(
        Counter("cahub_deliveries", "Delivery attempts by outcome (done, retry, dead)",
                ["sink", "action", "outcome"], registry=registry),
        Histogram("cahub_delivery_seconds", "Time a sink took to make a delivery", ["sink"],
                  buckets=DELIVERY_BUCKETS, registry=registry),
    )
