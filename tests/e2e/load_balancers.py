"""Debian's nginx and HAProxy, run by a test with the shipped ``deploy/nginx.conf`` and
``deploy/haproxy.cfg`` in front of hub servers.

Each configuration is the README's, rendered for the test: the upstream's servers are the
test's, it listens on a free port of 127.0.0.1 without TLS (no certificate here), and every
file it writes (pid, logs, temporary bodies) is in the test's directory. Every other line is
the shipped one. Each replacement must match exactly once, so a change to a file that the
rendering no longer fits fails here, loudly, rather than testing something else.

Both run in the foreground. Started as root, nginx's workers would switch to ``www-data``,
who cannot write into the test's private directory: the rendered ``user`` is then root's
own. HAProxy's log goes to its standard output, kept in a file.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import requests

from tests.e2e.hub_process import REPO, free_port, wait_for

START_TIMEOUT_S = 10.0


def binary(name: str) -> str | None:
    """``name`` on the PATH, or in /usr/sbin (not on a user's PATH in Debian)."""
    return shutil.which(name) or next(
        (path for path in (f"/usr/sbin/{name}",) if Path(path).exists()), None)


def rendered(shipped: str, replacements: Sequence[tuple[str, str]]) -> str:
    """``shipped`` with each pattern (a whole-line regular expression) replaced, once."""
    text = shipped
    for pattern, replacement in replacements:
        text, count = re.subn(pattern, lambda _match, r=replacement: r, text, flags=re.MULTILINE)
        assert 1 == count, f"the shipped configuration no longer has the lines {pattern!r}"
    return text


class LoadBalancer:
    """A load balancer in the foreground on a free port of 127.0.0.1, logging in ``workdir``."""

    name = ""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.output = workdir / f"{self.name}.out"
        self.command: list[str] = []
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.output.open("ab") as out:
            self._process = subprocess.Popen(self.command, stdout=out,  # noqa: S603 -- the load balancer, fixed arguments
                                             stderr=subprocess.STDOUT)
        wait_for(self._answers, START_TIMEOUT_S, f"{self.name} to answer", self.logs)

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()  # a fast shutdown: open streams are closed
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(5)
        self._process = None

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def access_lines(self) -> list[str]:
        raise NotImplementedError

    def logs(self) -> str:
        return "".join(f"--- {self.name} {path.name} ---\n{path.read_text(errors='replace')}\n"
                       for path in sorted(self.workdir.glob("*.out")) + sorted(
                           self.workdir.glob("*.log")))

    def _answers(self) -> bool:
        assert self._process is not None
        if self._process.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self._process.returncode}\n"
                                 f"{self.logs()}")
        try:
            requests.get(self.url("/healthz"), timeout=2)
        except requests.ConnectionError:
            return False
        return True


class Nginx(LoadBalancer):
    """nginx with ``deploy/nginx.conf``, in front of ``servers`` (``host:port``)."""

    name = "nginx"
    shipped = REPO / "deploy" / "nginx.conf"

    def __init__(self, program: str, servers: Sequence[str], workdir: Path) -> None:
        super().__init__(workdir)
        self.config = workdir / "nginx.conf"
        self.access_log = workdir / "access.log"
        user = "user root root;" if os.geteuid() == 0 else ""
        temp = "".join(f"    {kind}_temp_path {workdir / kind};\n"
                       for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        upstreams = "".join(f"        server {server} max_fails=1 fail_timeout=10s;\n"
                            for server in servers)
        self.config.write_text(rendered(self.shipped.read_text(), (
            (r"^user www-data;\n", user + "\n"),
            (r"^pid /run/nginx\.pid;\n", ""),  # given on the command line
            (r"^error_log /var/log/nginx/error\.log warn;\n",
             f"error_log {workdir / 'error.log'} info;\n"),
            (r"^    access_log /var/log/nginx/cahub-access\.log cahub;\n",
             f"    access_log {self.access_log} cahub;\n{temp}"),
            (r"^        server 10\.0\.0\.11:5000 max_fails=1 fail_timeout=10s;\n"
             r"        server 10\.0\.0\.12:5000 max_fails=1 fail_timeout=10s;\n", upstreams),
            (r"^        listen 443 ssl;\n        listen \[::\]:443 ssl;\n",
             f"        listen 127.0.0.1:{self.port};\n"),
            (r"^        ssl_certificate .*\n        ssl_certificate_key .*\n"
             r"        ssl_protocols .*\n", ""),
        )))
        self.command = [program, "-p", str(workdir), "-c", str(self.config),
                        "-e", str(workdir / "error.log"),
                        "-g", f"daemon off; pid {workdir / 'nginx.pid'};"]

    def access_lines(self) -> list[str]:
        return self.access_log.read_text(errors="replace").splitlines() \
            if self.access_log.exists() else []


class Haproxy(LoadBalancer):
    """HAProxy with ``deploy/haproxy.cfg``, in front of ``servers`` (``host:port``, named
    ``one``, ``two``... as in the shipped file)."""

    name = "haproxy"
    shipped = REPO / "deploy" / "haproxy.cfg"

    def __init__(self, program: str, servers: Sequence[str], workdir: Path) -> None:
        super().__init__(workdir)
        self.config = workdir / "haproxy.cfg"
        names = ("one", "two")
        active = "".join(f"    server {name} {server} check\n"
                         for name, server in zip(names, servers, strict=True))
        backups = "".join(f"    server {name}-backup {server} backup\n"
                          for name, server in zip(names, servers, strict=True))
        self.config.write_text(rendered(self.shipped.read_text(), (
            (r"^    bind :443 ssl crt .*\n", f"    bind 127.0.0.1:{self.port}\n"),
            (r"^    server one 10\.0\.0\.11:5000 check\n    server two 10\.0\.0\.12:5000 check\n",
             active),
            (r"^    server one-backup 10\.0\.0\.11:5000 backup\n"
             r"    server two-backup 10\.0\.0\.12:5000 backup\n", backups),
        )))
        self.command = [program, "-f", str(self.config), "-db"]

    def access_lines(self) -> list[str]:
        """Its request lines (its standard output also has its start and its checks)."""
        return [line for line in self.output.read_text(errors="replace").splitlines()
                if " backend=" in line] if self.output.exists() else []

    def went(self, server: str, state: str) -> int:
        """How many times its checks found ``server`` (``one``...) to be ``UP`` or ``DOWN``."""
        text = self.output.read_text(errors="replace") if self.output.exists() else ""
        return len(re.findall(rf"Server cahub/{server} is {state}\b", text))
