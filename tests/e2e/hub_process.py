"""The hub as a real server process, for tests that crash it (``kill -9``) and restart it.

``HubProcess`` runs ``cahub serve`` from this interpreter's environment (the ``cahub``
script beside ``sys.executable`` when the project is installed, else the same entry
point through ``python -c``) in a scratch working directory, so no developer ``.env``
is read; ``run_cahub`` runs one of its other commands with the same environment. Each
start gets a fresh port and its own log file, shown when a wait fails.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0


def cahub_command() -> list[str]:
    script = Path(sys.executable).parent / "cahub"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from cli.main import main; main(prog_name='cahub')"]


def hub_environment(settings: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without its ``CAHUB_*`` settings, plus ``settings``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("CAHUB_")}
    path = os.pathsep.join(p for p in (str(REPO), base.get("PYTHONPATH", "")) if p)
    return {**base, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1", **settings}


def run_cahub(args: list[str], env: Mapping[str, str], cwd: Path,
              timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run ``cahub ARGS``; its output, and a failure that shows it."""
    done = subprocess.run([*cahub_command(), *args], env=dict(env), cwd=cwd,  # noqa: S603 -- our own CLI
                          capture_output=True, text=True, timeout=timeout, check=False)
    assert 0 == done.returncode, f"cahub {' '.join(args)} failed:\n{done.stdout}{done.stderr}"
    return done


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(condition: Callable[[], bool], timeout: float, what: str,
             explain: Callable[[], str] = lambda: "") -> None:
    """Poll ``condition`` every 20 ms until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}\n{explain()}")
        time.sleep(0.02)


class HubProcess:
    """``cahub serve`` (or ``command``, such as ``demo``) on 127.0.0.1: start, ``kill -9``,
    restart, stop."""

    def __init__(self, env: Mapping[str, str], workdir: Path,
                 command: tuple[str, ...] = ("serve",)) -> None:
        self.env, self.workdir, self.command = dict(env), workdir, command
        self.base_url = ""
        self.starts = 0
        self._process: subprocess.Popen[bytes] | None = None

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def start(self) -> None:
        """Start the server and wait until ``/healthz`` answers 200."""
        assert self._process is None, "already running"
        self.starts += 1
        port = free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        with self._log(self.starts).open("wb") as log:
            self._process = subprocess.Popen(  # noqa: S603 -- our own CLI, fixed arguments
                [*cahub_command(), *self.command, "--port", str(port)], env=self.env,
                cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT)
        wait_for(self._healthy, START_TIMEOUT_S, "the hub to answer /healthz", self.logs)

    def kill(self) -> None:
        """``kill -9``: no shutdown code runs, whatever was in flight stays in flight."""
        assert self._process is not None, "not running"
        os.kill(self._process.pid, signal.SIGKILL)
        self._process.wait(10)
        self._process = None

    def stop(self) -> None:
        """Stop the server if it runs (SIGTERM, then SIGKILL)."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(5)
        self._process = None

    def logs(self) -> str:
        """Every start's output, for a failure message."""
        return "\n".join(f"--- hub start {n} ---\n{self._log(n).read_text(errors='replace')}"
                         for n in range(1, self.starts + 1) if self._log(n).exists())

    def _log(self, start: int) -> Path:
        return self.workdir / f"hub-{start}.log"

    def _healthy(self) -> bool:
        assert self._process is not None
        if self._process.poll() is not None:
            raise AssertionError(f"the hub exited with {self._process.returncode}\n{self.logs()}")
        try:
            return requests.get(self.url("/healthz"), timeout=2).status_code == 200
        except (requests.ConnectionError, requests.Timeout):  # not up yet, or slow to start
            return False
