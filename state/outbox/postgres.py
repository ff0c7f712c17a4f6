"""The outbox on PostgreSQL: deliveries shared by any number of dispatchers in any processes.

A claim is one short transaction: ``SELECT … FOR UPDATE SKIP LOCKED`` picks due rows no
other claim is taking at that moment, and the same statement leases them. No lock is held
while a delivery is made; the lease is in the row, so a dispatcher killed mid-delivery
leaves rows that any other takes over once ``leased_until`` passes. The promises are the
SQLite outbox's (``state.outbox.sqlite``): idempotent enqueue per CallSid, sink and
action; lanes per sink (``skip_sinks``); retries at the time the dispatcher chose; dead
letters; late payloads refreshed while still pending; the views ``cahub outbox`` needs.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from hub.models import Delivery, NewDelivery
from hub.outbox import DEFAULT_LEASE, FORGOTTEN, PURGEABLE, STATUSES, clean_error, utc_now
from state.postgres import PostgresDatabase

COLUMN_NAMES = ("id", "call_sid", "sink", "action", "payload", "status", "attempts",
                "last_error", "created_at", "next_attempt_at")
COLUMNS = ", ".join(COLUMN_NAMES)
RETURNED = ", ".join(f"deliveries.{name}" for name in COLUMN_NAMES)

ENQUEUE = """
INSERT INTO deliveries (call_sid, sink, action, payload, created_at, next_attempt_at)
SELECT call_sid, sink, action, payload::jsonb, %(now)s, %(due)s
FROM unnest(%(call_sids)s::text[], %(sinks)s::text[], %(actions)s::text[],
            %(payloads)s::text[]) AS new (call_sid, sink, action, payload)
ON CONFLICT ON CONSTRAINT deliveries_once DO NOTHING
"""

REFRESH = """
UPDATE deliveries SET payload = new.payload::jsonb, next_attempt_at = %(now)s
FROM unnest(%(call_sids)s::text[], %(sinks)s::text[], %(actions)s::text[],
            %(payloads)s::text[]) AS new (call_sid, sink, action, payload)
WHERE deliveries.call_sid = new.call_sid AND deliveries.sink = new.sink
  AND deliveries.action = new.action AND deliveries.status = 'pending'
"""

CLAIM = f"""
WITH due AS (
    SELECT id FROM deliveries
    WHERE ((status = 'pending' AND next_attempt_at <= %(now)s)
           OR (status = 'in_flight' AND leased_until <= %(now)s))
      AND sink <> ALL(%(skip)s::text[])
    ORDER BY next_attempt_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE deliveries SET status = 'in_flight', leased_until = %(until)s,
                      attempts = deliveries.attempts + 1
FROM due WHERE deliveries.id = due.id
RETURNING {RETURNED}
"""  # noqa: S608 -- RETURNED is a constant


# One rewrite per row (each rewrite leaves a dead version until the table is vacuumed):
# every delivery of the calls loses its payload, and the unfinished ones are cancelled.
FORGET = """
UPDATE deliveries SET payload = '{}'::jsonb,
    status = CASE WHEN unfinished THEN 'cancelled' ELSE status END,
    last_error = CASE WHEN unfinished THEN %(why)s ELSE last_error END,
    done_at = CASE WHEN unfinished THEN %(now)s ELSE done_at END,
    leased_until = CASE WHEN unfinished THEN NULL ELSE leased_until END
FROM (SELECT id, status IN ('pending', 'in_flight') AS unfinished FROM deliveries
      WHERE call_sid = ANY(%(sids)s)) AS found
WHERE deliveries.id = found.id
"""


class PostgresOutbox:
    """``hub.ports.Outbox`` on the hub's PostgreSQL database, plus what ``cahub outbox`` needs.

    ``lease`` is how long a claimed delivery stays with its dispatcher; it must be well over
    a sink's timeout, since a lease that runs out hands the delivery to another dispatcher.
    """

    def __init__(self, db: PostgresDatabase, clock: Callable[[], datetime] = utc_now,
                 lease: timedelta = DEFAULT_LEASE) -> None:
        self._db = db
        self._clock = clock
        self._lease = lease

    def enqueue(self, deliveries: Sequence[NewDelivery], delay: float = 0.0) -> int:
        """Store new deliveries, due after ``delay`` seconds; durable when this returns."""
        now = self._clock()
        return self._write(ENQUEUE, deliveries, now=now, due=now + timedelta(seconds=delay))

    def refresh(self, deliveries: Sequence[NewDelivery]) -> int:
        """Give still-pending deliveries a new payload and make them due now."""
        return self._write(REFRESH, deliveries, now=self._clock())

    def claim_due(self, limit: int, skip_sinks: Collection[str] = ()) -> list[Delivery]:
        """Lease up to ``limit`` due pending rows and rows whose lease ran out, oldest first.

        Rows of the sinks named in ``skip_sinks``, and rows another claim holds at this
        moment, are left where they are.
        """
        now = self._clock()
        with self._db.transaction() as conn:
            rows = conn.execute(CLAIM, {"now": now, "until": now + self._lease,
                                        "skip": sorted(skip_sinks), "limit": limit}).fetchall()
        return sorted((_delivery(row) for row in rows), key=lambda d: (d.next_attempt_at, d.id))

    def mark_done(self, delivery_id: int) -> None:
        self._finish(delivery_id, "done", None)

    def mark_failed(self, delivery_id: int, error: str, retry_at: datetime | None) -> None:
        """Record a failure: pending again at ``retry_at``, or dead when it is None."""
        if retry_at is None:
            self._finish(delivery_id, "dead", clean_error(error))
            return
        self._execute(
            "UPDATE deliveries SET status = 'pending', last_error = %s, next_attempt_at = %s,"
            " leased_until = NULL WHERE id = %s AND status = 'in_flight'",
            (clean_error(error), retry_at, delivery_id),
        )

    def forget(self, call_sids: Collection[str]) -> dict[str, int]:
        """Cancel these calls' unfinished deliveries and erase every one's payload; how many
        there were of each status before.

        The rows are locked first, so no claim takes one meanwhile. An in-flight delivery
        is cancelled too: its worker's ``mark_done`` then changes nothing, though the
        request it is making may still reach its sink.
        """
        counts = dict.fromkeys(STATUSES, 0)
        if not call_sids:
            return counts
        sids = sorted(call_sids)
        with self._db.transaction() as conn:
            found = conn.execute("SELECT status FROM deliveries WHERE call_sid = ANY(%s)"
                                 " FOR UPDATE", (sids,)).fetchall()
            conn.execute(FORGET, {"why": FORGOTTEN, "now": self._clock(), "sids": sids})
        for (status,) in found:
            counts[str(status)] += 1
        return counts

    def get(self, delivery_id: int) -> Delivery | None:
        rows = self._query(f"SELECT {COLUMNS} FROM deliveries WHERE id = %s",  # noqa: S608 -- constant
                           (delivery_id,))
        return _delivery(rows[0]) if rows else None

    def list(self, status: str | None = None, limit: int = 100) -> builtins.list[Delivery]:
        """The newest ``limit`` deliveries, of one status or of all."""
        rows = self._query(
            f"SELECT {COLUMNS} FROM deliveries WHERE %(status)s::text IS NULL"  # noqa: S608 -- constant
            " OR status = %(status)s ORDER BY id DESC LIMIT %(limit)s",
            {"status": status, "limit": limit},
        )
        return [_delivery(row) for row in rows]

    def counts(self) -> dict[str, int]:
        """How many deliveries are in each status (every status present, zero or not)."""
        rows = self._query("SELECT status, count(*) FROM deliveries GROUP BY status", ())
        return {status: 0 for status in STATUSES} | {str(s): int(n) for s, n in rows}

    def retry(self, delivery_id: int) -> bool:
        """Make a dead delivery pending and due now; False when it is not dead."""
        return self._execute(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = %s, done_at = NULL"
            " WHERE id = %s AND status = 'dead'", (self._clock(), delivery_id),
        ) == 1

    def purge(self, older_than: timedelta,
              statuses: Sequence[str] = ("done", "cancelled")) -> int:
        """Delete deliveries finished more than ``older_than`` ago; never unfinished ones."""
        if not statuses or not set(statuses) <= PURGEABLE:
            raise ValueError(f"only {sorted(PURGEABLE)} deliveries can be purged, not {statuses}")
        return self._execute(
            "DELETE FROM deliveries WHERE status = ANY(%s) AND done_at < %s",
            (list(statuses), self._clock() - older_than),
        )

    def _finish(self, delivery_id: int, status: str, error: str | None) -> None:
        """Close an in-flight delivery as done or dead (``done_at`` is when it finished)."""
        self._execute(
            "UPDATE deliveries SET status = %s, last_error = coalesce(%s, last_error),"
            " done_at = %s, leased_until = NULL WHERE id = %s AND status = 'in_flight'",
            (status, error, self._clock(), delivery_id),
        )

    def _write(self, statement: str, deliveries: Sequence[NewDelivery], **times: datetime) -> int:
        """``statement`` over ``deliveries`` as arrays: one round trip, whatever their number."""
        if not deliveries:
            return 0
        return self._execute(statement, {
            "call_sids": [d.call_sid for d in deliveries], "sinks": [d.sink for d in deliveries],
            "actions": [d.action.value for d in deliveries],
            "payloads": [json.dumps(d.payload) for d in deliveries], **times,
        })

    def _execute(self, statement: str, params: Any) -> int:
        with self._db.connection() as conn:
            return conn.execute(statement, params).rowcount

    def _query(self, statement: str, params: Any) -> builtins.list[tuple[Any, ...]]:
        with self._db.connection() as conn:
            return conn.execute(statement, params).fetchall()


def _delivery(row: tuple[Any, ...]) -> Delivery:
    (id_, call_sid, sink, action, payload, status, attempts, last_error, created_at,
     next_attempt_at) = row
    return Delivery(
        id=id_, call_sid=call_sid, sink=sink, action=action, payload=payload, status=status,
        attempts=attempts, last_error=last_error, created_at=created_at.astimezone(UTC),
        next_attempt_at=next_attempt_at.astimezone(UTC),
    )
