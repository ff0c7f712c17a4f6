"""Debian's nginx, run by a test with the shipped ``deploy/nginx.conf`` in front of hub servers.

The configuration is the README's, rendered for the test: the upstream's servers are the
test's, it listens on a free port of 127.0.0.1 without TLS (no certificate here), and every
file it writes (pid, logs, temporary bodies) is in the test's directory. Every other line is
the shipped one. Each replacement must match exactly once, so a change to the file that the
rendering no longer fits fails here, loudly, rather than testing something else.

nginx runs in the foreground (``daemon off``). Started as root, its workers would switch to
``www-data``, who cannot write into the test's private directory: the rendered ``user``
is then root's own.
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

SHIPPED = REPO / "deploy" / "nginx.conf"
START_TIMEOUT_S = 10.0


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx",) if Path(path).exists()), None)


def render(shipped: str, servers: Sequence[str], port: int, workdir: Path) -> str:
    """``shipped`` for ``servers`` (``host:port``) on ``127.0.0.1:port``, files in ``workdir``."""
    user = "user root root;" if os.geteuid() == 0 else ""
    temp = "".join(f"    {kind}_temp_path {workdir / kind};\n"
                   for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    upstreams = "".join(f"        server {server} max_fails=1 fail_timeout=10s;\n"
                        for server in servers)
    text = shipped
    for pattern, replacement in (
        (r"^user www-data;\n", user + "\n"),
        (r"^pid /run/nginx\.pid;\n", ""),  # given on the command line
        (r"^error_log /var/log/nginx/error\.log warn;\n",
         f"error_log {workdir / 'error.log'} info;\n"),
        (r"^    access_log /var/log/nginx/cahub-access\.log cahub;\n",
         f"    access_log {workdir / 'access.log'} cahub;\n{temp}"),
        (r"^        server 10\.0\.0\.11:5000 max_fails=1 fail_timeout=10s;\n"
         r"        server 10\.0\.0\.12:5000 max_fails=1 fail_timeout=10s;\n", upstreams),
        (r"^        listen 443 ssl;\n        listen \[::\]:443 ssl;\n",
         f"        listen 127.0.0.1:{port};\n"),
        (r"^        ssl_certificate .*\n        ssl_certificate_key .*\n"
         r"        ssl_protocols .*\n", ""),
    ):
        text, count = re.subn(pattern, lambda _match, r=replacement: r, text, flags=re.MULTILINE)
        assert 1 == count, f"deploy/nginx.conf no longer has the lines {pattern!r}"
    return text


class NginxProcess:
    """nginx in the foreground on a free port, in front of ``servers``."""

    def __init__(self, binary: str, servers: Sequence[str], workdir: Path) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.config = workdir / "nginx.conf"
        self.config.write_text(render(SHIPPED.read_text(), servers, self.port, workdir))
        self.access_log, self.error_log = workdir / "access.log", workdir / "error.log"
        self._command = [binary, "-p", str(workdir), "-c", str(self.config),
                         "-e", str(self.error_log),
                         "-g", f"daemon off; pid {workdir / 'nginx.pid'};"]
        self._process: subprocess.Popen[bytes] | None = None

    def check(self) -> subprocess.CompletedProcess[str]:
        """``nginx -t`` of the rendered configuration."""
        return subprocess.run([*self._command, "-t"], capture_output=True, text=True,  # noqa: S603 -- nginx, fixed arguments
                              timeout=30, check=False)

    def start(self) -> None:
        with (self.workdir / "nginx.out").open("wb") as out:
            self._process = subprocess.Popen(self._command, stdout=out,  # noqa: S603 -- nginx, fixed arguments
                                             stderr=subprocess.STDOUT)
        wait_for(self._answers, START_TIMEOUT_S, "nginx to answer", self.logs)

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
        return self.access_log.read_text(errors="replace").splitlines() \
            if self.access_log.exists() else []

    def logs(self) -> str:
        return "".join(f"--- nginx {path.name} ---\n{path.read_text(errors='replace')}\n"
                       for path in (self.workdir / "nginx.out", self.error_log, self.access_log)
                       if path.exists())

    def _answers(self) -> bool:
        assert self._process is not None
        if self._process.poll() is not None:
            raise AssertionError(f"nginx exited with {self._process.returncode}\n{self.logs()}")
        try:
            requests.get(self.url("/healthz"), timeout=2)
        except requests.ConnectionError:
            return False
        return True
