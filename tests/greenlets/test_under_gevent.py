"""The hub under gevent's monkey-patching, as gunicorn's gevent worker runs the app: SQLite
connections per OS thread, not per greenlet; a locked database waited for, and an ingest
request written, without stalling the other greenlets. Each case runs in a process of its own
(``tests/greenlets/gevent_run.py``): monkey-patching cannot be undone in this one.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.hub_process import REPO, hub_environment

GREENLETS = 300
pytest.importorskip("gevent", reason="gevent is not installed (pip install -e '.[serve]')")
RUN = [sys.executable, "-m", "tests.greenlets.gevent_run"]


def report_of(output: str) -> Any:
    return json.loads(output.strip().splitlines()[-1])


def test_hundreds_of_greenlets_look_up_and_record_calls_on_one_connection_per_os_thread(
        tmp_path: Path) -> None:
    done = subprocess.run([*RUN, "calls", str(tmp_path / "instance"), str(GREENLETS)],  # noqa: S603 -- our own script
                          env=hub_environment({}), cwd=REPO, capture_output=True, text=True,
                          timeout=60, check=False)
    assert 0 == done.returncode, done.stderr
    report = report_of(done.stdout)

    assert [] == report["errors"]
    assert (GREENLETS, GREENLETS) == (report["found"], report["saved"])
    # Every greenlet runs on the main OS thread, which has one connection to each database:
    # the hub's, and the store's (with their WAL and shared memory files, and the hub's key).
    assert 1 == report["hub_connections"], report
    assert report["open_files"] <= 10, report  # one connection per greenlet: over 300
    assert [] == [s for s in report["stalls"] if s > 1.0], report


def test_a_write_waits_for_another_process_s_lock_while_the_other_greenlets_run(
        tmp_path: Path) -> None:
    path = tmp_path / "hub.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode=WAL")
    holder.execute("CREATE TABLE calls (sid TEXT PRIMARY KEY)")
    holder.execute("BEGIN IMMEDIATE")
    with subprocess.Popen([*RUN, "locked", str(path)], env=hub_environment({}), cwd=REPO,  # noqa: S603 -- our own script
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as run:
        assert "waiting" == run.stdout.readline().strip()  # type: ignore[union-attr]
        (rows,) = holder.execute("SELECT count(*) FROM calls").fetchone()
        holder.execute("COMMIT")  # the lock goes: the write goes through
        output, _ = run.communicate("go\n", timeout=30)
    report = report_of(output)

    assert 0 == rows  # nothing was written while the lock was held
    assert (True, 1) == (report["written"], report["rows"])
    assert report["ticks"] >= 50, report  # ticking all along, every 10 ms
    assert report["reads"] == report["ticks"]  # the connection is not held by the waiting write
    assert report["longest_gap_s"] < 0.25, report
    assert [] == report["stalls"]


def test_an_ingest_request_is_written_off_the_event_loop(tmp_path: Path) -> None:
    done = subprocess.run([*RUN, "ingest", str(tmp_path / "instance"), "3000"],  # noqa: S603 -- our own script
                          env=hub_environment({}), cwd=REPO, capture_output=True, text=True,
                          timeout=60, check=False)
    assert 0 == done.returncode, done.stderr
    report = report_of(done.stdout)

    assert [200, 3000] == report["answer"]
    # On the loop, the other greenlets would wait for the whole load.
    assert report["longest_gap_s"] < report["took_s"] / 3, report
