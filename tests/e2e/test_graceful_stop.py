"""End to end: gunicorn, told to stop (SIGTERM, as a deploy or ``systemctl stop`` does),
ends its open consoles' event streams at once (cleanly: the response ends), so that they
reconnect to a server that stays; under both worker classes it ships.

Before, each open console held the stopping server until the graceful timeout (5 s) cut it,
and popped nothing meanwhile. Now a worker exits in 2.5-3.5 s: a kept-alive
connection (here the sign-in's) gets 2 s, on purpose, to bring a request that raced the stop,
which is answered with ``Connection: close`` (``test_a_request_racing_the_stop_...``).
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.e2e.consoles import AGENT_TOKEN, demo_hub
from tests.e2e.gunicorn_process import GunicornProcess
from tests.e2e.hub_process import free_port, hub_environment, wait_for
from tests.e2e.sse_console import ConsoleSession

pytestmark = pytest.mark.slow

GRACEFUL_TIMEOUT_S = 5  # web/gunicorn_conf.py
CONSOLES = 3


WORKERS = {  # the shipped worker classes, as README runs them
    "gevent": ["--worker-class", "web.gunicorn_conf.GeventWorker"],
    "gthread": ["--worker-class", "web.gunicorn_conf.ThreadWorker", "--threads", "64"],
}


@pytest.fixture(params=sorted(WORKERS))
def hub(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[GunicornProcess]:
    server = GunicornProcess(hub_environment(demo_hub(tmp_path, "graceful-auth-token")),
                             tmp_path, f"127.0.0.1:{free_port()}", *WORKERS[request.param])
    server.start()
    yield server
    server.stop()


def test_a_stopping_server_ends_its_open_consoles_at_once_and_exits_before_its_timeout(
        hub: GunicornProcess) -> None:
    session = ConsoleSession(hub.base_url, AGENT_TOKEN)
    streams = [session.stream(hub.base_url) for _ in range(CONSOLES)]  # each answered 200

    started = time.monotonic()
    stopping = threading.Thread(target=hub.stop)  # SIGTERM, and the wait for gunicorn to exit
    stopping.start()
    wait_for(lambda: all(stream.ended for stream in streams), 1, "the streams to end", hub.logs)
    stopping.join(GRACEFUL_TIMEOUT_S * 3)
    exited_s = time.monotonic() - started

    assert [False] * CONSOLES == [stream.cut for stream in streams], \
        "a stream was cut rather than ended"
    logs = hub.logs()
    assert f"stopping: ended {CONSOLES} console stream(s)" in logs, logs
    assert exited_s < GRACEFUL_TIMEOUT_S, f"gunicorn took {exited_s:.2f} s to exit"
    assert "Worker graceful timeout" not in logs
    for stream in streams:
        stream.close()
    session.http.close()


def test_a_request_racing_the_stop_on_a_kept_alive_connection_is_answered_and_closed(
        hub: GunicornProcess) -> None:
    address = urlsplit(hub.base_url)  # a load balancer's connection, kept alive between requests
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=5)
    connection.request("GET", "/healthz")
    first = connection.getresponse()
    first.read()
    assert (200, "keep-alive") == (first.status, first.headers["Connection"])

    stopping = threading.Thread(target=hub.stop)
    stopping.start()
    time.sleep(0.5)  # the worker has been told to stop
    connection.request("GET", "/healthz")  # on the same connection: http.client never reopens
    raced = connection.getresponse()
    raced.read()
    stopping.join(GRACEFUL_TIMEOUT_S * 3)
    connection.close()

    assert (200, "close") == (raced.status, raced.headers["Connection"])
