"""The agent desk in the hub's SQLite database (``hub.sqlite3``).

One row per call an agent handled: the ``DeskCall`` as JSON, with the columns the port
queries by (the agent holding it, when it last changed) and its version, which every write
compares and sets. Rows are kept until ``cahub forget`` or the purge removes them (once the
call is finished with and the desk's retention has passed; ``hub.wrapup.DeskRetention``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from datetime import datetime

from hub.desk import DONE, DeskCall
from hub.ports import TransientError
from state.sqlite import ThreadLocalDatabase

SCHEMA = """
CREATE TABLE IF NOT EXISTS desk_calls (
    call_sid    TEXT PRIMARY KEY,
    agent_id    TEXT,
    updated_at  REAL NOT NULL,
    version     INTEGER NOT NULL,
    record      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS desk_calls_agent ON desk_calls (agent_id, updated_at);
CREATE INDEX IF NOT EXISTS desk_calls_updated ON desk_calls (updated_at);
"""

# Rows older than the later cutoff (the index finds them), then the finished ones among them.
PURGE = f"""
DELETE FROM desk_calls WHERE updated_at < :cutoff AND (
    updated_at < :any_before
    OR (json_extract(record, '$.phase') IN ({", ".join(f"'{p}'" for p in sorted(DONE))})
        AND json_extract(record, '$.ended') IS NOT NULL AND updated_at < :finished_before))
"""  # noqa: S608 -- the phases are the core's constants


class SqliteAgentDesk:
    """``hub.ports.AgentDesk`` on the hub's SQLite database."""

    def __init__(self, db: ThreadLocalDatabase) -> None:
        self._db = db

    def create(self, call: DeskCall) -> bool:
        stored = call.model_copy(update={"version": 0})
        with self._errors():
            return self._db.connection().execute(
                "INSERT OR IGNORE INTO desk_calls VALUES (?, ?, ?, 0, ?)",
                (call.call_sid, call.agent_id, call.updated_at.timestamp(),
                 stored.model_dump_json()),
            ).rowcount == 1

    def get(self, call_sid: str) -> DeskCall | None:
        with self._errors():
            row = self._db.connection().execute(
                "SELECT record FROM desk_calls WHERE call_sid = ?", (call_sid,)).fetchone()
        return None if row is None else DeskCall.model_validate_json(row[0])

    def save(self, call: DeskCall) -> bool:
        stored = call.model_copy(update={"version": call.version + 1})
        with self._errors():
            return self._db.connection().execute(
                "UPDATE desk_calls SET agent_id = ?, updated_at = ?, version = ?, record = ?"
                " WHERE call_sid = ? AND version = ?",
                (call.agent_id, call.updated_at.timestamp(), stored.version,
                 stored.model_dump_json(), call.call_sid, call.version),
            ).rowcount == 1

    def open_for(self, agent_id: str, since: datetime) -> list[DeskCall]:
        with self._errors():
            rows = self._db.connection().execute(
                "SELECT record FROM desk_calls WHERE agent_id = ? AND updated_at >= ?"
                " ORDER BY updated_at DESC", (agent_id, since.timestamp()),
            ).fetchall()
        return [DeskCall.model_validate_json(row[0]) for row in rows]

    def forget(self, call_sids: Collection[str]) -> int:
        with self._errors():
            return self._db.connection().executemany(
                "DELETE FROM desk_calls WHERE call_sid = ?", [(sid,) for sid in call_sids],
            ).rowcount

    def purge(self, finished_before: datetime, any_before: datetime) -> int:
        cutoff = max(finished_before, any_before)
        with self._errors():
            return self._db.connection().execute(PURGE, {
                "cutoff": cutoff.timestamp(), "any_before": any_before.timestamp(),
                "finished_before": finished_before.timestamp()}).rowcount

    def ping(self) -> None:
        with self._errors():
            self._db.connection().execute("SELECT 1 FROM desk_calls LIMIT 1")

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise TransientError(f"agent desk: {exc}") from exc

