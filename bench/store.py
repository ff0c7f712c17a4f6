"""Embedded store at scale: ingest throughput and lookup latency, 10 k to 1 M profiles.

For each size, synthetic XDM JSON Lines (``bench.synthetic``, written once under
``bench/data/<size>/`` and reused) are loaded into a fresh store in a temporary
directory: audiences, then profiles and events, each timed. Then the lookup the hub
makes for a call — both phone namespaces, profile + newest events + audiences — is timed
one call at a time, in-process on one thread, for random known callers after a warm-up,
and for unknown numbers (a miss).

    .venv/bin/python -m bench.store [--sizes 10000,100000,1000000]
        [--events-per-profile 10] [--lookups 5000]
"""

from __future__ import annotations

import argparse
import ctypes
import mmap
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.report import describe, machine, percentile, record
from bench.synthetic import Dataset, email_of, ensure_dataset, phone_of
from hub.models import Identity, Profile
from lookup.store import EmbeddedProfileStore
from lookup.store.computed import ComputedAttribute
from lookup.store.core import ProfileStore
from lookup.store.ingest import Kind

SECTION = "Embedded store: ingest and lookup at scale"
# With --events-order arrival: the same figures, events stored as they come.
ARRIVAL_SECTION = "Embedded store: the same, events stored in arrival order"
# Loaded before the events in arrival order, so that theirs is not a store's first load of
# events (which is stored person by person): one more event of the first profile.
SENTINEL_EVENT = (
    '{"_id": "bench-sentinel", "timestamp": "2026-01-01T00:00:00Z", "eventType": "bench",'
    ' "identityMap": {"Email": [{"id": "%s"}]}}'
)
WARM_UP = 500
DEADLINE_S = 10.0  # generous: the deadline is the hub's business, not this benchmark's
INGEST_BAR = 50_000  # profile records/s
P50_BAR_MS, P99_BAR_MS, RATIO_BAR = 0.5, 2.0, 2.0


@dataclass(frozen=True)
class Result:
    size: int
    events: int
    profiles_per_s: float
    events_per_s: float
    profiles_s: float
    events_s: float
    hits_ms: list[float]  # with the whole file read into the page cache first
    cold_hits_ms: list[float]  # with the file as the load left it in the page cache
    cached_before: float | None  # share of the file in the page cache, before and after
    cached_after: float | None  # reading it all
    misses_ms: list[float]
    full_profiles: int  # hits that came back with ``event_limit`` events
    store_bytes: int


class Progress:
    """A progress line on stderr: rewritten in place on a terminal, every 10 s in a log."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.done = label, total, 0
        self.tty = sys.stderr.isatty()
        self.started = self.shown = time.perf_counter()

    def __call__(self, count: int) -> None:
        self.done += count
        now = time.perf_counter()
        if now - self.shown >= (0.5 if self.tty else 10.0):
            self.shown = now
            self._show(now, end="\r" if self.tty else "\n")

    def finish(self) -> None:
        self._show(time.perf_counter(), end="\n")

    def _show(self, now: float, end: str) -> None:
        rate = self.done / max(now - self.started, 1e-9)
        share = self.done / self.total if self.total else 1.0
        left = (self.total - self.done) / rate if rate else 0.0
        print(f"  {self.label:<9} {self.done:>12,} / {self.total:,} ({share:6.1%}) "
              f"{rate:>9,.0f}/s  ~{left:5.0f} s left", end=end, file=sys.stderr, flush=True)


def ingest(store: ProfileStore, kind: Kind, path: Path, total: int) -> float:
    """Load ``path``; the seconds it took. Any rejected line is a generator bug."""
    progress = Progress(kind, total)
    started = time.perf_counter()
    with path.open(encoding="utf-8") as lines:
        report = store.ingest(kind, lines, progress=progress,
                              note=lambda text: print(f"\n  {text}", file=sys.stderr))
    elapsed = time.perf_counter() - started
    progress.finish()
    if report.rejected or report.loaded != total:
        reasons = "; ".join(str(r) for r in report.rejected[:5])
        raise RuntimeError(f"{kind}: loaded {report.loaded} of {total}; {reasons}")
    return elapsed


def caller(e164: str) -> list[Identity]:
    """The candidates the hub builds for a caller (its default phone namespaces)."""
    return [Identity(namespace="Phone_E.164", id=e164), Identity(namespace="Phone", id=e164)]


def time_lookups(
    store: ProfileStore, callers: list[list[Identity]]
) -> tuple[list[float], list[int]]:
    """Per-lookup milliseconds, one call at a time, and each answer's event count.

    The count is -1 for no profile; answers are not kept, so that holding thousands
    of profiles does not burden the garbage collector during the timing.
    """
    samples: list[float] = []
    answers: list[int] = []
    for identities in callers:
        deadline = time.monotonic() + DEADLINE_S
        started = time.perf_counter()
        found = store.lookup(identities, deadline)
        samples.append((time.perf_counter() - started) * 1000)
        answers.append(len(found.events) if isinstance(found, Profile) else -1)
    return samples, answers


def settle(path: Path) -> None:
    """Let the load finish writing (checkpoint, flush to disk) before lookups are timed.

    A running hub looks callers up long after a load, not while the kernel is still
    writing gigabytes of it back; timing lookups during that write-back measures the
    disk, not the store.
    """
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    connection.close()
    os.sync()
    time.sleep(2)


def cached_share(path: Path) -> float | None:
    """The share of ``path``'s pages in the page cache (mincore(2)), None where unknown."""
    size = path.stat().st_size
    if size == 0:
        return 1.0
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pages = -(-size // mmap.PAGESIZE)
        vector = (ctypes.c_ubyte * pages)()
        with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0,
                                                  access=mmap.ACCESS_COPY) as mapped:
            start = ctypes.c_char.from_buffer(mapped)  # a private mapping: nothing is read
            failed = libc.mincore(ctypes.c_void_p(ctypes.addressof(start)),
                                  ctypes.c_size_t(size), vector)
            del start
    except (OSError, AttributeError):
        return None
    return None if failed else sum(byte & 1 for byte in vector) / pages


def read_into_cache(path: Path) -> None:
    """Read the whole file once, so that its pages are in the page cache (``vmtouch -t``)."""
    with path.open("rb", buffering=0) as handle:
        while handle.read(1 << 22):
            pass


def run_size(
    dataset: Dataset, lookups: int, seed: int, workdir: Path, arrival: bool = False,
    computed: Sequence[ComputedAttribute] = (),
) -> Result:
    size = dataset.n_profiles
    path = workdir / f"store-{size}.sqlite3"
    event_limit = 10
    store = EmbeddedProfileStore(path, region="US", event_limit=event_limit, ingest_workers=1,
                                 computed=computed)
    try:
        ingest(store, "audiences", dataset.audiences, dataset.n_audiences)
        profiles_s = ingest(store, "profiles", dataset.profiles, size)
        if arrival:
            store.ingest("events", [SENTINEL_EVENT % email_of(0)])
        events_s = ingest(store, "events", dataset.events, dataset.n_events)
        counts = store.counts()
        if counts["persons"] != size or counts["events"] != dataset.n_events + arrival:
            raise RuntimeError(f"unexpected store counts {counts}")

        settle(path)
        rng = random.Random(seed)
        warm = [caller(phone_of(rng.randrange(size))) for _ in range(WARM_UP)]
        first = [caller(phone_of(rng.randrange(size))) for _ in range(lookups)]
        known = [caller(phone_of(rng.randrange(size))) for _ in range(lookups)]
        # Numbers past the last profile are valid and distinct, and in no profile.
        unknown = [caller(phone_of(size + rng.randrange(10 * size))) for _ in range(lookups)]
        cached_before = cached_share(path)
        time_lookups(store, warm)
        cold_hits_ms, found_first = time_lookups(store, first)
        read_into_cache(path)
        cached_after = cached_share(path)
        hits_ms, found = time_lookups(store, known)
        misses_ms, missed = time_lookups(store, unknown)
        if min(found + found_first) < 0 or max(missed) >= 0:
            raise RuntimeError("a known caller was not found, or an unknown one was")
        full = found.count(event_limit)
    finally:
        store.close()
    store_bytes = sum(f.stat().st_size for f in workdir.glob(f"{path.name}*"))
    for leftover in workdir.glob(f"{path.name}*"):
        leftover.unlink()
    return Result(size, dataset.n_events, size / profiles_s, dataset.n_events / events_s,
                  profiles_s, events_s, hits_ms, cold_hits_ms, cached_before, cached_after,
                  misses_ms, full, store_bytes)


def code_revision() -> str:
    """The commit the store code comes from, and whether ``lookup/`` has local changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],  # noqa: S607
                                capture_output=True, text=True, check=True).stdout.strip()
        changes = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--",  # noqa: S607
                                  "lookup"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"{commit}{' with uncommitted changes to lookup/' if changes.strip() else ''}"


def label(size: int) -> str:
    if size >= 1_000_000 and size % 1_000_000 == 0:
        return f"{size // 1_000_000} M"
    if size >= 1_000 and size % 1_000 == 0:
        return f"{size // 1_000} k"
    return f"{size:,}"


def share(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.0%}"


def verdict(ok: bool) -> str:
    return "meets" if ok else "**misses**"


def report(
    results: list[Result], command: str, lookups: int, code: str, arrival: bool = False
) -> str:
    heads = " | ".join(label(r.size) for r in results)
    rule = "|".join("---" for _ in range(len(results) + 2))

    def row(name: str, cells: list[str], bar: str = "") -> str:
        return f"| {name} | {' | '.join(cells)} | {bar} |"

    rows = [
        row("profiles", [f"{r.size:,}" for r in results]),
        row("events", [f"{r.events:,}" for r in results]),
        row("ingest profiles (records/s)", [f"{r.profiles_per_s:,.0f}" for r in results],
            f"≥ {INGEST_BAR:,}"),
        row("ingest events (events/s)", [f"{r.events_per_s:,.0f}" for r in results]),
        row("ingest wall time, profiles + events (s)",
            [f"{r.profiles_s:,.1f} + {r.events_s:,.1f}" for r in results]),
        row("share of the store file in the page cache after the load",
            [share(r.cached_before) for r in results]),
        row("lookup, known caller, the file as the load left it: p50 / p99 / max (ms)",
            [describe(r.cold_hits_ms) for r in results]),
        row("lookup, known caller, the file read into the page cache: p50 / p99 / max (ms)",
            [describe(r.hits_ms) for r in results],
            f"p50 ≤ {P50_BAR_MS}, p99 ≤ {P99_BAR_MS:g} at 1 M / 10 M"),
        row("lookup, unknown number: p50 (ms)",
            [f"{statistics.median(r.misses_ms):.3f}" for r in results]),
        row("known callers returned with 10 events", [f"{r.full_profiles:,} of {lookups:,}"
                                                       for r in results]),
        row("store on disk (database + WAL)", [f"{r.store_bytes / 2**20:,.0f} MiB"
                                               for r in results]),
    ]
    small, large = results[0], results[-1]
    ratio = statistics.median(large.hits_ms) / statistics.median(small.hits_ms)
    p50, p99 = statistics.median(large.hits_ms), percentile(large.hits_ms, 99)
    slowest = min(r.profiles_per_s for r in results)
    at_scale = large.size >= 1_000_000
    scope = "" if at_scale else (
        f" (this run's largest size is {label(large.size)}; the bars are set at 1 M profiles)")
    bars = [
        f"- Ingest ≥ {INGEST_BAR:,} profile records/s: {verdict(slowest >= INGEST_BAR)} "
        f"(slowest {slowest:,.0f}/s).",
        f"- Lookup p50 ≤ {P50_BAR_MS} ms and p99 ≤ {P99_BAR_MS:g} ms at {label(large.size)}: "
        f"{verdict(p50 <= P50_BAR_MS and p99 <= P99_BAR_MS)} ({p50:.3f} / {p99:.3f} ms){scope}.",
        f"- Lookup p50 at {label(large.size)} / at {label(small.size)}: **{ratio:.2f}×** "
        f"(bar ≤ {RATIO_BAR:g}× from 10 k to 1 M): {verdict(ratio <= RATIO_BAR)}{scope}.",
    ]
    order = ("Events are stored as they come, as a later load's are: one event is loaded "
             "before them, so that theirs is not the store's first load." if arrival else
             "Events are the store's first load, stored person by person at its end.")
    return f"""`{command}` — {machine()}.

Synthetic XDM JSON Lines from `bench/synthetic.py` (seeded; phones in several written
formats, each event keyed by email or phone), {large.events // large.size} events per
profile over 90 days, interleaved in time order as an export is, 8 audiences. Each size is
loaded into a fresh store (ingest times include reading the files and the progress
reports). {order} Lookups are the hub's call
path — `lookup([Phone_E.164, Phone])`, profile + 10 newest events + audiences — timed one
at a time, in-process on one thread, for {lookups:,} random known callers, then
{lookups:,} unknown numbers. Before timing, the load is checkpointed and flushed to disk.

Lookups are timed twice, for different callers. First with the store file as the load
left it in the page cache, after {WARM_UP} warm-up lookups. This machine reclaims file
pages that have not been touched for a while even with memory free (a kernel
`kdamond` runs), so by then part of a large store is read from disk again. Then after
reading the whole file once (as `vmtouch -t` would), which is how a server with memory
to spare holds a store it serves; the bars are judged on these. Store code: {code}.

| figure | {heads} | bar (PRODUCT.md §9) |
|{rule}|
{chr(10).join(rows)}

{chr(10).join(bars)}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000",
                        help="profile counts, comma-separated (default: %(default)s)")
    parser.add_argument("--events-per-profile", type=int, default=10)
    parser.add_argument("--lookups", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--code-label", default=None,
                        help="which store code is measured (default: the git commit)")
    parser.add_argument("--tmp", type=Path, default=None,
                        help="where the stores are built (default: the system temp dir)")
    parser.add_argument("--events-order", choices=("person", "arrival"), default="person",
                        help="person: events are a first load, stored person by person "
                             "(default); arrival: stored as they come, as later loads are")
    args = parser.parse_args()
    arrival = args.events_order == "arrival"
    sizes = sorted({int(size) for size in args.sizes.split(",") if size.strip()})

    command = (f".venv/bin/python -m bench.store --sizes {','.join(map(str, sizes))} "
               f"--events-per-profile {args.events_per_profile} --lookups {args.lookups}"
               + (" --events-order arrival" if arrival else ""))
    code = args.code_label or code_revision()  # before the run: others may edit meanwhile
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-store-", dir=args.tmp) as tmp:
        for size in sizes:
            print(f"{label(size)} profiles:", file=sys.stderr, flush=True)
            dataset = ensure_dataset(size, args.events_per_profile, args.seed,
                                     log=lambda text: print(f"  {text}", file=sys.stderr))
            result = run_size(dataset, args.lookups, args.seed, Path(tmp), arrival)
            print(f"  lookup p50/p99/max {describe(result.hits_ms)} ms, miss p50 "
                  f"{statistics.median(result.misses_ms):.3f} ms", file=sys.stderr, flush=True)
            results.append(result)
    body = report(results, command, args.lookups, code, arrival)
    record(ARRIVAL_SECTION if arrival else SECTION, body)
    print(body)


if __name__ == "__main__":
    main()
