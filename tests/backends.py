"""Real Redis and PostgreSQL servers for the tests that need them, isolated per test.

The servers are the machine's own (``CAHUB_TEST_REDIS_URL``, default
``redis://127.0.0.1:6379/0``; ``CAHUB_TEST_POSTGRES_URL``, default
``postgresql://127.0.0.1:5432/postgres``). Each PostgreSQL test gets a database of its own,
dropped afterwards; each Redis test a key prefix of its own, whose keys are deleted
afterwards, so runs in parallel never see each other's data. A server that cannot be
reached skips the test with the reason (and CI, with CAHUB_NO_SKIP, fails it).
``private_redis`` is a redis-server of the test's own, for tests that stop or restart it, and
``private_postgres`` a PostgreSQL cluster of the test's own, likewise; ``postgres_proxy``
stands between the hub and the PostgreSQL server, for tests that cut the
hub off from its database (never stopping the shared server).
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REDIS_URL = os.environ.get("CAHUB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get("CAHUB_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/postgres")


def _database_url(name: str, server_url: str = POSTGRES_URL) -> str:
    """``server_url`` with its database replaced by ``name``."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(server_url)
    params["dbname"] = name
    return make_conninfo(**params)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def redis_server() -> str:
    """The Redis URL, once it answers a PING."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis is not reachable at {REDIS_URL}: {exc}")
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture
def redis_prefix(redis_server: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    with fresh_prefix(redis_server) as prefix:
        yield prefix


@contextmanager
def fresh_prefix(redis_url: str, name: str = "cahub-test") -> Iterator[str]:
    """A key prefix of its own on ``redis_url`` (``name-<random>:``), whose keys are deleted
    after the block."""
    import redis

    prefix = f"{name}-{secrets.token_hex(6)}:"
    try:
        yield prefix
    finally:  # a block that failed leaves no keys behind either
        client = redis.Redis.from_url(redis_url)
        try:
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The maintenance URL of the PostgreSQL server, once it answers."""
    import psycopg

    try:
        psycopg.connect(POSTGRES_URL, connect_timeout=3).close()
    except psycopg.Error as exc:
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_URL}: {exc}")
    return POSTGRES_URL


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """The URL of a new, empty database of this test's own, dropped afterwards."""
    with fresh_database(postgres_server) as url:
        yield url


@contextmanager
def fresh_database(server_url: str, prefix: str = "cahub_test") -> Iterator[str]:
    """The URL of a new, empty database ``prefix_<random>`` on ``server_url``'s server,
    dropped after the block."""
    import psycopg

    name = f"{prefix}_{secrets.token_hex(6)}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _database_url(name, server_url)
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def dead_row_versions(url: str, table: str) -> int:
    """Row versions still in ``table``'s pages (and its TOAST table's) that no transaction
    can see any more: what VACUUM removes. Read by ``pgstattuple``, page by page."""
    return _count(url, "pgstattuple",
                  "SELECT (SELECT dead_tuple_count FROM pgstattuple(c.oid))"
                  " + coalesce((SELECT dead_tuple_count FROM pgstattuple(c.reltoastrelid)"
                  "             WHERE c.reltoastrelid <> 0), 0)"
                  " FROM pg_class c WHERE c.oid = %(t)s::regclass", {"t": table})


def row_versions_holding(url: str, table: str, needle: bytes) -> int:
    """Row versions in ``table``'s pages, live or dead, whose stored bytes hold ``needle``
    (``pageinspect``; a value compressed or moved to TOAST is not found this way)."""
    return _count(url, "pageinspect",
                  "SELECT count(*) FROM generate_series(0, pg_relation_size(%(t)s::regclass)"
                  "  / current_setting('block_size')::int - 1) AS block,"
                  " heap_page_items(get_raw_page(%(t)s::text, block::int)) AS item"
                  " WHERE position(%(needle)s::bytea IN item.t_data) > 0",
                  {"t": table, "needle": needle})


def _count(url: str, extension: str, query: str, params: dict[str, object]) -> int:
    """One number from ``query``, run with ``extension`` installed (the tests' role is a
    superuser)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE EXTENSION IF NOT EXISTS {extension}")
        row = conn.execute(query, params).fetchone()  # type: ignore[arg-type]
    assert row is not None
    return int(row[0])


class PrivateRedis:
    """A redis-server of one test's own on a free port, keeping nothing on disk (as the
    shared one does), which the test may stop, freeze and start again."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self._binary, self._workdir = binary, workdir
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server (empty) and wait until it answers."""
        import redis

        command = [self._binary, "--port", str(self.port), "--bind", "127.0.0.1",
                   "--save", "", "--appendonly", "no", "--dir", str(self._workdir)]
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL,  # noqa: S603 -- redis-server from PATH, fixed arguments
                                         stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
            finally:
                client.close()

    def stop(self) -> None:
        """Stop the server; everything it held is gone."""
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)  # a frozen server cannot end
            self._process.terminate()
            self._process.wait(10)
            self._process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def freeze(self) -> None:
        """Stop answering without closing a connection (a network partition, as clients see it)."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (as of now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A redis-server of this test's own, for tests that stop or restart it (never the
    shared one); skipped with the reason where redis-server is not installed."""
    with running_private_redis(tmp_path) as server:
        yield server


@contextmanager
def running_private_redis(workdir: Path) -> Iterator[PrivateRedis]:
    """A redis-server of its own, running for the block (``workdir`` its directory)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    server = PrivateRedis(binary, workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class PrivatePostgres:
    """A PostgreSQL cluster of one test's own on a free port (``initdb`` in a directory of its
    own, trust authentication on 127.0.0.1), which the test may stop and start again, even
    ``-m immediate`` (a crash, as clients see it). Never the shared server.

    PostgreSQL refuses to run as root: under root, its commands run as the ``postgres`` user
    (``runuser``), in a directory that user owns.
    """

    def __init__(self, bindir: Path) -> None:
        self._bindir = bindir
        self.port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="cahub-test-pg-"))
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.workdir, "postgres", "postgres")
        self.data = self.workdir / "data"
        self.log = self.workdir / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust",
                  "--no-sync", "-E", "UTF8", "--locale", "C")

    def start(self) -> None:
        """Start the cluster and wait until it takes connections."""
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.workdir}"
                   " -c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options,
                  "-w", "-t", "30", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the cluster: ``fast`` (clients disconnected, a clean shutdown) or
        ``immediate`` (every process killed at once, recovered at the next start)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def restart(self, mode: str = "immediate") -> None:
        self.stop(mode)
        self.start()

    def remove(self) -> None:
        """Stop it if it runs, and delete its files."""
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(AssertionError):
                self.stop("immediate")
        shutil.rmtree(self.workdir, ignore_errors=True)

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def _run(self, program: str, *args: str) -> None:
        command = [str(self._bindir / program), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, cwd=self.workdir, capture_output=True, text=True,  # noqa: S603 -- PostgreSQL's own programs, fixed arguments
                              timeout=60, check=False)
        assert 0 == done.returncode, (f"{program} failed:\n{done.stdout}{done.stderr}"
                                      f"\n{self.logs()}")


def postgres_bindir() -> Path | None:
    """Where Debian keeps the newest installed PostgreSQL's server programs, if any."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda path: int(Path(path).parts[-3]))
    return Path(found[-1]).parent if found else None


@contextmanager
def running_private_postgres(
        alongside: Callable[[], object] | None = None) -> Iterator[PrivatePostgres]:
    """A cluster of its own, running for the block, deleted after it; skipped with the
    reason where PostgreSQL's server programs are not installed. ``alongside``, if given,
    runs in a thread of its own while the cluster is made (a test's other slow set-up);
    its failure is raised here."""
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL's server is not installed (apt-get install postgresql)")
    server = PrivatePostgres(bindir)
    failures: list[BaseException] = []

    def run() -> None:
        try:
            if alongside is not None:
                alongside()
        except BaseException as exc:
            failures.append(exc)

    helper = threading.Thread(target=run, name="test-alongside-postgres")
    helper.start()
    try:
        server.init()
        server.start()
        helper.join()
        if failures:
            raise failures[0]
        yield server
    finally:
        helper.join()
        server.remove()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL cluster of this test's own, for tests that stop or restart it (never
    the shared server); its ``url`` is its ``postgres`` database."""
    with running_private_postgres() as server:
        yield server


class TcpProxy:
    """A TCP proxy from a free port of its own to ``target``, which a test may cut and restore.

    Cut, it closes every connection it carries and closes each new one as soon as it is
    made: to a client, the server has stopped (a connection lost mid-query, then no
    connection at all), whatever runs behind it.

    ``round_trips`` counts, over every connection it carried, the times a client spoke
    after the server had answered (or first): the round trips the client waited for.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._cut, self._closed = threading.Event(), False
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.round_trips = 0
        threading.Thread(target=self._accept, name="test-tcp-proxy", daemon=True).start()

    def cut(self) -> None:
        self._cut.set()
        with self._lock:
            carried, self._open = self._open, set()
        for sock in carried:
            _shut(sock)

    def restore(self) -> None:
        self._cut.clear()

    def close(self) -> None:
        self._closed = True
        self.cut()
        _shut(self._listener)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._cut.is_set():
                _shut(client)
                continue
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                _shut(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open |= {client, upstream}
            answered = [True]  # whether the server spoke last on this connection

            def heard(from_client: bool, answered: list[bool] = answered) -> None:
                with self._lock:
                    if from_client and answered[0]:
                        self.round_trips += 1
                    answered[0] = not from_client

            for source, sink, from_client in ((client, upstream, True),
                                              (upstream, client, False)):
                threading.Thread(target=_pump, args=(source, sink, heard, from_client),
                                 daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket,
          heard: Callable[[bool], None] = lambda _: None, from_client: bool = True) -> None:
    try:
        with contextlib.suppress(OSError):  # a cut, or either side closing
            while data := source.recv(65536):
                heard(from_client)  # before the other side can hear it
                sink.sendall(data)
    finally:
        _shut(source)
        _shut(sink)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the other side
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


@pytest.fixture
def postgres_proxy(postgres_url: str) -> Iterator[tuple[TcpProxy, str]]:
    """A proxy to the PostgreSQL server, and the URL of the test's database through it."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(postgres_url)
    proxy = TcpProxy((str(params.get("host", "127.0.0.1")), int(params.get("port", 5432))))
    params.update(host="127.0.0.1", port=str(proxy.port))
    yield proxy, make_conninfo(**params)  # type: ignore[arg-type]
    proxy.close()


HOLD_WRITE_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
"""


@contextmanager
def locked_by_another_process(path: Path) -> Iterator[None]:
    """Another process holds the SQLite database's write lock until the block ends."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD_WRITE_LOCK, str(path)],  # noqa: S603 -- fixed script
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert "locked" == holder.stdout.readline().strip()  # type: ignore[union-attr]
        yield
    finally:
        holder.communicate("", timeout=10)


@contextmanager
def cut_off(proxy: TcpProxy) -> Iterator[None]:
    """The hub's PostgreSQL (through ``proxy``) is gone until the block ends."""
    proxy.cut()
    try:
        yield
    finally:
        proxy.restore()
