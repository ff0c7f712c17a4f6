"""What ``cahub forget`` costs on PostgreSQL, and what its VACUUM costs the calls meanwhile.

For each size, a fresh database holding that many calls (each with Ada's demo summary under
its own number, about 2 kB, and a note and an SMS in the outbox, half of them done) plus
five calls of the person to forget, as ``bench.forget`` builds for SQLite. Timed, in one
process: the redaction of the ledger and the outbox (a scan of every summary's text), the
plain VACUUM that ``cahub forget`` runs afterwards (``PostgresDatabase.compact``), and, for
comparison, a VACUUM FULL of the same tables (which ``cahub forget`` does not run). While each
VACUUM runs, a thread records one new call after another as the webhook does (ledger row
and deliveries in one transaction): their latency says what the VACUUM costs live calls.

    .venv/bin/python -m bench.forget_postgres [--sizes 10000,100000] [--url postgresql://...]
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from psycopg.types.json import Jsonb

from bench.forget import PERSON, demo_summary, summary, timed
from bench.postgres import SERVER_URL, scratch_database
from bench.report import machine, percentile, record
from hub.forget_keys import PersonKeys, value_key
from hub.forgetting import Forgetting
from hub.models import DeliveryAction, NewDelivery
from state.forgets.postgres import PostgresForgetLog
from state.ledger.postgres import PostgresCallLedger
from state.outbox.postgres import PostgresOutbox
from state.postgres import FORGET_TABLES, PostgresDatabase

HEADER = ("| calls | MB | redact (s) | VACUUM, first (s) | calls meanwhile | VACUUM again (s) "
          "| VACUUM FULL (s) | calls meanwhile |\n|---|---|---|---|---|---|---|---|")


def fill(db: PostgresDatabase, calls: int, template: dict[str, Any]) -> None:
    """The calls and their deliveries, in pages of a thousand (executemany pipelines them)."""
    every = calls // 5 or 1
    for first in range(0, calls + 5, 1000):
        made = [(n, summary(template, n, PERSON if n % every == 0 and n // every < 5
                            else f"+1202{n:07d}")) for n in range(first, min(first + 1000,
                                                                             calls + 5))]
        with db.transaction() as conn, conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO calls (call_sid, agent_id, summary) VALUES (%s, %s, %s)",
                [(f"CA{n:032x}", "grace", Jsonb(s.model_dump(mode="json", by_alias=True)))
                 for n, s in made])
            cursor.executemany(
                "INSERT INTO deliveries (call_sid, sink, action, payload, status, created_at,"
                " next_attempt_at) VALUES (%s, %s, %s, %s, %s, now(), now())",
                [(f"CA{n:032x}", sink, action, Jsonb({"summary": s.to_json_dict(),
                                                      "phone": s.call.from_}),
                  "done" if sink == "crm" else "pending")
                 for n, s in made for sink, action in (("crm", "note"), ("sms", "sms"))])
    with db.connection() as conn:  # never vacuumed: every page is new to the first VACUUM
        conn.execute("ALTER TABLE calls SET (autovacuum_enabled = false);"
                     " ALTER TABLE deliveries SET (autovacuum_enabled = false);"
                     " ANALYZE calls, deliveries")


def size_mb(db: PostgresDatabase) -> float:
    with db.connection() as conn:
        row = conn.execute("SELECT pg_total_relation_size('calls')"
                           " + pg_total_relation_size('deliveries')").fetchone()
    assert row is not None
    return cast(int, row[0]) / 1e6


def forgetting(db: PostgresDatabase) -> Forgetting:
    return Forgetting(PostgresCallLedger(db), PostgresOutbox(db), PostgresForgetLog(db),
                      db.transaction)


def calls_meanwhile(db: PostgresDatabase, action: Callable[[], object],
                    template: dict[str, Any]) -> tuple[float, list[float]]:
    """``action``'s time, and the latency (ms) of each call recorded while it ran (whose
    recording overlapped it)."""
    ledger, outbox, stop = PostgresCallLedger(db), PostgresOutbox(db), threading.Event()
    spans: list[tuple[float, float]] = []

    def record_calls() -> None:
        n = 10_000_000 + secrets.randbelow(10**9)
        while not stop.is_set():
            n += 1
            made = summary(template, n, "+12025550000")
            started = time.perf_counter()
            with db.transaction():
                ledger.claim(f"CA{n:032x}", "grace", made)
                outbox.enqueue([NewDelivery(call_sid=f"CA{n:032x}", sink="crm",
                                            action=DeliveryAction.NOTE, payload={"n": n})])
            spans.append((started, time.perf_counter()))

    caller = threading.Thread(target=record_calls)
    caller.start()
    time.sleep(0.2)  # calls flowing before the action starts
    began = time.perf_counter()
    took = timed(action)
    ended = time.perf_counter()
    time.sleep(0.05)
    stop.set()
    caller.join()
    return took, [(end - start) * 1000 for start, end in spans if start < ended and end > began]


def measure(size: int, server_url: str, template: dict[str, Any]) -> dict[str, Any]:
    with scratch_database(server_url) as db:
        fill(db, size, template)
        figures: dict[str, Any] = {"mb": size_mb(db)}
        keys = PersonKeys.of(value_key(PERSON), [])
        figures["redact_s"] = timed(lambda: forgetting(db).forget(keys, lambda: None,
                                                                  lambda _: 0))
        figures["vacuum_s"], figures["vacuum_calls"] = calls_meanwhile(db, db.compact, template)
        another = PersonKeys.of(value_key(f"+1202{size // 2:07d}"), [])  # one call of its own
        forgetting(db).forget(another, lambda: None, lambda _: 0)
        figures["again_s"] = timed(db.compact)
        full = f"VACUUM FULL {', '.join(FORGET_TABLES)}"

        def vacuum_full() -> None:
            with db.connection() as conn:
                conn.execute(full)

        figures["full_s"], figures["full_calls"] = calls_meanwhile(db, vacuum_full, template)
    return figures


def latency(samples: list[float]) -> str:
    if not samples:
        return "none"
    return (f"{len(samples)} calls, {statistics.median(samples):.1f} / "
            f"{percentile(samples, 99):.1f} / {max(samples):.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--url", default=SERVER_URL, help="the server's maintenance database")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as scratch:
        template = demo_summary(Path(scratch))
    results = {size: measure(size, args.url, template) for size in sizes}
    slowest = max(max(r["full_calls"], default=0) for r in results.values()) / 1000
    rows = [f"| {size:,} | {r['mb']:.0f} | {r['redact_s']:.2f} | {r['vacuum_s']:.2f} | "
            f"{latency(r['vacuum_calls'])} | {r['again_s']:.3f} | {r['full_s']:.2f} | "
            f"{latency(r['full_calls'])} |" for size, r in results.items()]
    body = f"""`.venv/bin/python -m bench.forget_postgres --sizes {args.sizes}` — {machine()};
PostgreSQL 15 on the same machine, over TCP.

A fresh database of that many calls (each a found caller's summary of about 2 kB, a note and
an SMS in the outbox, half of them done; "MB" is the two tables with their TOAST and
indexes) and five calls of the person forgotten (by number). "redact" is what the use case
does in the database: two scans of what identifies each call's caller (the needles, then
those the person's calls add), the rewrite of their calls and deliveries, and the same again
after the servers confirmed (none here). "VACUUM" is what `cahub forget` runs then
(`VACUUM {', '.join(FORGET_TABLES)}`): it removes the old row versions the rewrite
left; the first reads every page (autovacuum was off for the benchmark, so no page had been
vacuumed), a later one ("again", after the forget of another caller's one call) only the
pages changed since, as after autovacuum. "VACUUM FULL", which `cahub forget` does not
run, rewrites the tables whole under an exclusive lock. Meanwhile one thread records new
calls back to back as the webhook does (a ledger row and a delivery in one transaction):
how many it recorded while each ran, and their latency (median / p99 / max).

{HEADER}
{chr(10).join(rows)}

Once VACUUM has returned, no dead version of a rewritten row is left in the tables'
pages (tests: `test_compact_removes_every_old_row_version_a_forget_left`, and the
end-to-end forget on PostgreSQL). The bytes of a removed version may still lie in its page's
free space until PostgreSQL reuses it, and in the WAL until its segments are recycled (and
in backups and replicas, as for any deleted row). VACUUM FULL would rewrite the tables
without them, but every new call waits for it (up to {slowest:.1f} s above), on every server at
once: `cahub forget` does not run it."""
    print(body)
    record("Forgetting a person on PostgreSQL: redaction and VACUUM", body)


if __name__ == "__main__":
    main()
