"""The agent desk on PostgreSQL, shared by every server of the hub (migration 0004).

The rows of ``state.desk.sqlite``: the ``DeskCall`` as JSON, the agent holding it, when it
last changed, and its version, which every write compares and sets. Of two servers saving
one call at once, the second's ``UPDATE`` waits for the first to commit, then finds the
version moved on and changes nothing; its caller reads again (``hub.desk_changes``).
Inside a transaction of the hub's database (a status callback's, say) the statements join
it, so a call's new state and the deliveries it brings commit together.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from hub.desk import DONE, DeskCall
from state.postgres import PING_TIMEOUT_S, PostgresDatabase, translated

CREATE = """
INSERT INTO desk_calls (call_sid, agent_id, updated_at, version, record)
VALUES (%(sid)s, %(agent)s, %(at)s, 0, %(record)s::jsonb)
ON CONFLICT (call_sid) DO NOTHING
"""

SAVE = """
UPDATE desk_calls SET agent_id = %(agent)s, updated_at = %(at)s, version = %(version)s + 1,
                      record = %(record)s::jsonb
WHERE call_sid = %(sid)s AND version = %(version)s
"""

# Rows older than the later cutoff (the index finds them), then the finished ones among them.
PURGE = """
DELETE FROM desk_calls WHERE updated_at < %(cutoff)s AND (
    updated_at < %(any_before)s
    OR (record->>'phase' = ANY(%(finished)s) AND record->>'ended' IS NOT NULL
        AND updated_at < %(finished_before)s))
"""


class PostgresAgentDesk:
    """``hub.ports.AgentDesk`` on the hub's PostgreSQL database."""

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    def create(self, call: DeskCall) -> bool:
        return self._execute(CREATE, _row(call.model_copy(update={"version": 0}))) == 1

    def get(self, call_sid: str) -> DeskCall | None:
        rows = self._query("SELECT record::text FROM desk_calls WHERE call_sid = %s", (call_sid,))
        return DeskCall.model_validate_json(rows[0][0]) if rows else None

    def save(self, call: DeskCall) -> bool:
        stored = call.model_copy(update={"version": call.version + 1})
        return self._execute(SAVE, {**_row(stored), "version": call.version}) == 1

    def open_for(self, agent_id: str, since: datetime) -> list[DeskCall]:
        rows = self._query("SELECT record::text FROM desk_calls WHERE agent_id = %s"
                           " AND updated_at >= %s ORDER BY updated_at DESC", (agent_id, since))
        return [DeskCall.model_validate_json(row[0]) for row in rows]

    def forget(self, call_sids: Collection[str]) -> int:
        return self._execute("DELETE FROM desk_calls WHERE call_sid = ANY(%s)",
                             (list(call_sids),))

    def purge(self, finished_before: datetime, any_before: datetime) -> int:
        return self._execute(PURGE, {
            "cutoff": max(finished_before, any_before), "any_before": any_before,
            "finished_before": finished_before, "finished": sorted(DONE)})

    def ping(self) -> None:
        """Within ``PING_TIMEOUT_S`` in all: a connection, then a read bounded by a statement
        timeout (a lock held on the table would otherwise hold a health check)."""
        with (translated("agent desk"),
              self._db.pool.connection(timeout=PING_TIMEOUT_S) as conn, conn.transaction()):
            conn.execute(f"SET LOCAL statement_timeout = {int(PING_TIMEOUT_S * 1000)}")
            conn.execute("SELECT 1 FROM desk_calls LIMIT 1")

    def _execute(self, statement: str, params: Any) -> int:
        with translated("agent desk"), self._db.connection() as conn:
            return conn.execute(statement, params).rowcount

    def _query(self, statement: str, params: Any) -> list[tuple[Any, ...]]:
        with translated("agent desk"), self._db.connection() as conn:
            return conn.execute(statement, params).fetchall()


def _row(call: DeskCall) -> dict[str, Any]:
    """The columns of ``call``'s row; its record is the JSON ``get`` reads back."""
    return {"sid": call.call_sid, "agent": call.agent_id, "at": call.updated_at,
            "record": call.model_dump_json()}
