"""Bounded requests: a body over its route's limit is refused with 413 before a byte of it is
read; a body that does not arrive in time is given up with 408.

These tests speak WSGI through Flask's test client, with input streams that count what is
read from them; tests/e2e/test_bounded_requests.py does the same over real sockets.
"""

from __future__ import annotations

import io
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask, request
from flask.testing import FlaskClient

from app import close_app, create_app
from tests.support import ADA_PHONE, call_form, make_settings, signed_post
from web.body_limits import body_limit
from web.reaper import Reaper

LIMIT = 4096


class CountingStream(io.RawIOBase):
    """A request body of ``size`` bytes that counts how much of it is read."""

    def __init__(self, size: int, stall_after: int | None = None, stall_s: float = 0.0) -> None:
        self.size, self.taken = size, 0
        self.stall_after, self.stall_s = stall_after, stall_s

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        if self.stall_after is not None and self.taken >= self.stall_after:
            time.sleep(self.stall_s)  # a client that sends nothing more for a while
            self.stall_after = None
        count = min(len(buffer), self.size - self.taken, 1024)
        buffer[:count] = b"a" * count
        self.taken += count
        return count


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    application = create_app(make_settings(tmp_path, max_body_bytes=LIMIT, body_timeout_s=0.5))

    @application.post("/test/bulk")
    @body_limit(LIMIT * 16)
    def bulk() -> str:
        return str(len(request.get_data()))

    @application.post("/test/echo")
    def echo() -> str:
        return str(len(request.get_data()))

    yield application
    close_app(application)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def post(client: FlaskClient, path: str, body: CountingStream, *, chunked: bool = False,
         content_type: str = "application/x-www-form-urlencoded") -> tuple[int, str]:
    """POST ``body`` with its Content-Length, or chunked (no length; the server ends it)."""
    framing = ({"HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input_terminated": True} if chunked
               else {"CONTENT_LENGTH": str(body.size)})
    response = client.post(path, content_type=content_type,
                           environ_overrides={"wsgi.input": body, **framing})
    return response.status_code, response.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/twilio/voice", "/twilio/status", "/console", "/test/echo"])
def test_a_body_over_the_limit_is_refused_before_a_byte_is_read(
    client: FlaskClient, path: str
) -> None:
    body = CountingStream(200_000_000)

    status, _ = post(client, path, body)

    assert (413, 0) == (status, body.taken)


def test_a_chunked_body_is_refused_once_it_passes_the_limit(client: FlaskClient) -> None:
    body = CountingStream(200_000_000)

    status, _ = post(client, "/test/echo", body, chunked=True)

    assert 413 == status
    assert body.taken <= LIMIT + 1024


def test_a_body_within_the_limit_is_read(client: FlaskClient) -> None:
    assert (200, str(LIMIT)) == post(client, "/test/echo", CountingStream(LIMIT))


def test_a_route_may_take_a_larger_body_than_the_others(client: FlaskClient) -> None:
    size = LIMIT * 8

    assert (200, str(size)) == post(client, "/test/bulk", CountingStream(size))
    assert 413 == post(client, "/test/echo", CountingStream(size))[0]
    assert 413 == post(client, "/test/bulk", CountingStream(LIMIT * 16 + 1))[0]


def test_a_body_that_stops_arriving_is_given_up_with_408(client: FlaskClient) -> None:
    body = CountingStream(2048, stall_after=1024, stall_s=1.0)

    started = time.monotonic()
    status, _ = post(client, "/test/echo", body)

    assert 408 == status
    assert time.monotonic() - started < 1.5


def test_a_signed_webhook_of_the_usual_size_is_answered(client: FlaskClient) -> None:
    response = signed_post(client, "/twilio/voice", call_form("CA" + "e" * 32, ADA_PHONE))

    assert 200 == response.status_code


def test_the_reaper_ends_a_read_blocked_at_its_deadline() -> None:
    server, client = socket.socketpair()
    with server, client:
        Reaper().watch(server, time.monotonic() + 0.2)

        started = time.monotonic()
        data = server.recv(10)  # the client sends nothing

        assert b"" == data
        assert 0.15 < time.monotonic() - started < 2


def test_the_reaper_leaves_a_cancelled_watch_alone() -> None:
    server, client = socket.socketpair()
    with server, client:
        Reaper().watch(server, time.monotonic() + 0.1).cancel()
        time.sleep(0.3)
        client.sendall(b"next request")

        assert b"next request" == server.recv(20)
