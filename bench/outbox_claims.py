"""How fast the outbox's adapters hand out deliveries: SQLite against PostgreSQL.

Each run enqueues ``--rows`` deliveries, then ``threads`` claimers (each with its own
connection, as dispatchers in several processes would have) claim them 50 at a time and
mark each done, with no sink in between: the outbox's own cost per delivery. Reported:
deliveries per second (median of ``--runs``), and the latency of one claim of 50.

    .venv/bin/python -m bench.outbox_claims --rows 5000 --runs 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.postgres import scratch_database
from bench.report import describe, machine, record
from hub.models import DeliveryAction, NewDelivery
from state.ledger.sqlite import SCHEMA as LEDGER_SCHEMA
from state.outbox.postgres import PostgresOutbox
from state.outbox.sqlite import SCHEMA as OUTBOX_SCHEMA
from state.outbox.sqlite import SqliteOutbox
from state.sqlite import ThreadLocalDatabase

BATCH = 50
THREADS = (1, 4)


@contextmanager
def sqlite_outbox() -> Iterator[Any]:
    with tempfile.TemporaryDirectory() as folder:
        db = ThreadLocalDatabase(Path(folder) / "hub.sqlite3", LEDGER_SCHEMA + OUTBOX_SCHEMA)
        yield SqliteOutbox(db)
        db.close()


@contextmanager
def postgres_outbox() -> Iterator[Any]:
    with scratch_database(max_size=8) as db:
        yield PostgresOutbox(db)


def rows(count: int, run: int) -> list[NewDelivery]:
    return [NewDelivery(call_sid=f"CA{run:04x}{n:028x}", sink="crm", action=DeliveryAction.NOTE,
                        payload={"text": "Inbound call: Ada Lovelace", "n": n})
            for n in range(count)]


def drain(outbox: Any, threads: int) -> tuple[float, list[float]]:
    """Seconds the claimers took to claim and finish everything, and each claim's ms."""
    claims: list[float] = []
    start = threading.Barrier(threads + 1)

    def claimer() -> None:
        start.wait()
        while True:
            began = time.perf_counter()
            batch = outbox.claim_due(BATCH)
            claims.append((time.perf_counter() - began) * 1000)
            if not batch:
                return
            for delivery in batch:
                outbox.mark_done(delivery.id)

    workers = [threading.Thread(target=claimer) for _ in range(threads)]
    for worker in workers:
        worker.start()
    start.wait()
    began = time.perf_counter()
    for worker in workers:
        worker.join()
    return time.perf_counter() - began, claims


def measure(open_outbox: Callable[[], Any], count: int, runs: int) -> dict[int, tuple[float, str]]:
    """Deliveries per second (median of the runs) and claim latency, per claimer count."""
    figures = {}
    for threads in THREADS:
        rates, claims = [], []
        for run in range(runs):
            with open_outbox() as outbox:
                outbox.enqueue(rows(count, run))
                seconds, latencies = drain(outbox, threads)
                assert outbox.counts()["done"] == count
            rates.append(count / seconds)
            claims.extend(latencies)
        figures[threads] = (statistics.median(rates), describe(claims))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    results = {name: measure(opener, args.rows, args.runs)
               for name, opener in (("SQLite", sqlite_outbox), ("PostgreSQL", postgres_outbox))}
    lines = [f"`.venv/bin/python -m bench.outbox_claims --rows {args.rows} --runs {args.runs}`"
             f" — {machine()}; PostgreSQL 15 on the same machine, over TCP.", "",
             f"{args.rows} deliveries claimed {BATCH} at a time and each marked done, no sink in"
             " between: the outbox's own cost per delivery. Each claimer has its own connection.",
             "", "| backend | claimers | deliveries/s (median of runs) |"
             " one claim of 50, ms: median / p99 / max |", "|---|---|---|---|"]
    for name, figures in results.items():
        for threads, (rate, claims) in figures.items():
            lines.append(f"| {name} | {threads} | {rate:,.0f} | {claims} |")
    lines += ["", "Each mark done is a commit of its own. PostgreSQL flushes its WAL at every"
              " commit (`synchronous_commit` on); the hub's SQLite file runs WAL with"
              " `synchronous=NORMAL`, which does not sync at commit, so these are different"
              " durabilities, not only different engines. Every PostgreSQL checkout also"
              " checks its connection (one round trip), so a connection broken by a database"
              " restart is replaced rather than failing a call."]
    body = "\n".join(lines)
    record("Outbox: claims on SQLite and PostgreSQL", body)
    print(body)


if __name__ == "__main__":
    main()
