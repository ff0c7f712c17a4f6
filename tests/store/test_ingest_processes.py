"""Worker processes parse big loads only, and never outlive the process that started them.

A completed call's write-back is a load of one line: it is parsed and written in the
calling thread, with the store's normal (durable) settings, and starts no process.
"""

from __future__ import annotations

import json
import multiprocessing.process
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hub.models import Delivery, DeliveryAction
from hub.settings import Settings
from lookup.store import EmbeddedProfileStore, parsing
from lookup.store.records import Rules
from lookup.writeback import ProfileWriteBackSink


def profile_lines(count: int) -> list[str]:
    return [json.dumps({"identityMap": {"Email": [{"id": f"p{n}@example.com"}]}})
            for n in range(count)]


@pytest.fixture
def started_processes(monkeypatch) -> list[str]:
    """The name of every process started while the test runs."""
    started: list[str] = []
    start = multiprocessing.process.BaseProcess.start

    def recorded(process):
        started.append(process.name)
        start(process)

    monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", recorded)
    return started


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 10 lines; a pool is worth it after 2 of them."""
    monkeypatch.setattr(parsing, "CHUNK_LINES", 10)
    monkeypatch.setattr(parsing, "POOL_AFTER", 2)


def delivery(n: int) -> Delivery:
    now = datetime.now(UTC)
    return Delivery(id=n, call_sid=f"CA{n:032x}", sink="profile", action=DeliveryAction.CALL_LOG,
                    created_at=now, next_attempt_at=now,
                    payload={"phone": "+14155550134", "duration_s": 240, "outcome": "completed"})


def test_ten_write_backs_start_no_process(make_store, started_processes):
    workers = Settings.model_fields["ingest_workers"].default
    sink = ProfileWriteBackSink(make_store(ingest_workers=workers or 1))

    for n in range(10):
        sink.deliver(delivery(n))

    assert [] == started_processes


def test_a_load_that_fits_in_the_inline_chunks_starts_no_process(
    make_store, small_chunks, started_processes
):
    report = make_store(ingest_workers=2).ingest("profiles", profile_lines(20))

    assert (20, []) == (report.loaded, started_processes)


def test_a_load_longer_than_the_inline_chunks_is_parsed_by_workers_too(
    make_store, small_chunks, started_processes
):
    report = make_store(ingest_workers=1).ingest("profiles", profile_lines(21))

    assert 21 == report.loaded
    assert 1 <= len(started_processes)


def statements_of(store, lines: list[str]) -> list[str]:
    """Every SQL statement the store's connection runs while it loads ``lines``."""
    statements: list[str] = []
    store._connections.get().set_trace_callback(statements.append)
    store.ingest("profiles", lines)
    return statements


def test_a_small_load_keeps_the_stores_durable_settings(tmp_path):
    store = EmbeddedProfileStore(tmp_path / "store.db")  # SQLite's own settings
    assert "PRAGMA synchronous = OFF" not in statements_of(store, profile_lines(1))


def test_a_bulk_load_is_written_with_the_bulk_settings(tmp_path):
    store = EmbeddedProfileStore(tmp_path / "store.db")
    assert "PRAGMA synchronous = OFF" in statements_of(store, profile_lines(1001))


# A process that loads an endless input with parsing workers, and says so when a first
# chunk has come back from a worker: it is then mid-load, and is killed there.
LOADER = textwrap.dedent("""
    import itertools, json, sys, time
    from pathlib import Path
    from lookup.store import EmbeddedProfileStore, parsing

    def endless():
        for n in itertools.count():
            time.sleep(0.0005)
            yield json.dumps({"identityMap": {"Email": [{"id": f"p{n}@example.com"}]}})

    def announced(received):
        def first(*args):
            print("mid-load", flush=True)
            parsing._received = received
            return received(*args)
        return first

    if __name__ == "__main__":
        parsing.CHUNK_LINES, parsing.POOL_AFTER = 100, 1
        parsing._received = announced(parsing._received)
        store = EmbeddedProfileStore(Path(sys.argv[1]), ingest_workers=2)
        store.ingest("profiles", endless())
""")


def descendants(pid: int) -> set[int]:
    """The processes ``pid`` started, and theirs, that are still there."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        children = (task / "children").read_text().split() if task.exists() else []
        for child in map(int, children):
            found |= {child, *descendants(child)}
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie waiting to be reaped has ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux's /proc")
def test_no_worker_outlives_a_parent_killed_mid_load(tmp_path):
    script = tmp_path / "loader.py"
    script.write_text(LOADER)
    workers: set[int] = set()
    with subprocess.Popen([sys.executable, str(script), str(tmp_path / "store.db")],  # noqa: S603 -- this interpreter, a fixed script
                          stdout=subprocess.PIPE, text=True, cwd=os.getcwd(),
                          env={**os.environ, "PYTHONPATH": os.getcwd()}) as loader:
        try:
            assert "mid-load" == loader.stdout.readline().strip()
            workers = descendants(loader.pid)
            os.kill(loader.pid, signal.SIGKILL)
            loader.wait(timeout=10)
            deadline = time.monotonic() + 5
            while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
                time.sleep(0.05)
            survivors = {pid for pid in workers if alive(pid)}
        finally:
            loader.kill()
            for pid in workers:  # whatever this test started goes, even when it fails
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)

    assert workers
    assert set() == survivors


def test_sharing_the_parsing_with_the_workers_keeps_every_chunk_in_order(monkeypatch):
    monkeypatch.setattr(parsing, "CHUNK_LINES", 10)
    monkeypatch.setattr(parsing, "POOL_AFTER", 1)
    lines = profile_lines(300)
    lines[123] = "not json"

    chunks = list(parsing.parsed_chunks("profiles", lines, Rules("US"), 1, share=True))

    assert [chunk.lines for chunk in chunks] == [10] * 30
    assert [record.line for chunk in chunks for record in chunk.records] == [
        n for n in range(1, 301) if n != 124]
    assert [line for chunk in chunks for line, _ in chunk.rejected] == [124]
