"""End to end: oversized and stalled requests, over real sockets, against each way of serving
the hub: the development server (``cahub serve``) and gunicorn with the shipped configuration,
with its own worker (gevent's) and with its gthread worker (``ThreadWorker``).

A body announced over the limit is refused with 413 before it is sent; a chunked one once it
passes the limit; a client that stops (or trickles) mid-body is answered 408 when its time is
up (``CAHUB_BODY_TIMEOUT_S``, 1 s here); one that stops mid-headers is dropped as soon; and
meanwhile signed webhooks are answered, even with more clients stalled than gthread has
threads.
"""

from __future__ import annotations

import importlib.util
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, suppress

import pytest

from integrations.simulate import inbound_call_form, new_call_sid, post_signed
from tests.e2e.gunicorn_process import GunicornProcess
from tests.e2e.hub_process import HubProcess, free_port, hub_environment

AUTH_TOKEN = "bounded-requests-auth-token"
BODY_TIMEOUT_S = 1.0
LIMIT = 65536  # CAHUB_MAX_BODY_BYTES' default
MORE_THAN_THREADS = 70  # gthread serves with 64 threads
SERVERS = ["cahub serve", "gunicorn", "gunicorn gthread"]
GTHREAD = ["--worker-class", "web.gunicorn_conf.ThreadWorker", "--threads", "64"]
HALF_A_REQUEST_LINE = b"POST /twilio/voice HT"


@pytest.fixture(scope="module", params=SERVERS)
def hub(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running hub of each kind: its base URL."""
    workdir = tmp_path_factory.mktemp(request.param.replace(" ", "-"))
    env = hub_environment({"CAHUB_DATA_DIR": str(workdir / "instance"),
                           "CAHUB_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                           "CAHUB_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S)})
    if request.param == "cahub serve":
        server: HubProcess = HubProcess(env, workdir)
    else:
        # gunicorn: the production command, with the shipped configuration's gevent worker
        worker = GTHREAD if request.param.endswith("gthread") else []
        if importlib.util.find_spec("gevent") is None:
            pytest.skip("gevent is not installed (pip install -e '.[serve]')")
        server = GunicornProcess(env, workdir, f"127.0.0.1:{free_port()}", *worker)
    server.start()
    yield server.base_url
    server.stop()


def connect(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def head(length: int | None) -> bytes:
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return ("POST /twilio/voice HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Twilio-Signature: bogus\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\n{framing}\r\n\r\n").encode()


def status_of(sock: socket.socket, timeout: float) -> int | None:
    """The status code the server answered, or None if it answered nothing in time."""
    sock.settimeout(timeout)
    try:
        line = sock.recv(64).split(b"\r\n")[0]
    except TimeoutError:
        return None
    return int(line.split()[1]) if line else None


def test_a_body_announced_over_the_limit_is_refused_before_it_is_sent(hub: str) -> None:
    with connect(hub) as sock:
        sock.sendall(head(200_000_000))

        assert 413 == status_of(sock, 5)


def test_a_chunked_body_is_refused_once_it_passes_the_limit(hub: str) -> None:
    chunk = b"a" * 8192
    with connect(hub) as sock:
        sock.sendall(head(None))
        with suppress(OSError):  # the server may stop reading once it has refused
            for _ in range(LIMIT // len(chunk) + 2):
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))

        assert 413 == status_of(sock, 5)


def test_a_client_that_stops_mid_body_is_answered_408_when_its_time_is_up(hub: str) -> None:
    with connect(hub) as sock:
        started = time.monotonic()
        sock.sendall(head(2000) + b"From=%2B1" + b"0" * 991)

        assert 408 == status_of(sock, 10)
        assert time.monotonic() - started < BODY_TIMEOUT_S + 2


def test_a_client_that_trickles_is_answered_408_when_its_time_is_up(hub: str) -> None:
    with connect(hub) as sock:
        started = time.monotonic()
        sock.sendall(head(2000))
        status = None
        while status is None and time.monotonic() - started < 10:
            sock.sendall(b"0")  # one byte now and then: each read finds something
            status = status_of(sock, 0.2)

        assert 408 == status
        assert time.monotonic() - started < BODY_TIMEOUT_S + 2


def test_a_client_that_stops_mid_headers_is_dropped_when_its_time_is_up(hub: str) -> None:
    with connect(hub) as sock:
        started = time.monotonic()
        sock.sendall(HALF_A_REQUEST_LINE)
        sock.settimeout(10)

        assert b"" == sock.recv(64)  # closed, with nothing to answer
        assert time.monotonic() - started < BODY_TIMEOUT_S + 2


@pytest.mark.parametrize("where", ["body", "headers"])
def test_webhooks_are_answered_while_more_clients_stall_than_there_are_threads(
    hub: str, where: str
) -> None:
    form = inbound_call_form(new_call_sid(), "+14155550134", "+18005550100", "AC" + "0" * 32)
    with ExitStack() as stalled:
        for _ in range(MORE_THAN_THREADS):
            sock = stalled.enter_context(connect(hub))
            sock.sendall(head(2000) + b"From=%2B1" if where == "body" else HALF_A_REQUEST_LINE)
        time.sleep(0.2)
        started = time.monotonic()

        reply = post_signed(f"{hub}/twilio/voice", form, AUTH_TOKEN, timeout=10)

        assert 200 == reply.status_code
        assert time.monotonic() - started < BODY_TIMEOUT_S + 3
