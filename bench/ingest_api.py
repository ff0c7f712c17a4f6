"""Real-time ingest over HTTP: how soon a change is seen by another server, and what
ingest requests get while ``cahub ingest`` loads a large file into the same store.

Two hub servers (gunicorn, the production command) share one data directory, as two
servers on one host share the SQLite store.

- **Seen by the other server.** A new profile (a number no one has) is POSTed to server A;
  from A's 200, server B is asked ``GET /api/v1/lookup`` for that number until the profile
  is there. The delay is from A's answer to B's answer that has it; how many lookups it
  took says whether the first one already did. Then the same with an event: from A's 200,
  until B's lookup lists the event's title.
- **Beside a bulk load.** ``cahub ingest`` loads a large file of profiles, then a large
  first load of events (stored in one transaction), into the same data directory, while
  ``POSTERS`` clients each POST one profile to server A every ``PACE_S``; what they get and
  how long they wait. The same writes made straight to the store from this process (no
  server: what the store itself does when its writer is held) are timed beside the same
  loads in a second directory, for comparison.

    .venv/bin/python -m bench.ingest_api [--rounds 200] [--profiles 200000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from bench.report import describe, machine, percentile, record
from bench.synthetic import ensure_dataset, phone_of
from bench.webhook import start_server, stop_server
from hub.ports import HubError
from lookup.store import EmbeddedProfileStore

KEY = "bench-api-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
SERVER_ENV = {"CAHUB_API_KEYS": KEY, "CAHUB_INGEST_WORKERS": "0",
              "CAHUB_API_LOOKUP_LIMIT": "100000 per second",
              "CAHUB_API_INGEST_LIMIT": "100000 per second"}
POSTERS = 4
PACE_S = 0.1
FRESH = 50_000_000  # synthetic people from here on are in no file


def profile(i: int) -> dict[str, object]:
    return {"identityMap": {"Phone": [{"id": phone_of(i), "primary": True}]},
            "person": {"name": {"fullName": f"Fresh Person {i}"}}}


def event(i: int) -> dict[str, object]:
    return {"_id": f"bench-{i}", "timestamp": "2026-11-20T10:00:00Z",
            "eventType": "commerce.purchases",
            "identityMap": {"Phone": [{"id": phone_of(i), "primary": True}]},
            "productListItems": [{"name": f"Item {i}", "priceTotal": 10.0,
                                  "currencyCode": "USD"}]}


def seen(a: str, b: str, i: int, kind: str, session: requests.Session) -> tuple[float, float, int]:
    """POST record ``i`` of ``kind`` to ``a``; (POST ms, ms from its 200 until ``b``'s lookup
    shows it, lookups that took)."""
    record = profile(i) if kind == "profiles" else event(i)
    started = time.perf_counter()
    reply = session.post(f"{a}/api/v1/ingest/{kind}", json=record, headers=AUTH, timeout=10)
    answered = time.perf_counter()
    if reply.status_code != 200:
        raise RuntimeError(f"the ingest answered {reply.status_code}: {reply.text}")
    for lookups in range(1, 1001):
        summary = session.get(f"{b}/api/v1/lookup", params={"phone": phone_of(i)},
                              headers=AUTH, timeout=10).json()
        if _shows(summary, kind, i):
            return (answered - started) * 1000, (time.perf_counter() - answered) * 1000, lookups
    raise RuntimeError(f"server B never showed {kind} {i}")


def _shows(summary: dict[str, Any], kind: str, i: int) -> bool:
    if kind == "profiles":
        return bool(summary.get("name") == f"Fresh Person {i}")
    return any(f"Item {i}" in event["title"] for event in summary.get("recent_events") or [])


Seen = list[tuple[float, float, int]]


def visibility(a: str, b: str, rounds: int, kind: str, first: int) -> tuple[Seen, list[float]]:
    """``rounds`` changes seen (see ``seen``), each followed by a lookup of a known number on
    ``b`` (its round trip, in ms: the least a delay measured to a lookup's answer can be)."""
    session, changes, lookups = requests.Session(), [], []
    for n in range(rounds):
        changes.append(seen(a, b, first + n, kind, session))
        started = time.perf_counter()
        session.get(f"{b}/api/v1/lookup", params={"phone": phone_of(first)}, headers=AUTH,
                    timeout=10).raise_for_status()
        lookups.append((time.perf_counter() - started) * 1000)
    return changes, lookups


Write = Callable[[int], str]  # writes record i; returns what came of it


def via_api(base: str) -> Write:
    local = threading.local()

    def write(i: int) -> str:
        session = local.__dict__.setdefault("session", requests.Session())
        reply = session.post(f"{base}/api/v1/ingest/profiles", json=profile(i), headers=AUTH,
                             timeout=30)
        return str(reply.status_code)
    return write


def straight_to(store: EmbeddedProfileStore) -> Write:
    def write(i: int) -> str:
        try:
            store.ingest("profiles", [json.dumps(profile(i))])
        except HubError as exc:
            return type(exc).__name__
        return "loaded"
    return write


@contextmanager
def writes_during(write: Write, first: int) -> Iterator[list[tuple[str, float]]]:
    """``POSTERS`` threads, each writing a record every ``PACE_S`` while the block runs;
    yields the (outcome, ms) of every write, filled in as they end."""
    results: list[tuple[str, float]] = []
    stop = threading.Event()

    def poster(offset: int) -> None:
        n = 0
        while not stop.is_set():
            started = time.perf_counter()
            outcome = write(first + offset + POSTERS * n)
            results.append((outcome, (time.perf_counter() - started) * 1000))
            n += 1
            stop.wait(PACE_S)

    threads = [threading.Thread(target=poster, args=(k,)) for k in range(POSTERS)]
    for thread in threads:
        thread.start()
    try:
        yield results
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def bulk_load(data_dir: Path, kind: str, path: Path) -> float:
    """``cahub ingest`` of ``path`` into ``data_dir``; its wall time in seconds."""
    cahub = Path(sys.executable).parent / "cahub"
    started = time.perf_counter()
    subprocess.run([str(cahub), "ingest", kind, str(path)], check=True, capture_output=True,
                   env={"PATH": "/usr/bin:/bin", "CAHUB_DATA_DIR": str(data_dir)})
    return time.perf_counter() - started


@dataclass
class LoadRun:
    """A bulk load's time, and the outcome and time (ms) of each write made beside it."""

    seconds: float
    writes: list[tuple[str, float]]


def beside(data_dir: Path, write: Write, loads: list[tuple[str, Path]]) -> list[LoadRun]:
    runs = []
    for n, (kind, path) in enumerate(loads):
        with writes_during(write, FRESH + 1_000_000 * (n + 1)) as writes:
            seconds = bulk_load(data_dir, kind, path)
        runs.append(LoadRun(seconds, writes))
    return runs


def outcome_cell(writes: list[tuple[str, float]]) -> str:
    counts = Counter(outcome for outcome, _ in writes)
    parts = []
    for outcome, count in sorted(counts.items()):
        times = [ms for o, ms in writes if o == outcome]
        parts.append(f"{count} × {outcome}: {statistics.median(times):,.0f} / "
                     f"{percentile(times, 99):,.0f} / {max(times):,.0f} ms")
    return "<br>".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--profiles", type=int, default=200_000)
    parser.add_argument("--ports", default="5081,5082")
    args = parser.parse_args()
    dataset = ensure_dataset(args.profiles, 3, log=lambda text: print(text, file=sys.stderr))
    loads = [("profiles", dataset.profiles), ("events", dataset.events)]
    port_a, port_b = (int(p) for p in args.ports.split(","))
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as shared, tempfile.TemporaryDirectory() as plain:
        servers = []
        try:
            for port in (port_a, port_b):
                servers.append(start_server(Path(shared), port, SERVER_ENV))
            a, b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
            via_http = beside(Path(shared), via_api(a), loads)
            profiles_seen, baseline = visibility(a, b, args.rounds, "profiles", FRESH)
            events_seen, more = visibility(a, b, args.rounds, "events", FRESH)
        finally:
            for server in servers:
                stop_server(server)
        store = EmbeddedProfileStore(Path(plain) / "profiles.sqlite3")
        direct = beside(Path(plain), straight_to(store), loads)
    loads_avg = (load_before, os.getloadavg()[0])
    report(args, dataset.n_profiles, dataset.n_events, profiles_seen, events_seen,
           baseline + more, via_http, direct, loads_avg)


def report(args: argparse.Namespace, n_profiles: int, n_events: int, profiles_seen: Seen,
           events_seen: Seen, baseline: list[float], via_http: list[LoadRun],
           direct: list[LoadRun], load_avg: tuple[float, float]) -> None:
    def seen_row(what: str, samples: Seen) -> str:
        first_try = sum(1 for *_, lookups in samples if lookups == 1)
        return (f"| {what} | {describe([s[0] for s in samples])} | "
                f"{describe([s[1] for s in samples])} | {first_try} of {len(samples)} |")

    def load_row(what: str, via: LoadRun, straight: LoadRun) -> str:
        return (f"| {what} | {via.seconds:.1f} / {straight.seconds:.1f} | "
                f"{outcome_cell(via.writes)} | {outcome_cell(straight.writes)} |")

    command = f"python -m bench.ingest_api --rounds {args.rounds} --profiles {args.profiles}"
    body = f"""
`.venv/bin/{command}` — {machine()}; the machine's load average (1 min) was
{load_avg[0]:.1f} when the run began and {load_avg[1]:.1f} when it ended.

Two hub servers under gunicorn (1 worker, 32 threads each) on one data directory, on this
machine, after the loads below. {args.rounds} new profiles, then {args.rounds} events, each
POSTed to server A; from A's 200, server B is asked for the number until its lookup shows the
change. After each, a lookup of a known number on B is timed alike.

| change | POST to A (ms) | A's 200 → B's lookup shows it (ms) | shown by B's first lookup |
|---|---|---|---|
{seen_row("a new profile", profiles_seen)}
{seen_row("an event (its title)", events_seen)}

Median / p99 / max. A lookup's own round trip on B, the least such a delay can measure:
{describe(baseline)} ms.

Beside a bulk load: `cahub ingest` of {n_profiles:,} profiles, then of {n_events:,} events (a
first load of events: one transaction), while {POSTERS} clients each write one profile every
{PACE_S * 1000:.0f} ms: through the API (server A, same data directory), and straight to the
store from another process (no server: the same loads into a second directory). Times are
median / p99 / max of each outcome.

| load | load (s): API / store | through the API (ms) | straight to the store (ms) |
|---|---|---|---|
{load_row("profiles", via_http[0], direct[0])}
{load_row("events, first load", via_http[1], direct[1])}

A load of profiles commits every 2 s (`lookup/store/ingest.py`, `COMMIT_EVERY`): a write made
beside it waits for the end of a transaction, then goes in. A first load of events is one
transaction, so the store's busy timeout (5 s) runs out first: straight to the store every
such write waits the 5 s and fails; through the API one request waits them out, and the
others are answered 503 at once for the next 2 s (`Retry-After: 2`; `web/ingest_turns.py`).
The 200s of that row are the writes made before the load took the writer and after it ended.
"""
    record("Real-time ingest: seen by another server, and beside a bulk load", body)
    print(body)


if __name__ == "__main__":
    main()
