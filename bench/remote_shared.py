"""Two hub servers sharing Redis in front of the 500 ms AEP stand-in (part of ``bench.remote``).

Two gunicorn masters on two ports (as two hosts would be) share a data directory (so one
hub database, whose forget-log secret keys the cache's key names) and ``CAHUB_REDIS_URL``
with a key prefix of the run's own. One agent console listens on server A; pops of calls
taken by server B reach it through Redis. After warm-up calls on both:

1. first calls, on server A: the provider is asked, and its answers written to Redis;
2. the same callers again, on server B: the second call of each is served from Redis
   (B has never seen them);
3. the same callers ``--repeat-rounds`` - 1 times more on B, within the few seconds B
   keeps what it read from Redis: served from its own memory.
"""

from __future__ import annotations

import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.remote_phases import Phase, PopRecorder, figures, hub_env, run_phase, verdict
from bench.report import machine, percentile
from bench.webhook import start_server, stop_server
from lookup.resilience import LOCAL_TTL_S
from tests.backends import fresh_prefix
from tests.standins.adobe import AdobeStandIn

SECTION = "Remote provider at 500 ms, two servers sharing Redis"


@dataclass(frozen=True)
class SharedRun:
    first: Phase  # first calls, on A
    other: Phase  # the second call of each caller, on B (from Redis)
    again: Phase  # later calls on B (from B's memory)


def shared_run(adobe: AdobeStandIn, numbers: list[str], warmup: list[str], deadline_ms: int,
               rounds: int, ports: tuple[int, int], redis_url: str) -> SharedRun:
    """The three batches above, on two servers sharing ``redis_url``."""
    with fresh_prefix(redis_url) as prefix, tempfile.TemporaryDirectory() as tmp:
        env = {**hub_env(adobe, deadline_ms), "CAHUB_REDIS_URL": redis_url,
               "CAHUB_REDIS_PREFIX": prefix}
        servers = [start_server(Path(tmp), port, env) for port in ports]
        try:
            one, other = (f"http://127.0.0.1:{port}" for port in ports)
            console = PopRecorder(one)
            console.start()
            run_phase(one, adobe, console, warmup, 0.2)
            run_phase(other, adobe, console, warmup, 0.2)  # from Redis: B's connections
            run = SharedRun(run_phase(one, adobe, console, numbers, 0.2),
                            run_phase(other, adobe, console, numbers, 0.2),
                            run_phase(other, adobe, console, numbers * (rounds - 1), 0.2))
            console.response.close()
        finally:
            for server in servers:
                stop_server(server)
    return run


def shared_report(calls: int, latency_ms: int, deadline_ms: int, run: SharedRun,
                  single_repeat: Phase, command: str) -> str:
    """The section's text; ``single_repeat`` is the one-server repeat callers of the run."""
    rows = [
        ("first calls, on server A: webhook → TwiML", run.first.twiml_ms,
         f"≈ {latency_ms} + overhead"),
        ("second call, on server B (from Redis): webhook → TwiML", run.other.twiml_ms,
         "≤ 5 (from cache)"),
        ("… webhook → pop (console on A, through Redis)", run.other.first_pop_ms, ""),
        ("… the hub's own `lookup_ms`", run.other.lookup_ms, ""),
        ("later calls on server B (from its memory): webhook → TwiML", run.again.twiml_ms,
         "≤ 5 (from cache)"),
        ("… the hub's own `lookup_ms`", run.again.lookup_ms, ""),
        ("one server alone, repeat callers (same run): webhook → TwiML",
         single_repeat.twiml_ms, "≤ 5 (from cache)"),
    ]
    table = "\n".join(f"| {name} | {figures(samples)} | {bar} |" for name, samples, bar in rows)
    other_median, other_p99 = (statistics.median(run.other.twiml_ms),
                               percentile(run.other.twiml_ms, 99))
    again_median = statistics.median(run.again.twiml_ms)
    alone = other_median / statistics.median(single_repeat.twiml_ms)
    lookup_gap = statistics.median(run.other.lookup_ms) - statistics.median(run.again.lookup_ms)
    b_requests = run.other.entities + run.again.entities
    notes = "\n".join([
        f"- Second call on the other server: TwiML median {other_median:.2f} ms and p99 "
        f"{other_p99:.2f} ms, bar ≤ 5: median {verdict(other_median <= 5)}, p99 "
        f"{verdict(other_p99 <= 5)}. From Redis / from B's own memory (TwiML medians, one "
        f"server, one configuration): **{other_median / again_median:.2f}×**; the lookup "
        f"itself, from Redis, costs {lookup_gap:.2f} ms more (medians of `lookup_ms`). "
        f"Against one server alone with its pops in process (the section above, same run): "
        f"{alone:.2f}×.",
        f"- Entities profile requests while server B took {run.other.calls + run.again.calls} "
        f"calls: {b_requests} (bar 0): {verdict(b_requests == 0)}. Pops carrying the profile: "
        f"{run.other.first_with_profile} of {run.other.calls}, then "
        f"{run.again.first_with_profile} of {run.again.calls}. Shared cache of server A after "
        f"its calls: {run.first.health.get('shared_cache')}; of server B after its own: "
        f"{run.again.health.get('shared_cache')} (an error pauses it for a second, and the "
        f"answers of those calls are not shared).",
    ])
    return f"""`{command}` — {machine()}.
Two hub processes (gunicorn, 1 worker, 32 threads each, on two ports) share a data directory
and `CAHUB_REDIS_URL` (the machine's Redis, a key prefix of the run's own), with the
settings of the section above (`CAHUB_PROFILE_PROVIDERS=aep`, deadline {deadline_ms} ms,
the AEP stand-in's Entities API slowed by {latency_ms} ms). One agent console listens on
server A. After warm-up calls on both, {calls} known callers call server A (first calls),
then server B ({calls} calls: each caller's second call, on a server that never saw them),
then server B again ({run.again.calls} calls, within the {LOCAL_TTL_S:.0f} s B keeps what it
read).

| figure (ms) | median / p99 / max | bar |
|---|---|---|
{table}

{notes}
"""
