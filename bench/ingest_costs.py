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
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

from bench.report import machine, record
from bench.synthetic import ensure_dataset
from lookup.store import EmbeddedProfileStore
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
DEFERRED_INDEXES = ("identities_person", "fragments_key")
FLOOR_FRAGMENT = (  # a plain append: no upsert, no unique index to check
    "INSERT INTO fragments (person_id, dataset, key_space, key_value, modified_at,"
    " ingested_seq, sole, attributes) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def floor_costs(records: list[Any]) -> dict[str, float]:
    """Seconds per step of writing ``records``' rows the cheapest way (see the docstring)."""
    schema = resources.files("lookup.store").joinpath("schema.sql").read_text(encoding="utf-8")
    ddl = [re.search(rf"CREATE (?:UNIQUE )?INDEX IF NOT EXISTS {name}\b[^;]*", schema)
           for name in DEFERRED_INDEXES]
    if not all(ddl):
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
                ("INSERT fragments, appended", FLOOR_FRAGMENT, fragments),
                ("INSERT persons, appended", INSERT_PERSON, persons),
            ]
            connection.execute("BEGIN IMMEDIATE")
            for name, sql, rows in steps:
                started = time.perf_counter()
                connection.executemany(sql, rows)
                spent[name] = time.perf_counter() - started
            started = time.perf_counter()
            for match in ddl:
                connection.execute(match.group(0))  # type: ignore[union-attr]
            spent["building the two indexes"] = time.perf_counter() - started
            started = time.perf_counter()
            connection.execute("COMMIT")
            spent["COMMIT"] = time.perf_counter() - started
        store.close()
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000)
    args = parser.parse_args()
    dataset = ensure_dataset(args.size, 10)
    rules = Rules.of("US", ("CRMID", "loyaltyId"))
    with dataset.profiles.open(encoding="utf-8") as handle:
        lines = handle.readlines()

    started = time.perf_counter()
    with collector_paused():  # as in a load's parsing workers
        chunks: list[Chunk] = [parse_chunk("profiles", first, chunk, rules)
                               for first, chunk in _numbered_chunks(lines)]
    parse_s = time.perf_counter() - started

    spent: Counter[str] = Counter()
    options = Options(rules, MergePolicy("timestamp_ordered", ()), 50)
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

    floor = floor_costs([r for chunk in chunks for r in chunk.records])
    n = len(lines)
    sql_s = sum(spent.values())
    rows = [f"| parsing a line (JSON, identities), one process | {parse_s / n * 1e6:.1f} |",
            f"| **writing a record, in all** | **{write_s / n * 1e6:.1f}** |",
            f"| — of which SQLite, in all | {sql_s / n * 1e6:.1f} |"]
    rows += [f"| — — {name} | {seconds / n * 1e6:.1f} |" for name, seconds in spent.most_common()
             if seconds / n >= 0.05e-6]
    rows.append(f"| — of which the writer's Python (linking, rows, merging) "
                f"| {(write_s - sql_s) / n * 1e6:.1f} |")
    ceiling = 1 / (write_s / n)
    body = f"""`.venv/bin/python -m bench.ingest_costs --size {args.size}` — {machine()}.

{n:,} synthetic profile records (`bench/synthetic.py`), parsed here, then written into a
fresh store as `cahub ingest` writes them (the cyclic garbage collector paused, as in a
long load), with every statement timed. Parsing runs in worker processes during a real
load; the writing does not: SQLite has one writer.

| per profile record | µs |
|---|---|
{chr(10).join(rows)}

One writer at these costs stores at most **{ceiling:,.0f} records/s**, however many
processes parse.

The floor: the same rows written the cheapest way SQLite allows (`floor_costs`: no
identity graph, one transaction, identity rows in key order, fragments and persons
appended, the two secondary indexes built at the end):

| per profile record | µs |
|---|---|
{chr(10).join(f"| {name} | {seconds / n * 1e6:.1f} |" for name, seconds in floor.items())}

Even so one writer stores at most **{n / sum(floor.values()):,.0f} records/s**, and
{n / (sum(floor.values()) - floor[FLOOR_PYTHON]):,.0f}/s for SQLite's part alone.
"""
    record(SECTION, body)
    print(body)


if __name__ == "__main__":
    main()
