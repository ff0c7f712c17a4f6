"""The floor of a bulk load of profiles into the PostgreSQL store, and the bar against it.

The profile lines of one synthetic size (``bench.synthetic``) are loaded three ways in
one run, the repeats alternating so that the machine's noise hits them all:

1. The product path: ``PostgresProfileStore.ingest("profiles", file)`` into a fresh
   database (``lookup.store.postgres.bulk``: lines parsed in ``--workers`` processes, the
   identity graph linked in memory, rows written with COPY).
2. The floor: the rows that load left in ``persons``, ``identities`` and ``fragments``,
   dumped once with ``COPY ... TO STDOUT``, loaded into the empty tables of a fresh
   store with ``COPY ... FROM STDIN`` in one transaction on one connection, (a) with every
   index in place, (b) with the secondary indexes dropped first and built again at the
   end of the same transaction. No parsing, no linking, no row built in Python: the least
   PostgreSQL can do to hold these rows, which any load of the lines must do too.
3. Parsing alone: ``parsing.parse_chunk`` over every line, in this process.

CPU is read from /proc: this process (with its parsing workers, once they are reaped),
the server's processes (its postmaster and that postmaster's children, whatever the
backend), and the machine as a whole. The server must run on this machine. Every
database the run creates (``cahub_bench_<random>``) is dropped, also on failure.

    .venv/bin/python -m bench.ingest_floor_postgres [--size 100000] [--repeat 3]
        [--server postgresql://127.0.0.1:5432/postgres] [--workers 1] [--label TEXT]
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import statistics
import sys
import time
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bench.cpu import Spent, median_of, postmaster_of, sample
from bench.ingest_floor_report import TABLES, Figures, Setting, report
from bench.postgres import SERVER_URL, scratch_url
from bench.report import record
from bench.synthetic import Dataset, ensure_dataset
from lookup.store.ingest import collector_paused
from lookup.store.parsing import CHUNK_LINES, Line, parse_chunk
from lookup.store.postgres.schema import DEFAULT_SCHEMA, migrate_store
from lookup.store.postgres.store import PostgresProfileStore
from lookup.store.records import Rules

SECTION = "Profile store on PostgreSQL: the floor of a bulk load of profiles"
SETTINGS = ("shared_buffers", "max_wal_size", "synchronous_commit", "wal_level", "fsync",
            "full_page_writes")
SECONDARY = (  # the indexes of the tables that no constraint (the primary key) stands on
    "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index AS i"
    " JOIN pg_class AS c ON c.oid = i.indexrelid JOIN pg_class AS t ON t.oid = i.indrelid"
    " WHERE t.relnamespace = %s::regnamespace AND t.relname = ANY(%s)"
    " AND i.indexrelid NOT IN (SELECT conindid FROM pg_constraint) ORDER BY 1"
)


def server_facts(server: str) -> tuple[str, dict[str, str]]:
    """The server's version, and the settings of ``SETTINGS`` as it shows them."""
    with psycopg.connect(server, autocommit=True) as conn:
        version = conn.execute("SHOW server_version").fetchone()
        rows = conn.execute("SELECT name, current_setting(name) FROM pg_settings"
                            " WHERE name = ANY(%s)", (list(SETTINGS),)).fetchall()
    assert version is not None
    found: dict[str, str] = dict(rows)
    return str(version[0]), {name: found.get(name, "?") for name in SETTINGS}


def product_load(server: str, dataset: Dataset, workers: int, postmaster: int,
                 dumps: dict[str, bytes]) -> Spent:
    """``dataset``'s profiles loaded by ``store.ingest`` into a fresh database; when
    ``dumps`` is empty, the three tables it left are dumped into it."""
    with scratch_url(server) as url:
        store = PostgresProfileStore(url, region="US", event_limit=10, ingest_workers=workers)
        try:
            store.counts()  # the schema created before the clock starts
            with dataset.profiles.open(encoding="utf-8") as lines:
                before = sample(postmaster)
                report = store.ingest("profiles", lines)
                spent = sample(postmaster) - before  # the store's connections still open
            counts = store.counts()
        finally:
            store.close()
        n = dataset.n_profiles
        if report.loaded != n or report.rejected or counts["persons"] != n:
            raise RuntimeError(f"loaded {report.loaded} of {n}; {counts}")
        if not dumps:
            dumps.update(dumped(url))
    return spent


def dumped(url: str) -> dict[str, bytes]:
    """Each of ``TABLES`` in COPY's text format."""
    tables = {}
    with psycopg.connect(url) as conn:
        for table in TABLES:
            data = bytearray()
            with conn.cursor().copy(f"COPY {DEFAULT_SCHEMA}.{table} TO STDOUT") as copy:
                for block in copy:
                    data += block
            tables[table] = bytes(data)
    return tables


def floor_load(server: str, dumps: dict[str, bytes], deferred: bool,
               postmaster: int) -> tuple[dict[str, Spent], list[str]]:
    """``dumps`` copied into the empty tables of a fresh store in one transaction: what
    each step took ("COPY <table>", "DROP INDEX", "CREATE INDEX", "COMMIT"), and "in all";
    and the names of the secondary indexes."""
    with scratch_url(server) as url:
        migrate_store(url)
        with psycopg.connect(url) as conn:
            indexes = conn.execute(SECONDARY, (DEFAULT_SCHEMA, list(TABLES))).fetchall()
            conn.commit()
            steps: dict[str, Spent] = {}
            first = mark = sample(postmaster)

            def step(name: str) -> None:
                nonlocal mark
                now = sample(postmaster)
                steps[name], mark = now - mark, now

            for index, _ in indexes if deferred else ():
                conn.execute(f"DROP INDEX {DEFAULT_SCHEMA}.{index}")
            if deferred:
                step("DROP INDEX")
            for table in TABLES:
                _copy_in(conn, table, dumps[table])
                step(f"COPY {table}")
            for _, definition in indexes if deferred else ():
                conn.execute(definition)
            if deferred:
                step("CREATE INDEX")
            conn.commit()
            step("COMMIT")
            steps["in all"] = mark - first
            for table in TABLES:
                row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
                    sql.Identifier(DEFAULT_SCHEMA, table))).fetchone()
                if row is None or row[0] != dumps[table].count(b"\n"):
                    raise RuntimeError(f"{table}: {row} rows copied")
    return steps, [name for name, _ in indexes]


def _copy_in(conn: psycopg.Connection[Any], table: str, data: bytes) -> None:
    view = memoryview(data)
    with conn.cursor().copy(f"COPY {DEFAULT_SCHEMA}.{table} FROM STDIN") as copy:
        for start in range(0, len(view), 1 << 20):
            copy.write(view[start:start + (1 << 20)])


def parse_cpu(lines: list[Line], rules: Rules) -> float:
    """CPU seconds ``parse_chunk`` takes over ``lines`` here (the collector paused, as in
    a load's parsing workers)."""
    started, parsed = time.process_time(), 0
    with collector_paused():
        for first in range(0, len(lines), CHUNK_LINES):
            chunk = parse_chunk("profiles", first + 1, lines[first:first + CHUNK_LINES], rules)
            parsed += len(chunk.records)
    spent = time.process_time() - started
    if parsed != len(lines):
        raise RuntimeError(f"parsed {parsed} of {len(lines)} lines")
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--server", default=SERVER_URL,
                        help="PostgreSQL server on this machine (maintenance database URL) "
                             "to create the run's databases on (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=1,
                        help="parsing processes of the product path (default: %(default)s)")
    parser.add_argument("--label", default=None,
                        help="the server's name in the section's title, e.g. 'default "
                             "settings' (default: its shared_buffers and max_wal_size)")
    parser.add_argument("--no-record", action="store_true",
                        help="print the figures without writing docs/BENCHMARKS.md")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # the databases are dropped
    version, settings = server_facts(args.server)
    label = args.label or (f"shared_buffers {settings['shared_buffers']}, "
                           f"max_wal_size {settings['max_wal_size']}")
    figures = measure(args.server, args.size, args.repeat, args.workers)
    server = "" if args.server == SERVER_URL else f" --server {shlex.quote(shown(args.server))}"
    command = (f".venv/bin/python -m bench.ingest_floor_postgres --size {args.size} "
               f"--repeat {args.repeat} --workers {args.workers}{server} "
               f"--label {shlex.quote(label)}")
    params = conninfo_to_dict(args.server)
    at = Setting(command, f"{params.get('host', 'localhost')}:{params.get('port', 5432)}",
                 version, settings, args.workers, args.repeat, os.cpu_count() or 1)
    body = report(figures, at)
    if not args.no_record:
        record(f"{SECTION} ({label})", body)
    print(body)


def measure(server: str, size: int, repeat: int, workers: int) -> Figures:
    """Every figure of the run (see the module docstring), the medians of ``repeat``."""
    dataset = ensure_dataset(size, 10, log=lambda text: print(f"  {text}", file=sys.stderr))
    with dataset.profiles.open(encoding="utf-8") as handle:
        lines: list[Line] = list(handle)
    rules = Rules.of("US", ("CRMID", "loyaltyId"))  # the store's, as constructed above
    postmaster = postmaster_of(server)
    dumps: dict[str, bytes] = {}
    products, parses = [], []
    floors: dict[str, list[dict[str, Spent]]] = {"a": [], "b": []}
    indexes: list[str] = []
    for run in range(1, repeat + 1):  # alternating, so that the machine's noise hits all
        products.append(product_load(server, dataset, workers, postmaster, dumps))
        for mode in floors:
            steps, indexes = floor_load(server, dumps, mode == "b", postmaster)
            floors[mode].append(steps)
        parses.append(parse_cpu(lines, rules))
        print(f"  run {run}: product {len(lines) / products[-1].wall:,.0f}/s, floor "
              + ", ".join(f"({m}) {len(lines) / f[-1]['in all'].wall:,.0f}/s"
                          for m, f in floors.items())
              + f", parsing {parses[-1] / len(lines) * 1e6:.1f} µs/record", file=sys.stderr)
    return Figures(
        n=len(lines), rows={t: data.count(b"\n") for t, data in dumps.items()},
        product=median_of(products),
        floors={mode: {name: median_of([run[name] for run in runs]) for name in runs[0]}
                for mode, runs in floors.items()},
        parse_s=statistics.median(parses), indexes=indexes)


def shown(server: str) -> str:
    """``server`` without its password, if it has one."""
    params = conninfo_to_dict(server)
    params.pop("password", None)
    return make_conninfo(**params)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
