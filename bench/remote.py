"""A remote profile provider at 500 ms: the hub against the local AEP stand-in.

Starts the Adobe stand-in (IMS, Entities, Segmentation audiences; ``tests/standins``)
on 127.0.0.1 holding one profile per demo phone number, keyed by ``Phone_E.164``, with
the Entities API slowed to ``--latency-ms``. Runs the hub under gunicorn (as
``bench.webhook`` does) with ``CAHUB_PROFILE_PROVIDERS=aep`` pointed at it, logs one
agent console in over server-sent events, and sends signed webhooks one after another,
each from a distinct known caller:

1. first calls, deadline ``--deadline-ms`` (longer than the provider): TwiML and pop;
2. repeat callers on that server (the same numbers ``--repeat-rounds`` times more, new
   CallSids): served from the cache;
3. a second hub process with ``--short-deadline-ms`` (shorter than the provider):
   TwiML, and the late pop, if any, and whether it carries the profile.

The deadline is read once when the hub starts, hence the second process.

    .venv/bin/python -m bench.remote [--calls 50] [--latency-ms 500]
        [--deadline-ms 1000] [--short-deadline-ms 300] [--repeat-rounds 4]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from bench.report import describe, machine, percentile, record
from bench.webhook import ConsoleListener, demo_numbers, send_calls, start_server, stop_server
from tests.standins.adobe import AdobeStandIn

SECTION = "Remote provider at 500 ms (AEP stand-in)"
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


def long_deadline_run(adobe: AdobeStandIn, numbers: list[str], warmup: list[str],
                      deadline_ms: int, rounds: int, port: int) -> tuple[Phase, Phase, int]:
    """First calls, then repeat callers, on one hub process; its token requests."""
    tokens_before = adobe.counts["token"]
    with hub(adobe, deadline_ms, port) as base:
        console = PopRecorder(base)
        console.start()
        run_phase(base, adobe, console, warmup, 0.2)
        first = run_phase(base, adobe, console, numbers, 0.2)
        repeat = run_phase(base, adobe, console, numbers * rounds, 0.2)
        console.response.close()
    return first, repeat, adobe.counts["token"] - tokens_before


def short_deadline_run(adobe: AdobeStandIn, numbers: list[str], warmup: list[str],
                       deadline_ms: int, latency_ms: int, port: int) -> tuple[Phase, int]:
    tokens_before = adobe.counts["token"]
    with hub(adobe, deadline_ms, port) as base:
        console = PopRecorder(base)
        console.start()
        # Warm the connections and the token without the slow Entities API.
        saved, adobe.latencies["entities"] = adobe.latencies["entities"], 0.0
        run_phase(base, adobe, console, warmup, 0.2)
        adobe.latencies["entities"] = saved
        phase = run_phase(base, adobe, console, numbers, 2 * latency_ms / 1000)
        console.response.close()
    return phase, adobe.counts["token"] - tokens_before


def figures(samples: list[float]) -> str:
    return describe(samples) if samples else "none"


def verdict(ok: bool) -> str:
    return "meets" if ok else "**misses**"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=50, help="distinct known callers")
    parser.add_argument("--latency-ms", type=int, default=500, help="the Entities API's latency")
    parser.add_argument("--deadline-ms", type=int, default=1000, help="longer than the provider")
    parser.add_argument("--short-deadline-ms", type=int, default=300,
                        help="shorter than the provider")
    parser.add_argument("--repeat-rounds", type=int, default=4,
                        help="times each caller calls again (more samples for the p99)")
    parser.add_argument("--port", type=int, default=5078)
    args = parser.parse_args()
    everyone = demo_numbers()
    if args.calls + WARMUP > len(everyone):
        parser.error(f"--calls can be at most {len(everyone) - WARMUP} (the demo numbers)")
    warmup, numbers = everyone[:WARMUP], everyone[WARMUP:WARMUP + args.calls]
    with adobe_standin(everyone[:WARMUP + args.calls], args.latency_ms / 1000) as adobe:
        first, repeat, tokens_long = long_deadline_run(adobe, numbers, warmup, args.deadline_ms,
                                                       args.repeat_rounds, args.port)
        short, tokens_short = short_deadline_run(adobe, numbers, warmup, args.short_deadline_ms,
                                                 args.latency_ms, args.port + 1)
    body = report(args, first, repeat, short, (tokens_long, tokens_short))
    record(SECTION, body)
    print(body)


def report(args: argparse.Namespace, first: Phase, repeat: Phase, short: Phase,
           tokens: tuple[int, int]) -> str:
    calls, latency, long_ms, short_ms = (args.calls, args.latency_ms, args.deadline_ms,
                                         args.short_deadline_ms)
    rounds = args.repeat_rounds
    waited = [ms for ms in short.twiml_ms if ms >= short_ms / 2]
    at_once = [ms for ms in short.twiml_ms if ms < short_ms / 2]
    rows = [
        (f"deadline {long_ms}, first calls: webhook → TwiML", figures(first.twiml_ms),
         f"≈ {latency} + overhead, < {long_ms}"),
        (f"deadline {long_ms}, first calls: webhook → pop", figures(first.first_pop_ms), ""),
        (f"deadline {short_ms}, first calls: webhook → TwiML, all {calls}",
         figures(short.twiml_ms), f"≈ {short_ms}"),
        (f"… of which waited for the provider ({len(waited)})", figures(waited), f"≈ {short_ms}"),
        (f"… of which answered at once, circuit open ({len(at_once)})", figures(at_once), ""),
        (f"deadline {short_ms}, first calls: webhook → first pop", figures(short.first_pop_ms),
         ""),
        (f"deadline {short_ms}, first calls: webhook → late pop ({len(short.late_pop_ms)})",
         figures(short.late_pop_ms), f"≈ {latency}, with the profile"),
        (f"deadline {long_ms}, repeat callers: webhook → TwiML", figures(repeat.twiml_ms),
         "≤ 5 (from cache)"),
        (f"deadline {long_ms}, repeat callers: webhook → pop", figures(repeat.first_pop_ms), ""),
        (f"deadline {long_ms}, repeat callers: the hub's own `lookup_ms`",
         figures(repeat.lookup_ms), ""),
    ]
    table = "\n".join(f"| {name} | {text} | {bar} |" for name, text, bar in rows)
    cache = {k: repeat.health.get(k) for k in ("circuit", "cache_hits", "cache_misses")}
    breaker = {k: short.health.get(k) for k in ("circuit", "consecutive_failures")}
    first_max, repeat_median = max(first.twiml_ms), statistics.median(repeat.twiml_ms)
    repeat_p99 = percentile(repeat.twiml_ms, 99)
    late_share = short.late_with_profile / calls
    notes = "\n".join([
        f"- Deadline {long_ms} ms, first calls: answered within the deadline (max "
        f"{first_max:.0f} ms): {verdict(first_max < long_ms)}. Pops carrying the profile: "
        f"{first.first_with_profile} of {calls}. Entities profile requests: {first.lookups}.",
        f"- Deadline {short_ms} ms: {len(waited)} calls waited for the provider, and "
        f"{len(at_once)} were answered at once (under {short_ms // 2} ms). Entities profile "
        f"requests: {short.lookups}. Circuit afterwards: {breaker}. Late pops: "
        f"{len(short.late_pop_ms)} of {calls}, carrying the profile {short.late_with_profile} "
        f"of {calls} (**{late_share:.0%}**, bar: all): "
        f"{verdict(short.late_with_profile == calls)}.",
        f"- Repeat callers: TwiML median {repeat_median:.2f} ms and p99 {repeat_p99:.2f} ms, "
        f"bar ≤ 5: median {verdict(repeat_median <= 5)}, p99 {verdict(repeat_p99 <= 5)}. "
        f"Repeat / first TwiML (medians): "
        f"**{repeat_median / statistics.median(first.twiml_ms):.3f}×**. Pops carrying the "
        f"profile: {repeat.first_with_profile} of {repeat.calls}. New Entities requests: "
        f"{repeat.entities} (bar 0): {verdict(repeat.entities == 0)}. Provider state: {cache}.",
        f"- IMS token requests: {tokens[0]} by the {long_ms} ms hub process and {tokens[1]} by "
        f"the {short_ms} ms one, {sum(tokens)} in the whole run (bar: 1 per process): "
        f"{verdict(tokens == (1, 1))}.",
    ])
    return f"""`.venv/bin/python -m bench.remote --calls {calls} --latency-ms {latency} \
--deadline-ms {long_ms} --short-deadline-ms {short_ms} --repeat-rounds {rounds}` — {machine()}.
The AEP stand-in (`tests/standins/adobe.py`: IMS, Entities, Segmentation audiences) runs on
127.0.0.1 with {calls + WARMUP} profiles keyed by `Phone_E.164` and {len(AUDIENCES)} named
audiences. Only its Entities API is slowed, by {latency} ms. The hub runs under gunicorn
(1 worker, 32 threads) with `CAHUB_PROFILE_PROVIDERS=aep` pointed at the stand-in and
`CAHUB_AEP_EVENTS=false` (one Entities request per lookup). Every other setting is the default:
AEP timeout 800 ms, cache 300 s, breaker open after 5 failures in a row. One agent console
listens on server-sent events. Each batch is {calls} signed webhooks, sent one after another
from {calls} distinct known callers, after {WARMUP} warm-up calls from other callers (for
connections, the IMS token and audience names). At {long_ms} ms, one hub process takes the
first calls, then, with new CallSids, the same numbers {rounds} times more ({repeat.calls}
calls). At {short_ms} ms, a second hub
process (the deadline is read at start-up) takes the same {calls} callers as first calls.

| figure (ms) | median / p99 / max | bar |
|---|---|---|
{table}

{notes}
"""


if __name__ == "__main__":
    main()
