"""The hub under gunicorn with the shipped configuration, as the README's production command
runs it: ``gunicorn -c python:web.gunicorn_conf --bind ADDRESS``.

Its standard output (the access log) and standard error (the error log and the app's own
log) are kept in files of their own, so a test can read every line either one wrote.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from tests.e2e.hub_process import START_TIMEOUT_S, HubProcess, wait_for

CONFIG = "python:web.gunicorn_conf"


def gunicorn_command(bind: str, *extra: str) -> list[str]:
    return [str(Path(sys.executable).parent / "gunicorn"), "-c", CONFIG, "--bind", bind, *extra]


class GunicornProcess(HubProcess):
    """gunicorn on ``bind``: start (and wait until ``/healthz`` answers), ``kill -9`` (the
    master and its workers), restart, stop, read its logs (every start's, one after another)."""

    def __init__(self, env: Mapping[str, str], workdir: Path, bind: str, *extra: str) -> None:
        super().__init__(env, workdir)
        self.command = gunicorn_command(bind, *extra)
        self.base_url = "http://" + bind.replace("0.0.0.0", "127.0.0.1")  # noqa: S104 -- reaching a server bound to all interfaces
        self.access_log, self.error_log = workdir / "access.log", workdir / "error.log"

    def start(self) -> None:
        assert self._process is None, "already running"
        self.starts += 1
        with self.access_log.open("ab") as out, self.error_log.open("ab") as err:
            # A session of its own: kill() reaches the workers too, as kill -9 of a host would.
            self._process = subprocess.Popen(self.command, env=self.env, cwd=self.workdir,  # noqa: S603 -- gunicorn from this environment, fixed arguments
                                             stdout=out, stderr=err, umask=0o022,
                                             start_new_session=True)
        wait_for(self._healthy, START_TIMEOUT_S, "gunicorn to answer /healthz", self.logs)

    def kill(self) -> None:
        """``kill -9`` of the master and its workers: whatever was in flight stays so."""
        assert self._process is not None, "not running"
        os.killpg(self._process.pid, signal.SIGKILL)
        self._process.wait(10)
        self._process = None

    def stop(self) -> None:
        """Stop gunicorn if it runs: SIGTERM (open consoles are ended at once, what is in
        flight gets its graceful timeout, 5 s), then ``kill -9`` of the master and its
        workers."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(5)
        self._process = None

    def run_to_exit(self, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run until gunicorn exits by itself (a refusal to start); its output."""
        return subprocess.run(self.command, env=self.env, cwd=self.workdir,  # noqa: S603 -- gunicorn from this environment, fixed arguments
                              capture_output=True, text=True, timeout=timeout, check=False)

    def logs(self) -> str:
        """Everything gunicorn wrote: the access log, then the error log."""
        return "".join(log.read_text(errors="replace")
                       for log in (self.access_log, self.error_log) if log.exists())
