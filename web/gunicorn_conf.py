"""gunicorn's configuration for the hub in production, as the README's command loads it:

    gunicorn -c python:web.gunicorn_conf --bind 0.0.0.0:5000

- One process with many threads: the console streams hold a thread each, and the screen-pop
  broker is in process. The worker is gunicorn's gthread with the time a client may take to
  send a request's headers bounded (``ThreadWorker``); the body's time is bounded by the app
  (``web.body_limits``), under any worker.
- Every line is masked: gunicorn's error log, its access log (on standard output) and the
  app's own log, which joins the error log's destination at gunicorn's ``--log-level``.
- Before binding, the addresses gunicorn is to listen on are checked (``web.serving``): beyond
  loopback, ``CAHUB_PUBLIC_BASE_URL`` is required.

Settings given on the command line or in ``GUNICORN_CMD_ARGS`` override these.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from gunicorn.glogging import Logger
from gunicorn.workers.gthread import ThreadWorker as GthreadWorker

from hub.privacy import mask_handlers
from hub.settings import Settings
from web.reaper import Reaper
from web.serving import signature_url_problem

wsgi_app = "app:create_app()"
worker_class = "web.gunicorn_conf.ThreadWorker"
workers = 1
threads = 64
accesslog = "-"


class ThreadWorker(GthreadWorker):  # type: ignore[misc]  # gunicorn ships no type information
    """gunicorn's gthread worker, with the time a client may take to send its headers bounded.

    gthread reads a request's headers in a pool thread, and waits for them for ever: a few
    dozen clients that send half a request line hold every thread, and no webhook is
    answered. Here a connection that has not sent its headers ``CAHUB_BODY_TIMEOUT_S`` after
    a thread took it up (gthread first waits up to 5 s of it for a first byte) has its read
    side shut by a reaper, and gunicorn drops it. (The gevent worker bounds the headers itself,
    at ``keepalive``.)
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

    def handle_request(self, req: Any, conn: Any) -> Any:
        conn.headers_watch.cancel()  # the headers are in; the body's time is the app's
        return super().handle_request(req, conn)

    def handle_http2(self, conn: Any) -> Any:
        conn.headers_watch.cancel()  # a long-lived connection of streams, which gunicorn bounds
        return super().handle_http2(conn)


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
    if problem is not None:
        raise RuntimeError(problem)  # gunicorn prints it in one line and exits with 1
