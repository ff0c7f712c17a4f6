"""What a completed call's write-back costs: ``ProfileWriteBackSink.deliver`` of one event.

The demo data is loaded into a fresh store; then each configuration writes back the same
number of calls (new CallSids, callers from the demo), one at a time, as the delivery
worker does, and each ``deliver`` is timed. Side by side in one run: the store as the hub
builds it (``CAHUB_INGEST_WORKERS`` at its default, worker processes allowed for big
loads) and a store that never starts one. Processes started during the deliveries are
counted too.
"""

from __future__ import annotations

import argparse
import multiprocessing.process
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from bench.report import describe, machine, record
from hub.models import Delivery, DeliveryAction
from hub.settings import Settings
from lookup.demo import load_demo
from lookup.store import EmbeddedProfileStore
from lookup.writeback import ProfileWriteBackSink

CALLERS = ("+14155550134", "+14155550199", "+12125550123", "+442079460958")


@contextmanager
def counting_processes() -> Iterator[list[int]]:
    """A list that grows by one for every process started while the block runs."""
    started: list[int] = []
    start = multiprocessing.process.BaseProcess.start

    def counted(process: multiprocessing.process.BaseProcess) -> None:
        started.append(1)
        start(process)

    multiprocessing.process.BaseProcess.start = counted  # type: ignore[method-assign]
    try:
        yield started
    finally:
        multiprocessing.process.BaseProcess.start = start  # type: ignore[method-assign]


def delivery(n: int) -> Delivery:
    now = datetime.now(UTC)
    return Delivery(id=n, call_sid=f"CA{n:032x}", sink="profile",
                    action=DeliveryAction.CALL_LOG, created_at=now, next_attempt_at=now,
                    payload={"phone": CALLERS[n % len(CALLERS)], "duration_s": 240,
                             "outcome": "completed", "direction": "inbound"})


def timed_write_backs(workers: int, calls: int, first: int) -> tuple[list[float], int]:
    """Milliseconds per write-back, and how many processes they started."""
    with tempfile.TemporaryDirectory(prefix="bench-writeback-") as tmp:
        store = EmbeddedProfileStore(Path(tmp) / "store.sqlite3", ingest_workers=workers)
        load_demo(store)
        sink = ProfileWriteBackSink(store)
        samples = []
        with counting_processes() as started:
            for n in range(first, first + calls):
                began = time.perf_counter()
                sink.deliver(delivery(n))
                samples.append((time.perf_counter() - began) * 1000)
        store.close()
    return samples, len(started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=100)
    args = parser.parse_args()
    default = Settings.model_fields["ingest_workers"].default
    rows, medians = [], {}
    for label, workers in ((f"the hub's store (ingest workers: {default})", default),
                           ("a store without ingest workers", 0)):
        samples, started = timed_write_backs(workers, args.calls, len(rows) * args.calls)
        medians[workers] = statistics.median(samples)
        rows.append(f"| {label} | {describe(samples)} | {started} |")
        print(rows[-1])
    ratio = medians[default] / medians[0]
    body = f"""`.venv/bin/python -m bench.writeback --calls {args.calls}` — {machine()}.

{args.calls} completed calls written back one at a time by `ProfileWriteBackSink.deliver` (what
the delivery worker runs for each call), into a fresh store holding the demo data.

| store | one write-back, ms: median / p99 / max | processes started |
|---|---|---|
{chr(10).join(rows)}

With worker processes allowed / without (medians): **{ratio:.2f}×**. A write-back is one
line: it is parsed and written in the calling thread, and starts no process.
"""
    record("Write-back of a completed call", body)


if __name__ == "__main__":
    main()
