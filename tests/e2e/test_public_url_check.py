"""End to end: a hub started beyond loopback without ``CAHUB_PUBLIC_BASE_URL`` refuses to
start, in one line, whether it is ``cahub serve``, ``cahub demo`` or gunicorn with the shipped
configuration; given the URL, each serves."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import requests

from tests.e2e.gunicorn_process import GunicornProcess
from tests.e2e.hub_process import cahub_command, free_port, hub_environment, wait_for

ALL_INTERFACES = "0.0.0.0"  # noqa: S104 -- what the check is about
PUBLIC_URL = "https://hub.example.com"


def settings(tmp_path: Path, **more: str) -> dict[str, str]:
    return hub_environment({"CAHUB_DATA_DIR": str(tmp_path / "instance"), **more})


def the_error_line(output: str) -> str:
    """The one line that says why the server did not start."""
    lines = [line for line in output.splitlines() if "CAHUB_PUBLIC_BASE_URL" in line]
    assert 1 == len(lines), output
    return lines[0]


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_cahub_beyond_loopback_without_a_public_url_refuses_to_start(
    tmp_path: Path, command: str
) -> None:
    done = subprocess.run(  # noqa: S603 -- our own CLI
        [*cahub_command(), command, "--host", ALL_INTERFACES, "--port", str(free_port())],
        env=settings(tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=30,
        check=False)

    assert 1 == done.returncode
    assert the_error_line(done.stderr).startswith("Error: refusing to serve on 0.0.0.0")
    assert "Traceback" not in done.stderr


def test_cahub_beyond_loopback_with_a_public_url_serves(tmp_path: Path) -> None:
    port = free_port()
    server = subprocess.Popen(  # noqa: S603 -- our own CLI
        [*cahub_command(), "serve", "--host", ALL_INTERFACES, "--port", str(port)],
        env=settings(tmp_path, CAHUB_PUBLIC_BASE_URL=PUBLIC_URL), cwd=tmp_path,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _answers(f"http://127.0.0.1:{port}/healthz"), 30, "the hub to serve")
    finally:
        server.terminate()
        server.wait(10)


def test_gunicorn_beyond_loopback_without_a_public_url_refuses_to_start(tmp_path: Path) -> None:
    gunicorn = GunicornProcess(settings(tmp_path), tmp_path, f"{ALL_INTERFACES}:{free_port()}")

    done = gunicorn.run_to_exit()

    assert 1 == done.returncode
    assert "refusing to serve on 0.0.0.0" in the_error_line(done.stderr)
    assert "Traceback" not in done.stderr


def test_gunicorn_beyond_loopback_with_a_public_url_serves(tmp_path: Path) -> None:
    gunicorn = GunicornProcess(settings(tmp_path, CAHUB_PUBLIC_BASE_URL=PUBLIC_URL), tmp_path,
                               f"{ALL_INTERFACES}:{free_port()}")
    try:
        gunicorn.start()
    finally:
        gunicorn.stop()


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).ok
    except requests.ConnectionError:
        return False
