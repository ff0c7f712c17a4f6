"""``cahub worker`` as a real process, for tests that share an outbox between processes."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path

from tests.e2e.hub_process import START_TIMEOUT_S, cahub_command, hub_environment, wait_for

READY = "worker: making deliveries"
WEBHOOK_SECRET = "worker-test-webhook-secret"


def worker_environment(data_dir: Path, webhook_url: str, **settings: str) -> dict[str, str]:
    """A worker that delivers to a webhook at ``webhook_url``, plus ``settings``."""
    return hub_environment({
        "CAHUB_DATA_DIR": str(data_dir), "CAHUB_CRM": "webhook",
        "CAHUB_WEBHOOK_URL": webhook_url, "CAHUB_WEBHOOK_SECRET": WEBHOOK_SECRET,
        **settings,
    })


class WorkerProcess:
    """``cahub worker``, started and waited for until it makes deliveries."""

    def __init__(self, env: Mapping[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(  # noqa: S603 -- our own CLI, fixed arguments
                [*cahub_command(), "worker"], env=dict(env), cwd=log.parent, stdout=out,
                stderr=subprocess.STDOUT)

    def wait_ready(self) -> None:
        wait_for(lambda: READY in self.output() or self.process.poll() is not None,
                 START_TIMEOUT_S, "the worker to start", self.output)
        assert self.process.poll() is None, f"the worker exited:\n{self.output()}"

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill(self) -> None:
        """``kill -9``: nothing of the worker's own runs, its leases stay as they are."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, and the exit status once it ended (killed if it does not end in time)."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
            raise
