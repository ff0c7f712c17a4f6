"""Screen pops from ``publish`` to a console: in process, and through Redis across processes.

Side by side in one run, each at the same pace to random agents:

1. the in-process broker, one console thread in the publishing process (the baseline);
2. the Redis broker in two processes, as two servers would be: this one publishes, a
   second holds ``--consoles`` consoles (one per agent, each a thread) and notes when each
   pop arrives; with ``--gevent`` (gevent installed), the largest count again as greenlets
   in a monkey-patched process, as under gunicorn's gevent worker.

Latency is publish call to ``next`` returning, on ``time.perf_counter`` (CLOCK_MONOTONIC
on Linux, one clock for every process of the machine). Also timed: what ``publish``
itself costs the caller (the webhook), the console process's memory per console, and the
cost of one blocking read as the broker does it (one feed stream) against one ``XREAD``
over every agent's stream, the shape the feed replaces.

    .venv/bin/python -m bench.pops [--pops 1000] [--rate 100] [--consoles 1,5000] [--gevent]
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

SECTION = "Screen pops: publish to console, in process and through Redis"
WARMUP = 20  # pops before timing: connections, the script, the reader's first read
TABLE_HEAD = (
    "| configuration | publish → console, ms: median / p99 / max "
    "| publish call, ms: median / p99 / max | pops received | KiB per console |\n"
    "|---|---|---|---|---|"
)


@dataclass(frozen=True)
class Run:
    """One configuration's figures, in milliseconds (memory in KiB)."""

    label: str
    latency_ms: list[float]
    publish_ms: list[float]
    expected: int
    kib_per_console: float | None = None


def summary(number: int) -> Any:
    from tests.support import pop_summary

    return pop_summary(number)


def paced(count: int, rate: float) -> Any:
    """Yield 0..count-1, one every 1/rate seconds."""
    start = time.perf_counter()
    for n in range(count):
        time.sleep(max(0.0, start + n / rate - time.perf_counter()))
        yield n


def in_process(pops: int, rate: float) -> Run:
    from state.pops.memory import InProcessScreenPopBroker

    broker = InProcessScreenPopBroker(queue_size=pops + WARMUP)
    stream = broker.subscribe("a0")
    arrived: dict[str, float] = {}

    def listen() -> None:
        while len(arrived) < pops and (pop := stream.next(5.0)) is not None:
            arrived[str(pop[1].call.sid)] = time.perf_counter()

    listener = threading.Thread(target=listen)
    listener.start()
    sent, costs = publish_paced(broker, ["a0"], pops, rate)
    listener.join()
    return Run("in process, 1 console", latencies(sent, arrived), costs, pops)


def publish_paced(broker: Any, agents: list[str], pops: int,
                  rate: float) -> tuple[dict[str, float], list[float]]:
    """Publish ``pops`` pops to random agents at ``rate``; publish instants and costs."""
    sent: dict[str, float] = {}
    costs = []
    chooser = random.Random(7)
    for n in paced(pops, rate):
        item = summary(WARMUP + n)
        started = time.perf_counter()
        broker.publish(chooser.choice(agents), item)
        costs.append((time.perf_counter() - started) * 1000)
        sent[str(item.call.sid)] = started
    return sent, costs


def latencies(sent: dict[str, float], arrived: dict[str, float]) -> list[float]:
    return [(arrived[sid] - at) * 1000 for sid, at in sent.items() if sid in arrived]


def through_redis(url: str, consoles: int, pops: int, rate: float, use_gevent: bool) -> Run:
    from state.pops.redis import RedisScreenPopBroker

    prefix = f"bench-pops-{secrets.token_hex(4)}:"
    command = [sys.executable, "-m", "bench.pops", "--serve-consoles", str(consoles),
               "--url", url, "--prefix", prefix, "--expect", str(pops + WARMUP)]
    command += ["--gevent"] if use_gevent else []
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    ready = json.loads(server.stdout.readline())
    broker = RedisScreenPopBroker(url, prefix=prefix)
    agents = [f"a{n}" for n in range(consoles)]
    try:
        for n in range(WARMUP):
            broker.publish(agents[n % consoles], summary(n))
        time.sleep(0.5)
        sent, costs = publish_paced(broker, agents, pops, rate)
        arrived = json.loads(server.stdout.readline())
    finally:
        server.wait(30)
        broker.close()
        forget_keys(url, prefix)
    kind = "greenlet" if use_gevent else "thread"
    label = f"Redis, 2 processes, {consoles:,} console{'s' if consoles > 1 else ''} ({kind}s)"
    per_console = ((ready["rss_kib"] - ready["rss_kib_before"]) / (consoles - 1)
                   if consoles > 1 else None)
    return Run(label, latencies(sent, arrived), costs, pops, per_console)


def serve_consoles(args: argparse.Namespace) -> None:
    """The second process: ``--serve-consoles`` consoles; prints arrival instants."""
    if args.gevent:
        from gevent import monkey

        monkey.patch_all()
    from state.pops.redis import RedisScreenPopBroker

    broker = RedisScreenPopBroker(args.url, prefix=args.prefix)
    arrived: dict[str, float] = {}
    done = threading.Event()
    subscribed = threading.Semaphore(0)

    def listen(agent: str) -> None:
        stream = broker.subscribe(agent)
        subscribed.release()
        while not done.is_set():
            pop = stream.next(30.0)
            if pop is not None:
                arrived[str(pop[1].call.sid)] = time.perf_counter()
                if len(arrived) >= args.expect:
                    done.set()

    threading.Thread(target=listen, args=("a0",), daemon=True).start()
    subscribed.acquire()  # the reader runs: what is added from here on is the consoles'
    before = rss_kib()
    for n in range(1, args.serve_consoles):
        threading.Thread(target=listen, args=(f"a{n}",), daemon=True).start()
    for _ in range(1, args.serve_consoles):
        subscribed.acquire()
    print(json.dumps({"rss_kib_before": before, "rss_kib": rss_kib()}), flush=True)
    done.wait(120)
    print(json.dumps(arrived), flush=True)
    broker.close()


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def read_costs(url: str, streams: int) -> tuple[float, float]:
    """Median ms of one XREAD over ``streams`` agent streams, and of one over the feed."""
    import redis

    client = redis.Redis.from_url(url)
    prefix = f"bench-xread-{secrets.token_hex(4)}:"
    keys = [f"{prefix}agent:{n}" for n in range(streams)]
    try:
        with client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.xadd(key, {"summary": "{}"})
            pipe.xadd(f"{prefix}feed", {"agent": "a0"})
            ids = pipe.execute()
        # Every stream read up to its last entry but the first, which has one new pop.
        wide = {key: "0-0" if n == 0 else ids[n] for n, key in enumerate(keys)}
        wide_ms = timed(lambda: client.xread(wide, count=500, block=1), 30)
        feed_ms = timed(lambda: client.xread({f"{prefix}feed": "0-0"}, count=500, block=1), 300)
    finally:
        forget_keys(url, prefix)
        client.close()
    return wide_ms, feed_ms


def timed(call: Any, times: int) -> float:
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def forget_keys(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start:start + 1000])
    client.close()


def report(runs: list[Run], reads: tuple[int, float, float], args: argparse.Namespace) -> str:
    from bench.report import describe, machine

    rows = []
    for run in runs:
        memory = f"{run.kib_per_console:.1f}" if run.kib_per_console is not None else ""
        rows.append(f"| {run.label} | {describe(run.latency_ms)} | {describe(run.publish_ms)} | "
                    f"{len(run.latency_ms)} of {run.expected} | {memory} |")
    streams, wide_ms, feed_ms = reads
    command = (f"python -m bench.pops --pops {args.pops} --rate {args.rate:g} "
               f"--consoles {args.consoles}{' --gevent' if args.gevent else ''}")
    return f"""
`.venv/bin/{command}` — {machine()}, Redis on 127.0.0.1.

{args.pops} pops per configuration at {args.rate:g}/s, each to a random agent with a console
(after {WARMUP} untimed). Latency: `publish` called to the console's `next` returning, across
processes on one monotonic clock. Publish: what the call costs its caller (the webhook).
Memory: the console process's resident set, per console added after the first.

{TABLE_HEAD}
{chr(10).join(rows)}

One blocking read as the reader does it, over the feed stream: {feed_ms:.3f} ms (median);
one `XREAD` over {streams:,} agent streams, the shape the feed replaces, each time a pop
wakes it: {wide_ms:.2f} ms, **{wide_ms / feed_ms:.0f}×** as much.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pops", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--consoles", default="1,5000", help="comma list of console counts")
    parser.add_argument("--gevent", action="store_true",
                        help="also the largest count as greenlets (needs gevent)")
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--serve-consoles", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    parser.add_argument("--expect", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_consoles:
        serve_consoles(args)
        return
    from bench.report import record

    counts = [int(count) for count in args.consoles.split(",")]
    runs = [in_process(args.pops, args.rate)]
    runs += [through_redis(args.url, count, args.pops, args.rate, use_gevent=False)
             for count in counts]
    if args.gevent:
        runs.append(through_redis(args.url, max(counts), args.pops, args.rate, use_gevent=True))
    wide_ms, feed_ms = read_costs(args.url, max(counts))
    body = report(runs, (max(counts), wide_ms, feed_ms), args)
    print(body)
    record(SECTION, body)


if __name__ == "__main__":
    main()
