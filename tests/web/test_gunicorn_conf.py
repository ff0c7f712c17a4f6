"""The production configuration's choices (``web/gunicorn_conf.py``): how many workers, and
the open-files limit that the worker's connections need."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.gunicorn_process import GunicornProcess
from tests.e2e.hub_process import free_port, hub_environment
from web import gunicorn_conf


class Log:
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warning(self, message: str, *args: Any) -> None:
        self.warnings.append(message % args)


def test_one_worker_without_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    assert 1 == gunicorn_conf._workers()  # the broker is the worker's own


def test_a_worker_per_core_with_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAHUB_REDIS_URL", "redis://127.0.0.1:6379/0")

    assert (os.cpu_count() or 1) == gunicorn_conf._workers()


def test_the_production_worker_is_gevents_with_thousands_of_connections() -> None:
    assert ("web.gunicorn_conf.GeventWorker", 10_000) == (
        gunicorn_conf.worker_class, gunicorn_conf.worker_connections)
    assert gunicorn_conf.keepalive > 0  # without it gunicorn reads headers unbounded


def test_several_workers_without_redis_are_refused_in_one_line(tmp_path: Path) -> None:
    env = hub_environment({"CAHUB_DATA_DIR": str(tmp_path / "instance")})
    done = GunicornProcess(env, tmp_path, f"127.0.0.1:{free_port()}", "--workers", "2") \
        .run_to_exit()

    assert 1 == done.returncode
    [line] = [line for line in done.stderr.splitlines() if "CAHUB_REDIS_URL" in line]
    assert "2 workers need CAHUB_REDIS_URL" in line, done.stderr
    assert "Traceback" not in done.stderr


def test_the_open_files_limit_is_raised_to_hold_the_connections() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(soft + 100, hard) - gunicorn_conf.OTHER_FILES
    log = Log()

    gunicorn_conf.raise_open_files_limit(wanted, log)

    assert min(soft + 100, hard) <= resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert [] == log.warnings


LOW_LIMIT = """
import resource
from web import gunicorn_conf
resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 2048))

class Log:
    def warning(self, message, *args):
        print(message % args)

gunicorn_conf.raise_open_files_limit(10_000, Log())
print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])
"""


def test_an_open_files_limit_too_low_for_the_connections_is_said() -> None:
    done = subprocess.run([sys.executable, "-c", LOW_LIMIT], env=hub_environment({}),  # noqa: S603 -- fixed script
                          capture_output=True, text=True, timeout=30, check=True)

    warning, soft = done.stdout.splitlines()
    assert "2048" == soft  # raised as far as the hard limit lets it
    assert warning.startswith("the open-files limit (2048) holds about "
                              f"{2048 - gunicorn_conf.OTHER_FILES} connections, not 10000")
