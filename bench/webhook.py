"""Webhook to TwiML and webhook to screen pop, over real HTTP on 127.0.0.1.

Starts the hub in its own process (gunicorn, the production command) on the demo data,
logs an agent console in over server-sent events, sends paced, signed inbound-call
webhooks from the demo customers' numbers, and times each TwiML answer and each pop's
arrival at the console.

The baseline is a bare ``GET /healthz`` on the same server, sent at the same pace with
the same console open; blocks of ``BLOCK`` webhooks and ``BLOCK`` health checks take
turns, so that a drift in the machine's speed affects both alike. A request that finds
the server idle costs more than one of a back-to-back series (threads and cores wake
up), so comparing paced webhooks with back-to-back health checks would charge the
webhook for the pacing. Webhooks and health checks back to back are compared too.

    .venv/bin/python -m bench.webhook [--calls 300] [--rate 100]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from bench.report import describe, machine, record
from integrations.simulate import inbound_call_form, new_call_sid, post_signed
from lookup.demo import DEMO_FILES, load_demo
from lookup.phone import to_e164
from lookup.store import EmbeddedProfileStore

TOKEN = "bench-auth-token"
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
AGENT_TOKEN = "bench-agent-token"
TO = "+18005550100"
BLOCK = 50  # webhooks, then as many health checks, in turn
CONFIG = f"""
[[agents]]
id = "bench"
name = "Bench Agent"
client = "bench"
numbers = ["{TO}"]
token = "{AGENT_TOKEN}"
"""


def demo_numbers() -> list[str]:
    """Every phone number in the demo profiles, in E.164."""
    numbers: set[str] = set()
    for kind, _, path in DEMO_FILES:
        if kind != "profiles":
            continue
        for line in path.read_text().splitlines():
            for item in json.loads(line).get("identityMap", {}).get("Phone", []):
                number = to_e164(item["id"], "US")
                if number:
                    numbers.add(number)
    return sorted(numbers)


def start_server(
    data_dir: Path, port: int, extra_env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """The hub under gunicorn on 127.0.0.1:``port``; ``extra_env`` adds or overrides settings."""
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            raise RuntimeError(f"port {port} is in use: a server there would answer instead")
    config = data_dir / "hub.toml"
    config.write_text(CONFIG)
    env = {**os.environ, "CAHUB_DATA_DIR": str(data_dir), "CAHUB_CONFIG": str(config),
           "CAHUB_TWILIO_AUTH_TOKEN": TOKEN, "CAHUB_SECRET_KEY": "bench", **(extra_env or {})}
    gunicorn = Path(sys.executable).parent / "gunicorn"
    # The README's production command (web/gunicorn_conf.py: gunicorn's gevent worker); its
    # access log on standard output is left out of the benchmark's own output.
    command = [str(gunicorn), "-c", "python:web.gunicorn_conf", "--bind", f"127.0.0.1:{port}",
               "--log-level", "warning"]
    server = subprocess.Popen(command, env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL)
    for _ in range(200):
        if server.poll() is not None:
            raise RuntimeError(f"the hub exited with {server.returncode}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok:
                return server
        except requests.RequestException:  # not up yet, or slow to answer on a busy machine
            time.sleep(0.05)
    stop_server(server)
    raise RuntimeError("the hub did not start")


def stop_server(server: subprocess.Popen[bytes]) -> None:
    """Kill the hub's master and its worker (its own process group).

    Not a graceful stop: an open event stream would hold it. Killing only the master
    would leave the worker serving the port for a while.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGKILL)
    server.wait(10)


def console_session(base: str, token: str) -> requests.Session:
    """A signed-in agent console, as a browser signs in: the login page, then its form with
    the page's CSRF token."""
    session = requests.Session()
    page = session.get(f"{base}/console", timeout=5).text
    csrf = CSRF_META.search(page)
    if csrf is None:
        raise RuntimeError("the login page carries no CSRF token")
    reply = session.post(f"{base}/console", data={"token": token, "csrf_token": csrf.group(1)},
                         allow_redirects=False, timeout=5)
    if reply.status_code != 303:
        raise RuntimeError(f"the console login was refused with {reply.status_code}")
    return session


class ConsoleListener(threading.Thread):
    """An agent console: records when each call's first pop arrives."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.session = console_session(base, AGENT_TOKEN)
        self.response = self.session.get(f"{base}/console/events", stream=True, timeout=30)
        self.arrived: dict[str, float] = {}

    def run(self) -> None:
        # Closing the stream from the main thread ends the loop with an error: that is the end.
        with contextlib.suppress(requests.RequestException, AttributeError, ValueError):
            for line in self.response.iter_lines(decode_unicode=True):
                if line and line.startswith("data:"):
                    sid = json.loads(line[5:])["call"]["sid"]
                    self.arrived.setdefault(sid, time.perf_counter())


def send_calls(
    base: str, numbers: list[str], count: int, rate: float | None, first: int = 0,
    session: requests.Session | None = None,
) -> dict[str, tuple[float, float]]:
    """Signed webhooks from ``numbers[first:]`` on (round and round), paced at ``rate`` per
    second or back to back; returns CallSid -> (sent, answered) perf_counter times."""
    timings: dict[str, tuple[float, float]] = {}
    interval, next_at = (1.0 / rate if rate else 0.0), time.perf_counter()
    url, session = f"{base}/twilio/voice", session or requests.Session()
    for index in range(first, first + count):
        time.sleep(max(0.0, next_at - time.perf_counter()))
        next_at += interval
        sid = new_call_sid()
        form = inbound_call_form(sid, numbers[index % len(numbers)], TO, "AC" + "0" * 32)
        sent = time.perf_counter()
        reply = post_signed(url, form, TOKEN, session=session)
        timings[sid] = (sent, time.perf_counter())
        if reply.status_code != 200:
            raise RuntimeError(f"webhook answered {reply.status_code}")
    return timings


def healthz_ms(
    base: str, count: int, rate: float | None = None, session: requests.Session | None = None,
) -> list[float]:
    """``GET /healthz`` round trips in ms: paced at ``rate`` per second, or back to back."""
    samples, session = [], session or requests.Session()
    interval, next_at = (1.0 / rate if rate else 0.0), time.perf_counter()
    for _ in range(count):
        time.sleep(max(0.0, next_at - time.perf_counter()))
        next_at += interval
        started = time.perf_counter()
        session.get(f"{base}/healthz", timeout=5).raise_for_status()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rate", type=float, default=100.0, help="calls per second")
    parser.add_argument("--port", type=int, default=5077)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        store = EmbeddedProfileStore(data_dir / "profiles.sqlite3")
        load_demo(store)
        store.close()
        server = start_server(data_dir, args.port)
        try:
            measure(f"http://127.0.0.1:{args.port}", args.calls, args.rate)
        finally:
            stop_server(server)


def measure(base: str, calls: int, rate: float) -> None:
    listener = ConsoleListener(base)
    listener.start()
    numbers = demo_numbers()
    calling, checking = requests.Session(), requests.Session()
    send_calls(base, numbers, 20, rate, session=calling)  # warm-up: connections, caches, code
    healthz_ms(base, 20, rate, checking)
    timings: dict[str, tuple[float, float]] = {}
    health: list[float] = []  # the baseline: same pace, same console
    for first in range(0, calls, BLOCK):  # blocks in turn: a drift in speed hits both alike
        count = min(BLOCK, calls - first)
        timings |= send_calls(base, numbers, count, rate, first, calling)
        health += healthz_ms(base, count, rate, checking)
    time.sleep(0.5)
    twiml = [(done - sent) * 1000 for sent, done in timings.values()]
    pops = [(listener.arrived[sid] - sent) * 1000 for sid, (sent, _) in timings.items()
            if sid in listener.arrived]
    hot = send_calls(base, numbers, calls, None, calls, calling)
    back_to_back = healthz_ms(base, calls, session=checking)
    listener.response.close()
    twiml_hot = [(done - sent) * 1000 for sent, done in hot.values()]
    ratio = statistics.median(twiml) / statistics.median(health)
    ratio_back = statistics.median(twiml_hot) / statistics.median(back_to_back)
    body = f"""`.venv/bin/python -m bench.webhook --calls {calls} --rate {rate:g}` — {machine()}.
The hub runs under the production command (`gunicorn -c python:web.gunicorn_conf`: gevent)
on the demo data; {calls} signed webhooks from {len(numbers)} demo callers at {rate:g} calls/s,
one agent console on server-sent events.

| figure (ms) | median / p99 / max | bar (PRODUCT.md §9) |
|---|---|---|
| signed webhook → TwiML | {describe(twiml)} | p99 ≤ 25 |
| webhook → screen pop at the console | {describe(pops)} | p99 ≤ 50 |
| bare `GET /healthz`, at the same pace (the baseline) | {describe(health)} | |
| signed webhook → TwiML, back to back | {describe(twiml_hot)} | |
| bare `GET /healthz`, back to back | {describe(back_to_back)} | |

Webhook cost / healthz cost (medians): **{ratio:.2f}×** (bar ≤ 3×); both back to back,
{ratio_back:.2f}×. A request that finds the server idle costs more than one of a
back-to-back series, so each comparison is between requests sent alike: paced at
{rate:g}/s with the same console open, in blocks of {BLOCK} taking turns, or back to back.
Pops received: {len(pops)} of {calls}.
"""
    record("Webhook to TwiML and to screen pop", body)
    print(body)


if __name__ == "__main__":
    main()
