"""Bounded requests: a body over its route's limit is refused with 413 before a byte of it is
read, and a body that has not arrived in its time is given up with 408.

Twilio's webhooks and the console's requests are a few kilobytes: ``CAHUB_MAX_BODY_BYTES``
bounds every body and ``CAHUB_BODY_TIMEOUT_S`` the time it may take to arrive, counted from
the request's start. A route that needs more (a bulk load) says so with ``@body_limit``.

The size: a Content-Length over the limit is refused at once; a chunked body (no length) as
soon as more than the limit has arrived. (Werkzeug's own ``max_content_length`` would cut a
chunked body short at the limit and hand the truncated part on as if it were all.)

The time: a stalled client blocks the reader in the socket's ``recv``, whether the reader is
a gthread worker's thread, a gevent worker's greenlet or the development server's thread.
At the deadline, ``Reaper`` shuts the read side of that socket (the server's own, which
gunicorn and werkzeug put in the WSGI environ): the ``recv`` returns the end of the stream at
once, so a client that trickles a byte now and then is cut off as surely as one that stops.
The read then fails with 408, and the server closes the connection. A server that does not
expose its socket gets the deadline checked between reads only.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any, TypeVar

from flask import Flask, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge, RequestTimeout

from hub.settings import Settings
from web.reaper import Reaper, Watch

View = TypeVar("View", bound=Callable[..., Any])
LIMIT_ATTRIBUTE = "cahub_body_limit"
SERVER_SOCKETS = ("gunicorn.socket", "werkzeug.socket")
WATCH_KEY = "cahub.body_watch"
REAPER_KEY = "cahub_reaper"


@dataclass(frozen=True)
class BodyLimit:
    """How large a request body may be, and how long it may take to arrive."""

    max_bytes: int
    timeout_s: float


MaxBytes = int | Callable[[Settings], int]


class BodyTooLarge(RequestEntityTooLarge):
    """413, with the error code ``body_too_large`` in the JSON error shape."""

    name = "Body Too Large"


def body_limit(max_bytes: MaxBytes, timeout_s: float | None = None) -> Callable[[View], View]:
    """Give a view a body limit of its own, instead of ``CAHUB_MAX_BODY_BYTES`` (and, if
    given, a time of its own instead of ``CAHUB_BODY_TIMEOUT_S``). ``max_bytes`` may read
    a setting: ``body_limit(lambda settings: settings.ingest_max_body_bytes)``."""

    def mark(view: View) -> View:
        setattr(view, LIMIT_ATTRIBUTE, (max_bytes, timeout_s))
        return view

    return mark


def init_app(app: Flask, settings: Settings) -> None:
    """Bound every request's body: the check runs before any other hook can read it."""
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.extensions[REAPER_KEY] = Reaper()
    default = BodyLimit(settings.max_body_bytes, settings.body_timeout_s)
    app.before_request_funcs.setdefault(None, []).insert(
        0, lambda: _bound_body(default, settings))
    app.teardown_request(_end_watch)


def _bound_body(default: BodyLimit, settings: Settings) -> None:
    limit = _route_limit(default, settings)
    if request.content_length is not None and request.content_length > limit.max_bytes:
        raise _too_large(limit.max_bytes)
    # One byte more than the limit, so that a chunked body's reader asks for the byte that
    # shows the body is too large, and ``BoundedInput`` refuses it.
    request.max_content_length = limit.max_bytes + 1
    environ = request.environ
    sock = next((environ[key] for key in SERVER_SOCKETS if key in environ), None)
    environ["wsgi.input"] = BoundedInput(environ["wsgi.input"], limit.max_bytes, sock,
                                         time.monotonic() + limit.timeout_s, environ)


def _route_limit(default: BodyLimit, settings: Settings) -> BodyLimit:
    view = current_app.view_functions.get(request.endpoint or "")
    own: tuple[MaxBytes, float | None] | None = getattr(view, LIMIT_ATTRIBUTE, None)
    if own is None:
        return default
    max_bytes, timeout_s = own
    return BodyLimit(max_bytes if isinstance(max_bytes, int) else max_bytes(settings),
                     timeout_s if timeout_s is not None else default.timeout_s)


def _end_watch(_: BaseException | None) -> None:
    watch: Watch | None = request.environ.pop(WATCH_KEY, None)
    if watch is not None:
        watch.cancel()


class BoundedInput:
    """``wsgi.input`` that fails with 413 past ``max_bytes`` and with 408 past ``deadline``."""

    def __init__(self, stream: IO[bytes], max_bytes: int, sock: socket.socket | None,
                 deadline: float, environ: dict[str, Any]) -> None:
        self._stream, self._left = stream, max_bytes
        self._max_bytes = max_bytes
        self._sock, self._deadline, self._environ = sock, deadline, environ

    def read(self, size: int = -1) -> bytes:
        return self._timed(self._stream.read, size)

    def readline(self, size: int = -1) -> bytes:
        return self._timed(self._stream.readline, size)

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines, taken = [], 0
        while (line := self.readline()) and (hint <= 0 or taken < hint):
            lines.append(line)
            taken += len(line)
        return lines

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line

    def _timed(self, read: Callable[[int], bytes], size: int) -> bytes:
        if self._late():
            raise _late()
        self._watch()
        try:
            data = read(size)
        except OSError as exc:  # the socket shut under the read, or the client left
            if self._late():
                raise _late() from exc
            raise
        if self._late():  # what came after the deadline (or the end the reaper made) is late
            raise _late()
        self._left -= len(data)
        if self._left < 0:
            raise _too_large(self._max_bytes)
        return data

    def _late(self) -> bool:
        return time.monotonic() >= self._deadline

    def _watch(self) -> None:
        """Have the reaper watch this request's socket, from the first read on."""
        if self._sock is not None and WATCH_KEY not in self._environ:
            reaper: Reaper = current_app.extensions[REAPER_KEY]
            self._environ[WATCH_KEY] = reaper.watch(self._sock, self._deadline)


def _too_large(max_bytes: int) -> BodyTooLarge:
    return BodyTooLarge(f"The request body is larger than this endpoint takes "
                                 f"({max_bytes} bytes).")


def _late() -> RequestTimeout:
    return RequestTimeout("The request body did not arrive in time.")
