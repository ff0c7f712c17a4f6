"""Big loads are parsed in worker processes: the outcome is the same as parsing inline."""

from __future__ import annotations

import json
import time
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool

import pytest

from lookup.store import parsing
from lookup.store.packing import unpack
from lookup.store.records import Rules

LINES = [
    json.dumps({"identityMap": {"Email": [{"id": f"p{n}@example.com"}]}, "n": n})
    if n % 17 else "not json"
    for n in range(120)
]


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 10 lines, and the pool after the first one."""
    monkeypatch.setattr(parsing, "CHUNK_LINES", 10)
    monkeypatch.setattr(parsing, "POOL_AFTER", 1)


def outcome(store):
    report = store.ingest("profiles", LINES)
    return report, store.counts()


class InProcessPool:
    """A pool whose workers are this process: each task runs when submitted."""

    def __init__(self, *args, **kwargs):
        pass

    def submit(self, function, *args):
        future: Future = Future()
        future.set_result(function(*args))
        return future

    def shutdown(self, **kwargs):
        pass


def test_chunks_parsed_by_workers_come_back_in_order(make_store, small_chunks, monkeypatch):
    expected = outcome(make_store(ingest_workers=0))
    monkeypatch.setattr(parsing, "ProcessPoolExecutor", InProcessPool)

    assert expected == outcome(make_store(ingest_workers=2))


def slowly(lines, pause):
    """``lines``, pausing once after the first ten: long enough for workers to start."""
    for number, line in enumerate(lines):
        if number == 10:
            time.sleep(pause)
        yield line


def test_worker_processes_load_what_one_process_loads(make_store, small_chunks):
    expected = outcome(make_store(ingest_workers=0))
    pooled = make_store(ingest_workers=2)

    assert expected == (pooled.ingest("profiles", slowly(LINES, 1.5)), pooled.counts())


def test_a_pool_that_breaks_leaves_the_parsing_to_this_process(
    make_store, small_chunks, monkeypatch
):
    class BrokenPool:
        def __init__(self, *args, **kwargs):
            pass

        def submit(self, *args, **kwargs):
            raise BrokenProcessPool("no workers")

        def shutdown(self, **kwargs):
            pass

    expected = outcome(make_store(ingest_workers=0))
    monkeypatch.setattr(parsing, "ProcessPoolExecutor", BrokenPool)

    assert expected == outcome(make_store(ingest_workers=2))


def test_progress_counts_every_line_with_workers(make_store, small_chunks):
    calls: list[int] = []

    make_store(ingest_workers=2).ingest("profiles", LINES, progress=calls.append)

    assert [10] * 12 == calls


@pytest.mark.parametrize(
    ("kind", "line"),
    [
        ("profiles", {"identityMap": {"Email": [{"id": "a@example.com"}],
                                      "CRMID": [{"id": "C1", "primary": True}]}, "n": 1}),
        ("profiles", {"identityMap": {"Email": [{"id": "a@example.com"}]}, "gone": None}),
        ("events", {"_id": "e1", "timestamp": "2026-11-20T10:00:00Z", "eventType": "t",
                    "identityMap": {"Phone": [{"id": "(415) 555-0134"}]}, "web": {"n": 1}}),
        ("audiences", {"id": "a1", "name": "High value", "description": None}),
    ],
)
def test_a_chunk_arrives_from_a_worker_as_it_was_parsed(kind, line):
    lines = ["", json.dumps(line) + "\n", "{"]
    rules = Rules.of("US", ("CRMID",))
    parsed = parsing.parse_chunk(kind, 7, lines, rules)

    received = unpack(kind, parsing.parse_packed(kind, 7, lines, rules), 7, lines)

    assert parsed.records == received
