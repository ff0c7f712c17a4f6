"""The pieces of ``bench.remote``: the AEP stand-in with its profiles, a hub process pointed at
it, a console that records every pop, and one batch of calls (``run_phase``) with what it
cost and what the stand-in was asked."""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from bench.report import describe
from bench.webhook import ConsoleListener, send_calls, start_server, stop_server
from tests.standins.adobe import AdobeStandIn

WARMUP = 5  # calls from other known callers: connections, the token, audience names
SEQUENTIAL = 1000.0  # a pacing rate no call can keep up with: calls go one after another
AUDIENCES = {"aud-gold": "Gold members", "aud-churn": "Churn risk", "aud-new": "New this month"}
FIRST_NAMES = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken")


@dataclass(frozen=True)
class Pop:
    """One screen pop as the console received it."""

    at: float
    found: bool
    named: bool  # the profile's facts came with it (a name), not just "found"
    lookup_ms: float | None  # the hub's own lookup time, from the summary


class PopRecorder(ConsoleListener):
    """The console of ``bench.webhook``, keeping every pop of a call, not only the first."""

    def __init__(self, base: str) -> None:
        super().__init__(base)
        self.pops: dict[str, list[Pop]] = {}

    def run(self) -> None:
        try:
            for line in self.response.iter_lines(decode_unicode=True):
                if line and line.startswith("data:"):
                    summary = json.loads(line[5:])
                    pop = Pop(time.perf_counter(), bool(summary.get("found")),
                              bool(summary.get("name")), summary.get("lookup_ms"))
                    self.pops.setdefault(summary["call"]["sid"], []).append(pop)
        except (requests.RequestException, AttributeError):
            return  # the stream was closed under the reader (end of a run)


@dataclass(frozen=True)
class Phase:
    """One batch of calls: TwiML times, the pops, and what the stand-in was asked."""

    twiml_ms: list[float]
    first_pop_ms: list[float]
    late_pop_ms: list[float]  # a second pop for the same call (the late profile)
    first_with_profile: int
    late_with_profile: int
    lookup_ms: list[float]  # the hub's lookup time in the first pops
    calls: int
    lookups: int  # profile requests at the Entities API during the batch
    entities: int  # every Entities request (profiles and events)
    tokens: int
    health: dict[str, Any]


def adobe_standin(numbers: list[str], latency_s: float) -> AdobeStandIn:
    """The stand-in holding one profile per number; only the Entities API is slowed."""
    adobe = AdobeStandIn()
    adobe.audiences.update(AUDIENCES)
    audience_ids = list(AUDIENCES)
    for index, number in enumerate(numbers):
        first = FIRST_NAMES[index % len(FIRST_NAMES)]
        adobe.add_profile(f"XID-{index:05d}", {
            "identityMap": {"Phone_E.164": [{"id": number}], "CRMID": [{"id": f"C-{index}"}]},
            "person": {"name": {"firstName": first, "lastName": f"Caller{index}"}},
            "personalEmail": {"address": f"caller{index}@example.com"},
            "loyalty": {"tier": "gold" if index % 3 == 0 else "silver"},
            "segmentMembership": {"ups": {audience_ids[index % len(audience_ids)]:
                                          {"status": "realized"}}},
        })
    adobe.latencies.update({"entities": latency_s, "token": 0.0, "audience": 0.0})
    return adobe


def hub_env(adobe: AdobeStandIn, deadline_ms: int) -> dict[str, str]:
    return {
        "CAHUB_PROFILE_PROVIDERS": "aep", "CAHUB_AEP_BASE_URL": adobe.base_url,
        "CAHUB_AEP_IMS_BASE_URL": adobe.base_url, "CAHUB_AEP_CLIENT_ID": adobe.client_id,
        "CAHUB_AEP_CLIENT_SECRET": adobe.client_secret, "CAHUB_AEP_ORG_ID": adobe.org_id,
        "CAHUB_AEP_SANDBOX": adobe.sandbox, "CAHUB_LOOKUP_DEADLINE_MS": str(deadline_ms),
        # One 500 ms request per lookup: the event lookup (deprecated by Adobe) would be a second.
        "CAHUB_AEP_EVENTS": "false",
        # The defaults, pinned so that the report's description holds.
        "CAHUB_AEP_TIMEOUT_MS": "800", "CAHUB_LOOKUP_CACHE_TTL_S": "300",
        "CAHUB_BREAKER_FAILURES": "5", "CAHUB_BREAKER_RESET_S": "30",
    }


@contextmanager
def hub(adobe: AdobeStandIn, deadline_ms: int, port: int) -> Iterator[str]:
    """A hub process pointed at ``adobe``; yields its base URL."""
    with tempfile.TemporaryDirectory() as tmp:
        server: subprocess.Popen[bytes] = start_server(Path(tmp), port,
                                                       hub_env(adobe, deadline_ms))
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            stop_server(server)


def run_phase(base: str, adobe: AdobeStandIn, console: PopRecorder, numbers: list[str],
              settle_s: float) -> Phase:
    """One call from each number, one after another; waits ``settle_s`` for late pops."""
    before = dict(adobe.counts)
    timings = send_calls(base, numbers, len(numbers), SEQUENTIAL)
    time.sleep(settle_s)
    after = dict(adobe.counts)
    twiml, first, late, lookup_ms = [], [], [], []
    first_named = late_named = 0
    for sid, (sent, answered) in timings.items():
        twiml.append((answered - sent) * 1000)
        pops = console.pops.get(sid, [])
        if pops:
            first.append((pops[0].at - sent) * 1000)
            first_named += pops[0].named
            if pops[0].lookup_ms is not None:
                lookup_ms.append(pops[0].lookup_ms)
        if len(pops) > 1:
            late.append((pops[1].at - sent) * 1000)
            late_named += pops[1].named
    health = requests.get(f"{base}/healthz", timeout=5).json()["providers"]["aep"]
    return Phase(twiml, first, late, first_named, late_named, lookup_ms, len(timings),
                 after.get("lookup", 0) - before.get("lookup", 0),
                 after.get("entities", 0) - before.get("entities", 0),
                 after.get("token", 0) - before.get("token", 0), health)


def figures(samples: list[float]) -> str:
    return describe(samples) if samples else "none"


def verdict(ok: bool) -> str:
    return "meets" if ok else "**misses**"
