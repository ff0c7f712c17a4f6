"""Online guessing: 500 wrong API keys and 500 wrong console tokens from one address.

Starts the hub under gunicorn (the production command, as ``bench.webhook`` does) and sends,
back to back over one keep-alive connection, ``--tries`` lookups with a wrong API key and
``--tries`` console logins with a wrong token (each with the login page's CSRF token, as a
browser would). Reports how long each series took, how each try was answered, and how many
guesses reached the key or token check (the rest were refused by the rate limit first).

    .venv/bin/python -m bench.guessing [--tries 500]
"""

from __future__ import annotations

import argparse
import collections
import tempfile
import time
from pathlib import Path

import requests

from bench.report import machine, record
from bench.webhook import CSRF_META, start_server, stop_server


def wrong_api_keys(base: str, tries: int) -> tuple[float, collections.Counter[int]]:
    """``tries`` lookups, each with a different wrong key: seconds taken, answers by status."""
    answers: collections.Counter[int] = collections.Counter()
    with requests.Session() as session:
        started = time.perf_counter()
        for n in range(tries):
            reply = session.get(f"{base}/api/v1/lookup", params={"phone": "+14155550134"},
                                headers={"Authorization": f"Bearer wrong-key-{n}"}, timeout=5)
            answers[reply.status_code] += 1
        return time.perf_counter() - started, answers


def wrong_logins(base: str, tries: int) -> tuple[float, collections.Counter[int]]:
    """``tries`` console logins with wrong tokens from one browser session."""
    answers: collections.Counter[int] = collections.Counter()
    with requests.Session() as session:
        match = CSRF_META.search(session.get(f"{base}/console", timeout=5).text)
        csrf = {"csrf_token": match.group(1)} if match else {}
        started = time.perf_counter()
        for n in range(tries):
            reply = session.post(f"{base}/console", data={"token": f"wrong-{n}", **csrf},
                                 allow_redirects=False, timeout=5)
            answers[reply.status_code] += 1
        return time.perf_counter() - started, answers


def table_row(what: str, seconds: float, answers: collections.Counter[int]) -> str:
    statuses = ", ".join(f"{count} × {status}" for status, count in sorted(answers.items()))
    checked = sum(count for status, count in answers.items() if status != 429)
    return f"| {what} | {seconds:.2f} s | {statuses} | {checked} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=500)
    parser.add_argument("--port", type=int, default=5097)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        server = start_server(Path(scratch), args.port, {"CAHUB_API_KEYS": "the-real-key"})
        try:
            base = f"http://127.0.0.1:{args.port}"
            keys = wrong_api_keys(base, args.tries)
            logins = wrong_logins(base, args.tries)
        finally:
            stop_server(server)
    body = f"""
`.venv/bin/python -m bench.guessing --tries {args.tries}` — {machine()}.
The hub runs under gunicorn (1 worker, 32 threads) with the default limits; one client on
127.0.0.1 sends its tries back to back over one keep-alive connection.

| {args.tries} tries | time | answers | reached the key or token check |
|---|---|---|---|
{table_row("wrong API keys, `GET /api/v1/lookup`", *keys)}
{table_row("wrong console tokens, `POST /console`", *logins)}

A refused try costs about what a checked one does; what the limits change is how many
guesses are checked at all: `CAHUB_API_AUTH_LIMIT` and `CAHUB_CONSOLE_LOGIN_LIMIT` per client
address (defaults 20 per minute and 200 per hour; 10 per minute and 50 per hour), where
without limits every try was checked (500 of 500, about 900 guesses a second from one client
on this machine).
"""
    print(body)
    record("Online guessing: wrong API keys and console tokens", body)


if __name__ == "__main__":
    main()
