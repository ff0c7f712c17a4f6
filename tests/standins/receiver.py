"""A webhook receiver on 127.0.0.1 that records each delivery it is sent, and can hold them.

It answers the hub's webhook sink: every POST is recorded as ``(path, Idempotency-Key,
arrival time)``. Pointing each hub process at its own path (``/a``, ``/b``) tells which
process made which delivery. ``hold`` keeps the answer to requests on the given paths
back (a far end that never answers), so a process can be killed mid-delivery; while
``refusing`` is set, every request is answered 503 (a far end that is down), recorded with
that status, so that ``accepted`` lists only the deliveries it took.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self


@dataclass(frozen=True)
class Received:
    path: str
    key: str
    at: float  # time.monotonic() of the request's arrival
    status: int = 204  # the answer it was given


@dataclass
class WebhookReceiver:
    pause: float = 0.0  # seconds each answer takes
    hold: set[str] = field(default_factory=set)  # paths whose requests get no answer
    refusing: bool = False  # answer every request 503
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock, self._release = threading.Lock(), threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def keys(self, path: str | None = None) -> list[str]:
        with self._lock:
            return [r.key for r in self.received if path is None or r.path == path]

    def accepted(self, path: str | None = None) -> list[str]:
        """The keys of the requests answered 2xx (those refused are left out)."""
        with self._lock:
            return [r.key for r in self.received
                    if (path is None or r.path == path) and r.status < 300]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = 503 if receiver.refusing else 204
                with receiver._lock:
                    receiver.received.append(Received(self.path, self.headers["Idempotency-Key"],
                                                      time.monotonic(), status))
                if self.path in receiver.hold:
                    receiver._release.wait(30)
                time.sleep(receiver.pause)
                self.send_response(status)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return None

        return Handler

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
