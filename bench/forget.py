"""What ``cahub forget`` costs in the hub's own state, as the call ledger grows.

For each size, a ``hub.sqlite3`` holding that many calls (each with Ada's demo summary
under its own number, about 2 kB, and a note and an SMS in the outbox, half of them done)
plus five calls of the person to forget. Timed, in one process: the redaction of the
ledger and the outbox (a text scan of every summary), the compaction that empties the
WAL, the same forget while a server process (a ``ForgetGuard`` polling as a server does)
must confirm it, and the one-off ``VACUUM`` of a file made by an earlier version.

    .venv/bin/python -m bench.forget [--sizes 10000,100000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app import HUB_FILE
from bench.report import machine, record
from hub.forget_guard import ForgetGuard
from hub.forget_keys import PersonKeys, value_key
from hub.forgetting import Forgetting
from hub.models import CallerKind, CallInfo, DeliveryAction, Identity, NewDelivery, Summary
from hub.summary import build_summary
from lookup.demo import DEMO_CALLER, load_demo
from lookup.store import EmbeddedProfileStore
from state.forgets.sqlite import SCHEMA as FORGETS_SCHEMA
from state.forgets.sqlite import SqliteForgetLog
from state.ledger.sqlite import SCHEMA as LEDGER_SCHEMA
from state.ledger.sqlite import SqliteCallLedger
from state.outbox.sqlite import SCHEMA as OUTBOX_SCHEMA
from state.outbox.sqlite import SqliteOutbox
from state.sqlite import ThreadLocalDatabase

PERSON = "+14155550134"


def demo_summary(scratch: Path) -> dict[str, Any]:
    """Ada's summary as a call from her number shows it, from the demo data."""
    store = EmbeddedProfileStore(scratch / "demo.sqlite3")
    load_demo(store)
    found = store.lookup([Identity(namespace="Phone", id=DEMO_CALLER)], time.monotonic() + 5)
    store.close()
    info = CallInfo(sid="CA" + "0" * 32, **{"from": DEMO_CALLER}, to="+18005550100",
                    caller_kind=CallerKind.NUMBER)
    return build_summary(info, None, found, 0.5).model_dump(mode="json", by_alias=True)


def summary(template: dict[str, Any], n: int, number: str) -> Summary:
    data = {**template, "call": {**template["call"], "sid": f"CA{n:032x}", "from": number},
            "identity": {"namespace": "Phone", "id": number}, "profile_id": f"p{n:08d}",
            "email": f"caller{n}@example.com"}
    return Summary.model_validate(data)


def filled(path: Path, calls: int, template: dict[str, Any]) -> ThreadLocalDatabase:
    db = ThreadLocalDatabase(path, LEDGER_SCHEMA + OUTBOX_SCHEMA + FORGETS_SCHEMA)
    ledger, outbox = SqliteCallLedger(db), SqliteOutbox(db)
    with db.transaction():
        for n in range(calls + 5):
            number = PERSON if n % (calls // 5 or 1) == 0 and n // (calls // 5 or 1) < 5 \
                else f"+1202{n:07d}"
            made = summary(template, n, number)
            ledger.claim(f"CA{n:032x}", "grace", made)
            payload = {"summary": made.to_json_dict(), "phone": number}
            outbox.enqueue([NewDelivery(call_sid=f"CA{n:032x}", sink=sink, action=action,
                                        payload=payload)
                            for sink, action in (("crm", DeliveryAction.NOTE),
                                                 ("sms", DeliveryAction.SMS))])
    db.execute("UPDATE deliveries SET status = 'done' WHERE id % 2 = 0")
    db.compact()
    return db


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def forgetting(db: ThreadLocalDatabase) -> Forgetting:
    return Forgetting(SqliteCallLedger(db), SqliteOutbox(db), SqliteForgetLog(db),
                      db.transaction)


def with_a_server(db: ThreadLocalDatabase, keys: PersonKeys) -> float:
    """The same forget, with a server process that must confirm it (polling 4 times/s)."""
    guard = ForgetGuard(SqliteForgetLog(db), "bench-server")
    guard.poll()
    guard.start()
    try:
        return timed(lambda: forgetting(db).forget(keys, lambda: None, lambda _: 0))
    finally:
        guard.stop()


def measure(size: int, scratch: Path, template: dict[str, Any]) -> dict[str, float]:
    db = filled(scratch / f"{size}-{HUB_FILE}", size, template)
    keys = PersonKeys.of(value_key(PERSON), [])
    figures = {"file_mb": (scratch / f"{size}-{HUB_FILE}").stat().st_size / 1e6}
    figures["redact_s"] = timed(lambda: forgetting(db).forget(keys, lambda: None, lambda _: 0))
    figures["compact_s"] = timed(db.compact)
    another = PersonKeys.of(value_key(f"+1202{size // 2:07d}"), [])  # one call of its own
    figures["again_with_a_server_s"] = with_a_server(db, another)
    db.execute("PRAGMA user_version = 0")  # as a file from an earlier version
    figures["vacuum_once_s"] = timed(db.compact)
    db.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000")
    sizes = [int(size) for size in parser.parse_args().sizes.split(",")]
    with tempfile.TemporaryDirectory() as scratch:
        template = demo_summary(Path(scratch))
        results = {size: measure(size, Path(scratch), template) for size in sizes}
    rows = [f"| {size:,} | {r['file_mb']:.0f} | {r['redact_s']:.2f} | {r['compact_s']:.3f} | "
            f"{r['again_with_a_server_s']:.2f} | {r['vacuum_once_s']:.2f} |"
            for size, r in results.items()]
    body = f"""`.venv/bin/python -m bench.forget --sizes {','.join(map(str, sizes))}` — {machine()}.

A `hub.sqlite3` of that many calls (each a found caller's summary of about 2 kB, a note and
an SMS in the outbox, half of them done) and five calls of the person forgotten (by number).
"redact" is the scan of every summary and the redaction of the person's calls and
deliveries, in one transaction; "compact" empties the WAL afterwards. "with a server" is a
forget of another caller (one call) while a server process must confirm it (it polls four
times a second), so it includes that wait. "VACUUM" is the one-off rewrite of a file made by an
earlier version of the hub (which did not delete securely); it holds the write lock while
it runs, so calls wait in memory (see "A locked hub database").

| calls | file (MB) | redact (s) | compact (s) | with a server (s) | VACUUM once (s) |
|---|---|---|---|---|---|
{chr(10).join(rows)}"""
    print(body)
    record("Forgetting a person: the hub's own state", body)


if __name__ == "__main__":
    main()
