"""Two hub servers behind a real nginx, sharing Redis and PostgreSQL, as the README's
"Running several servers" has them (issue 11, items 6 and 7).

Each server is a gunicorn master started with the README's production command
(``gunicorn -c python:web.gunicorn_conf --bind 127.0.0.1:PORT``) on a port of its own, as two
hosts would be, with data directories of their own (each its embedded profile store) and the
same ``CAHUB_REDIS_URL``, ``CAHUB_DATABASE_URL`` and ``CAHUB_SECRET_KEY``. nginx runs the
shipped ``deploy/nginx.conf`` (``tests/e2e/nginx_process.py`` renders its addresses and
paths); HAProxy runs the shipped ``deploy/haproxy.cfg`` in front of the same two, for its
active checks of ``/healthz``. Redis and PostgreSQL are servers of this module's own
(``private_redis``, ``private_postgres``), so that they can be restarted; the shared ones
are never touched. The first server reaches PostgreSQL through a proxy the test can cut, as
a host that loses its network to the database while the others keep theirs. The
CRM (a signed webhook) and Twilio's Messages API (the SMS to the rep) are stand-ins on
127.0.0.1 that count what they accepted, per CallSid.

The servers are shared by the module's tests; the last one kills one of them and starts it
again.
"""

from __future__ import annotations

import re
import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from integrations.simulate import inbound_call_form, new_call_sid
from integrations.twilio import sign
from tests.backends import (
    PrivatePostgres,
    PrivateRedis,
    TcpProxy,
    running_private_postgres,
    running_private_redis,
)
from tests.e2e.gunicorn_process import GunicornProcess
from tests.e2e.hub_process import free_port, hub_environment, run_cahub, wait_for
from tests.e2e.load_balancers import Haproxy, Nginx, binary
from tests.e2e.sse_console import ConsoleSession, EventStream
from tests.standins.receiver import WebhookReceiver
from tests.standins.twilio import TwilioStandIn

pytestmark = pytest.mark.slow

AUTH_TOKEN = "several-servers-auth-token-0123"
ACCOUNT_SID = "AC" + "7d" * 16
AGENT_NUMBER = "+18005550100"
SMS_FROM = "+18005550123"
REP = "+14155550199"
CALLER = "+14155550134"
CONSOLE_TOKEN = "grace-console-token-several"
API_KEY = "several-servers-api-key"
LEASE_S = 2  # a killed server's delivery in flight is taken over this long after its claim
POP_S = 10.0  # bound on every wait for a pop
SETTLE_S = 30.0  # bound on every wait for deliveries
HEALTH_BOUND_S = 2.5  # /healthz answers within this, whatever the database does
CONFIG = f"""
[[agents]]
id = "grace"
name = "Grace Hopper"
client = "grace"
numbers = ["{AGENT_NUMBER}"]
sms = "{REP}"
token = "{CONSOLE_TOKEN}"
"""
PROFILE = ('{"identityMap": {"Phone": [{"id": "(415) 555-0134", "primary": true}]}, '
           '"person": {"name": {"firstName": "Ada", "lastName": "Lovelace"}}, '
           '"loyalty": {"tier": "gold"}}\n')
SMS_KINDS = ("messages_list", "messages_create")


@dataclass
class Cluster:
    servers: tuple[GunicornProcess, GunicornProcess]
    nginx: Nginx
    haproxy: Haproxy
    database_link: TcpProxy  # the first server's way to PostgreSQL
    redis: PrivateRedis
    postgres: PrivatePostgres
    crm: WebhookReceiver
    twilio: TwilioStandIn
    console: ConsoleSession

    def explain(self) -> str:
        return "\n".join([*(f"--- server {n} ---\n{s.logs()[-6000:]}"
                            for n, s in enumerate(self.servers)), self.nginx.logs()[-4000:],
                          self.haproxy.logs()[-4000:],
                          f"crm: {self.crm.received}", f"sms: {len(self.twilio.messages)}"])

    def answered_by(self) -> list[str]:
        """The server (``host:port``) nginx passed each voice webhook to, in order."""
        return [re.search(r"upstream=(\S+)", line).group(1)  # type: ignore[union-attr]
                for line in self.nginx.access_lines() if '"POST /twilio/voice"' in line]

    def haproxy_answered_by(self) -> list[str]:
        """The server (``one``, ``two-backup``...) HAProxy passed each voice webhook to."""
        return [re.search(r"backend=cahub/(\S+)", line).group(1)  # type: ignore[union-attr]
                for line in self.haproxy.access_lines() if '"POST /twilio/voice"' in line]

    def call(self, via: str | None = None) -> str:
        """Twilio's "a call comes in" webhook, through nginx (or ``via``, another load
        balancer's URL), signed for the hub's public URL; the call must be answered by
        dialling the agent. Its CallSid."""
        call_sid = new_call_sid()
        form = inbound_call_form(call_sid, CALLER, AGENT_NUMBER, ACCOUNT_SID)
        signature = sign(AUTH_TOKEN, f"{self.nginx.base_url}/twilio/voice", form)
        reply = requests.post(f"{via or self.nginx.base_url}/twilio/voice", data=form,
                              timeout=15, headers={"X-Twilio-Signature": signature})
        assert 200 == reply.status_code, reply.text
        assert "grace" == ET.fromstring(reply.text).findtext("Dial/Client/Identity"), reply.text
        return call_sid

    def notes(self) -> Counter[str]:
        """The CRM notes the stand-in accepted, per CallSid."""
        return Counter(key.split(":")[0] for key in self.crm.accepted("/crm"))

    def sms(self) -> Counter[str]:
        """The SMS the Twilio stand-in accepted, per CallSid reference (its last 6 chars)."""
        return Counter(re.findall(r"Ref (\w{6})", message["body"])[-1]
                       for message in list(self.twilio.messages))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    programs = {name: binary(name) for name in ("nginx", "haproxy")}
    for name, program in programs.items():
        if program is None:
            pytest.skip(f"{name} is not installed (apt-get install {name})")
    workdir = tmp_path_factory.mktemp("several-servers")
    (workdir / "hub.toml").write_text(CONFIG)
    (workdir / "profiles.jsonl").write_text(PROFILE)
    homes = [workdir / name for name in ("one", "two")]
    for home in homes:
        home.mkdir()

    with (running_private_postgres() as postgres,
          running_private_redis(workdir) as redis, WebhookReceiver() as crm,
          TwilioStandIn(ACCOUNT_SID, AUTH_TOKEN) as twilio):
        # The profile store every server shares: in the database (CAHUB_DATABASE_URL).
        run_cahub(["ingest", "profiles", str(workdir / "profiles.jsonl")],
                  hub_environment({"CAHUB_DATA_DIR": str(homes[0] / "data"),
                                   "CAHUB_DATABASE_URL": postgres.url}), workdir)
        binds = [f"127.0.0.1:{free_port()}" for _ in range(2)]
        nginx = Nginx(str(programs["nginx"]), binds, workdir / "nginx")
        haproxy = Haproxy(str(programs["haproxy"]), binds, workdir / "haproxy")
        database_link = TcpProxy(("127.0.0.1", postgres.port))
        shared = {
            "CAHUB_REDIS_URL": redis.url,
            "CAHUB_SECRET_KEY": "several-servers-secret", "CAHUB_PUBLIC_BASE_URL": nginx.base_url,
            "CAHUB_PROXY_HOPS": "1", "CAHUB_CONFIG": str(workdir / "hub.toml"),
            "CAHUB_API_KEYS": API_KEY, "CAHUB_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "CAHUB_TWILIO_ACCOUNT_SID": ACCOUNT_SID, "CAHUB_TWILIO_BASE_URL": twilio.base_url,
            "CAHUB_SMS_FROM": SMS_FROM, "CAHUB_CRM": "webhook",
            "CAHUB_WEBHOOK_URL": crm.url("/crm"), "CAHUB_WEBHOOK_SECRET": "crm-secret",
            "CAHUB_OUTBOX_LEASE_S": str(LEASE_S), "CAHUB_SINK_TIMEOUT_S": "2",
        }
        database_urls = (postgres.url.replace(f":{postgres.port}/", f":{database_link.port}/"),
                         postgres.url)
        servers = []
        for home, bind, database_url in zip(homes, binds, database_urls, strict=True):
            # A home of its own, as on its own host (gunicorn's control socket is kept there).
            env = hub_environment({**shared, "CAHUB_DATA_DIR": str(home / "data"),
                                   "CAHUB_DATABASE_URL": database_url}) | {"HOME": str(home)}
            servers.append(GunicornProcess(env, home, bind))
        try:
            in_parallel(*(server.start for server in servers))
            nginx.start()
            haproxy.start()
            console = ConsoleSession(nginx.base_url, CONSOLE_TOKEN)
            yield Cluster((servers[0], servers[1]), nginx, haproxy, database_link, redis,
                          postgres, crm, twilio, console)
        finally:
            in_parallel(nginx.stop, haproxy.stop, *(server.stop for server in servers))
            database_link.close()


def in_parallel(*actions: Callable[[], object]) -> None:
    """Run ``actions`` in threads of their own; raise the first failure."""
    failures: list[BaseException] = []

    def run(action: Callable[[], object]) -> None:
        try:
            action()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(action,)) for action in actions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


def healthz(server: GunicornProcess) -> tuple[int, dict[str, object], float]:
    """A load balancer's health check of ``server``: status, body, seconds it took."""
    started = time.perf_counter()
    reply = requests.get(server.url("/healthz"), timeout=10)
    return reply.status_code, reply.json(), time.perf_counter() - started


@pytest.fixture
def consoles(cluster: Cluster) -> Iterator[tuple[EventStream, EventStream]]:
    """The agent's console open on each server, directly."""
    streams = tuple(cluster.console.stream(server.base_url) for server in cluster.servers)
    yield streams[0], streams[1]
    for stream in streams:
        stream.close()


def test_a_call_answered_by_one_server_pops_on_a_console_connected_to_the_other(
        cluster: Cluster, consoles: tuple[EventStream, EventStream]) -> None:
    addresses = [server.base_url.removeprefix("http://") for server in cluster.servers]
    answered: dict[str, str] = {}
    while len(set(answered.values())) < 2:
        assert len(answered) < 8, f"nginx sent every call to one server: {answered}\n" \
            f"{cluster.explain()}"
        before = len(cluster.answered_by())
        call_sid = cluster.call()
        wait_for(lambda n=before: len(cluster.answered_by()) > n, 5, "nginx's access line",
                 cluster.explain)
        answered[call_sid] = cluster.answered_by()[-1]

    for call_sid, address in answered.items():
        other = consoles[1 - addresses.index(address)]
        assert call_sid in other.wait_for_pops([call_sid], POP_S), cluster.explain()
    for console in consoles:
        # Each server publishes in the background: pops of calls taken by two servers reach
        # Redis, and the consoles, in either order.
        assert set(answered) == set(console.wait_for_pops(list(answered), POP_S)), \
            cluster.explain()


def test_a_console_reconnecting_through_the_other_server_with_last_event_id_misses_nothing(
        cluster: Cluster) -> None:
    first = cluster.console.stream(cluster.servers[0].base_url)
    seen = cluster.call()
    assert [seen] == first.wait_for_pops([seen], POP_S)
    last_event_id = first.pops()[-1].id
    first.close()  # the browser loses its connection

    missed = [cluster.call() for _ in range(3)]
    again = cluster.console.stream(cluster.servers[1].base_url, last_event_id=last_event_id)
    try:
        assert set(missed) == set(again.wait_for_pops(missed, POP_S)), cluster.explain()
    finally:
        again.close()


@pytest.mark.parametrize("balancer", ["nginx", "haproxy"])
def test_a_console_through_the_load_balancer_pops_at_once(cluster: Cluster,
                                                          balancer: str) -> None:
    """Its stream is passed on as each event is written, never held in a buffer."""
    proxy = cluster.nginx if balancer == "nginx" else cluster.haproxy
    console = cluster.console.stream(proxy.base_url)
    try:
        call_sid = cluster.call()
        assert call_sid in console.wait_for_pops([call_sid], 2.0), cluster.explain()
    finally:
        console.close()


@pytest.mark.parametrize("balancer", ["nginx", "haproxy"])
def test_the_access_log_carries_no_personal_data_and_no_secret(cluster: Cluster,
                                                               balancer: str) -> None:
    proxy = cluster.nginx if balancer == "nginx" else cluster.haproxy
    lookup = requests.get(proxy.url("/api/v1/lookup?phone=%2B14155550134"), timeout=10,
                          headers={"Authorization": f"Bearer {API_KEY}"})
    stale_link = requests.get(proxy.url(f"/console?token={CONSOLE_TOKEN}"), timeout=10)
    cluster.call(via=proxy.base_url)
    assert (200, "Ada Lovelace", 200) == (lookup.status_code, lookup.json()["name"],
                                          stale_link.status_code)

    lines = ('"GET /api/v1/lookup" 200', '"GET /console" 200', '"POST /twilio/voice" 200')
    wait_for(lambda: all(line in "\n".join(proxy.access_lines()) for line in lines),
             5, "the access lines", cluster.explain)  # each is written once its answer went
    log = "\n".join(proxy.access_lines())
    for secret in ("phone=", "4155550134", "token=", CONSOLE_TOKEN, API_KEY, "127.0.0.1 ",
                   "python-requests"):
        assert secret not in log
    assert " 127.0.0.0" in log  # the client's network, not its address


def test_haproxy_takes_out_a_server_that_cannot_reach_its_database(cluster: Cluster) -> None:
    one, two = cluster.servers
    went_down, came_up = cluster.haproxy.went("one", "DOWN"), cluster.haproxy.went("one", "UP")
    cluster.database_link.cut()  # the first server's host loses its way to PostgreSQL
    try:
        status, body, took = healthz(one)
        assert (503, "failing", False) == (status, body["status"], body["state"]["ok"])  # type: ignore[index]
        assert took < HEALTH_BOUND_S, f"/healthz took {took:.2f} s"
        assert 200 == healthz(two)[0]
        wait_for(lambda: cluster.haproxy.went("one", "DOWN") > went_down, 10,
                 "HAProxy's checks to take the first server out", cluster.explain)
        answered = len(cluster.haproxy_answered_by())
        calls = [cluster.call(via=cluster.haproxy.base_url) for _ in range(4)]
        wait_for(lambda: len(cluster.haproxy_answered_by()) >= answered + len(calls), 5,
                 "HAProxy's access lines", cluster.explain)
        assert ["two"] * len(calls) == cluster.haproxy_answered_by()[answered:]
    finally:
        cluster.database_link.restore()
    wait_for(lambda: cluster.haproxy.went("one", "UP") > came_up, 15,
             "HAProxy's checks to bring the first server back", cluster.explain)
    wait_for(lambda: all(cluster.notes()[sid] == 1 for sid in calls), SETTLE_S,
             "the calls' CRM notes", cluster.explain)


def test_a_redis_restart_leaves_calls_answered_and_consoles_popping(
        cluster: Cluster, consoles: tuple[EventStream, EventStream]) -> None:
    cluster.redis.stop()  # it keeps nothing on disk: every stream and pop in it is gone
    during = [cluster.call() for _ in range(2)]
    for server in cluster.servers:
        status, body, took = healthz(server)
        assert (200, "degraded", False) == (status, body["status"], body["redis"]["ok"])  # type: ignore[index]
        assert took < HEALTH_BOUND_S
    cluster.redis.start()

    for console in consoles:  # the pops held while Redis was away arrive now
        assert set(during) <= set(console.wait_for_pops(during, POP_S)), cluster.explain()
    after = cluster.call()
    for console in consoles:
        assert after in console.wait_for_pops([after], POP_S), cluster.explain()
    wait_for(lambda: all(cluster.notes()[sid] == 1 and cluster.sms()[sid[-6:]] == 1
                         for sid in [*during, after]), SETTLE_S,
             "the calls' CRM notes and SMS", cluster.explain)


def test_a_postgresql_restart_leaves_calls_answered_nothing_lost_and_consoles_popping(
        cluster: Cluster, consoles: tuple[EventStream, EventStream]) -> None:
    down = {name: cluster.haproxy.went(name, "DOWN") for name in ("one", "two")}
    cluster.postgres.stop("immediate")  # a crash, as the servers see it
    try:
        during = [cluster.call() for _ in range(3)]  # routed, the pop on its way
        for server in cluster.servers:  # a load balancer's check takes each server out
            status, body, took = healthz(server)
            assert (503, "failing", False) == (status, body["status"], body["state"]["ok"])  # type: ignore[index]
            assert took < HEALTH_BOUND_S, f"/healthz took {took:.2f} s"
        for console in consoles:  # pops go through Redis: they do not wait for the database
            assert set(during) <= set(console.wait_for_pops(during, POP_S)), cluster.explain()
        # Every server fails HAProxy's checks; its backups (the same servers) take the calls.
        wait_for(lambda: all(cluster.haproxy.went(name, "DOWN") > down[name]
                             for name in ("one", "two")), 10,
                 "HAProxy's checks to find every server failing", cluster.explain)
        answered = len(cluster.haproxy_answered_by())
        during.append(cluster.call(via=cluster.haproxy.base_url))
        wait_for(lambda: len(cluster.haproxy_answered_by()) > answered, 5,
                 "HAProxy's access line", cluster.explain)
        assert cluster.haproxy_answered_by()[-1].endswith("-backup")
    finally:
        cluster.postgres.start()

    wait_for(lambda: all(healthz(server)[0] == 200 for server in cluster.servers), SETTLE_S,
             "both servers healthy again", cluster.explain)
    after = cluster.call()
    for console in consoles:
        assert after in console.wait_for_pops([after], POP_S), cluster.explain()
    # The profile store is in the database too: a call while it was away was answered without
    # the caller's profile, so its CRM note says so and no rep is texted; the call after has both.
    wait_for(lambda: all(cluster.notes()[sid] >= 1 for sid in [*during, after])
             and cluster.sms()[after[-6:]] >= 1, SETTLE_S,
             "the CRM notes of the calls answered while the database was away", cluster.explain)
    assert all(cluster.notes()[sid] == 1 for sid in [*during, after]), cluster.explain()
    assert ([0] * len(during), 1) == ([cluster.sms()[sid[-6:]] for sid in during],
                                      cluster.sms()[after[-6:]]), cluster.explain()


def test_a_server_killed_with_deliveries_pending_leaves_the_other_to_finish_each_once(
        cluster: Cluster) -> None:
    killed, survivor = cluster.servers
    cluster.crm.refusing = True  # the CRM and Twilio are down: every delivery waits
    cluster.twilio.fail_next(10_000, status=503, kinds=SMS_KINDS)
    try:
        pending = [cluster.call() for _ in range(6)]
        assert {killed.base_url.removeprefix("http://"), survivor.base_url.removeprefix(
            "http://")} == set(cluster.answered_by()[-6:]), "both servers took calls"
        wait_for(lambda: {f"{sid}:webhook:note" for sid in pending} <= {
            r.key for r in cluster.crm.received}, SETTLE_S, "a first try of every CRM note",
            cluster.explain)
        killed.kill()  # master and workers: no shutdown code runs
    finally:
        cluster.crm.refusing = False
        cluster.twilio.stop_failing()

    later = cluster.call()  # nginx passes calls to the server left
    everything = [*pending, later]
    wait_for(lambda: all(cluster.notes()[sid] >= 1 and cluster.sms()[sid[-6:]] >= 1
                         for sid in everything), SETTLE_S,
             "the surviving server to make every delivery", cluster.explain)
    time.sleep(LEASE_S + 1)  # a delivery made twice would show by now
    assert {sid: 1 for sid in everything} == {sid: cluster.notes()[sid] for sid in everything}
    assert {sid[-6:]: 1 for sid in everything} == {
        sid[-6:]: cluster.sms()[sid[-6:]] for sid in everything}
    killed.start()  # the host comes back


class Backend:
    """A server behind the load balancer that passes every health check and either answers
    each POST (recording its body) or drops it: reads it whole, then closes the connection
    without a word, as a server killed mid-request does."""

    def __init__(self, drops: bool) -> None:
        self.bodies: list[str] = []
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self._answer(b"{}")

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                backend.bodies.append(body)
                if drops:
                    self.close_connection = True
                    self.connection.close()
                    return
                self._answer(b"<Response/>")

            def _answer(self, body: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.address = f"127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.mark.parametrize("balancer", ["nginx", "haproxy"])
@pytest.mark.parametrize(("path", "sent_again"), [("/twilio/voice", True),
                                                  ("/console/calls/CA1/wrapup", False)])
def test_a_post_its_server_dropped_is_sent_to_another_only_when_it_is_a_webhook(
        tmp_path: Path, balancer: str, path: str, sent_again: bool) -> None:
    """Twilio's webhooks are idempotent per CallSid (the call ledger's claim), so a webhook
    whose server died after it was sent goes to another; a console's wrap-up or transfer is
    not sent twice."""
    program = binary(balancer)
    if program is None:
        pytest.skip(f"{balancer} is not installed (apt-get install {balancer})")
    dropping, answering = Backend(drops=True), Backend(drops=False)
    kind = Nginx if balancer == "nginx" else Haproxy
    proxy = kind(program, [dropping.address, answering.address], tmp_path / balancer)
    proxy.start()
    try:
        statuses: dict[str, int] = {}
        while not dropping.bodies:  # until one request went to the server that drops it
            assert len(statuses) < 6, f"no request went to the dropping server: {statuses}"
            body = f"CallSid=CA{len(statuses)}"
            statuses[body] = requests.post(proxy.url(path), data=body, timeout=15, headers={
                "Content-Type": "application/x-www-form-urlencoded"}).status_code
    finally:
        proxy.stop()
        dropping.close()
        answering.close()
    [dropped] = dropping.bodies
    assert (200 if sent_again else 502) == statuses[dropped], proxy.logs()
    assert (dropped in answering.bodies) == sent_again
    assert all(200 == status for body, status in statuses.items() if body != dropped)
