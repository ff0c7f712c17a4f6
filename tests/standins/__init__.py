"""Local stand-ins for the remote services the hub talks to, served on 127.0.0.1.

Each stand-in is a small Flask app speaking the documented shapes of one vendor's
API, served by werkzeug in a thread (``with AdobeStandIn(...) as adobe:`` gives
``adobe.base_url``). A test can slow it down (``standin.latency = 0.5``, seconds, or
``standin.latencies["token"]`` for one kind of request), make the next requests fail
(``standin.fail_next(2, status=503)``, ``status=429``, ``hang=True`` for a timeout;
``stop_failing()`` forgets those still to come), and
count what it was asked (``standin.counts["lookup"]``). Every request is recorded with
its raw path, so tests can check how values were encoded.
"""

from __future__ import annotations

import math
import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from flask import Flask, Response, request
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

HANG_SECONDS = 5.0  # how long a "timeout" failure holds a request (clients give up first)


class QuietRequestHandler(WSGIRequestHandler):
    """No access log lines in the test output."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


@dataclass(frozen=True)
class Failure:
    """One injected failure: an HTTP status, or a request that hangs (a timeout)."""

    status: int = 500
    hang: bool = False
    retry_after_ms: int | None = None
    kinds: frozenset[str] | None = None  # None: any kind of request

    def applies_to(self, kind: str) -> bool:
        return self.kinds is None or kind in self.kinds


@dataclass(frozen=True)
class Recorded:
    """A request as the stand-in saw it."""

    kind: str
    method: str
    raw_path: str
    args: dict[str, str]
    headers: dict[str, str]
    form: dict[str, str] = field(default_factory=dict)


class StandIn:
    """Serves ``self.app`` on 127.0.0.1 with latency, failure injection and counters.

    Subclasses build ``self.app``; each route's endpoint name is its kind of request.
    """

    HELD_KIND = ""  # what ``hold_next`` holds unless told

    def __init__(self) -> None:
        self.app = Flask(type(self).__name__)
        self.app.before_request(self._before_request)
        self.latency = 0.0
        self.latencies: dict[str, float] = {}
        self.counts: Counter[str] = Counter()
        self.requests: list[Recorded] = []
        self.base_url = ""
        self.throttled = 0  # 429s answered
        self.holds_started = 0
        self._holds: Counter[str] = Counter()
        self._hold_seconds = 0.0
        self._failures: deque[Failure] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def fail_next(self, count: int = 1, *, status: int = 500, hang: bool = False,
                  retry_after_ms: int | None = None, kinds: tuple[str, ...] | None = None) -> None:
        """Make the next ``count`` requests (of ``kinds``, if given) fail."""
        failure = Failure(status, hang, retry_after_ms, frozenset(kinds) if kinds else None)
        with self._lock:
            self._failures.extend([failure] * count)

    def stop_failing(self) -> None:
        """Forget the failures ``fail_next`` asked for that have not happened yet."""
        with self._lock:
            self._failures.clear()

    def hold_next(self, count: int = 1, seconds: float = 30.0, kind: str = "") -> None:
        """The next ``count`` requests of ``kind`` (the subclass's main write, by default)
        do their work, then hold their answer ``seconds`` or until the stand-in stops."""
        with self._lock:
            self._holds[kind or self.HELD_KIND] += count
            self._hold_seconds = seconds

    def hold(self, kind: str) -> None:
        """Where a request of ``kind`` has done its work: hold its answer if asked to."""
        with self._lock:
            held = self._holds[kind] > 0
            if held:
                self._holds[kind] -= 1
                self.holds_started += 1
        if held:
            self._stopping.wait(self._hold_seconds)

    def throttle(self, response: Response, retry_after_ms: int | None) -> Response:
        """``response``, a 429, counted and with the ``Retry-After`` of ``retry_after_ms``."""
        with self._lock:
            self.throttled += 1
        if retry_after_ms is not None:
            response.headers["Retry-After"] = str(math.ceil(retry_after_ms / 1000))
        return response

    def count(self, kind: str) -> None:
        """Count one request of ``kind`` (for kinds finer than the route's)."""
        with self._lock:
            self.counts[kind] += 1

    def error_response(self, status: int, retry_after_ms: int | None) -> Response:
        """The vendor's error body for an injected failure (subclasses override)."""
        return Response(status=status)

    def __enter__(self) -> Self:
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True,
                                   request_handler=QuietRequestHandler)
        self.base_url = f"http://127.0.0.1:{self._server.port}"
        self._thread = threading.Thread(target=self._server.serve_forever,
                                         kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._stopping.set()  # wakes requests sleeping or hanging
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _before_request(self) -> Response | None:
        kind = request.endpoint or "unknown"
        with self._lock:
            self.counts[kind] += 1
            self.requests.append(_recorded(kind))
            failure = self._take_failure(kind)
        self._stopping.wait(self.latencies.get(kind, self.latency))
        if failure is None:
            return None
        if failure.hang:
            self._stopping.wait(HANG_SECONDS)
        return self.error_response(failure.status, failure.retry_after_ms)

    def _take_failure(self, kind: str) -> Failure | None:
        for failure in self._failures:
            if failure.applies_to(kind):
                self._failures.remove(failure)
                return failure
        return None


def _recorded(kind: str) -> Recorded:
    environ: dict[str, Any] = request.environ
    raw = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or request.full_path)
    return Recorded(kind=kind, method=request.method, raw_path=raw,
                    args=dict(request.args.items()), headers=dict(request.headers.items()),
                    form=dict(request.form.items()))
