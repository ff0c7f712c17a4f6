"""The outbox on SQLite: every delivery of an accepted call, kept durably in the hub's database.

The webhook enqueues before it answers Twilio; the dispatcher claims due rows under a
lease. A worker killed mid-delivery leaves its rows ``in_flight`` with a lease that runs
out, after which they are claimed again: at-least-once, made once at the far end by the
delivery's idempotency key. Finished rows (``done``, or ``dead`` for an operator to see and
retry, or ``cancelled`` when their caller was forgotten) stay until purged. Times are
stored as Unix seconds, like the call ledger.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

from hub.models import Delivery, NewDelivery
from hub.outbox import DEFAULT_LEASE, FORGOTTEN, PURGEABLE, STATUSES, clean_error, utc_now
from state.sqlite import ThreadLocalDatabase

SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    id              INTEGER PRIMARY KEY,
    call_sid        TEXT NOT NULL,
    sink            TEXT NOT NULL,
    action          TEXT NOT NULL,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'in_flight', 'done', 'dead', 'cancelled')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    created_at      REAL NOT NULL,
    next_attempt_at REAL NOT NULL,
    leased_until    REAL,
    done_at         REAL,
    UNIQUE (call_sid, sink, action)
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (status, next_attempt_at);
"""

COLUMNS = ("id, call_sid, sink, action, payload, status, attempts, last_error, created_at,"
           " next_attempt_at")


class SqliteOutbox:
    """``hub.ports.Outbox`` on the hub's SQLite database, plus what ``cahub outbox`` needs.

    ``lease`` is how long a claimed delivery stays with its worker; it must be well over
    a sink's timeout, since a lease that runs out hands the delivery to another worker.
    """

    def __init__(self, db: ThreadLocalDatabase, clock: Callable[[], datetime] = utc_now,
                 lease: timedelta = DEFAULT_LEASE) -> None:
        self._db = db
        self._clock = clock
        self._lease = lease

    def enqueue(self, deliveries: Sequence[NewDelivery], delay: float = 0.0) -> int:
        """Store new deliveries, due after ``delay`` seconds; durable when this returns."""
        now = self._now()
        rows = [(d.call_sid, d.sink, d.action.value, json.dumps(d.payload), now, now + delay)
                for d in deliveries]
        with self._transaction() as conn:
            inserted: int = conn.executemany(
                "INSERT OR IGNORE INTO deliveries (call_sid, sink, action, payload,"
                " created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?)", rows,
            ).rowcount
        return inserted

    def refresh(self, deliveries: Sequence[NewDelivery]) -> int:
        """Give still-pending deliveries a new payload and make them due now.

        A call answered before its profile arrived stores its deliveries deferred; the
        late profile refreshes them. Ones already made or in flight are left alone.
        """
        now = self._now()
        rows = [(json.dumps(d.payload), now, d.call_sid, d.sink, d.action.value)
                for d in deliveries]
        with self._transaction() as conn:
            updated: int = conn.executemany(
                "UPDATE deliveries SET payload = ?, next_attempt_at = ? WHERE call_sid = ?"
                " AND sink = ? AND action = ? AND status = 'pending'", rows,
            ).rowcount
        return updated

    def claim_due(self, limit: int, skip_sinks: Collection[str] = ()) -> list[Delivery]:
        """Lease up to ``limit`` due pending rows and rows whose lease ran out, oldest first.

        Rows of the sinks named in ``skip_sinks`` are left where they are.
        """
        now = self._now()
        with self._transaction() as conn:
            rows = conn.execute(
                f"UPDATE deliveries SET status = 'in_flight', leased_until = ?,"  # noqa: S608 -- COLUMNS is a constant
                f" attempts = attempts + 1 WHERE id IN (SELECT id FROM deliveries"
                f" WHERE ((status = 'pending' AND next_attempt_at <= ?)"
                f" OR (status = 'in_flight' AND leased_until <= ?))"
                f" AND sink NOT IN (SELECT value FROM json_each(?))"
                f" ORDER BY next_attempt_at, id LIMIT ?) RETURNING {COLUMNS}",
                (now + self._lease.total_seconds(), now, now, json.dumps(sorted(skip_sinks)),
                 limit),
            ).fetchall()
        return sorted((_delivery(row) for row in rows), key=lambda d: (d.next_attempt_at, d.id))

    def mark_done(self, delivery_id: int) -> None:
        self._finish(delivery_id, "done", None)

    def mark_failed(self, delivery_id: int, error: str, retry_at: datetime | None) -> None:
        """Record a failure: pending again at ``retry_at``, or dead when it is None."""
        if retry_at is None:
            self._finish(delivery_id, "dead", clean_error(error))
            return
        self._db.execute(
            "UPDATE deliveries SET status = 'pending', last_error = ?, next_attempt_at = ?,"
            " leased_until = NULL WHERE id = ? AND status = 'in_flight'",
            (clean_error(error), retry_at.timestamp(), delivery_id),
        )

    def forget(self, call_sids: Collection[str]) -> dict[str, int]:
        """Cancel these calls' unfinished deliveries and erase every one's payload.

        An in-flight delivery is cancelled too: its worker's ``mark_done`` then changes
        nothing, though the request it is making may still reach its sink.
        """
        counts = dict.fromkeys(STATUSES, 0)
        if not call_sids:
            return counts
        sids = json.dumps(sorted(call_sids))
        with self._transaction() as conn:
            counts |= dict(conn.execute(
                "SELECT status, count(*) FROM deliveries WHERE call_sid IN"
                " (SELECT value FROM json_each(?)) GROUP BY status", (sids,)).fetchall())
            conn.execute(
                "UPDATE deliveries SET status = 'cancelled', last_error = ?, done_at = ?,"
                " leased_until = NULL WHERE call_sid IN (SELECT value FROM json_each(?))"
                " AND status IN ('pending', 'in_flight')", (FORGOTTEN, self._now(), sids))
            conn.execute("UPDATE deliveries SET payload = '{}' WHERE call_sid IN"
                         " (SELECT value FROM json_each(?))", (sids,))
        return counts

    def get(self, delivery_id: int) -> Delivery | None:
        row = self._db.execute(
            f"SELECT {COLUMNS} FROM deliveries WHERE id = ?", (delivery_id,)  # noqa: S608 -- constant
        ).fetchone()
        return None if row is None else _delivery(row)

    def list(self, status: str | None = None, limit: int = 100) -> builtins.list[Delivery]:
        """The newest ``limit`` deliveries, of one status or of all."""
        rows = self._db.execute(
            f"SELECT {COLUMNS} FROM deliveries WHERE ?1 IS NULL OR status = ?1"  # noqa: S608 -- constant
            " ORDER BY id DESC LIMIT ?2", (status, limit),
        ).fetchall()
        return [_delivery(row) for row in rows]

    def counts(self) -> dict[str, int]:
        """How many deliveries are in each status (every status present, zero or not)."""
        rows = self._db.execute(
            "SELECT status, count(*) FROM deliveries GROUP BY status"
        ).fetchall()
        return {status: 0 for status in STATUSES} | dict(rows)

    def retry(self, delivery_id: int) -> bool:
        """Make a dead delivery pending and due now; False when it is not dead.

        ``attempts`` is kept: it is the row's history. The retry policy counts it, so a
        delivery that had used up its attempts gets one more before it is dead again.
        """
        return self._db.execute(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = ?, done_at = NULL"
            " WHERE id = ? AND status = 'dead'", (self._now(), delivery_id),
        ).rowcount == 1

    def purge(self, older_than: timedelta,
              statuses: Sequence[str] = ("done", "cancelled")) -> int:
        """Delete deliveries finished more than ``older_than`` ago; never unfinished ones."""
        if not statuses or not set(statuses) <= PURGEABLE:
            raise ValueError(f"only {sorted(PURGEABLE)} deliveries can be purged, not {statuses}")
        marks = ", ".join("?" for _ in statuses)
        return self._db.execute(
            f"DELETE FROM deliveries WHERE status IN ({marks}) AND done_at < ?",  # noqa: S608 -- placeholders only
            (*statuses, self._now() - older_than.total_seconds()),
        ).rowcount

    def _finish(self, delivery_id: int, status: str, error: str | None) -> None:
        """Close an in-flight delivery as done or dead (``done_at`` is when it finished)."""
        self._db.execute(
            "UPDATE deliveries SET status = ?, last_error = coalesce(?, last_error),"
            " done_at = ?, leased_until = NULL WHERE id = ? AND status = 'in_flight'",
            (status, error, self._now(), delivery_id),
        )

    def _now(self) -> float:
        return self._clock().timestamp()

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """The write lock at once, so two claims never see the same row (joins an outer one)."""
        return self._db.transaction()


def _delivery(row: tuple[Any, ...]) -> Delivery:
    (id_, call_sid, sink, action, payload, status, attempts, last_error, created_at,
     next_attempt_at) = row
    return Delivery(
        id=id_, call_sid=call_sid, sink=sink, action=action, payload=json.loads(payload),
        status=status, attempts=attempts, last_error=last_error,
        created_at=datetime.fromtimestamp(created_at, UTC),
        next_attempt_at=datetime.fromtimestamp(next_attempt_at, UTC),
    )


def upgrade(conn: sqlite3.Connection) -> None:
    """Let a file made before deliveries could be ``cancelled`` hold that status.

    SQLite cannot change a CHECK constraint in place: the table is copied into one made
    with the current schema, in one transaction.
    """
    (sql,) = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'deliveries'").fetchone()
    if "'cancelled'" in sql:
        return
    copy = ("INSERT INTO deliveries SELECT * FROM deliveries_before_cancelled;"
            " DROP TABLE deliveries_before_cancelled;")
    conn.executescript("BEGIN IMMEDIATE; DROP INDEX IF EXISTS deliveries_due;"
                       " ALTER TABLE deliveries RENAME TO deliveries_before_cancelled;"
                       + SCHEMA + copy + " COMMIT;")
