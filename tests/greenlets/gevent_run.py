"""Runs in a process of its own, monkey-patched by gevent as gunicorn's gevent worker is, and
prints what it saw as one JSON line (``tests/greenlets/test_under_gevent.py``).

``python -m tests.greenlets.gevent_run calls DIR N``: N greenlets each look a caller up
through the API and post the signed voice webhook of a call of their own to one app on the
embedded store and the SQLite hub database in DIR; then every call is awaited in the ledger.

``python -m tests.greenlets.gevent_run ingest DIR N``: a greenlet posts N profile records to
the ingest API while another ticks every 5 ms.

``python -m tests.greenlets.gevent_run locked FILE``: a greenlet writes to the hub database
FILE, whose write lock another process holds until this one says ``waiting`` and reads a line,
while another greenlet reads it every 10 ms (on the same connection, the main thread's).

gevent's monitor thread runs in each and reports every stall of the event loop over 0.3 s.
"""

from __future__ import annotations

import gevent.monkey

gevent.monkey.patch_all()

import itertools  # noqa: E402 -- after monkey-patching, as gunicorn's gevent worker does it
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
import gevent.events  # noqa: E402
from gevent.socket import wait_read  # noqa: E402

MAX_BLOCKING_S = 0.3
stalls: list[float] = []


def watch_the_loop() -> None:
    gevent.config.monitor_thread = True
    gevent.config.max_blocking_time = MAX_BLOCKING_S

    def on_event(event: object) -> None:
        if isinstance(event, gevent.events.EventLoopBlocked):
            stalls.append(event.blocking_time)

    gevent.events.subscribers.append(on_event)
    gevent.get_hub().start_periodic_monitoring_thread()


def open_files_under(directory: Path) -> int:
    """How many of this process's file descriptors are open on files under ``directory``."""
    fds = Path("/proc/self/fd")
    count = 0
    for fd in fds.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        count += target.startswith(str(directory))
    return count


def calls(data_dir: Path, greenlets: int) -> dict[str, Any]:
    from app import close_app, create_app, services
    from lookup.demo import DEMO_CALLER, load_demo
    from tests.support import call_form, make_settings, signed_post

    app = create_app(make_settings(data_dir, api_lookup_limit="1000 per second"))
    load_demo(services(app).store)
    hub = services(app)
    errors: list[str] = []
    found: list[bool] = []

    def one_call(n: int) -> None:
        client = app.test_client()
        try:
            looked_up = client.get(f"/api/v1/lookup?phone=%2B{DEMO_CALLER[1:]}",
                                   headers={"Authorization": "Bearer test-api-key"})
            reply = signed_post(client, "/twilio/voice",
                                call_form(f"CA{n:032d}", from_=DEMO_CALLER))
            if looked_up.status_code != 200:
                errors.append(f"lookup {n}: {looked_up.status_code} {looked_up.json}")
            found.append(bool(looked_up.json.get("found")) and b"Ada Lovelace" in reply.data)
            if reply.status_code != 200:
                errors.append(f"call {n}: {reply.status_code}")
        except Exception as exc:  # reported, and the test fails on it
            errors.append(f"call {n}: {exc!r}")

    started = time.monotonic()
    gevent.joinall([gevent.spawn(one_call, n) for n in range(greenlets)], raise_error=False)
    answered_s = time.monotonic() - started
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        (saved,) = hub.hub_db.execute("SELECT count(*) FROM calls").fetchone()
        if saved >= greenlets:
            break
        gevent.sleep(0.05)
    result = {"errors": errors, "found": sum(found), "saved": saved,
              "hub_connections": hub.hub_db.opened(),
              "open_files": open_files_under(data_dir), "answered_s": answered_s,
              "stalls": stalls}
    close_app(app)
    return result


def locked(path: Path) -> dict[str, Any]:
    from state.sqlite import ThreadLocalDatabase

    db = ThreadLocalDatabase(path, "CREATE TABLE IF NOT EXISTS calls (sid TEXT PRIMARY KEY);")
    ticks: list[float] = []
    written: list[float] = []
    read: list[int] = []

    def tick() -> None:
        while not written:
            ticks.append(time.monotonic())
            read.append(db.execute("SELECT count(*) FROM calls").fetchone()[0])
            gevent.sleep(0.01)

    def write() -> None:
        with db.transaction() as conn:
            conn.execute("INSERT INTO calls VALUES ('CA1')")
        written.append(time.monotonic())

    ticker, writer = gevent.spawn(tick), gevent.spawn(write)
    gevent.sleep(1.0)
    print("waiting", flush=True)
    wait_read(sys.stdin.fileno())  # the greenlets run while it waits
    sys.stdin.readline()
    gevent.joinall([writer, ticker], timeout=10, raise_error=True)
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    (rows,) = db.execute("SELECT count(*) FROM calls").fetchone()
    return {"written": bool(written), "rows": rows, "ticks": len(ticks), "reads": len(read),
            "longest_gap_s": max(gaps), "stalls": stalls}


def ingest(data_dir: Path, records: int) -> dict[str, Any]:
    from app import close_app, create_app
    from tests.support import make_settings

    app = create_app(make_settings(data_dir))
    body = "\n".join(json.dumps({
        "identityMap": {"Phone": [{"id": f"+1415555{n:04d}", "primary": True}]},
        "person": {"name": {"fullName": f"Caller {n}"}}, "loyalty": {"tier": "gold"}})
        for n in range(records))
    ticks: list[float] = []
    done: list[Any] = []

    def tick() -> None:
        while not done:
            ticks.append(time.monotonic())
            gevent.sleep(0.005)

    def post() -> None:
        reply = app.test_client().post(
            "/api/v1/ingest/profiles", data=body, content_type="application/x-ndjson",
            headers={"Authorization": "Bearer test-api-key"})
        done.append((reply.status_code, reply.json["loaded"]))

    started = time.monotonic()
    ticker, poster = gevent.spawn(tick), gevent.spawn(post)
    gevent.joinall([poster, ticker], timeout=30, raise_error=True)
    took = time.monotonic() - started
    close_app(app)
    gaps = [b - a for a, b in itertools.pairwise([*ticks, started + took])]
    return {"answer": done[0], "took_s": took, "longest_gap_s": max(gaps), "stalls": stalls}


if __name__ == "__main__":
    watch_the_loop()
    what, where = sys.argv[1], Path(sys.argv[2])
    if what == "calls":
        report = calls(where, int(sys.argv[3]))
    elif what == "ingest":
        report = ingest(where, int(sys.argv[3]))
    else:
        report = locked(where)
    print(json.dumps(report), flush=True)
