"""End to end: whatever process writes the data directory, it stays the hub's alone.

``cahub demo`` loads the demo data and serves; ``cahub simulate-call`` places a call that
ends (the status callbacks write the call back into the profile store); a later
``cahub outbox list`` opens the databases from a process of its own. The same call goes to
a gunicorn worker, on a data directory of its own. Every process runs under the common
umask 022; afterwards no file or directory under ``CAHUB_DATA_DIR`` gives its group or
others any access.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from lookup.demo import DEMO_CALLER
from tests.e2e.gunicorn_process import GunicornProcess
from tests.e2e.hub_process import cahub_command, free_port, hub_environment, wait_for
from tests.support import modes, open_to_others

COMMON_UMASK = 0o022


def cahub(args: list[str], env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run([*cahub_command(), *args], env=env, cwd=cwd, umask=COMMON_UMASK,  # noqa: S603 -- our own CLI
                          capture_output=True, text=True, timeout=60, check=False)
    assert 0 == done.returncode, f"cahub {' '.join(args)}:\n{done.stdout}{done.stderr}"
    return done.stdout


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """``cahub demo`` on a free port: its base URL and the environment of its data dir."""
    env = hub_environment({"CAHUB_DATA_DIR": str(tmp_path / "instance")})
    base = f"http://127.0.0.1:{free_port()}"
    log = (tmp_path / "demo.log").open("wb")
    server = subprocess.Popen([*cahub_command(), "demo", "--port", base.rsplit(":", 1)[1]],  # noqa: S603 -- our own CLI
                              env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                              umask=COMMON_UMASK)
    try:
        wait_for(lambda: _healthy(base, server), 60, "the demo to serve",
                 lambda: (tmp_path / "demo.log").read_text())
        yield base, env
    finally:
        server.terminate()
        server.wait(10)
        log.close()


def _healthy(base: str, server: subprocess.Popen[bytes]) -> bool:
    assert server.poll() is None, "the demo exited"
    try:
        return requests.get(f"{base}/healthz", timeout=2).ok
    except requests.ConnectionError:
        return False


def test_no_file_of_a_demo_call_is_open_to_others(
    demo: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    base, env = demo
    data_dir = Path(env["CAHUB_DATA_DIR"])
    secrets = json.loads((data_dir / "demo-secrets.json").read_text())
    caller_env = {**env, "CAHUB_TWILIO_AUTH_TOKEN": secrets["auth_token"]}

    cahub(["simulate-call", "--from", DEMO_CALLER, "--url", base, "--hangup-after", "1"],
          caller_env, tmp_path)
    wait_for(lambda: "done=1" in cahub(["outbox", "list"], env, tmp_path), 20,
             "the call to be written back")

    assert {"hub.sqlite3", "profiles.sqlite3", "demo-secrets.json"} <= set(modes(data_dir))
    assert {} == open_to_others(data_dir)


def test_no_file_a_gunicorn_worker_makes_is_open_to_others(tmp_path: Path) -> None:
    data_dir = tmp_path / "instance"
    env = hub_environment({"CAHUB_DATA_DIR": str(data_dir), "CAHUB_TWILIO_AUTH_TOKEN": "t0ken"})
    gunicorn = GunicornProcess(env, tmp_path, f"127.0.0.1:{free_port()}")  # umask 022
    gunicorn.start()
    try:
        cahub(["simulate-call", "--from", DEMO_CALLER, "--url", gunicorn.base_url,
               "--hangup-after", "0"], env, tmp_path)
    finally:
        gunicorn.stop()

    assert {"hub.sqlite3", "profiles.sqlite3"} <= set(modes(data_dir))
    assert {} == open_to_others(data_dir)
