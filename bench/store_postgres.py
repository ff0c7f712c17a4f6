"""The profile store on both backends, side by side in one run: SQLite and PostgreSQL.

For each size, the synthetic XDM JSON Lines of ``bench.synthetic`` are loaded into a
fresh SQLite store (exactly as ``bench.store`` does) and into a fresh PostgreSQL store
(a database of this run's own, ``cahub_bench_<random>``, dropped at the end), one after
the other: audiences, then profiles and events, each timed through ``store.ingest`` (the
path ``cahub ingest`` takes; on PostgreSQL a load that large goes through ``COPY``,
``lookup.store.postgres.bulk``). Then the hub's call path — ``lookup([Phone_E.164,
Phone])``: profile + 10 newest events + audiences + the computed attributes of
``COMPUTED`` — is timed one call at a time on one thread, for random known callers after
a warm-up, and for unknown numbers. PostgreSQL is reached over local TCP (127.0.0.1) and
runs on the same cores.

    .venv/bin/python -m bench.store_postgres [--sizes 10000,100000,1000000]
        [--events-per-profile 10] [--lookups 5000] [--server postgresql://127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from bench.postgres import SERVER_URL, scratch_url
from bench.report import describe, machine, percentile, record
from bench.store import (
    INGEST_BAR,
    P50_BAR_MS,
    P99_BAR_MS,
    RATIO_BAR,
    WARM_UP,
    Result,
    caller,
    code_revision,
    ingest,
    label,
    run_size,
    time_lookups,
    verdict,
)
from bench.synthetic import Dataset, ensure_dataset, phone_of
from lookup.store.computed import ComputedAttribute
from lookup.store.postgres.store import PostgresProfileStore

SECTION = "Profile store on SQLite and PostgreSQL, side by side"
# The stores' computed attributes while lookups are timed (the bar is for a lookup with
# them): a count and a sum over a window and an event type, and the newest of a list's items.
COMPUTED = (
    ComputedAttribute(name="purchases_90d", function="count", event_type="commerce.purchases",
                      window_days=90),
    ComputedAttribute(name="spend_90d", function="sum", field="commerce.order.priceTotal",
                      event_type="commerce.purchases", window_days=90),
    ComputedAttribute(name="last_product", function="most_recent",
                      field="productListItems[].name"),
)


@dataclass(frozen=True)
class Run:
    """One size on both backends."""

    sqlite: Result
    postgres: Result


def run_postgres(dataset: Dataset, lookups: int, seed: int, server: str, workers: int) -> Result:
    """``dataset`` loaded into a new database, its lookups timed; the database dropped."""
    size, event_limit = dataset.n_profiles, 10
    with scratch_url(server) as url:
        store = PostgresProfileStore(url, region="US", event_limit=event_limit, computed=COMPUTED,
                                     ingest_workers=workers)
        try:
            ingest(store, "audiences", dataset.audiences, dataset.n_audiences)
            profiles_s = ingest(store, "profiles", dataset.profiles, size)
            events_s = ingest(store, "events", dataset.events, dataset.n_events)
            counts = store.counts()
            if counts["persons"] != size or counts["events"] != dataset.n_events:
                raise RuntimeError(f"unexpected store counts {counts}")
            with psycopg.connect(url, autocommit=True) as conn:  # as autovacuum would, soon
                conn.execute("VACUUM ANALYZE")
                bytes_row = conn.execute(
                    "SELECT pg_database_size(current_database())").fetchone()
            store_bytes = int(bytes_row[0]) if bytes_row else 0
            rng = random.Random(seed)
            warm = [caller(phone_of(rng.randrange(size))) for _ in range(WARM_UP)]
            known = [caller(phone_of(rng.randrange(size))) for _ in range(lookups)]
            unknown = [caller(phone_of(size + rng.randrange(10 * size)))
                       for _ in range(lookups)]
            time_lookups(store, warm)
            hits_ms, found = time_lookups(store, known)
            misses_ms, missed = time_lookups(store, unknown)
            if min(found) < 0 or max(missed) >= 0:
                raise RuntimeError("a known caller was not found, or an unknown one was")
        finally:
            store.close()
    return Result(size, dataset.n_events, size / profiles_s, dataset.n_events / events_s,
                  profiles_s, events_s, hits_ms, hits_ms, None, None, misses_ms,
                  found.count(event_limit), store_bytes)


def report(runs: list[Run], command: str, lookups: int, code: str, workers: int,
           others: str) -> str:
    heads = " | ".join(f"{label(r.sqlite.size)} SQLite | {label(r.sqlite.size)} PostgreSQL"
                       for r in runs)
    rule = "|".join("---" for _ in range(2 * len(runs) + 2))

    def row(name: str, cell: object, bar: str = "") -> str:
        cells = [cell(result) for run in runs for result in (run.sqlite, run.postgres)]  # type: ignore[operator]
        return f"| {name} | {' | '.join(cells)} | {bar} |"

    rows = [
        row("events", lambda r: f"{r.events:,}"),
        row("ingest profiles (records/s)", lambda r: f"{r.profiles_per_s:,.0f}",
            f"≥ {INGEST_BAR:,} (PostgreSQL)"),
        row("ingest events (events/s)", lambda r: f"{r.events_per_s:,.0f}"),
        row("ingest wall time, profiles + events (s)",
            lambda r: f"{r.profiles_s:,.1f} + {r.events_s:,.1f}"),
        row("lookup, known caller: p50 / p99 / max (ms)", lambda r: describe(r.hits_ms),
            f"p50 ≤ {P50_BAR_MS}, p99 ≤ {P99_BAR_MS:g} at 1 M / 10 M"),
        row("lookup, unknown number: p50 (ms)",
            lambda r: f"{statistics.median(r.misses_ms):.3f}"),
        row("known callers returned with 10 events",
            lambda r: f"{r.full_profiles:,} of {lookups:,}"),
        row("store size (SQLite file + WAL; PostgreSQL database)",
            lambda r: f"{r.store_bytes / 2**20:,.0f} MiB"),
    ]
    small, large = runs[0].postgres, runs[-1].postgres
    ratio = statistics.median(large.hits_ms) / statistics.median(small.hits_ms)
    sqlite_ratio = (statistics.median(runs[-1].sqlite.hits_ms)
                    / statistics.median(runs[0].sqlite.hits_ms))
    p50, p99 = statistics.median(large.hits_ms), percentile(large.hits_ms, 99)
    slowest = min(run.postgres.profiles_per_s for run in runs)
    scope = "" if large.size >= 1_000_000 else (
        f" (this run's largest size is {label(large.size)}; the bars are set at 1 M profiles)")
    bars = [
        f"- PostgreSQL ingest ≥ {INGEST_BAR:,} profile records/s: "
        f"{verdict(slowest >= INGEST_BAR)} (slowest {slowest:,.0f}/s; SQLite in the same run: "
        f"{', '.join(f'{r.sqlite.profiles_per_s:,.0f}' for r in runs)}/s).",
        f"- PostgreSQL lookup p50 ≤ {P50_BAR_MS} ms and p99 ≤ {P99_BAR_MS:g} ms at "
        f"{label(large.size)}: {verdict(p50 <= P50_BAR_MS and p99 <= P99_BAR_MS)} "
        f"({p50:.3f} / {p99:.3f} ms){scope}.",
        f"- PostgreSQL lookup p50 at {label(large.size)} / at {label(small.size)}: "
        f"**{ratio:.2f}×** (bar ≤ {RATIO_BAR:g}×): {verdict(ratio <= RATIO_BAR)}{scope}; "
        f"SQLite in the same run: {sqlite_ratio:.2f}×.",
    ]
    return f"""`{command}` — {machine()}.

Synthetic XDM JSON Lines from `bench/synthetic.py` (as `bench.store`), each size loaded
into a fresh SQLite store and a fresh PostgreSQL database, one after the other, through
`store.ingest` (`cahub ingest`'s path) with one parsing worker process on SQLite (as
`bench.store`) and {workers} on PostgreSQL (ingest times include reading the files and
the progress reports; on PostgreSQL, a bulk load through `COPY`). Lookups are the hub's
call path — `lookup([Phone_E.164, Phone])`, profile + 10 newest events + audiences + three
computed attributes (`COMPUTED`: purchases and spend over 90 days, the newest product
seen; on PostgreSQL in the lookup's one statement) — one at a time, in-process on one
thread, for {lookups:,} random known
callers after {WARM_UP} warm-up lookups, then {lookups:,} unknown numbers. SQLite's are
timed with its file read into the page cache (`bench.store`'s second timing); PostgreSQL's
over local TCP after `VACUUM ANALYZE` (what autovacuum does soon after a load), with the
server's default settings. PostgreSQL runs on the same 2 cores. Store code: {code}.
Running meanwhile on this machine: {others}.

| figure | {heads} | bar |
|{rule}|
{chr(10).join(rows)}

{chr(10).join(bars)}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--events-per-profile", type=int, default=10)
    parser.add_argument("--lookups", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1,
                        help="parsing worker processes of each load (default: %(default)s)")
    parser.add_argument("--server", default=SERVER_URL,
                        help="PostgreSQL server (maintenance database URL) to create the "
                             "run's database on (default: %(default)s)")
    parser.add_argument("--others", default="not recorded",
                        help="what else ran on the machine meanwhile, for the record")
    parser.add_argument("--no-record", action="store_true",
                        help="print the figures without writing docs/BENCHMARKS.md")
    parser.add_argument("--tmp", type=Path, default=None)
    args = parser.parse_args()
    sizes = sorted({int(size) for size in args.sizes.split(",") if size.strip()})
    command = (f".venv/bin/python -m bench.store_postgres --sizes "
               f"{','.join(map(str, sizes))} --events-per-profile {args.events_per_profile} "
               f"--lookups {args.lookups} --workers {args.workers}")
    code = code_revision()
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-store-pg-", dir=args.tmp) as tmp:
        for size in sizes:
            dataset = ensure_dataset(size, args.events_per_profile, args.seed,
                                     log=lambda text: print(f"  {text}", file=sys.stderr))
            print(f"{label(size)} profiles, SQLite:", file=sys.stderr, flush=True)
            sqlite = run_size(dataset, args.lookups, args.seed, Path(tmp), computed=COMPUTED)
            print(f"{label(size)} profiles, PostgreSQL:", file=sys.stderr, flush=True)
            started = time.perf_counter()
            postgres = run_postgres(dataset, args.lookups, args.seed, args.server, args.workers)
            for name, result in (("SQLite", sqlite), ("PostgreSQL", postgres)):
                print(f"  {name}: profiles {result.profiles_per_s:,.0f}/s, events "
                      f"{result.events_per_s:,.0f}/s, lookup p50/p99/max "
                      f"{describe(result.hits_ms)} ms", file=sys.stderr, flush=True)
            print(f"  ({time.perf_counter() - started:,.0f} s on PostgreSQL)", file=sys.stderr)
            runs.append(Run(sqlite, postgres))
            body = report(runs, command, args.lookups, code, args.workers, args.others)
            if not args.no_record:  # each size as it is done: a long run may be cut short
                record(SECTION, body)
    print(body)


if __name__ == "__main__":
    main()
