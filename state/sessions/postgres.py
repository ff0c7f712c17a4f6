"""Console session revocations on PostgreSQL, shared by every server of the hub.

One row per session ended before its time, deleted once its time to live has run out (at
each logout), so the table never holds more than the logouts of the last shift length.
"""

from __future__ import annotations

from state.postgres import PostgresDatabase, translated

REVOKE = """
INSERT INTO revoked_sessions (session_id, expires_at)
VALUES (%(sid)s, now() + make_interval(secs => %(ttl)s))
ON CONFLICT (session_id) DO UPDATE
SET expires_at = greatest(revoked_sessions.expires_at, excluded.expires_at)
"""


class PostgresSessionRevocations:
    """``hub.ports.SessionRevocations`` on the hub's PostgreSQL database."""

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    def revoke(self, session_id: str, ttl_s: float) -> None:
        with translated("session revocations"), self._db.transaction() as conn:
            # Each logout clears the ones whose sessions could no longer be used anyway.
            conn.execute("DELETE FROM revoked_sessions WHERE expires_at <= now()")
            if ttl_s > 0:
                conn.execute(REVOKE, {"sid": session_id, "ttl": ttl_s})

    def is_revoked(self, session_id: str) -> bool:
        with translated("session revocations"), self._db.connection() as conn:
            row = conn.execute("SELECT 1 FROM revoked_sessions WHERE session_id = %s"
                               " AND expires_at > now()", (session_id,)).fetchone()
        return row is not None

    def revoked(self) -> frozenset[str]:
        with translated("session revocations"), self._db.connection() as conn:
            rows = conn.execute(
                "SELECT session_id FROM revoked_sessions WHERE expires_at > now()").fetchall()
        return frozenset(str(row[0]) for row in rows)
