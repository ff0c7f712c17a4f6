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

The deadline is read once when the hub starts, hence the second process. Then two more
hub processes sharing Redis (``--redis-url``) take the same callers, first on one, then on
the other (``bench.remote_shared``): its own section.

    .venv/bin/python -m bench.remote [--calls 50] [--latency-ms 500]
        [--deadline-ms 1000] [--short-deadline-ms 300] [--repeat-rounds 4]
        [--redis-url redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import statistics

from bench.remote_phases import (
    AUDIENCES,
    WARMUP,
    Phase,
    PopRecorder,
    adobe_standin,
    figures,
    hub,
    run_phase,
    verdict,
)
from bench.remote_shared import SECTION as SHARED_SECTION
from bench.remote_shared import shared_report, shared_run
from bench.report import machine, percentile, record
from bench.webhook import demo_numbers
from tests.backends import REDIS_URL
from tests.standins.adobe import AdobeStandIn

SECTION = "Remote provider at 500 ms (AEP stand-in)"


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=50, help="distinct known callers")
    parser.add_argument("--latency-ms", type=int, default=500, help="the Entities API's latency")
    parser.add_argument("--deadline-ms", type=int, default=1000, help="longer than the provider")
    parser.add_argument("--short-deadline-ms", type=int, default=300,
                        help="shorter than the provider")
    parser.add_argument("--repeat-rounds", type=int, default=4,
                        help="times each caller calls again (more samples for the p99)")
    parser.add_argument("--port", type=int, default=5078,
                        help="the first of four ports, one per hub process")
    parser.add_argument("--redis-url", default=REDIS_URL,
                        help="the Redis the two servers of the shared-cache run share")
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
        shared = shared_run(adobe, numbers, warmup, args.deadline_ms, args.repeat_rounds,
                            (args.port + 2, args.port + 3), args.redis_url)
    body = report(args, first, repeat, short, (tokens_long, tokens_short))
    shared_body = shared_report(args.calls, args.latency_ms, args.deadline_ms, shared, repeat,
                                command(args))
    record(SECTION, body)
    record(SHARED_SECTION, shared_body)
    print(body, shared_body, sep="\n")


def command(args: argparse.Namespace) -> str:
    return (f".venv/bin/python -m bench.remote --calls {args.calls} --latency-ms "
            f"{args.latency_ms} --deadline-ms {args.deadline_ms} --short-deadline-ms "
            f"{args.short_deadline_ms} --repeat-rounds {args.repeat_rounds}")


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
    return f"""`{command(args)}` — {machine()}.
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
