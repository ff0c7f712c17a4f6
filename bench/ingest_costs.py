"""Where a profile record's ingest time goes: parsing, the writer's Python, each SQL statement.

The profile lines of one synthetic size (``bench.synthetic``) are parsed in this process
and timed, then written into a fresh store the way ``cahub ingest`` writes them (the same
chunks, ``_write`` and transactions of ``COMMIT_EVERY`` seconds), through a connection
that times every statement. The writer's Python is the rest of the write time. This is
what bounds a single writer, whatever the number of parsing processes.

Then the same rows are written again the cheapest way SQLite allows, as a floor: no
identity graph at all (each record its own person, as holds for this data), one
transaction, identity rows in key order, fragments and persons appended, and the two
secondary indexes built once at the end. No load that must link records can write these
rows for less.

    .venv/bin/python -m bench.ingest_costs [--size 100000]
"""

from __future__ import annotations

import argparse
import re
import sqlite3
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from unittest import mock

from bench.report import machine, record
from bench.synthetic import ensure_dataset
from lookup.store import EmbeddedProfileStore
from lookup.store import ingest as ingest_module
from lookup.store.bulk_write import (
    DEFERRED_INDEXES,
    INSERT_FRAGMENT,
    deferred_index_ddl,
    write_whole_load,
)
from lookup.store.graph import INSERT_IDENTITY
from lookup.store.ingest import COMMIT_EVERY, Options, _write, collector_paused
from lookup.store.materialise import INSERT_PERSON
from lookup.store.merge import MergePolicy
from lookup.store.numbering import new_profile_id
from lookup.store.parsing import Chunk, _numbered_chunks, parse_chunk
from lookup.store.records import Rules, dump_json

SECTION = "Embedded store: where a profile record's ingest time goes"


class TimedConnection:
    """Passes statements to a connection, adding up the seconds each kind of statement takes."""

    def __init__(self, connection: sqlite3.Connection, spent: Counter[str]) -> None:
        self.connection, self.spent = connection, spent

    def execute(self, sql: str, parameters: Any = ()) -> sqlite3.Cursor:
        started = time.perf_counter()
        cursor = self.connection.execute(sql, parameters)
        self.spent[_kind(sql)] += time.perf_counter() - started
        return cursor

    def executemany(self, sql: str, rows: Iterable[Any]) -> sqlite3.Cursor:
        rows = list(rows)  # building the rows is the writer's Python, not SQLite's
        started = time.perf_counter()
        cursor = self.connection.executemany(sql, rows)
        self.spent[_kind(sql)] += time.perf_counter() - started
        return cursor


TABLES = ("identities", "fragments", "persons", "events", "meta", "shared_links")
TABLE_NAME = re.compile(r"\b(?:INTO|FROM|UPDATE|JOIN)\s+(\w+)", re.IGNORECASE)


def _kind(sql: str) -> str:
    """"INSERT identities", "read persons", "COMMIT": what a statement does, to what."""
    verb = sql.split()[0].upper()
    table = next((name for name in TABLE_NAME.findall(sql) if name in TABLES), None)
    if table is None:
        return verb
    return f"read {table}" if verb == "SELECT" else f"{verb} {table}"


FLOOR_PYTHON = "building the rows (Python)"


def floor_costs(records: list[Any]) -> dict[str, float]:
    """Seconds per step of writing ``records``' rows the cheapest way (see the docstring)."""
    ddl = deferred_index_ddl()
    if len(ddl) != len(DEFERRED_INDEXES):
        raise RuntimeError("schema.sql no longer creates the indexes this benchmark defers")
    spent: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp:
        store = EmbeddedProfileStore(Path(tmp) / "store.sqlite3")
        connections = store._connections
        with connections.bulk() as connection, collector_paused():
            for name in DEFERRED_INDEXES:
                connection.execute(f"DROP INDEX {name}")
            started = time.perf_counter()
            now = time.time_ns() // 1000
            identities, fragments, persons, seq = [], [], [], 0
            for person, record in enumerate(records, start=1):
                for key in record.identities:
                    seq += 1
                    identities.append((*key, person, seq))
                fragments.append((person, "default", *record.primary[:2],
                                  record.modified_at or now, person,
                                  len(record.identities) == 1, record.attributes))
                listed = dump_json([[ns, value] for _, value, ns in record.identities])
                persons.append((person, new_profile_id(person), now, None, listed, now))
            identities.sort()
            spent[FLOOR_PYTHON] = time.perf_counter() - started
            steps = [
                ("INSERT identities, in key order", INSERT_IDENTITY, identities),
                ("INSERT fragments, appended", INSERT_FRAGMENT, fragments),
                ("INSERT persons, appended", INSERT_PERSON, persons),
            ]
            connection.execute("BEGIN IMMEDIATE")
            for name, sql, rows in steps:
                started = time.perf_counter()
                connection.executemany(sql, rows)
                spent[name] = time.perf_counter() - started
            started = time.perf_counter()
            for statement in ddl:
                connection.execute(statement)
            spent["building the two indexes"] = time.perf_counter() - started
            started = time.perf_counter()
            connection.execute("COMMIT")
            spent["COMMIT"] = time.perf_counter() - started
        store.close()
    return spent


def chunk_write(chunks: list[Chunk], options: Options) -> tuple[float, Counter[str]]:
    """Seconds to write ``chunks`` as the chunk writer does, and each statement's share."""
    spent: Counter[str] = Counter()
    with tempfile.TemporaryDirectory(prefix="bench-costs-") as tmp:
        store = EmbeddedProfileStore(Path(tmp) / "store.sqlite3")
        connections = store._connections  # the store's own write path, timed
        started = time.perf_counter()
        with connections.bulk(), collector_paused():  # as a load's writer is
            pending = iter(chunks)
            done = False
            while not done:
                done = True
                with connections.writing() as connection:
                    opened = time.monotonic()
                    timed = TimedConnection(connection, spent)
                    for chunk in pending:
                        _write(timed, chunk.records, "default", options)  # type: ignore[arg-type]
                        if time.monotonic() - opened >= COMMIT_EVERY:
                            done = False
                            break
                    committing = time.perf_counter()
                spent["COMMIT"] += time.perf_counter() - committing
        write_s = time.perf_counter() - started
        store.close()
    return write_s, spent


def whole_write(records: list[Any], options: Options) -> tuple[float, Counter[str]]:
    """Seconds to write ``records`` as one whole load (``bulk_write``), and each statement's."""
    spent: Counter[str] = Counter()
    with tempfile.TemporaryDirectory(prefix="bench-whole-") as tmp:
        store = EmbeddedProfileStore(Path(tmp) / "store.sqlite3")
        connections = store._connections
        started = time.perf_counter()
        with connections.bulk(), collector_paused():
            with connections.writing() as connection:
                timed = TimedConnection(connection, spent)
                written = write_whole_load(
                    timed, records, dataset="default",  # type: ignore[arg-type]
                    unique=options.rules.unique, policy=options.policy,
                    max_identities=options.max_identities, now=time.time_ns() // 1000)
                if not written:
                    raise RuntimeError("the whole load fell back to the chunk writer")
                committing = time.perf_counter()
            spent["COMMIT"] += time.perf_counter() - committing
        write_s = time.perf_counter() - started
        store.close()
    return write_s, spent


def end_to_end(lines: list[str], whole: bool, workers: int) -> float:
    """Seconds ``store.ingest`` takes to load ``lines`` into a fresh store, as ``cahub
    ingest`` does (``workers`` parsing processes), by one writer or the other."""
    after = ingest_module.BULK_AFTER if whole else 1 << 62
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp, \
            mock.patch.object(ingest_module, "WHOLE_LOAD_AFTER", after):
        store = EmbeddedProfileStore(Path(tmp) / "store.sqlite3", ingest_workers=workers)
        started = time.perf_counter()
        report = store.ingest("profiles", lines)
        elapsed = time.perf_counter() - started
        counts = store.counts()
        store.close()
    if report.loaded != len(lines) or counts["persons"] != len(lines):
        raise RuntimeError(f"loaded {report.loaded} of {len(lines)}; {counts}")
    return elapsed


def parsed(lines: list[str], rules: Rules) -> tuple[list[Chunk], float]:
    """``lines`` parsed in this process, and the seconds it took."""
    started = time.perf_counter()
    with collector_paused():  # as in a load's parsing workers
        chunks = [parse_chunk("profiles", first, chunk, rules)
                  for first, chunk in _numbered_chunks(lines)]
    return chunks, time.perf_counter() - started


def _median_run(runs: list[tuple[float, Counter[str]]]) -> tuple[float, Counter[str]]:
    """The run of median time (the lower middle one of an even number)."""
    ordered = sorted(runs, key=lambda run: run[0])
    return ordered[(len(ordered) - 1) // 2]


def _rows(spent: Counter[str], n: int) -> list[str]:
    return [f"| — — {NAMES.get(name, name)} | {seconds / n * 1e6:.1f} |"
            for name, seconds in spent.most_common() if seconds / n >= 0.05e-6]


NAMES = {"CREATE": "CREATE INDEX (the two, at the end)", "DROP": "DROP INDEX"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="end-to-end loads of each path")
    parser.add_argument("--workers", type=int, default=1, help="parsing processes (as "
                        "CAHUB_INGEST_WORKERS, default 1)")
    args = parser.parse_args()
    dataset = ensure_dataset(args.size, 10)
    rules = Rules.of("US", ("CRMID", "loyaltyId"))
    with dataset.profiles.open(encoding="utf-8") as handle:
        lines = handle.readlines()

    options = Options(rules, MergePolicy("timestamp_ordered", ()), 50)
    writes: dict[bool, list[tuple[float, Counter[str]]]] = {False: [], True: []}
    loads: dict[bool, list[float]] = {False: [], True: []}
    floors, parses = [], []
    for _ in range(args.repeat):  # alternately, so that the machine's noise hits them all
        chunks, parse = parsed(lines, rules)
        parses.append(parse)
        records = [r for chunk in chunks for r in chunk.records]
        writes[False].append(chunk_write(chunks, options))
        writes[True].append(whole_write(records, options))
        floors.append(floor_costs(records))
        for whole in (False, True):
            loads[whole].append(end_to_end(lines, whole, args.workers))
    (write_s, spent), (whole_s, whole_spent) = (_median_run(writes[whole])
                                                for whole in (False, True))
    floor = {name: statistics.median(f[name] for f in floors) for name in floors[0]}
    floor_s = statistics.median(sum(f.values()) for f in floors)
    parse_s = statistics.median(parses)
    # The floor from lines: each parsed in this one process, then written as above.
    floor_load_s = statistics.median(p + sum(f.values()) for p, f in zip(parses, floors,
                                                                         strict=True))
    today_s, new_s = (statistics.median(loads[whole]) for whole in (False, True))

    n = len(lines)
    sql_s = sum(spent.values())
    whole_sql_s = sum(whole_spent.values())

    def rate(seconds: float) -> str:
        return f"{n / seconds:,.0f}"

    def ratio(seconds: float, floor_s: float = floor_s) -> str:
        return f"{floor_s / seconds:.2f}×"

    from_lines = [ratio(seconds, floor_load_s) for seconds in (today_s, new_s)]
    command = f"python -m bench.ingest_costs --size {args.size} --repeat {args.repeat}"
    us = {name: f"{seconds / n * 1e6:.1f}" for name, seconds in
          {"chunks": write_s, "whole": whole_s, "floor": floor_s,
           "whole python": whole_s - whole_sql_s}.items()}
    body = f"""`.venv/bin/{command}` — {machine()}.

{n:,} synthetic profile records (`bench/synthetic.py`, one person each, as a first load),
loaded three ways in this one run: by the chunk writer (the load linked and written
1,000 lines at a time, a commit every {COMMIT_EVERY:g} s), as one whole load (`load_graph`:
the load's identity graph built in memory, then each table written in key order by
`bulk_write`, the two secondary indexes built at the end), and the floor (`floor_costs`:
the same rows written the cheapest way SQLite allows, no identity graph at all, one
transaction, the indexes built at the end). Each is timed twice: writing records parsed
beforehand, and from lines to a committed store (`store.ingest`, with {args.workers}
parsing process as `CAHUB_INGEST_WORKERS` defaults to; the floor's lines parsed in its
one process, then written). Medians of {args.repeat} runs of each, the runs alternating (the
breakdowns below are of the median run); other work ran on this machine's 2 cores at the
same time, so the ratios side by side are what count.

| {n:,} profile lines | chunk writer | whole load | floor |
|---|---|---|---|
| writing only (parsed beforehand): µs/record | {us["chunks"]} | {us["whole"]} | {us["floor"]} |
| — records/s | {rate(write_s)} | {rate(whole_s)} | **{rate(floor_s)}** |
| — ratio to the floor | {ratio(write_s)} | **{ratio(whole_s)}** | 1 |
| lines to committed store: s | {today_s:.2f} | {new_s:.2f} | {floor_load_s:.2f} |
| — records/s | {rate(today_s)} | {rate(new_s)} | **{rate(floor_load_s)}** |
| — **ratio to the floor** (bar ≥ 0.5×) | {from_lines[0]} | **{from_lines[1]}** | 1 |
| — ratio to the floor's writing alone | {ratio(today_s)} | {ratio(new_s)} | |

Parsing a line (JSON, identities) takes {parse_s / n * 1e6:.1f} µs in one process. During a
load it runs in the parsing process alongside the chunk writer's writing, but before a
whole load's writing (a whole load is linked once every line is read), the loading
process parsing a share. The floor's writing alone leaves parsing out altogether: no load
of lines can reach it.

Where the writing goes, per profile record (µs):

| chunk writer | µs |
|---|---|
| **writing a record, in all** | **{write_s / n * 1e6:.1f}** |
| — of which SQLite, in all | {sql_s / n * 1e6:.1f} |
{chr(10).join(_rows(spent, n))}
| — of which the writer's Python (linking, rows, merging) | {(write_s - sql_s) / n * 1e6:.1f} |

| whole load | µs |
|---|---|
| **writing a record, in all** | **{whole_s / n * 1e6:.1f}** |
| — of which SQLite, in all | {whole_sql_s / n * 1e6:.1f} |
{chr(10).join(_rows(whole_spent, n))}
| — of which the writer's Python (linking, rows, merging) | {us["whole python"]} |

| floor | µs |
|---|---|
{chr(10).join(f"| {name} | {seconds / n * 1e6:.1f} |" for name, seconds in floor.items())}
"""
    record(SECTION, body)
    print(body)


if __name__ == "__main__":
    main()
