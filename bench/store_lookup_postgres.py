"""A call's lookup on the PostgreSQL store: one statement against the usual reads.

For each size (10 k and 100 k profiles, 10 events each, ``bench/synthetic``), the data is
ingested into a PostgreSQL store in a scratch database (``cahub_bench_<random>``, dropped
at the end) and into a SQLite store. Then lookups of known and unknown callers are timed
one at a time, in rounds that take turns: the PostgreSQL store as it is (the first
identity's person, newest events and audience names in one statement, one round trip),
the same store reading the usual way (``read_bundle`` answers ``UNANSWERED``: a read
transaction of about five round trips, the code path before the one statement), and
SQLite. The figures go into docs/BENCHMARKS.md.

    .venv/bin/python -m bench.store_lookup_postgres [--sizes 10000 100000] [--lookups 3000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import psycopg

from bench.postgres import scratch_url
from bench.report import machine, percentile, record
from bench.store import caller, code_revision, ingest, time_lookups
from bench.synthetic import Dataset, ensure_dataset, phone_of
from hub.models import Identity
from lookup.store import EmbeddedProfileStore, ProfileStore
from lookup.store.computed import ComputedAttribute
from lookup.store.postgres.store import PostgresProfileStore
from lookup.store.read import UNANSWERED, Bundle, Unanswered

SECTION = "PostgreSQL store: a call's lookup in one round trip"
ROUNDS = 6
WARM_UP = 300


class UsualReads(PostgresProfileStore):
    """The store reading every lookup in a read transaction, as before the one statement."""

    def read_bundle(self, keys: Sequence[tuple[str, str]], since: int | None,
                    deadline: float, computed: Sequence[ComputedAttribute] = (),
                    ) -> Bundle | Unanswered | None:
        return UNANSWERED


def load(store: ProfileStore, dataset: Dataset) -> float:
    """Ingest the dataset; the seconds profiles and events took."""
    ingest(store, "audiences", dataset.audiences, dataset.n_audiences)  # type: ignore[arg-type]
    return (ingest(store, "profiles", dataset.profiles, dataset.n_profiles)  # type: ignore[arg-type]
            + ingest(store, "events", dataset.events, dataset.n_events))  # type: ignore[arg-type]


def run_size(size: int, lookups: int, workdir: Path) -> list[str]:
    dataset = ensure_dataset(size, 10, log=lambda text: print(text, file=sys.stderr))
    stores: dict[str, ProfileStore] = {}
    with scratch_url() as url:
        try:
            stores["PostgreSQL, one statement"] = PostgresProfileStore(url)
            load_pg = load(stores["PostgreSQL, one statement"], dataset)
            stores["PostgreSQL, usual reads (before)"] = UsualReads(url)
            stores["SQLite"] = EmbeddedProfileStore(workdir / f"store-{size}.db")
            load_sqlite = load(stores["SQLite"], dataset)
            with psycopg.connect(url, autocommit=True) as admin:
                admin.execute("VACUUM ANALYZE")
            rng = random.Random(size)
            known = [caller(phone_of(rng.randrange(size))) for _ in range(lookups)]
            unknown = [caller(phone_of(size + rng.randrange(10 * size))) for _ in range(lookups)]
            hits: dict[str, list[float]] = {name: [] for name in stores}
            misses: dict[str, list[float]] = {name: [] for name in stores}
            for store in stores.values():
                time_lookups(store, known[:WARM_UP])  # type: ignore[arg-type]
            step = lookups // ROUNDS
            for r in range(ROUNDS):
                for name, store in stores.items():
                    block: list[list[Identity]] = known[r * step:(r + 1) * step]
                    samples, found = time_lookups(store, block)  # type: ignore[arg-type]
                    if min(found) < 0:
                        raise RuntimeError(f"{name}: a known caller was not found")
                    hits[name] += samples
                    samples, found = time_lookups(  # type: ignore[arg-type]
                        store, unknown[r * step:(r + 1) * step])
                    if max(found) >= 0:
                        raise RuntimeError(f"{name}: an unknown caller was found")
                    misses[name] += samples
        finally:
            for store in stores.values():
                store.close()
    print(f"{size}: ingest PostgreSQL {load_pg:.0f} s, SQLite {load_sqlite:.0f} s",
          file=sys.stderr)
    after = statistics.median(hits["PostgreSQL, one statement"])
    before = statistics.median(hits["PostgreSQL, usual reads (before)"])
    rows = [f"| {size // 1000} k | {name} | {statistics.median(hits[name]):.3f} | "
            f"{percentile(hits[name], 99):.3f} | {statistics.median(misses[name]):.3f} | "
            f"{percentile(misses[name], 99):.3f} |" for name in stores]
    rows.append(f"| {size // 1000} k | median hit, before / after | {before / after:.2f}x | | | |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--lookups", type=int, default=3000)
    parser.add_argument("--note", default="", help="what else ran on the machine")
    args = parser.parse_args()
    rows: list[str] = []
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            rows += run_size(size, args.lookups, Path(folder))
    command = (".venv/bin/python -m bench.store_lookup_postgres --sizes "
               f"{' '.join(map(str, args.sizes))} --lookups {args.lookups}")
    body = "\n".join([
        f"{machine()}; PostgreSQL 127.0.0.1:5432 over TCP; code {code_revision()}.",
        f"Reproduce: `{command}`.",
        *([f"Also running on the machine: {args.note}."] if args.note else []),
        "",
        "A known caller's lookup (person, its 10 newest events, audience names) and an",
        f"unknown caller's, {args.lookups} each per store, one at a time, in {ROUNDS} rounds",
        "taking turns between the stores; milliseconds. Bar: p50 <= 0.5 ms, p99 <= 2 ms.",
        "",
        "| profiles | store | hit p50 | hit p99 | miss p50 | miss p99 |",
        "|---|---|---|---|---|---|",
        *rows,
    ])
    print(body)
    record(SECTION, body)


if __name__ == "__main__":
    main()
