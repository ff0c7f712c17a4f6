"""The call ledger on PostgreSQL: each CallSid decided once, across every server.

The decision is an ``INSERT … ON CONFLICT DO NOTHING``: of two servers given the same
CallSid at once, exactly one inserts, and the other answers with the stored decision. A
status callback is one upsert that only moves a call forward, so callbacks arriving twice,
out of order or on two servers at once apply once.

``forget`` finds a forgotten person's calls by a case-insensitive scan of what identifies
each call's caller in its summary, and rewrites them; the rows' old versions stay in the
table until it is vacuumed, which ``PostgresDatabase.compact`` does once ``cahub forget`` is
done. No index helps the scan: an index of callers' numbers and emails would keep them too
(a GIN index never drops a key, even once no row has it).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from psycopg.types.json import Jsonb

from hub.models import Summary
from hub.ports import CallRecord
from state.ledger.sqlite import TERMINAL, containing
from state.postgres import PostgresDatabase

# The row is written only when it is new, or when the stored status is not an end and its
# sequence number is lower than this one; RETURNING then gives the status written.
RECORD_STATUS = """
INSERT INTO call_status AS stored (call_sid, status, sequence, duration_s, completed_at)
VALUES (%(sid)s, %(status)s, %(sequence)s, %(duration)s,
        CASE WHEN %(status)s = ANY(%(terminal)s) THEN now() END)
ON CONFLICT (call_sid) DO UPDATE
SET status = excluded.status, sequence = excluded.sequence,
    duration_s = excluded.duration_s, completed_at = excluded.completed_at
WHERE stored.status <> ALL(%(terminal)s) AND stored.sequence < excluded.sequence
RETURNING status
"""


# What identifies a call's caller in its summary (``hub.forget_keys.summary_keys`` and the
# candidates of a shared number): searched instead of the whole summary's text, a third of
# the time (measured: 123 against 373 ms over 10,000 calls for eleven needles).
CALLER = """concat_ws(' ', summary #>> '{call,from}', summary #>> '{identity,id}',
                 summary ->> 'profile_id', summary ->> 'email',
                 summary #>> '{ambiguous,candidates}')"""


class PostgresCallLedger:
    """``hub.ports.CallLedger`` on the hub's PostgreSQL database."""

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    def claim(self, call_sid: str, agent_id: str | None, summary: Summary) -> bool:
        with self._db.connection() as conn:
            cursor = conn.execute(
                "INSERT INTO calls (call_sid, agent_id, summary) VALUES (%s, %s, %s)"
                " ON CONFLICT (call_sid) DO NOTHING",
                (call_sid, agent_id, _json(summary)),
            )
            return cursor.rowcount == 1

    def get(self, call_sid: str) -> CallRecord | None:
        with self._db.connection() as conn:
            row = conn.execute("SELECT agent_id, summary FROM calls WHERE call_sid = %s",
                               (call_sid,)).fetchone()
        if row is None:
            return None
        agent_id, summary = row
        return CallRecord(call_sid, agent_id, Summary.model_validate(summary))  # type: ignore[arg-type]

    def update_summary(self, call_sid: str, summary: Summary) -> None:
        with self._db.connection() as conn:
            conn.execute("UPDATE calls SET summary = %s, updated_at = now() WHERE call_sid = %s",
                         (_json(summary), call_sid))

    def ping(self) -> None:
        """Raise ``TransientError`` unless a call could be recorded now."""
        self._db.ping()

    def forget(self, needles: Collection[str], redact: Callable[[Summary], Summary]) -> list[str]:
        """Rewrite the records whose caller's identifiers hold a needle as ``redact`` has them.

        The text search (ILIKE, case ignored) only finds the candidates, locked until the
        rewrite commits; ``redact`` decides on the parsed summary.
        """
        if not needles:
            return []
        changed: list[str] = []
        with self._db.transaction() as conn:
            rows: list[tuple[Any, ...]] = conn.execute(
                f"SELECT call_sid, summary FROM calls WHERE {CALLER} ILIKE ANY(%s)"  # noqa: S608 -- a constant
                " FOR UPDATE", ([containing(needle) for needle in needles],)).fetchall()
            for call_sid, stored in rows:
                summary = Summary.model_validate(stored)
                redacted = redact(summary)
                if redacted != summary:
                    conn.execute("UPDATE calls SET summary = %s, updated_at = now()"
                                 " WHERE call_sid = %s", (_json(redacted), call_sid))
                    changed.append(call_sid)
        return changed

    def record_status(self, call_sid: str, status: str, sequence: int,
                      duration_s: int | None) -> bool:
        """Apply a status callback; True only the first time the call reaches an end."""
        with self._db.connection() as conn:
            row = conn.execute(RECORD_STATUS, {
                "sid": call_sid, "status": status, "sequence": sequence,
                "duration": duration_s, "terminal": list(TERMINAL),
            }).fetchone()
        return row is not None and row[0] in TERMINAL


def _json(summary: Summary) -> Jsonb:
    """The summary as the API spells it (aliases), for a jsonb column."""
    return Jsonb(summary.model_dump(mode="json", by_alias=True))
