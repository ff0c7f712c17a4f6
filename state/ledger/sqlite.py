"""The call ledger: what was decided for each CallSid, so a retried webhook is answered
the same way and causes no second pop.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Collection

from hub.models import Summary
from hub.ports import CallRecord
from state.sqlite import ThreadLocalDatabase

SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    call_sid    TEXT PRIMARY KEY,
    agent_id    TEXT,
    summary     TEXT NOT NULL,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS call_status (
    call_sid     TEXT PRIMARY KEY,
    status       TEXT NOT NULL,
    sequence     INTEGER NOT NULL,
    duration_s   INTEGER,
    completed_at REAL
);
"""
TERMINAL = ("completed", "busy", "failed", "no-answer", "canceled")


def containing(needle: str) -> str:
    """A LIKE pattern (escaped with a backslash) matching text that holds ``needle``."""
    return "%" + re.sub(r"([\\%_])", r"\\\1", needle) + "%"


class SqliteCallLedger:
    """``hub.ports.CallLedger`` on the hub's SQLite database."""

    def __init__(self, db: ThreadLocalDatabase) -> None:
        self._db = db

    def claim(self, call_sid: str, agent_id: str | None, summary: Summary) -> bool:
        now = time.time()
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO calls VALUES (?, ?, ?, ?, ?)",
            (call_sid, agent_id, summary.model_dump_json(by_alias=True), now, now),
        )
        return cursor.rowcount == 1

    def get(self, call_sid: str) -> CallRecord | None:
        row = self._db.execute(
            "SELECT agent_id, summary FROM calls WHERE call_sid = ?", (call_sid,)
        ).fetchone()
        if row is None:
            return None
        return CallRecord(call_sid, row[0], Summary.model_validate_json(row[1]))

    def update_summary(self, call_sid: str, summary: Summary) -> None:
        self._db.execute(
            "UPDATE calls SET summary = ?, updated_at = ? WHERE call_sid = ?",
            (summary.model_dump_json(by_alias=True), time.time(), call_sid),
        )

    def ping(self) -> None:
        self._db.ping()

    def forget(self, needles: Collection[str], redact: Callable[[Summary], Summary]) -> list[str]:
        """Rewrite the records whose summary holds a needle as ``redact`` has them.

        The text search only finds the candidates; ``redact`` decides on the parsed
        summary. The database deletes securely (``state.sqlite``), so the old text is
        overwritten, not left in a free page.
        """
        if not needles:
            return []
        # LIKE ignores ASCII case without copying each summary (lower() would).
        found = " OR ".join("summary LIKE ? ESCAPE '\\'" for _ in needles)
        patterns = [containing(needle) for needle in needles]
        changed = []
        with self._db.transaction() as conn:
            rows = conn.execute(f"SELECT call_sid, summary FROM calls WHERE {found}",  # noqa: S608 -- placeholders only
                                patterns).fetchall()
            for call_sid, text in rows:
                summary = Summary.model_validate_json(text)
                redacted = redact(summary)
                if redacted != summary:
                    conn.execute("UPDATE calls SET summary = ?, updated_at = ? WHERE call_sid = ?",
                                 (redacted.model_dump_json(by_alias=True), time.time(), call_sid))
                    changed.append(call_sid)
        return changed

    def record_status(self, call_sid: str, status: str, sequence: int,
                      duration_s: int | None) -> bool:
        """Apply a status callback; True only the first time the call reaches an end.

        Callbacks may arrive twice or out of order: a lower sequence number than the
        one stored never overwrites it, and a call that ended never un-ends.
        """
        with self._db.transaction() as conn:
            row = conn.execute("SELECT status, sequence FROM call_status WHERE call_sid = ?",
                               (call_sid,)).fetchone()
            if row is not None and (row[0] in TERMINAL or row[1] >= sequence):
                return False
            ended = status in TERMINAL
            conn.execute(
                "INSERT OR REPLACE INTO call_status VALUES (?, ?, ?, ?, ?)",
                (call_sid, status, sequence, duration_s, time.time() if ended else None),
            )
            return ended

