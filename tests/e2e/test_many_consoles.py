"""End to end: the production command (``gunicorn -c python:web.gunicorn_conf``, gevent's
worker) keeps hundreds of consoles open, more than gthread's 64 threads, while signed
webhooks are answered at once and pop on every console; alone (one worker, the in-process
broker, SQLite) and on Redis and PostgreSQL (a worker per core, pops through Redis).

The consoles are real event streams of a signed-in agent, read by one selector in this
process; the server is real gunicorn with the shipped configuration.
"""

from __future__ import annotations

import resource
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from integrations.simulate import inbound_call_form, new_call_sid, post_signed
from lookup.demo import DEMO_CALLER
from tests.e2e.consoles import TO, Consoles, console_cookie, demo_hub
from tests.e2e.gunicorn_process import GunicornProcess
from tests.e2e.hub_process import free_port, hub_environment, wait_for

pytestmark = pytest.mark.slow

CONSOLES = 300  # gthread's production command answered nothing past 63
CALLS = 10
ANSWER_S = 1.0  # each webhook's answer, with every console open
POP_S = 5.0  # each call's pop on every console
AUTH_TOKEN = "many-consoles-auth-token"


@pytest.fixture(autouse=True)
def _enough_open_files() -> None:
    """This process holds every console's socket."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = CONSOLES * 2 + 256
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))


@pytest.fixture(params=["alone", "redis and postgres"])
def hub(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[GunicornProcess]:
    """The hub under the production command, on the demo data."""
    settings = demo_hub(tmp_path, AUTH_TOKEN)
    if request.param != "alone":
        settings |= {"CAHUB_REDIS_URL": request.getfixturevalue("redis_server"),
                     "CAHUB_REDIS_PREFIX": request.getfixturevalue("redis_prefix"),
                     "CAHUB_DATABASE_URL": request.getfixturevalue("postgres_url")}
    server = GunicornProcess(hub_environment(settings), tmp_path, f"127.0.0.1:{free_port()}")
    server.start()
    yield server
    server.stop()


def test_hundreds_of_open_consoles_leave_webhooks_answered_at_once_and_popping_on_each(
        hub: GunicornProcess) -> None:
    consoles = Consoles(hub.base_url, console_cookie(hub.base_url), CONSOLES)
    try:
        wait_for(lambda: consoles.read_for(0.1) or consoles.open() == CONSOLES, 15,
                 f"{CONSOLES} consoles to open", lambda: f"{consoles.open()} open")
        answered, sids = [], []
        with requests.Session() as twilio:
            for _ in range(CALLS):
                sid = new_call_sid()
                form = inbound_call_form(sid, DEMO_CALLER, TO, "AC" + "0" * 32)
                started = time.monotonic()
                reply = post_signed(f"{hub.base_url}/twilio/voice", form, AUTH_TOKEN,
                                    session=twilio, timeout=10)
                answered.append((reply.status_code, time.monotonic() - started,
                                 ET.fromstring(reply.text).findtext("Dial/Client/Identity")))
                sids.append(sid)
                consoles.read_for(0.05)
        wait_for(lambda: consoles.read_for(0.1) or all(
                 consoles.that_got(sid) == CONSOLES for sid in sids), POP_S,
                 "every call to pop on every console",
                 lambda: f"pops: {[consoles.that_got(sid) for sid in sids]}\n{hub.logs()[-3000:]}")
        still_open = consoles.open()
    finally:
        consoles.close()

    assert [(200, "grace")] * CALLS == [(status, who) for status, _, who in answered]
    assert max(took for _, took, _ in answered) < ANSWER_S, answered
    assert CONSOLES == still_open
