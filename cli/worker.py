"""``cahub worker``: deliveries (CRM notes, SMS, call logs) worked off apart from the web servers.

It runs the outbox's dispatcher, with no HTTP, until SIGTERM or SIGINT. Any number of
workers (and servers) may share one outbox: with ``CAHUB_DATABASE_URL`` each claims its
rows with ``SKIP LOCKED``; on SQLite they share the data directory of one host.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType

import click

from app import close_app, services
from cli.command_app import command_app

log = logging.getLogger(__name__)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
STOP_GRACE_S = 5.0  # how long running deliveries get to end after a stop signal


@click.command()
def worker() -> None:
    """Make deliveries, without serving HTTP, until SIGTERM or SIGINT.

    On a stop, each running delivery gets a few seconds to end; those not yet started go
    back to the outbox, due now, and one still running after that stays leased and is
    retried after its lease by any worker or server. Nothing is lost.
    """
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("worker: %s received, stopping", signal.Signals(signum).name)
        stop.set()

    for signum in STOP_SIGNALS:
        signal.signal(signum, request_stop)
    app = command_app(start_background=False)
    hub = services(app)
    hub.guard.start()  # a forget cancels the deliveries this worker has in hand
    dispatcher = hub.dispatcher
    dispatcher.start()
    log.info("worker: making deliveries until SIGTERM or SIGINT")
    while not stop.wait(1.0):  # wakes now and then, so signals are seen on every platform
        pass
    if not dispatcher.stop(STOP_GRACE_S):
        # A request still hanging would hold the exit until its timeout: its row stays
        # leased in the outbox, so leave now.
        log.warning("worker: a delivery still running stays leased; it is retried later")
        hub.guard.stop()  # nothing more is made here: no forget need wait for this process
        logging.shutdown()
        os._exit(0)
    close_app(app)
