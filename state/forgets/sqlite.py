"""The forget log on SQLite, in the hub's database beside the ledger and the outbox.

``cahub forget`` records a forget here as keyed digests; every server process reads the
new ones a few times a second, applies them to what it holds in memory, and confirms.
The key is made once, at random, and kept in the same file: a digest is matched, never
read back. Forgets are erased once every live process applied them, and after an hour
in any case; confirmations of a process not heard from for a day are erased with them.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Collection, Mapping

from hub.ports import Confirmation, ForgetEntry
from state.sqlite import ThreadLocalDatabase

SCHEMA = """
CREATE TABLE IF NOT EXISTS forget_key (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    secret BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS forgets (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, even once erased
    recorded_at REAL NOT NULL,
    digests     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS forget_confirmations (
    process TEXT PRIMARY KEY,
    seq     INTEGER NOT NULL,
    seen_at REAL NOT NULL,
    cleaned TEXT NOT NULL
);
"""
KEEP_FORGETS_S = 3600.0
KEEP_SILENT_PROCESSES_S = 86_400.0


class SqliteForgetLog:
    """``hub.ports.ForgetLog`` on the hub's SQLite database."""

    def __init__(self, db: ThreadLocalDatabase, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._clock = clock

    def secret(self) -> bytes:
        self._db.execute("INSERT OR IGNORE INTO forget_key VALUES (1, ?)",
                         (secrets.token_bytes(32),))
        (secret,) = self._db.execute("SELECT secret FROM forget_key").fetchone()
        return bytes(secret)

    def record(self, digests: Collection[str]) -> int:
        now = self._clock()
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM forgets WHERE recorded_at < ?", (now - KEEP_FORGETS_S,))
            cursor = conn.execute("INSERT INTO forgets (recorded_at, digests) VALUES (?, ?)",
                                  (now, json.dumps(sorted(digests))))
        return int(cursor.lastrowid or 0)

    def since(self, seq: int) -> list[ForgetEntry]:
        rows = self._db.execute("SELECT seq, digests FROM forgets WHERE seq > ? ORDER BY seq",
                                (seq,)).fetchall()
        return [ForgetEntry(number, frozenset(json.loads(digests))) for number, digests in rows]

    def confirm(self, process: str, seq: int, cleaned: Mapping[str, int]) -> None:
        self._db.execute("INSERT OR REPLACE INTO forget_confirmations VALUES (?, ?, ?, ?)",
                         (process, seq, self._clock(), json.dumps(dict(cleaned))))

    def confirmations(self) -> list[Confirmation]:
        rows = self._db.execute(
            "SELECT process, seq, seen_at, cleaned FROM forget_confirmations ORDER BY process"
        ).fetchall()
        return [Confirmation(process, seq, seen_at, json.loads(cleaned))
                for process, seq, seen_at, cleaned in rows]

    def erase(self, up_to: int) -> None:
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM forgets WHERE seq <= ?", (up_to,))
            conn.execute("DELETE FROM forget_confirmations WHERE seen_at < ?",
                         (self._clock() - KEEP_SILENT_PROCESSES_S,))
