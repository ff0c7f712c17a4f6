"""gunicorn's configuration for the hub in production, as the README's command loads it:

    gunicorn -c python:web.gunicorn_conf --bind 0.0.0.0:5000

- gunicorn's gevent worker (``GeventWorker``): a greenlet per connection, so that each open
  console (a server-sent event stream) holds a greenlet of about 20 KiB rather than one of a
  few dozen threads, and webhooks are answered whatever the number of consoles, up to
  ``worker_connections`` (10,000) connections a worker. The worker raises its open-files
  limit to fit them, and bounds the time a client may take to send a request's headers at
  ``CAHUB_BODY_TIMEOUT_S``, as ``ThreadWorker`` does; the body's time is bounded by the app
  (``web.body_limits``), under any worker.
- gevent's monkey-patching makes ``threading`` cooperative: the hub's background threads
  (the state writer, the dispatcher and its deliveries, the forget poller, the Redis pop
  reader and writer, the body reaper) run as greenlets. SQLite's calls do not yield: its
  connections are kept per OS thread, lent to one greenlet at a time, and wait for a locked
  database with cooperative sleeps (``hub.sqlite_slots``).
- One worker, unless ``CAHUB_REDIS_URL`` is set: without it, pops go through the worker's own
  broker, and a call taken by one worker would not pop on a console held by another. With
  it, a worker per core: pops, rate limits and caches are shared through Redis.
  ``--workers N`` above 1 without Redis is refused.
- ``ThreadWorker`` is gunicorn's gthread worker with the header bound (``--worker-class
  web.gunicorn_conf.ThreadWorker --threads 64``): each console holds one of its threads.
- Every line is masked: gunicorn's error log, its access log (on standard output) and the
  app's own log, which joins the error log's destination at gunicorn's ``--log-level``.
- Before binding, the addresses gunicorn is to listen on are checked (``web.serving``): beyond
  loopback, ``CAHUB_PUBLIC_BASE_URL`` is required.

Settings given on the command line or in ``GUNICORN_CMD_ARGS`` override these.
"""

from __future__ import annotations

import logging
import os
import resource
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import gevent
from gunicorn.glogging import Logger
from gunicorn.workers.ggevent import GeventWorker as GeventBase
from gunicorn.workers.gthread import STOP_KEEPALIVE_LINGER
from gunicorn.workers.gthread import ThreadWorker as GthreadWorker

from hub.privacy import mask_handlers
from hub.settings import Settings
from web.reaper import Reaper
from web.serving import signature_url_problem

OTHER_FILES = 256  # what a worker opens besides its connections: databases, Redis, providers


def _workers() -> int:
    """One worker, or with ``CAHUB_REDIS_URL`` (pops shared between workers) one per core."""
    try:
        redis_url = Settings().redis_url
    except ValueError:
        return 1  # on_starting says what is wrong
    return (os.cpu_count() or 1) if redis_url is not None else 1


wsgi_app = "app:create_app()"
worker_class = "web.gunicorn_conf.GeventWorker"
workers = _workers()
worker_connections = 10_000
# Kept-alive connections (a load balancer's) wait this long for their next request under
# gthread, CAHUB_BODY_TIMEOUT_S under gevent; above 0 either way (see GeventWorker).
keepalive = 5
# On stop, open consoles, which never end by themselves, are ended at once (end_console_streams)
# and reconnect; what else is in flight ends (a webhook takes its lookup deadline at most).
graceful_timeout = 5
accesslog = "-"


def raise_open_files_limit(connections: int, log: Any) -> None:
    """Raise this process's open-files limit to hold ``connections`` and the rest, as far as
    the hard limit allows; say so when it does not."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + OTHER_FILES
    if hard != resource.RLIM_INFINITY and hard < wanted:
        log.warning("the open-files limit (%d) holds about %d connections, not %d: raise it "
                    "(ulimit -n, or LimitNOFILE= in a systemd unit)",
                    hard, max(0, hard - OTHER_FILES), connections)
        wanted = hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


class ThreadWorker(GthreadWorker):  # type: ignore[misc]  # gunicorn ships no type information
    """gunicorn's gthread worker, with the time a client may take to send its headers bounded.

    gthread reads a request's headers in a pool thread, and waits for them for ever: a few
    dozen clients that send half a request line hold every thread, and no webhook is
    answered. Here a connection that has not sent its headers ``CAHUB_BODY_TIMEOUT_S`` after
    a thread took it up (gthread first waits up to 5 s of it for a first byte) has its read
    side shut by a reaper, and gunicorn drops it. (``GeventWorker`` bounds them as long, with a
    gevent timeout.)
    """

    def init_process(self) -> None:
        self.headers_timeout_s = Settings().body_timeout_s
        self.headers_reaper = Reaper()
        super().init_process()  # runs the worker until it exits

    def handle(self, conn: Any) -> Any:
        deadline = time.monotonic() + self.headers_timeout_s
        conn.headers_watch = self.headers_reaper.watch(conn.sock, deadline)
        try:
            return super().handle(conn)
        finally:
            conn.headers_watch.cancel()

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        threading.Thread(target=end_console_streams, args=(self.wsgi,), daemon=True).start()

    def handle_request(self, req: Any, conn: Any) -> Any:
        conn.headers_watch.cancel()  # the headers are in; the body's time is the app's
        keep_alive = super().handle_request(req, conn)
        if keep_alive and not self.alive:  # stopping: closed, see end_console_streams
            with suppress(OSError):  # the response is all sent, nothing more is read: gthread's
                conn.sock.shutdown(socket.SHUT_RD)  # lingering close need not wait for the client
        return keep_alive and self.alive

    def handle_http2(self, conn: Any) -> Any:
        conn.headers_watch.cancel()  # a long-lived connection of streams, which gunicorn bounds
        return super().handle_http2(conn)


class GeventWorker(GeventBase):  # type: ignore[misc]  # gunicorn ships no type information
    """gunicorn's gevent worker: a greenlet per connection, up to ``worker_connections``.

    gunicorn bounds the wait for a request's headers (and for the next request on a kept-alive
    connection) with ``timeout_ctx``, at ``keepalive`` seconds; here it is
    ``CAHUB_BODY_TIMEOUT_S``, as under ``ThreadWorker``. With ``--keepalive 0`` gunicorn reads
    the headers unbounded: keep it above 0.
    """

    def init_process(self) -> None:
        self.headers_timeout_s = Settings().body_timeout_s
        self.connections: dict[Any, Any] = {}  # greenlet -> its client's socket
        self.waiting: set[Any] = set()  # the greenlets waiting for a request's headers
        raise_open_files_limit(self.worker_connections, self.log)
        super().init_process()  # monkey-patches, then runs the worker until it exits

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        self.connections[gevent.getcurrent()] = client
        try:
            super().handle(listener, client, addr)
        finally:
            self.connections.pop(gevent.getcurrent(), None)

    @contextmanager
    def timeout_ctx(self) -> Iterator[None]:
        self.waiting.add(gevent.getcurrent())
        try:
            with gevent.Timeout(self.headers_timeout_s, False):  # silently: the connection closes
                yield
        finally:
            self.waiting.discard(gevent.getcurrent())

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        gevent.spawn(self.stop_serving)  # out of the signal handler: it takes locks

    def stop_serving(self) -> None:
        """End the open console streams at once; then, as gthread does, give the connections
        kept alive ``STOP_KEEPALIVE_LINGER`` (2 s) to bring a request that raced the stop (a
        load balancer's; it is answered, with ``Connection: close``), and close those still
        idle: otherwise each would hold the worker until its graceful timeout."""
        end_console_streams(self.wsgi)
        gevent.sleep(STOP_KEEPALIVE_LINGER)
        for greenlet in list(self.waiting):
            client = self.connections.get(greenlet)
            if client is not None:
                with suppress(OSError):  # its read side shut: it reads no more, and closes
                    client.shutdown(socket.SHUT_RD)

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> None:
        super().handle_request(listener_name, req, sock, addr)
        if not self.alive:  # stopping: see end_console_streams
            raise StopIteration  # gunicorn's way to close the connection


def end_console_streams(wsgi: Any) -> None:
    """A worker told to stop (SIGTERM) ends its open console streams at once, rather than
    hold them until ``graceful_timeout`` cuts them (``web.console.end_streams``). Their
    connections, and any other that finishes a response while the worker stops, are then
    closed rather than kept alive: the browser reconnects through the load balancer to a
    server that stays, not over its idle connection to this one."""
    from web.console import end_streams  # in the worker: the master never imports the app

    end_streams(wsgi)


class MaskedLogger(Logger):  # type: ignore[misc]  # gunicorn ships no type information
    """gunicorn's logger with the hub's masking filter on every handler, the app's log included.

    The error log's lines name their logger, since the app's lines share its handlers.
    """

    error_fmt = r"%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s"

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        root = logging.getLogger()
        if not root.handlers:
            for handler in self.error_log.handlers:
                root.addHandler(handler)
        root.setLevel(self.loglevel)
        for log in (self.error_log, self.access_log, root):
            mask_handlers(log)


logger_class = MaskedLogger


def on_starting(server: Any) -> None:
    """Refuse to serve, before binding, where the settings make it unsafe."""
    try:
        public_base_url = Settings().public_base_url
    except ValueError as exc:
        raise RuntimeError(f"configuration: {exc}") from exc
    # Sockets handed over by systemd are not in the bind list: where they lead is unknown.
    addresses = ["systemd sockets"] if os.environ.get("LISTEN_FDS") else server.cfg.bind
    problem = signature_url_problem(addresses, public_base_url)
    if problem is None and server.cfg.workers > 1 and Settings().redis_url is None:
        problem = (f"{server.cfg.workers} workers need CAHUB_REDIS_URL: without it each has "
                   "its own screen-pop broker, and a call taken by one would not pop on a "
                   "console held by another")
    if problem is not None:
        raise RuntimeError(problem)  # gunicorn prints it in one line and exits with 1
