"""SQLite's own part of session revocations: the table holds only what can still matter."""

from __future__ import annotations

import time
from pathlib import Path

from state.sessions.sqlite import SCHEMA, SqliteSessionRevocations
from state.sqlite import ThreadLocalDatabase


def test_revocations_past_their_time_to_live_are_deleted(tmp_path: Path) -> None:
    db = ThreadLocalDatabase(tmp_path / "hub.sqlite3", SCHEMA)
    store = SqliteSessionRevocations(db)
    for n in range(100):
        store.revoke(f"old-{n}", 0.1)
    time.sleep(0.2)

    store.revoke("new", 60)

    rows = db.connection().execute("SELECT session_id FROM revoked_sessions").fetchall()
    db.close()
    assert [("new",)] == rows
