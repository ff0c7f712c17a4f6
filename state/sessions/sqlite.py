"""Console session revocations in the hub's SQLite database (``hub.sqlite3``).

One row per session ended before its time, deleted once its time to live has run out: the
table never holds more than the logouts of the last shift length.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

from hub.ports import TransientError
from state.sqlite import ThreadLocalDatabase

SCHEMA = """
CREATE TABLE IF NOT EXISTS revoked_sessions (
    session_id  TEXT PRIMARY KEY,
    expires_at  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS revoked_sessions_expiry ON revoked_sessions (expires_at);
"""


class SqliteSessionRevocations:
    """``hub.ports.SessionRevocations`` on the hub's SQLite database."""

    def __init__(self, db: ThreadLocalDatabase, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._clock = clock

    def revoke(self, session_id: str, ttl_s: float) -> None:
        now = self._clock()
        try:
            with self._db.transaction() as conn:
                # Each logout clears the ones whose sessions could no longer be used anyway.
                conn.execute("DELETE FROM revoked_sessions WHERE expires_at <= ?", (now,))
                if ttl_s > 0:
                    conn.execute(
                        "INSERT INTO revoked_sessions VALUES (?, ?) ON CONFLICT (session_id) "
                        "DO UPDATE SET expires_at = max(expires_at, excluded.expires_at)",
                        (session_id, now + ttl_s),
                    )
        except sqlite3.Error as exc:
            raise TransientError(f"session revocations: {exc}") from exc

    def is_revoked(self, session_id: str) -> bool:
        try:
            row = self._db.connection().execute(
                "SELECT 1 FROM revoked_sessions WHERE session_id = ? AND expires_at > ?",
                (session_id, self._clock()),
            ).fetchone()
        except sqlite3.Error as exc:
            raise TransientError(f"session revocations: {exc}") from exc
        return row is not None

    def revoked(self) -> frozenset[str]:
        try:
            rows = self._db.connection().execute(
                "SELECT session_id FROM revoked_sessions WHERE expires_at > ?", (self._clock(),),
            ).fetchall()
        except sqlite3.Error as exc:
            raise TransientError(f"session revocations: {exc}") from exc
        return frozenset(row[0] for row in rows)
