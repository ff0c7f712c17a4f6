"""Oversized and stalled requests against each way of serving the hub, over real sockets.

For the development server (``cahub serve``) and gunicorn with the shipped configuration,
its gthread worker and its gevent worker:

- a 200 MB body, with a Content-Length and chunked, posted to ``/twilio/voice`` with a
  (wrong) signature header: the answer, how long it took, and the server's peak memory;
- a client that sends the headers and half of a small body, then nothing (and one that sends
  half a request line, then nothing): how long until the hub answers or drops it;
- ``STALLED`` such clients at once (more than gthread's 64 threads), and meanwhile signed
  webhooks: how many are answered, and how fast.

    .venv/bin/python -m bench.slow_clients
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from bench.report import describe, machine, record
from integrations.simulate import inbound_call_form, new_call_sid, post_signed

TOKEN = "bench-auth-token"
CALLER, TO = "+14155550134", "+18005550100"
BIG = 200_000_000
STALLED = 100
WEBHOOKS = 20
GIVE_UP_S = 60.0  # a stalled client still held after this long is reported as held
SERVERS = {
    "cahub serve (werkzeug)": ["{bin}/cahub", "serve", "--port", "{port}"],
    "gunicorn, gthread worker": ["{bin}/gunicorn", "-c", "python:web.gunicorn_conf",
                                 "--bind", "127.0.0.1:{port}",
                                 "--worker-class", "web.gunicorn_conf.ThreadWorker",
                                 "--threads", "64"],
    "gunicorn, gevent worker": ["{bin}/gunicorn", "-c", "python:web.gunicorn_conf",
                                "--bind", "127.0.0.1:{port}"],
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start(command: list[str], data_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    """The server on a free port, answering ``/healthz``."""
    port = free_port()
    args = [part.format(bin=Path(sys.executable).parent, port=port) for part in command]
    env = {**os.environ, "CAHUB_DATA_DIR": str(data_dir), "CAHUB_TWILIO_AUTH_TOKEN": TOKEN,
           "CAHUB_SECRET_KEY": "bench", "CAHUB_LOG_LEVEL": "WARNING"}
    server = subprocess.Popen(args, env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(400):
        with contextlib.suppress(requests.ConnectionError):
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok:
                return server, port
        time.sleep(0.05)
    raise RuntimeError(f"{args} did not start")


def stop(server: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGKILL)
    server.wait(10)


def tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its children, in MB."""
    total = 0
    for task in [str(pid), *Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{task}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


class PeakMemory(threading.Thread):
    """Samples the server's memory every 20 ms until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0.0, threading.Event()

    def run(self) -> None:
        while True:
            with contextlib.suppress(OSError):
                self.peak = max(self.peak, tree_rss_mb(self.pid))
            if self.done.wait(0.02):
                return


def head(port: int, length: int | None) -> bytes:
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return (f"POST /twilio/voice HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\nX-Twilio-Signature: bogus\r\n"
            f"{framing}\r\n\r\n").encode()


def answer_of(sock: socket.socket, timeout: float) -> str:
    """The status line the server sent, or what became of the connection."""
    sock.settimeout(timeout)
    try:
        data = sock.recv(200)
    except TimeoutError:
        return "no answer (held)"
    except OSError as exc:
        return f"reset ({exc.strerror})"
    return data.split(b"\r\n")[0].decode() if data else "closed without an answer"


def post_big(port: int, chunked: bool) -> str:
    """Send a 200 MB body as fast as the server takes it; the answer."""
    block = b"a" * (1 << 20)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head(port, None if chunked else BIG))
        sent = 0
        with contextlib.suppress(OSError):
            while sent < BIG:
                sock.sendall(b"%x\r\n%s\r\n" % (len(block), block) if chunked else block)
                sent += len(block)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        return answer_of(sock, 30)


def stall(port: int, where: str) -> socket.socket:
    """A client that sent the headers and half of a 2,000-byte body, or half a request line."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(head(port, 2000) + b"From=%2B1" + b"0" * 991 if where == "body"
                 else b"POST /twilio/voice HT")
    return sock


def held_for(port: int, where: str) -> tuple[float, str]:
    """Seconds until the server answers or drops one stalled client, and what it did."""
    started = time.perf_counter()
    with stall(port, where) as sock:
        outcome = answer_of(sock, GIVE_UP_S)
    return time.perf_counter() - started, outcome


def webhooks_while_stalled(port: int, where: str) -> tuple[int, list[float]]:
    """Signed webhooks while ``STALLED`` clients stall: how many answered, in how many ms."""
    stalled = [stall(port, where) for _ in range(STALLED)]
    time.sleep(0.5)
    answered, times = 0, []
    try:
        for _ in range(WEBHOOKS):
            form = inbound_call_form(new_call_sid(), CALLER, TO, "AC" + "0" * 32)
            sent = time.perf_counter()
            with contextlib.suppress(requests.RequestException):
                if post_signed(f"http://127.0.0.1:{port}/twilio/voice", form, TOKEN,
                               timeout=5).ok:
                    answered += 1
                    times.append((time.perf_counter() - sent) * 1000)
    finally:
        for sock in stalled:
            sock.close()
    return answered, times


def stall_rows(name: str, port: int, where: str) -> list[str]:
    seconds, outcome = held_for(port, where)
    answered, times = webhooks_while_stalled(port, where)
    during = describe(times) + " ms" if times else "none"
    return [f"| {name} | one client stops mid-{where} | {outcome} after {seconds:.1f} s |",
            f"| {name} | webhooks while {STALLED} stop mid-{where} | {answered} of {WEBHOOKS} "
            f"answered; median / p99 / max {during} |"]


def measure(name: str, command: list[str], data_dir: Path) -> list[str]:
    server, port = start(command, data_dir)
    try:
        peak, rows = PeakMemory(server.pid), []
        peak.start()
        for chunked in (False, True):
            began = time.perf_counter()
            outcome = post_big(port, chunked)
            rows.append(f"| {name} | 200 MB {'chunked' if chunked else 'with length'} | "
                        f"{outcome}, {time.perf_counter() - began:.1f} s |")
        peak.done.set()
        peak.join()
        rows.append(f"| {name} | peak memory, both | {peak.peak:.0f} MB |")
        for where in ("body", "headers"):
            rows += stall_rows(name, port, where)
        return rows
    finally:
        stop(server)


def main() -> None:
    rows = []
    for name, command in SERVERS.items():
        with tempfile.TemporaryDirectory() as scratch:
            rows += measure(name, command, Path(scratch))
            print("\n".join(rows[-7:]), flush=True)
    body = f"""`.venv/bin/python -m bench.slow_clients` — {machine()}.
Each server on an empty data directory; a stalled client is given up on after {GIVE_UP_S:g} s.

| server | request | what happened |
|---|---|---|
""" + "\n".join(rows)
    record("Oversized and stalled requests", body)
    print(body)


if __name__ == "__main__":
    main()
